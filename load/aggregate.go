package load

import (
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Second aggregates the results that ended in one second of the run.
type Second struct {
	T        int            `json:"t"` // seconds since the start
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Versions map[string]int `json:"versions,omitempty"`
	P50MS    float64        `json:"p50_ms"`
	P99MS    float64        `json:"p99_ms"`
	MaxMS    float64        `json:"max_ms"`
	hist     [histBuckets]uint32
}

// Failure is one failed request.
type Failure struct {
	Time   time.Time `json:"time"`
	Target string    `json:"target"`
	Code   uint16    `json:"code"`
	Error  string    `json:"error,omitempty"`
}

// MaxFailureSamples bounds the failures kept in memory; all of them are in results.bin.
const MaxFailureSamples = 1000

// Aggregator folds results into totals, per-second buckets and failure samples, in constant memory
// per second of run.
type Aggregator struct {
	mu       sync.Mutex
	metrics  vegeta.Metrics
	seconds  []Second
	failures []Failure
	failed   int
	ok       int
	lastOK   time.Time
	maxGap   time.Duration
	gapEnd   time.Time
	first    time.Time
	lastEnd  time.Time
	// For the run's Prometheus metrics: requests by target and status, and the latency histogram of
	// the whole run.
	byTarget map[TargetCode]uint64
	latHist  [14]uint64 // per LatencyBuckets bound; the last counts what is above every bound
	latSum   time.Duration
}

// TargetCode keys request counts: the target's name and the HTTP status ("0" when no response came).
type TargetCode struct {
	Target string
	Code   uint16
}

// NewAggregator returns an empty aggregator.
func NewAggregator() *Aggregator { return &Aggregator{} }

// Success is the status a rehearsal counts as served: 2xx.
func Success(code uint16) bool { return code >= 200 && code < 300 }

// Add folds one result in; start is the run's start.
func (a *Aggregator) Add(r *vegeta.Result, start time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.metrics.Add(r)
	end := r.End()
	if a.first.IsZero() {
		a.first = start
	}
	if end.After(a.lastEnd) {
		a.lastEnd = end
	}
	t := int(end.Sub(start) / time.Second)
	if t < 0 {
		t = 0
	}
	for len(a.seconds) <= t {
		a.seconds = append(a.seconds, Second{T: len(a.seconds)})
	}
	s := &a.seconds[t]
	target, _, _ := strings.Cut(r.Headers.Get(requestHeader), "; id=")
	if a.byTarget == nil {
		a.byTarget = map[TargetCode]uint64{}
	}
	a.byTarget[TargetCode{target, r.Code}]++
	if Success(r.Code) && r.Error == "" {
		s.OK++
		a.ok++
		base := a.lastOK
		if base.IsZero() {
			base = start
		}
		if end.After(base) {
			if gap := end.Sub(base); gap > a.maxGap {
				a.maxGap, a.gapEnd = gap, end
			}
			a.lastOK = end
		}
	} else {
		s.Failed++
		a.failed++
		if len(a.failures) < MaxFailureSamples {
			if target == "" {
				target = r.Method + " " + r.URL
			}
			a.failures = append(a.failures, Failure{Time: end, Target: target, Code: r.Code, Error: r.Error})
		}
	}
	if v := r.Headers.Get(VersionHeader); v != "" {
		if s.Versions == nil {
			s.Versions = map[string]int{}
		}
		s.Versions[v]++
	}
	ms := float64(r.Latency) / float64(time.Millisecond)
	s.hist[bucket(ms)]++
	a.latHist[sort.SearchFloat64s(LatencyBuckets[:], r.Latency.Seconds())]++
	a.latSum += r.Latency
	if ms > s.MaxMS {
		s.MaxMS = ms
	}
}

// Totals summarises the run so far.
type Totals struct {
	Requests     int                `json:"requests"`
	Succeeded    int                `json:"succeeded"`
	Failed       int                `json:"failed"`
	AchievedRate float64            `json:"achieved_rate"`
	LatencyMS    map[string]float64 `json:"latency_ms"`
	// LongestGap is the longest time without a successful response (from the start, between
	// successes); it ends at GapEnd.
	LongestGap time.Duration `json:"longest_gap"`
	GapEnd     time.Time     `json:"gap_end"`
	Duration   time.Duration `json:"duration"`
}

// Totals computes totals; the vegeta metrics are closed over a copy, so adding may go on.
func (a *Aggregator) Totals() Totals {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.metrics
	m.Close()
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*100) / 100 }
	gap, gapEnd := a.maxGap, a.gapEnd
	if a.ok == 0 && a.failed > 0 {
		gap, gapEnd = a.lastEnd.Sub(a.first), a.lastEnd // never served: the whole run is one gap
	}
	return Totals{
		Requests: a.ok + a.failed, Succeeded: a.ok, Failed: a.failed,
		AchievedRate: m.Rate,
		LatencyMS:    map[string]float64{"p50": ms(m.Latencies.P50), "p99": ms(m.Latencies.P99), "max": ms(m.Latencies.Max)},
		LongestGap:   gap, GapEnd: gapEnd, Duration: m.Duration,
	}
}

// Seconds returns the per-second buckets with their percentiles filled in.
func (a *Aggregator) Seconds() []Second {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Second, len(a.seconds))
	for i, s := range a.seconds {
		s.P50MS, s.P99MS = quantile(&s.hist, 0.5), quantile(&s.hist, 0.99)
		out[i] = s
	}
	return out
}

// LatencyBuckets are the upper bounds, in seconds, of the latency histogram in the run's metrics.
var LatencyBuckets = [13]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Counters is a snapshot of the run's counters for its metrics.
type Counters struct {
	Requests map[TargetCode]uint64
	// Buckets are cumulative counts of latencies at or under each UpperSeconds.
	Buckets      map[float64]uint64
	LatencyCount uint64
	LatencySum   time.Duration
}

// Counters snapshots the counters.
func (a *Aggregator) Counters() Counters {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := Counters{Requests: make(map[TargetCode]uint64, len(a.byTarget)), Buckets: make(map[float64]uint64, len(LatencyBuckets)), LatencySum: a.latSum}
	for k, v := range a.byTarget {
		c.Requests[k] = v
	}
	for b, n := range a.latHist {
		c.LatencyCount += n
		if b < len(LatencyBuckets) {
			c.Buckets[LatencyBuckets[b]] = c.LatencyCount
		}
	}
	return c
}

// Failures returns the failure samples in time order.
func (a *Aggregator) Failures() []Failure {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := append([]Failure(nil), a.failures...)
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// Latency histogram: log-spaced buckets from 0.1 ms to ~100 s, 10 per decade.
const histBuckets = 61

func bucket(ms float64) int {
	if ms <= 0.1 {
		return 0
	}
	b := int(math.Ceil(10 * math.Log10(ms/0.1)))
	return min(b, histBuckets-1)
}

func bucketUpper(b int) float64 { return 0.1 * math.Pow(10, float64(b)/10) }

func quantile(h *[histBuckets]uint32, q float64) float64 {
	var n uint64
	for _, c := range h {
		n += uint64(c)
	}
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	var seen uint64
	for b, c := range h {
		seen += uint64(c)
		if seen >= rank {
			return math.Round(bucketUpper(b)*100) / 100
		}
	}
	return bucketUpper(histBuckets - 1)
}
