package load

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The machine that runs the load is part of the measurement: on a starved host (a run queue of 70 on
// two cores) requests wait in the client and in every pod of a local kind cluster, and a sound system
// can look slow or broken. A HostMonitor samples the host once a second while the load runs, so a
// report can say when the machine itself was saturated, and a reviewer can tell a sick system from a
// sick runner. It reads /proc only (Linux); elsewhere it records nothing and says so.

// Saturation thresholds: a second is saturated when the CPUs were at least SaturatedBusy busy and
// either tasks waited for a CPU for at least SaturatedPressure of the second (PSI cpu "some") or the
// run queue held at least SaturatedRunQueuePerCPU runnable tasks per CPU. A run is saturated when at
// least SaturatedShare of its sampled seconds (and at least SaturatedMinSeconds of them) were.
const (
	SaturatedBusy           = 0.95
	SaturatedPressure       = 0.80
	SaturatedRunQueuePerCPU = 4
	SaturatedShare          = 0.10
	SaturatedMinSeconds     = 5
)

// HostSaturatedWarning is the warning a report carries when the host was saturated during the load.
const HostSaturatedWarning = "the machine running the load was saturated: results may reflect it"

// HostSample is one second of the host's load.
type HostSample struct {
	// At is the end of the sampled second, from the monitor's start.
	At time.Duration `json:"at_ms"`
	// CPUBusy is the share of all CPUs' time that was not idle or iowait in the second (0..1).
	CPUBusy float64 `json:"cpu_busy"`
	// CPUPressure is the share of the second in which some runnable task waited for a CPU (PSI
	// cpu some; -1 when the kernel does not report it).
	CPUPressure float64 `json:"cpu_pressure"`
	// RunQueue is the number of runnable tasks at the sample (procs_running).
	RunQueue int `json:"run_queue"`
	// MemAvailableMB is the memory available for new work (MemAvailable).
	MemAvailableMB int64 `json:"mem_available_mb"`
}

// Saturated says whether the host could not keep up in this second (see the thresholds above).
func (s HostSample) Saturated(cpus int) bool {
	return s.CPUBusy >= SaturatedBusy && (s.CPUPressure >= SaturatedPressure || s.RunQueue >= SaturatedRunQueuePerCPU*max(cpus, 1))
}

// HostLoad sums up the host's load over the samples of a run.
type HostLoad struct {
	CPUs      int `json:"cpus"`
	Samples   int `json:"samples"`
	Saturated int `json:"saturated_seconds"`
	// SaturatedFrom and SaturatedTo bound the saturated seconds (from the load's start), when any.
	SaturatedFrom  float64 `json:"saturated_from_s,omitempty"`
	SaturatedTo    float64 `json:"saturated_to_s,omitempty"`
	CPUBusyMean    float64 `json:"cpu_busy_mean"`
	CPUPressureMax float64 `json:"cpu_pressure_max"`
	RunQueueMedian int     `json:"run_queue_median"`
	RunQueueP90    int     `json:"run_queue_p90"`
	RunQueueMax    int     `json:"run_queue_max"`
	MemAvailMinMB  int64   `json:"mem_available_min_mb"`
	// Warning is HostSaturatedWarning when the run was saturated (see IsSaturated), else empty.
	Warning string `json:"warning,omitempty"`
	// Unavailable says why nothing was sampled (not Linux, /proc unreadable).
	Unavailable string `json:"unavailable,omitempty"`
}

// IsSaturated applies the run's rule: enough saturated seconds, in count and share.
func (h HostLoad) IsSaturated() bool {
	return h.Samples > 0 && h.Saturated >= SaturatedMinSeconds && float64(h.Saturated) >= SaturatedShare*float64(h.Samples)
}

// Line is the host's load in one line, for progress, the e2e recap and summary.md.
func (h HostLoad) Line() string {
	if h.Samples == 0 {
		if h.Unavailable != "" {
			return "host load not sampled: " + h.Unavailable
		}
		return "host load not sampled"
	}
	psi := "n/a"
	if h.CPUPressureMax >= 0 {
		psi = fmt.Sprintf("%.0f %%", 100*h.CPUPressureMax)
	}
	line := fmt.Sprintf("host: %d CPUs, %.0f %% busy on average, run queue median %d / p90 %d / max %d, CPU pressure max %s, memory available min %d MB; %d of %d s saturated",
		h.CPUs, 100*h.CPUBusyMean, h.RunQueueMedian, h.RunQueueP90, h.RunQueueMax, psi, h.MemAvailMinMB, h.Saturated, h.Samples)
	if h.Saturated > 0 {
		line += fmt.Sprintf(" (between +%.0fs and +%.0fs)", h.SaturatedFrom, h.SaturatedTo)
	}
	return line
}

// SummarizeHost sums up samples taken on a host with cpus CPUs.
func SummarizeHost(cpus int, samples []HostSample) HostLoad {
	h := HostLoad{CPUs: cpus, Samples: len(samples), CPUPressureMax: -1}
	if len(samples) == 0 {
		return h
	}
	var busy float64
	queues := make([]int, 0, len(samples))
	h.MemAvailMinMB = samples[0].MemAvailableMB
	for _, s := range samples {
		busy += s.CPUBusy
		queues = append(queues, s.RunQueue)
		h.CPUPressureMax = max(h.CPUPressureMax, s.CPUPressure)
		h.MemAvailMinMB = min(h.MemAvailMinMB, s.MemAvailableMB)
		if s.Saturated(cpus) {
			at := s.At.Seconds()
			if h.Saturated == 0 {
				h.SaturatedFrom = at - 1
			}
			h.SaturatedTo = at
			h.Saturated++
		}
	}
	h.CPUBusyMean = busy / float64(len(samples))
	slices.Sort(queues)
	h.RunQueueMedian = queues[len(queues)/2]
	h.RunQueueP90 = queues[min(len(queues)-1, len(queues)*9/10)]
	h.RunQueueMax = queues[len(queues)-1]
	if h.IsSaturated() {
		h.Warning = HostSaturatedWarning
	}
	return h
}

// HostMonitor samples the host every second until Stop.
type HostMonitor struct {
	proc    string
	cpus    int
	start   time.Time
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples []HostSample
	err     error
}

// hostCounters are the cumulative counters a sample is the difference of.
type hostCounters struct {
	busy, total uint64 // jiffies
	stallUS     int64  // PSI cpu some total, µs; -1 when unknown
	runQueue    int
	memAvailKB  int64
}

// StartHostMonitor samples /proc every interval (a second when zero).
func StartHostMonitor(interval time.Duration) *HostMonitor {
	return startHostMonitor("/proc", runtime.NumCPU(), interval)
}

func startHostMonitor(proc string, cpus int, interval time.Duration) *HostMonitor {
	if interval <= 0 {
		interval = time.Second
	}
	m := &HostMonitor{proc: proc, cpus: cpus, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go m.loop(interval)
	return m
}

func (m *HostMonitor) loop(interval time.Duration) {
	defer close(m.done)
	prev, err := readHost(m.proc)
	if err != nil {
		m.mu.Lock()
		m.err = err
		m.mu.Unlock()
		return
	}
	prevAt := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		cur, err := readHost(m.proc)
		now := time.Now()
		if err != nil {
			continue
		}
		m.mu.Lock()
		m.samples = append(m.samples, sampleBetween(prev, cur, now.Sub(prevAt), now.Sub(m.start)))
		m.mu.Unlock()
		prev, prevAt = cur, now
	}
}

// sampleBetween is the sample of the interval between two readings.
func sampleBetween(prev, cur hostCounters, elapsed, at time.Duration) HostSample {
	s := HostSample{At: at, RunQueue: cur.runQueue, MemAvailableMB: cur.memAvailKB >> 10, CPUPressure: -1}
	if dt := cur.total - prev.total; cur.total > prev.total {
		s.CPUBusy = float64(cur.busy-prev.busy) / float64(dt)
	}
	if cur.stallUS >= 0 && prev.stallUS >= 0 && elapsed > 0 {
		s.CPUPressure = min(1, float64(cur.stallUS-prev.stallUS)/float64(elapsed.Microseconds()))
	}
	return s
}

// Stop ends sampling and returns the summary of the samples whose second ended between from and to
// (offsets from the monitor's start; to <= 0 means up to the end). Samples' times are made relative
// to from.
func (m *HostMonitor) Stop(from, to time.Duration) HostLoad {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	var in []HostSample
	for _, s := range m.samples {
		if s.At > from && (to <= 0 || s.At <= to+time.Second/2) {
			s.At -= from
			in = append(in, s)
		}
	}
	h := SummarizeHost(m.cpus, in)
	if m.err != nil {
		h.Unavailable = m.err.Error()
	}
	return h
}

// Started is the monitor's time zero.
func (m *HostMonitor) Started() time.Time { return m.start }

// readHost reads the counters: /proc/stat (CPU time, procs_running), /proc/pressure/cpu (when the
// kernel has PSI) and /proc/meminfo.
func readHost(proc string) (hostCounters, error) {
	c := hostCounters{stallUS: -1}
	stat, err := os.ReadFile(filepath.Join(proc, "stat"))
	if err != nil {
		return c, fmt.Errorf("host load: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(stat))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) > 5 && f[0] == "cpu":
			// user nice system idle iowait irq softirq steal (guest time is within user)
			for i, v := range f[1:min(len(f), 9)] {
				n, _ := strconv.ParseUint(v, 10, 64)
				c.total += n
				if i != 3 && i != 4 {
					c.busy += n
				}
			}
		case len(f) == 2 && f[0] == "procs_running":
			c.runQueue, _ = strconv.Atoi(f[1])
		}
	}
	if c.total == 0 {
		return c, fmt.Errorf("host load: no cpu line in %s", filepath.Join(proc, "stat"))
	}
	if psi, err := os.ReadFile(filepath.Join(proc, "pressure", "cpu")); err == nil {
		for _, line := range strings.Split(string(psi), "\n") {
			if !strings.HasPrefix(line, "some ") {
				continue
			}
			for _, kv := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(kv, "total="); ok {
					if n, err := strconv.ParseInt(v, 10, 64); err == nil {
						c.stallUS = n
					}
				}
			}
		}
	}
	if mem, err := os.ReadFile(filepath.Join(proc, "meminfo")); err == nil {
		for _, line := range strings.Split(string(mem), "\n") {
			if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
				c.memAvailKB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	return c, nil
}
