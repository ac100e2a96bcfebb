package load

import (
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Second aggregates the requests scheduled in one second of the run. Latencies are measured from
// the scheduled send time (corrected for coordinated omission: a client that fell behind does not
// hide the wait it imposed).
type Second struct {
	T       int `json:"t"` // seconds since the start
	OK      int `json:"ok"`
	Failed  int `json:"failed"`             // includes NotSent
	NotSent int `json:"not_sent,omitempty"` // due, but the client could not send them in time
	// Retried needed a second attempt (see Retried): failed, unless the clients retry (then OK).
	Retried   int            `json:"retried,omitempty"`
	Scheduled float64        `json:"scheduled,omitempty"` // what the pacer called for in this second
	Versions  map[string]int `json:"versions,omitempty"`  // answers by the version they said
	// VersionFailed are the failed answers among Versions (a 5xx from a new version, say).
	VersionFailed map[string]int `json:"version_failed,omitempty"`
	P50MS         float64        `json:"p50_ms"`
	P99MS         float64        `json:"p99_ms"`
	MaxMS         float64        `json:"max_ms"`
	hist          [histBuckets]uint32
	vhist         map[string]*[histBuckets]uint32 // latencies per version
}

// Failure is one failed request, at its scheduled time (its send time at saturation).
type Failure struct {
	Time   time.Time `json:"time"`
	Target string    `json:"target"`
	Code   uint16    `json:"code"`
	Error  string    `json:"error,omitempty"`
	// Latency is how long the request was in flight before it failed (a timeout's: the timeout).
	Latency time.Duration `json:"latency_ns,omitempty"`
}

// MaxFailureSamples bounds the failures kept in memory; all of them are in results.bin.
const MaxFailureSamples = 1000

// Aggregator folds results into totals, per-second buckets and failure samples, in constant memory
// per second of run.
type Aggregator struct {
	start     time.Time
	sched     func(seq uint64) time.Time // a request's scheduled time; zero at saturation
	version   Version                    // where an answer names the serving version
	succeeded func(target string, code uint16) bool
	schedule  func(elapsed time.Duration) float64 // requests due by elapsed; nil at saturation
	// known is how far the results have reached the aggregator (Known); nil: up to now.
	known func() (time.Time, string)

	mu      sync.Mutex
	metrics vegeta.Metrics // latencies from the scheduled time
	seconds []Second
	// marks are every request at its scheduled time (its send time at saturation), the time failures
	// are attributed by: a step's load is counted over its exact window, not the seconds it overlaps.
	marks    []mark
	retried  int
	failures []Failure
	failed   int
	notSent  int
	ok       int
	lastOK   time.Time
	maxGap   time.Duration
	gapEnd   time.Time
	lastEnd  time.Time
	end      time.Time           // when the run stopped (zero while it runs)
	sentHist [histBuckets]uint32 // latencies from the actual send, for comparison
	// For the run's Prometheus metrics: requests by target and status, and the latency histogram of
	// the whole run.
	byTarget map[TargetCode]uint64
	latHist  [14]uint64 // per LatencyBuckets bound; the last counts what is above every bound
	latSum   time.Duration
}

// mark is one request in Window's count: 16 bytes, ~2 MB for 10 minutes at 200 req/s.
type mark struct {
	at      time.Duration // from the start
	bucket  uint8         // latency histogram bucket
	failed  bool
	retried bool
}

// TargetCode keys request counts: the target's name and the HTTP status ("0" when no response came).
type TargetCode struct {
	Target string
	Code   uint16
}

// NewAggregator returns an empty aggregator for a run that started at start, with no schedule, where
// a 2xx is success.
func NewAggregator(start time.Time) *Aggregator {
	return newAggregator(start, func(uint64) time.Time { return time.Time{} }, func(_ string, c uint16) bool { return Success(c) })
}

func newAggregator(start time.Time, sched func(uint64) time.Time, ok func(string, uint16) bool) *Aggregator {
	return &Aggregator{start: start, sched: sched, succeeded: ok, version: HeaderVersion(VersionHeader)}
}

// Success is the status a rehearsal counts as served when a target states nothing else: 2xx.
func Success(code uint16) bool { return code >= 200 && code < 300 }

// Add folds one result in.
func (a *Aggregator) Add(r *vegeta.Result) {
	target, _, _ := strings.Cut(r.Headers.Get(requestHeader), "; id=")
	at := a.sched(r.Seq)
	if at.IsZero() {
		at = r.Timestamp
	}
	end := r.End()
	latency := end.Sub(at)
	if latency < r.Latency {
		latency = r.Latency
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	corrected := *r
	corrected.Timestamp, corrected.Latency, corrected.Error, corrected.Body = at, latency, "", nil
	a.metrics.Add(&corrected)
	if end.After(a.lastEnd) {
		a.lastEnd = end
	}
	t := max(int(at.Sub(a.start)/time.Second), 0)
	for len(a.seconds) <= t {
		a.seconds = append(a.seconds, Second{T: len(a.seconds)})
	}
	s := &a.seconds[t]
	if a.byTarget == nil {
		a.byTarget = map[TargetCode]uint64{}
	}
	a.byTarget[TargetCode{target, r.Code}]++
	v := r.Headers.Get(versionSeenHeader) // a load agent read it where the scenario says
	if v == "" {
		v = a.version.Read(r.Headers, r.Body)
	}
	failed := r.Error != "" || !a.succeeded(target, r.Code)
	retried := r.Headers.Get(retriedHeader) != "" || strings.HasSuffix(r.Error, Retried)
	if retried {
		s.Retried++
		a.retried++
	}
	switch {
	case !failed:
		s.OK++
		a.ok++
		base := a.lastOK
		if base.IsZero() {
			base = a.start
		}
		if end.After(base) {
			if gap := end.Sub(base); gap > a.maxGap {
				a.maxGap, a.gapEnd = gap, end
			}
			a.lastOK = end
		}
	default:
		s.Failed++
		a.failed++
		if IsNotSent(r.Error) {
			s.NotSent++
			a.notSent++
		}
		if len(a.failures) < MaxFailureSamples {
			if target == "" {
				target = r.Method + " " + r.URL
			}
			a.failures = append(a.failures, Failure{Time: at, Target: target, Code: r.Code, Error: withBody(r.Error, r.Body), Latency: latency})
		}
	}
	ms := float64(latency) / float64(time.Millisecond)
	if v != "" {
		if s.Versions == nil {
			s.Versions, s.vhist = map[string]int{}, map[string]*[histBuckets]uint32{}
		}
		s.Versions[v]++
		if failed {
			if s.VersionFailed == nil {
				s.VersionFailed = map[string]int{}
			}
			s.VersionFailed[v]++
		}
		h := s.vhist[v]
		if h == nil {
			h = new([histBuckets]uint32)
			s.vhist[v] = h
		}
		h[bucket(ms)]++
	}
	s.hist[bucket(ms)]++
	a.marks = append(a.marks, mark{at: at.Sub(a.start), bucket: uint8(bucket(ms)), failed: failed, retried: retried})
	a.sentHist[bucket(float64(r.Latency)/float64(time.Millisecond))]++
	a.latHist[sort.SearchFloat64s(LatencyBuckets[:], latency.Seconds())]++
	a.latSum += latency
	if ms > s.MaxMS {
		s.MaxMS = ms
	}
}

// IsNotSent says whether a result's error is a request never sent: the client was saturated, or the
// load agent that was to send it was lost.
func IsNotSent(err string) bool {
	return err == NotSent || strings.HasSuffix(err, ": "+NotSent) || strings.HasPrefix(err, AgentLost)
}

// withBody adds the first line of a failed answer's body to its error: "503 Service Unavailable"
// alone does not say whether the app shed load, lost its database or was shutting down.
func withBody(errText string, body []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	if line = strings.TrimSpace(line); line == "" || errText == "" {
		return errText
	}
	if r := []rune(line); len(r) > 160 {
		line = string(r[:160]) + "…"
	}
	return errText + ": " + line
}

// finish records when the run stopped.
func (a *Aggregator) finish(at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.end = at
}

// Totals summarises the run so far.
type Totals struct {
	Requests  int `json:"requests"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	// NotSent of the failed were due but never sent: the client was saturated.
	NotSent int `json:"not_sent"`
	// Retried needed a second attempt on a new connection (see Retried): failed by default,
	// served when load.clientRetries allows it.
	Retried int `json:"retried"`
	// Scheduled is what the schedule called for over the run (0 at saturation).
	Scheduled float64 `json:"scheduled"`
	// AchievedRate is the requests sent (not NotSent) per second of the run.
	AchievedRate float64 `json:"achieved_rate"`
	// LatencyMS: p50, p99 and max from each request's scheduled time, and p50_sent, p99_sent from the
	// moment it was actually sent (what a client that waits for itself would report).
	LatencyMS map[string]float64 `json:"latency_ms"`
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
	end := a.end
	if end.IsZero() {
		end = time.Now()
	}
	gap, gapEnd := a.maxGap, a.gapEnd
	if a.ok == 0 && a.failed > 0 {
		gap, gapEnd = a.lastEnd.Sub(a.start), a.lastEnd // never served: the whole run is one gap
	}
	t := Totals{
		Requests: a.ok + a.failed, Succeeded: a.ok, Failed: a.failed, NotSent: a.notSent, Retried: a.retried,
		LatencyMS: map[string]float64{"p50": ms(m.Latencies.P50), "p99": ms(m.Latencies.P99), "max": ms(m.Latencies.Max),
			"p50_sent": quantile(&a.sentHist, 0.5), "p99_sent": quantile(&a.sentHist, 0.99)},
		LongestGap: gap, GapEnd: gapEnd, Duration: end.Sub(a.start),
	}
	if t.Duration > 0 {
		t.AchievedRate = math.Round(float64(t.Requests-t.NotSent)/t.Duration.Seconds()*100) / 100
	}
	if a.schedule != nil {
		t.Scheduled = a.schedule(t.Duration)
	}
	return t
}

// WindowStats are the requests scheduled within a window of the run.
type WindowStats struct {
	Requests int
	Failed   int
	Retried  int
	P50MS    float64
	P99MS    float64
}

// Window counts the requests whose own time (scheduled, or sent at saturation) lies in [from, to],
// both ends included: the rule by which failures are attributed to the steps in flight, so a step's
// counts and the attribution agree.
func (a *Aggregator) Window(from, to time.Time) WindowStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	var h [histBuckets]uint32
	w := WindowStats{}
	lo, hi := from.Sub(a.start), to.Sub(a.start)
	for _, m := range a.marks {
		if m.at < lo || m.at > hi {
			continue
		}
		w.Requests++
		if m.failed {
			w.Failed++
		}
		if m.retried {
			w.Retried++
		}
		h[m.bucket]++
	}
	w.P50MS, w.P99MS = quantile(&h, 0.5), quantile(&h, 0.99)
	return w
}

// VersionStats are the answers of one version (or of none) in a window.
type VersionStats struct {
	Requests int     `json:"requests"`
	Failed   int     `json:"failed"`
	P99MS    float64 `json:"p99_ms"`
}

// ErrorRate is the share of requests that failed (0 with no request).
func (v VersionStats) ErrorRate() float64 {
	if v.Requests == 0 {
		return 0
	}
	return float64(v.Failed) / float64(v.Requests)
}

// VersionWindow splits a window's requests by the version that answered them. Unversioned are the
// requests no version answered: refused connections, timeouts, requests not sent, answers without
// the header.
type VersionWindow struct {
	By          map[string]VersionStats `json:"by"`
	Unversioned VersionStats            `json:"unversioned"`
}

// Known is the time up to which every request answered by then has its result here, and why it
// stays behind for good ("" while it keeps up). Load this process sends is known up to now; load
// from agents up to the slowest agent's last report (its heartbeat, every 200 ms), and no further
// than a lost agent's last one. A live judgement reads windows that end before it.
func (a *Aggregator) Known() (time.Time, string) {
	if a.known == nil {
		return time.Now(), ""
	}
	return a.known()
}

// Versions merges, by serving version, the seconds of the run that lie wholly within [from, to]
// (requests are binned by their scheduled second).
func (a *Aggregator) Versions(from, to time.Time) VersionWindow {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := VersionWindow{By: map[string]VersionStats{}}
	hists := map[string]*[histBuckets]uint32{}
	first := max(int(math.Ceil(from.Sub(a.start).Seconds()-1e-9)), 0)
	last := int(math.Floor(to.Sub(a.start).Seconds()+1e-9)) - 1
	for i := first; i <= last && i < len(a.seconds); i++ {
		s := &a.seconds[i]
		versioned, versionedFailed := 0, 0
		for v, n := range s.Versions {
			st := w.By[v]
			st.Requests += n
			st.Failed += s.VersionFailed[v]
			w.By[v] = st
			versioned += n
			versionedFailed += s.VersionFailed[v]
			h := hists[v]
			if h == nil {
				h = new([histBuckets]uint32)
				hists[v] = h
			}
			for b, c := range s.vhist[v] {
				h[b] += c
			}
		}
		w.Unversioned.Requests += s.OK + s.Failed - versioned
		w.Unversioned.Failed += s.Failed - versionedFailed
	}
	for v, h := range hists {
		st := w.By[v]
		st.P99MS = quantile(h, 0.99)
		w.By[v] = st
	}
	return w
}

// Seconds returns the per-second buckets with their percentiles filled in.
func (a *Aggregator) Seconds() []Second {
	a.mu.Lock()
	defer a.mu.Unlock()
	end := a.end
	if end.IsZero() {
		end = time.Now()
	}
	secs := a.seconds
	if a.schedule != nil && !a.end.IsZero() {
		// Seconds at the end in which nothing at all was sent still count against the schedule.
		for n := int(math.Ceil(a.end.Sub(a.start).Seconds())); len(secs) < n; {
			secs = append(secs, Second{T: len(secs)})
		}
	}
	out := make([]Second, len(secs))
	for i, s := range secs {
		s.P50MS, s.P99MS = quantile(&s.hist, 0.5), quantile(&s.hist, 0.99)
		if a.schedule != nil {
			from := time.Duration(i) * time.Second
			to := min(from+time.Second, end.Sub(a.start))
			s.Scheduled = math.Round(max(a.schedule(to)-a.schedule(from), 0)*100) / 100
		}
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
