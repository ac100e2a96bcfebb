// Package verify owns the checks behind a verdict. Each check reads what the run recorded (load totals
// and failures, the write ledger, replica checksums, the timeline of steps and faults) and answers
// pass, fail, or error. A check that could not measure (no traffic, no acknowledged write, no
// checksum) is an error, never a pass.
package verify

import (
	"bufio"
	"fmt"
	"os"
	"sort"
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
// nothing, so it is never a cause: a failure while only waits (or nothing) were in flight belongs to
// "after S", S the last step that changed something and had started before it, or to "(before any
// step)" when none had.
func Attribute(failures []load.Failure, windows []Window) map[string]int {
	out := map[string]int{}
	for _, f := range failures {
		hit := false
		var last *Window
		for i, w := range windows {
			if w.Kind == "wait" || f.Time.Before(w.Start) {
				continue
			}
			if !f.Time.After(w.End) {
				out[w.Name]++
				hit = true
			} else if last == nil || w.Start.After(last.Start) {
				last = &windows[i]
			}
		}
		switch {
		case hit:
		case last != nil:
			out["after "+last.Name]++
		default:
			out["(before any step)"]++
		}
	}
	return out
}

// ZeroFailedRequests fails when more than max requests failed; failures are attributed to the steps
// and faults in flight, and the longest gap between successes is reported.
func ZeroFailedRequests(t load.Totals, failures []load.Failure, windows []Window, max int) Result {
	const name = "zero-failed-requests"
	obs := map[string]any{"requests": t.Requests, "failed": t.Failed, "budget": max, "longest_gap_ms": t.LongestGap.Milliseconds()}
	if t.Requests == 0 {
		return result(name, Error, obs, "no request was sent: nothing was measured")
	}
	if t.Failed <= max {
		return result(name, Pass, obs, "%d of %d requests failed (budget %d); longest gap between successes %s",
			t.Failed, t.Requests, max, t.LongestGap.Round(time.Millisecond))
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
	return result(name, Fail, obs, "%d of %d requests failed, budget %d; by step in flight%s: %s; longest gap between successes %s",
		t.Failed, t.Requests, max, sampled, strings.Join(parts, ", "), t.LongestGap.Round(time.Millisecond))
}

// LoadAchieved fails when the achieved rate is under minShare of the target or fewer than minRequests
// requests were sent: a rehearsal that did not load the system proves nothing.
func LoadAchieved(t load.Totals, target, minShare float64, minRequests int) Result {
	const name = "load-achieved"
	if minShare == 0 {
		minShare = 0.95
	}
	share := 0.0
	if target > 0 {
		share = t.AchievedRate / target
	}
	obs := map[string]any{"requests": t.Requests, "target_rate": target, "achieved_rate": t.AchievedRate, "share": share}
	switch {
	case target <= 0:
		return result(name, Error, obs, "no target rate to compare with")
	case t.Requests < minRequests || t.Requests == 0:
		return result(name, Fail, obs, "only %d requests were sent (at least %d needed to measure anything)", t.Requests, max(minRequests, 1))
	case share < minShare:
		return result(name, Fail, obs, "achieved %.1f req/s, %.0f%% of the target %.1f (need %.0f%%)", t.AchievedRate, share*100, target, minShare*100)
	}
	return result(name, Pass, obs, "achieved %.1f req/s, %.0f%% of the target %.1f", t.AchievedRate, share*100, target)
}

// LatencySLO fails when p50 or p99 exceeds its bound (a zero bound is not checked).
func LatencySLO(t load.Totals, p50, p99 time.Duration) Result {
	const name = "latency-slo"
	obs := map[string]any{"p50_ms": t.LatencyMS["p50"], "p99_ms": t.LatencyMS["p99"]}
	if t.Requests == 0 {
		return result(name, Error, obs, "no request was sent: no latency to judge")
	}
	if p50 == 0 && p99 == 0 {
		return result(name, Error, obs, "no bound given (p50 or p99)")
	}
	var over []string
	if p50 > 0 && t.LatencyMS["p50"] > ms(p50) {
		over = append(over, fmt.Sprintf("p50 %.1fms > %s", t.LatencyMS["p50"], p50))
	}
	if p99 > 0 && t.LatencyMS["p99"] > ms(p99) {
		over = append(over, fmt.Sprintf("p99 %.1fms > %s", t.LatencyMS["p99"], p99))
	}
	if len(over) > 0 {
		return result(name, Fail, obs, "%s", strings.Join(over, "; "))
	}
	return result(name, Pass, obs, "p50 %.1fms, p99 %.1fms within bounds", t.LatencyMS["p50"], t.LatencyMS["p99"])
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Ledger is the write ledger a load run wrote (ledger.tsv).
type Ledger struct {
	Acked, Indeterminate, Rejected []string
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
		state, rest, _ := strings.Cut(sc.Text(), "\t")
		id, _, _ := strings.Cut(rest, "\t")
		switch state {
		case "acked":
			l.Acked = append(l.Acked, id)
		case "indeterminate":
			l.Indeterminate = append(l.Indeterminate, id)
		case "rejected":
			l.Rejected = append(l.Rejected, id)
		}
	}
	return l, sc.Err()
}

// AckedWritesDurable fails when an acknowledged write cannot be read back; writes that got no answer
// are reported, not failed (they may or may not have landed).
func AckedWritesDurable(l *Ledger, missing func(ids []string) ([]string, error)) Result {
	const name = "acked-writes-durable"
	if l == nil || len(l.Acked) == 0 {
		return result(name, Error, nil, "no write was acknowledged: durability was not measured")
	}
	obs := map[string]any{"acked": len(l.Acked), "indeterminate": len(l.Indeterminate)}
	lost, err := missing(l.Acked)
	if err != nil {
		return result(name, Error, obs, "could not read the writes back: %v", err)
	}
	obs["missing"] = len(lost)
	if len(lost) > 0 {
		show := lost
		if len(show) > 10 {
			show = show[:10]
		}
		return result(name, Fail, obs, "%d of %d acknowledged writes are missing, e.g. %s", len(lost), len(l.Acked), strings.Join(show, ", "))
	}
	return result(name, Pass, obs, "all %d acknowledged writes are present (%d indeterminate not counted)", len(l.Acked), len(l.Indeterminate))
}

// ReplicaOutputs is replica-checksums for a workload of one's own: the checksum command's output in
// each replica pod must be identical (and the command must have succeeded in every one).
func ReplicaOutputs(outs []workloads.ExecResult, err error) Result {
	const name = "replica-checksums"
	if err != nil {
		return result(name, Error, nil, "could not run the checksum command: %v", err)
	}
	obs := map[string]any{"replicas": outs}
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
	return result(name, Pass, obs, "%d replicas print the same checksum", len(outs))
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
