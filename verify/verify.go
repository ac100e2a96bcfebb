// Package verify owns the checks behind a verdict. Each check reads what the run recorded (load totals
// and failures, the write ledger, replica checksums, the timeline of steps and faults) and answers
// pass, fail, or error. A check that could not measure (no traffic, no acknowledged write, no
// checksum) is an error, never a pass.
package verify

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/workloads"
)

// Status of a check.
type Status string

const (
	Pass  Status = "pass"
	Fail  Status = "fail"
	Error Status = "error"
)

// Result is one check's outcome.
type Result struct {
	Name     string         `json:"name"`
	Status   Status         `json:"status"`
	Message  string         `json:"message"`
	Observed map[string]any `json:"observed,omitempty"`
	// Explained is what the cluster did in each burst of failures, for a check that failed by
	// failed requests (zero-failed-requests): one line per burst and cause.
	Explained []string `json:"explained,omitempty"`
}

// Window is a step or fault on the timeline, for attributing failures.
type Window struct {
	Name, Kind string
	Start, End time.Time
}

func result(name string, s Status, obs map[string]any, format string, args ...any) Result {
	return Result{Name: name, Status: s, Message: fmt.Sprintf(format, args...), Observed: obs}
}

// Attribute counts failures by the steps and faults in flight when they happened. A wait changes
// nothing, so it is never a cause while something else explains the failure: a failure while only
// waits (or nothing) were in flight belongs to "after S", S the step that changed something and ended
// last before it; with no such step, to "during W" for a wait W in flight, or "after W" for
// the last step that had ended; before every step, to "(before any step)".
func Attribute(failures []load.Failure, windows []Window) map[string]int {
	out := map[string]int{}
	for _, f := range failures {
		out[attribute(f.Time, windows)]++
	}
	return out
}

func attribute(t time.Time, windows []Window) string {
	var in []string
	var lastChange, waitIn, lastEnded *Window
	for i := range windows {
		w := &windows[i]
		if t.Before(w.Start) {
			continue
		}
		inside := !t.After(w.End)
		switch {
		case w.Kind != "wait" && inside:
			in = append(in, w.Name)
		case w.Kind != "wait":
			if lastChange == nil || w.End.After(lastChange.End) {
				lastChange = w
			}
		case inside:
			waitIn = w
		}
		if !inside && (lastEnded == nil || w.End.After(lastEnded.End)) {
			lastEnded = w
		}
	}
	switch {
	case len(in) > 0:
		return strings.Join(in, "+")
	case lastChange != nil:
		return "after " + lastChange.Name
	case waitIn != nil:
		return "during " + waitIn.Name
	case lastEnded != nil:
		return "after " + lastEnded.Name
	}
	return "(before any step)"
}

// ZeroFailedRequests fails when more than max requests failed (requests the client could not send on
// schedule included); failures are attributed to the steps and faults in flight, and the longest gap
// between successes is reported. Fewer than minRequests requests is too little evidence: error.
func ZeroFailedRequests(t load.Totals, failures []load.Failure, windows []Window, max, minRequests int) Result {
	const name = "zero-failed-requests"
	obs := map[string]any{"requests": t.Requests, "failed": t.Failed, "not_sent": t.NotSent, "budget": max,
		"min_requests": minRequests, "longest_gap_ms": t.LongestGap.Milliseconds()}
	if t.Requests == 0 {
		return result(name, Error, obs, "no request was sent: nothing was measured")
	}
	if t.Failed <= max && t.Requests < minRequests {
		return result(name, Error, obs, "only %d requests (%d failed): at least %d are needed to judge", t.Requests, t.Failed, minRequests)
	}
	if t.Failed <= max {
		return result(name, Pass, obs, "%d of %d requests failed (budget %d; at least %d needed to judge); longest gap between successes %s",
			t.Failed, t.Requests, max, minRequests, t.LongestGap.Round(time.Millisecond))
	}
	by := Attribute(failures, windows)
	obs["attribution"] = by
	var parts []string
	for w, n := range by {
		parts = append(parts, fmt.Sprintf("%s: %d", w, n))
	}
	sort.Strings(parts)
	sampled := ""
	if len(failures) < t.Failed {
		sampled = fmt.Sprintf(" (attribution of the first %d)", len(failures))
	}
	notSent := ""
	if t.NotSent > 0 {
		notSent = fmt.Sprintf(" (%d of them never sent: the client was saturated)", t.NotSent)
	}
	return result(name, Fail, obs, "%d of %d requests failed%s, budget %d; by step in flight%s: %s; longest gap between successes %s",
		t.Failed, t.Requests, notSent, max, sampled, strings.Join(parts, ", "), t.LongestGap.Round(time.Millisecond))
}

