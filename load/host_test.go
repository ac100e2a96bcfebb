package load

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func writeProc(t *testing.T, dir string, user, idle uint64, running int, stallUS int64, availKB int64) {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "pressure"), 0o755))
	stat := "cpu  " + itoa(user) + " 0 0 " + itoa(idle) + " 0 0 0 0 0 0\ncpu0 1 2 3 4\nprocs_running " + itoa(uint64(running)) + "\nprocs_blocked 0\n"
	must(os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644))
	if stallUS >= 0 {
		psi := "some avg10=1.00 avg60=2.00 avg300=3.00 total=" + itoa(uint64(stallUS)) + "\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
		must(os.WriteFile(filepath.Join(dir, "pressure", "cpu"), []byte(psi), 0o644))
	}
	must(os.WriteFile(filepath.Join(dir, "meminfo"), []byte("MemTotal: 100 kB\nMemAvailable:    "+itoa(uint64(availKB))+" kB\n"), 0o644))
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func TestReadHostAndSample(t *testing.T) {
	dir := t.TempDir()
	writeProc(t, dir, 100, 900, 3, 1_000_000, 2048*1024)
	a, err := readHost(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeProc(t, dir, 290, 910, 70, 1_900_000, 1024*1024)
	b, err := readHost(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := sampleBetween(a, b, time.Second, 5*time.Second)
	if s.CPUBusy != 0.95 || s.RunQueue != 70 || s.MemAvailableMB != 1024 || s.CPUPressure < 0.899 || s.CPUPressure > 0.901 {
		t.Fatalf("sample %+v; want busy 0.95, run queue 70, 1024 MB, pressure 0.9", s)
	}
	if !s.Saturated(2) {
		t.Errorf("%+v not saturated on 2 CPUs", s)
	}
	// Without PSI the run queue decides.
	os.Remove(filepath.Join(dir, "pressure", "cpu"))
	c, _ := readHost(dir)
	if c.stallUS != -1 {
		t.Errorf("stall %d without PSI; want -1", c.stallUS)
	}
	if s := sampleBetween(a, c, time.Second, time.Second); s.CPUPressure != -1 || !s.Saturated(2) {
		t.Errorf("without PSI: %+v", s)
	}
	if _, err := readHost(t.TempDir()); err == nil {
		t.Error("no /proc/stat: want an error")
	}
}

func TestHostSaturatedRule(t *testing.T) {
	cases := []struct {
		s    HostSample
		want bool
	}{
		{HostSample{CPUBusy: 1, CPUPressure: 0.9, RunQueue: 3}, true},
		{HostSample{CPUBusy: 1, CPUPressure: 0.1, RunQueue: 8}, true},
		{HostSample{CPUBusy: 1, CPUPressure: 0.5, RunQueue: 7}, false},     // busy, but keeping up
		{HostSample{CPUBusy: 0.8, CPUPressure: 0.95, RunQueue: 40}, false}, // idle CPU left: not saturated
	}
	for _, c := range cases {
		if got := c.s.Saturated(2); got != c.want {
			t.Errorf("%+v: saturated %v; want %v", c.s, got, c.want)
		}
	}
}

func TestSummarizeHost(t *testing.T) {
	var samples []HostSample
	for i := range 60 {
		s := HostSample{At: time.Duration(i+1) * time.Second, CPUBusy: 0.5, CPUPressure: 0.1, RunQueue: 2, MemAvailableMB: 9000 - int64(i)}
		if i >= 20 && i < 30 {
			s.CPUBusy, s.RunQueue = 1, 60
		}
		samples = append(samples, s)
	}
	h := SummarizeHost(2, samples)
	if h.Saturated != 10 || h.SaturatedFrom != 20 || h.SaturatedTo != 30 || h.RunQueueMax != 60 || h.RunQueueMedian != 2 || h.MemAvailMinMB != 8941 {
		t.Fatalf("%+v", h)
	}
	if !h.IsSaturated() || h.Warning != HostSaturatedWarning {
		t.Errorf("10 of 60 s saturated: want the warning, got %+v", h)
	}
	if !strings.Contains(h.Line(), "10 of 60 s saturated (between +20s and +30s)") {
		t.Errorf("line %q", h.Line())
	}
	// A short stall (4 s) is not a saturated run, nor is 6 s in 100.
	h = SummarizeHost(2, samples[15:25])
	if h.Saturated != 5 || !h.IsSaturated() {
		t.Errorf("5 of 10: %+v", h)
	}
	if h := SummarizeHost(2, samples[:24]); h.IsSaturated() || h.Warning != "" {
		t.Errorf("4 saturated seconds: %+v", h)
	}
	if h := SummarizeHost(2, nil); h.IsSaturated() || h.Line() != "host load not sampled" {
		t.Errorf("no samples: %+v %q", h, h.Line())
	}
}

func TestHostMonitorSamplesAndStops(t *testing.T) {
	dir := t.TempDir()
	writeProc(t, dir, 0, 1000, 1, 0, 4096*1024)
	m := startHostMonitor(dir, 2, 20*time.Millisecond)
	for i := range 5 {
		time.Sleep(25 * time.Millisecond)
		writeProc(t, dir, uint64(i+1)*1000, 1000, 50, int64(i+1)*1_000_000, 4096*1024)
	}
	time.Sleep(25 * time.Millisecond)
	h := m.Stop(0, 0)
	if h.Samples < 3 || h.RunQueueMax != 50 || h.CPUBusyMean <= 0 {
		t.Fatalf("%+v", h)
	}
	h2 := m.Stop(0, 0) // a second Stop is harmless
	if h2.Samples != h.Samples {
		t.Errorf("second stop: %d samples, first %d", h2.Samples, h.Samples)
	}
	bad := startHostMonitor(t.TempDir(), 2, 10*time.Millisecond)
	if h := bad.Stop(0, 0); h.Samples != 0 || h.Unavailable == "" || !strings.Contains(h.Line(), "not sampled") {
		t.Errorf("unreadable /proc: %+v", h)
	}
}