// LoadAchieved compares every second of the run with the schedule (stages included): a second in
// which the client sent fewer than minShare of the requests due (less one, for the boundary) fails,
// and the worst second is named. Fewer than minRequests requests in all fails too: a rehearsal that
// did not load the system proves nothing. Without a schedule (saturation) there is nothing to judge.
func LoadAchieved(t load.Totals, seconds []load.Second, minShare float64, minRequests int) Result {
	const name = "load-achieved"
	if minShare == 0 {
		minShare = 0.95
	}
	sent := t.Requests - t.NotSent
	obs := map[string]any{"requests": t.Requests, "sent": sent, "scheduled": math.Round(t.Scheduled), "achieved_rate": t.AchievedRate}
	if t.Scheduled <= 0 {
		return result(name, Error, obs, "no schedule to compare with (no rate)")
	}
	if sent < minRequests || sent == 0 {
		return result(name, Fail, obs, "only %d requests were sent (at least %d needed to measure anything)", sent, max(minRequests, 1))
	}
	worst, worstShare, short := -1, 2.0, 0
	for _, s := range seconds {
		if s.Scheduled <= 0 {
			continue
		}
		n := float64(s.OK + s.Failed - s.NotSent)
		share := n / s.Scheduled
		if n < minShare*s.Scheduled-1 {
			short++
		}
		// A boundary second due a fraction of a request (the last) is not named as the worst.
		if share < worstShare && s.Scheduled >= 1 {
			worst, worstShare = s.T, share
		}
	}
	obs["seconds_short"] = short
	what := fmt.Sprintf("sent %d of %.0f scheduled requests (%.1f req/s)", sent, t.Scheduled, t.AchievedRate)
	if worst >= 0 {
		s := seconds[worst]
		obs["worst_second"] = worst
		what += fmt.Sprintf("; worst second +%ds: %d of %.0f due", worst, s.OK+s.Failed-s.NotSent, s.Scheduled)
	}
	switch {
	case short > 0:
		return result(name, Fail, obs, "%d seconds fell under %.0f%% of the schedule: %s", short, minShare*100, what)
	case float64(sent) < minShare*t.Scheduled-1:
		return result(name, Fail, obs, "under %.0f%% of the schedule: %s", minShare*100, what)
	}
	return result(name, Pass, obs, "every second kept %.0f%% of the schedule: %s", minShare*100, what)
}

// LatencySLO fails when p50 or p99 (from each request's scheduled time) exceeds its bound; a zero
// bound is not checked. perStep applies the bounds to every step window as well as the whole run, so
// a spike during a migration is not diluted; the worst window is named either way.
func LatencySLO(t load.Totals, windows []Window, stats func(from, to time.Time) load.WindowStats, p50, p99 time.Duration, perStep bool) Result {
	const name = "latency-slo"
	obs := map[string]any{"p50_ms": t.LatencyMS["p50"], "p99_ms": t.LatencyMS["p99"], "p99_sent_ms": t.LatencyMS["p99_sent"]}
	if t.Requests == 0 {
		return result(name, Error, obs, "no request was sent: no latency to judge")
	}
	if p50 == 0 && p99 == 0 {
		return result(name, Error, obs, "no bound given (p50 or p99)")
	}
	var over []string
	judge := func(where string, g50, g99 float64) {
		if p50 > 0 && g50 > ms(p50) {
			over = append(over, fmt.Sprintf("%s: p50 %.1fms > %s", where, g50, p50))
		}
		if p99 > 0 && g99 > ms(p99) {
			over = append(over, fmt.Sprintf("%s: p99 %.1fms > %s", where, g99, p99))
		}
	}
	judge("run", t.LatencyMS["p50"], t.LatencyMS["p99"])
	worst, worstP99 := "", -1.0
	for _, w := range windows {
		if w.Kind == "wait" || stats == nil {
			continue
		}
		st := stats(w.Start, w.End)
		if st.Requests == 0 {
			continue
		}
		if st.P99MS > worstP99 {
			worst, worstP99 = w.Name, st.P99MS
		}
		if perStep {
			judge("during "+w.Name, st.P50MS, st.P99MS)
		}
	}
	worstText := ""
	if worst != "" {
		obs["worst_window"], obs["worst_window_p99_ms"] = worst, worstP99
		worstText = fmt.Sprintf("; worst step window %s: p99 %.1fms", worst, worstP99)
	}
	if len(over) > 0 {
		return result(name, Fail, obs, "%s%s", strings.Join(over, "; "), worstText)
	}
	scope := "over the run"
	if perStep {
		scope = "over the run and in every step window"
	}
	return result(name, Pass, obs, "p50 %.1fms, p99 %.1fms (from the scheduled send; %.1fms from the actual send) within bounds %s%s",
		t.LatencyMS["p50"], t.LatencyMS["p99"], t.LatencyMS["p99_sent"], scope, worstText)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Ledger is the write ledger a load run wrote (ledger.tsv).
type Ledger struct {
	Acked, Indeterminate, Rejected []string
	// AckedAt is when each acknowledged write was answered, in seconds on the run's clock (ledgers
	// written before the column existed have none).
	AckedAt map[string]float64
}

// ackedBetween is when the first and the last of ids were acknowledged (false when the ledger has
// no times for them).
func (l *Ledger) ackedBetween(ids []string) (from, to float64, ok bool) {
	for _, id := range ids {
		at, known := l.AckedAt[id]
		if !known {
			continue
		}
		if !ok || at < from {
			from = at
		}
		if !ok || at > to {
			to = at
		}
		ok = true
	}
	return from, to, ok
}

// ReadLedger reads a ledger file.
func ReadLedger(path string) (*Ledger, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l := &Ledger{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		state, id := f[0], ""
		if len(f) > 1 {
			id = f[1]
		}
		switch state {
		case "acked":
			l.Acked = append(l.Acked, id)
			if len(f) > 3 {
				if at, err := strconv.ParseFloat(f[3], 64); err == nil {
					if l.AckedAt == nil {
						l.AckedAt = map[string]float64{}
					}
					l.AckedAt[id] = at
				}
			}
		case "indeterminate":
			l.Indeterminate = append(l.Indeterminate, id)
		case "rejected":
			l.Rejected = append(l.Rejected, id)
		}
	}
	return l, sc.Err()
}

// Durability is what acked-writes-durable reads: the ledger, a lookup that says which of some ids
// the system does not have, and controls (ids this run never wrote) that the lookup must report
// missing, or it cannot tell stored from missing.
type Durability struct {
	Ledger   *Ledger
	Missing  func(ids []string) ([]string, error)
	Controls []string
	// MinAcked is the fewest acknowledged writes that make a judgement (default 10).
	MinAcked int
}

// DefaultMinAcked is acked-writes-durable's default minimum of acknowledged writes.
const DefaultMinAcked = 10

// AckedWritesDurable judges like Jepsen's set checker: an acknowledged write that is missing is lost
// (fail); a write that got no definite answer (indeterminate) may or may not be there, and is only
// counted. Error when the evidence is thin (fewer than MinAcked acknowledged, more indeterminate than
// acknowledged) or the read-back is not trustworthy (an id never written reads as stored).
func AckedWritesDurable(d Durability) Result {
	const name = "acked-writes-durable"
	if d.MinAcked <= 0 {
		d.MinAcked = DefaultMinAcked
	}
	l := d.Ledger
	if l == nil {
		l = &Ledger{}
	}
	obs := map[string]any{"acked": len(l.Acked), "indeterminate": len(l.Indeterminate), "rejected": len(l.Rejected), "min_acked": d.MinAcked}
	switch {
	case len(l.Acked) == 0:
		return result(name, Error, obs, "no write was acknowledged (%d indeterminate, %d rejected): durability was not measured", len(l.Indeterminate), len(l.Rejected))
	case len(l.Acked) < d.MinAcked:
		return result(name, Error, obs, "only %d writes were acknowledged: at least %d are needed to judge", len(l.Acked), d.MinAcked)
	case len(l.Indeterminate) > len(l.Acked):
		return result(name, Error, obs, "%d writes are indeterminate, more than the %d acknowledged: too little is known to judge", len(l.Indeterminate), len(l.Acked))
	case len(d.Controls) == 0:
		return result(name, Error, obs, "no control ids: the read-back was not shown to tell stored from missing")
	}
	absent, err := d.Missing(d.Controls)
	if err != nil {
		return result(name, Error, obs, "could not read the control ids back: %v", err)
	}
	if len(absent) != len(d.Controls) {
		var stored []string
		for _, c := range d.Controls {
			if !slices.Contains(absent, c) {
				stored = append(stored, c)
			}
		}
		obs["controls_stored"] = stored
		return result(name, Error, obs, "read-back cannot tell stored from missing: %d of %d ids never written read as stored (%s)",
			len(stored), len(d.Controls), strings.Join(stored, ", "))
	}
	lost, err := d.Missing(l.Acked)
	if err != nil {
		return result(name, Error, obs, "could not read the writes back: %v", err)
	}
	obs["lost"] = len(lost)
	indet := ""
	if len(l.Indeterminate) > 0 {
		if absent, err := d.Missing(l.Indeterminate); err == nil {
			obs["indeterminate_recovered"], obs["indeterminate_absent"] = len(l.Indeterminate)-len(absent), len(absent)
			indet = fmt.Sprintf("; indeterminate: %d recovered, %d absent", len(l.Indeterminate)-len(absent), len(absent))
		}
	}
	if len(lost) > 0 {
		show := lost
		if len(show) > 10 {
			show = show[:10]
		}
		when := ""
		if from, to, ok := l.ackedBetween(lost); ok {
			obs["lost_acked_from_s"], obs["lost_acked_to_s"] = from, to
			when = fmt.Sprintf(", acknowledged from +%.1fs to +%.1fs", from, to)
		}
		return result(name, Fail, obs, "%d of %d acknowledged writes are missing (lost)%s, e.g. %s%s", len(lost), len(l.Acked), when, strings.Join(show, ", "), indet)
	}
	return result(name, Pass, obs, "all %d acknowledged writes are present (%d control ids read as missing)%s", len(l.Acked), len(d.Controls), indet)
}

// ReplicaOutputs is replica-checksums for a workload of one's own: expected replicas must all be
// running, ready and not terminating (pods names those that are not), the checksum command must have
// given a checksum in each, and the outputs must be identical.
func ReplicaOutputs(expected int, pods []workloads.PodState, outs []workloads.ExecResult, err error) Result {
	const name = "replica-checksums"
	obs := map[string]any{"expected": expected, "pods": pods, "replicas": outs}
	if err != nil {
		return result(name, Error, obs, "could not run the checksum command: %v", err)
	}
	if expected <= 0 {
		return result(name, Error, obs, "no replica count to expect: no Deployment or StatefulSet runs these pods (give workload.checksum.replicas)")
	}
	var unhealthy []string
	for _, p := range pods {
		if why := p.Unhealthy(); why != "" {
			unhealthy = append(unhealthy, p.Name+" "+why)
		}
	}
	if len(unhealthy) > 0 || len(outs) < expected {
		why := ""
		if len(unhealthy) > 0 {
			why = "; not serving: " + strings.Join(unhealthy, ", ")
		}
		return result(name, Fail, obs, "%d of %d expected replicas could be read%s", len(outs), expected, why)
	}
	var failed []string
	for _, o := range outs {
		if o.Err != "" {
			failed = append(failed, fmt.Sprintf("%s: %s %s", o.Pod, o.Err, strings.TrimSpace(o.Stderr)))
		} else if strings.TrimSpace(o.Stdout) == "" {
			failed = append(failed, o.Pod+": printed nothing")
		}
	}
	if len(failed) > 0 {
		return result(name, Error, obs, "the checksum command did not give a checksum in every replica:\n%s", strings.Join(failed, "\n"))
	}
	if len(outs) < 2 {
		return result(name, Error, obs, "%d replica pod: nothing to compare", len(outs))
	}
	var problems []string
	for _, o := range outs[1:] {
		if d := cmp.Diff(outs[0].Stdout, o.Stdout); d != "" {
			problems = append(problems, fmt.Sprintf("%s differs from %s (-%s +%s):\n%s", o.Pod, outs[0].Pod, outs[0].Pod, o.Pod, d))
		}
	}
	if len(problems) > 0 {
		return result(name, Fail, obs, "%s", strings.Join(problems, "\n"))
	}
	return result(name, Pass, obs, "%d replicas (of %d expected) print the same checksum", len(outs), expected)
}

// ReplicaChecksums fails when a member had not caught up or its tables differ from the primary's.
func ReplicaChecksums(sums []workloads.ReplicaChecksum, err error) Result {
	const name = "replica-checksums"
	if err != nil {
		return result(name, Error, nil, "could not compute checksums: %v", err)
	}
	if len(sums) < 2 {
		return result(name, Error, nil, "%d database members: nothing to compare", len(sums))
	}
	obs := map[string]any{"members": sums}
	var problems []string
	for _, s := range sums[1:] {
		if !s.CaughtUp {
			problems = append(problems, fmt.Sprintf("%s had not replayed the primary's WAL (at %s)", s.Pod, s.ReplayLSN))
		}
		if d := cmp.Diff(sums[0].Tables, s.Tables); d != "" {
			problems = append(problems, fmt.Sprintf("%s differs from %s (-primary +replica):\n%s", s.Pod, sums[0].Pod, d))
		}
	}
	if len(problems) > 0 {
		return result(name, Fail, obs, "%s", strings.Join(problems, "\n"))
	}
	return result(name, Pass, obs, "%d members hold identical data (%d orders)", len(sums), sums[0].Tables["orders"].Rows)
}
