package verify

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/load"
)

// GateSpec is what a new version's live traffic must show in a gate window (a canary's hold, the
// window after a blue-green switch).
type GateSpec struct {
	// MaxErrorRate is the largest share of failed requests: the new version's own failures plus
	// every failure no version answered (a refused connection, a timeout), which cannot be told apart
	// from the new version's.
	MaxErrorRate float64
	// P99 bounds the new version's p99 latency (0: no bound).
	P99 time.Duration
	// MinRequests is the fewest requests the new version must have answered for the gate to judge.
	MinRequests int
	// Only: every versioned answer must come from the new version (after a blue-green switch no
	// request may still reach blue).
	Only bool
}

// DefaultGateMinRequests is GateSpec.MinRequests when a scenario states none.
const DefaultGateMinRequests = 20

// Gate judges a window of live results for version: pass, fail (a breach: the new version fails,
// is too slow, or the switch did not take), or error (too little of its traffic to judge: a gate
// that read nothing never passes). share is how much of the gate's window w covers (1 at its end):
// before the end, an error rate fails only when the failures already exceed what the whole window
// could absorb, and latency is not judged yet.
func Gate(name string, w load.VersionWindow, version string, g GateSpec, share float64) Result {
	v := w.By[version]
	need := g.MinRequests
	if need <= 0 {
		need = DefaultGateMinRequests
	}
	others := 0
	var seen []string
	for ver, st := range w.By {
		if ver != version {
			others += st.Requests
			seen = append(seen, fmt.Sprintf("%s %d", ver, st.Requests))
		}
	}
	sort.Strings(seen)
	failed, total := v.Failed+w.Unversioned.Failed, v.Requests+w.Unversioned.Failed
	rate := 0.0
	if total > 0 {
		rate = float64(failed) / float64(total)
	}
	obs := map[string]any{"version": version, "requests": v.Requests, "failed": failed, "error_rate": rate,
		"p99_ms": v.P99MS, "unversioned_failed": w.Unversioned.Failed, "other_versions": others}
	share = min(max(share, 1e-3), 1)
	switch {
	case failed > 0 && float64(failed) > g.MaxErrorRate*float64(total)/share:
		return result(name, Fail, obs, "%s: %d of %d requests failed (%.1f%% > %.1f%%): %d answered by %s, %d answered by no version",
			name, failed, total, 100*rate, 100*g.MaxErrorRate, v.Failed, version, w.Unversioned.Failed)
	case g.Only && others > 0:
		return result(name, Fail, obs, "%s: after the switch %d requests were still answered by another version (%s)",
			name, others, strings.Join(seen, ", "))
	case share < 1:
		return result(name, Pass, obs, "%s: so far %d requests answered by %s, %d failed", name, v.Requests, version, failed)
	case v.Requests < need:
		return result(name, Error, obs, "%s: only %d requests answered by %s (at least %d needed to judge; others: %s)",
			name, v.Requests, version, need, orNone(seen))
	case g.P99 > 0 && v.P99MS > ms(g.P99):
		return result(name, Fail, obs, "%s: p99 of %s %.1f ms > %s", name, version, v.P99MS, g.P99)
	}
	return result(name, Pass, obs, "%s: %d requests answered by %s, %d failed, p99 %.1f ms", name, v.Requests, version, failed, v.P99MS)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// Served is a window in which one version, and only it, should answer: after a step that moved the
// workload to Version, until the next such step or the end of the run.
type Served struct {
	Step    string
	Version string
	From    time.Time
	To      time.Time
}

// ServedVersion checks that each migration changed what is served: in every window after a step to
// vN (the last one always; earlier ones when at least minWindow long) every answer that names its
// version names vN. It fails naming the versions that still answered, and errs when a window it must
// judge had fewer than minRequests versioned answers (answers do not say their version where the load reads it, or no traffic).
func ServedVersion(served []Served, seconds []load.Second, start time.Time, minRequests int, minWindow time.Duration) Result {
	const name = "served-version"
	if len(served) == 0 {
		return result(name, Error, nil, "nothing to judge: no step that states a version ended with the workload moved to it (a failed step is not judged)")
	}
	if minRequests <= 0 {
		minRequests = 10
	}
	var bad, judged []string
	obs := map[string]any{}
	for i, s := range served {
		last := i == len(served)-1
		if !last && s.To.Sub(s.From) < minWindow {
			continue
		}
		by := versionsIn(seconds, start, s.From, s.To)
		want, others := by[s.Version], 0
		var seen []string
		for v, n := range by {
			if v != s.Version {
				others += n
				seen = append(seen, fmt.Sprintf("%s %d", v, n))
			}
		}
		sort.Strings(seen)
		obs[s.Step] = by
		switch {
		case others > 0:
			bad = append(bad, fmt.Sprintf("after %s (to %s): %d answers from %s, %d from other versions (%s)",
				s.Step, s.Version, want, s.Version, others, strings.Join(seen, ", ")))
		case want < minRequests:
			return result(name, Error, obs, "after %s: only %d answers named %s (at least %d needed; do answers say their version where load.version reads it?)",
				s.Step, want, s.Version, minRequests)
		default:
			judged = append(judged, fmt.Sprintf("after %s: %d answers, all %s", s.Step, want, s.Version))
		}
	}
	if len(bad) > 0 {
		return result(name, Fail, obs, "%s", strings.Join(bad, "; "))
	}
	return result(name, Pass, obs, "%s", strings.Join(judged, "; "))
}

// versionsIn counts versioned answers in the whole seconds within [from, to].
func versionsIn(seconds []load.Second, start, from, to time.Time) map[string]int {
	out := map[string]int{}
	for _, s := range seconds {
		t := start.Add(time.Duration(s.T) * time.Second)
		if t.Before(from) || t.Add(time.Second).After(to) {
			continue
		}
		for v, n := range s.Versions {
			out[v] += n
		}
	}
	return out
}

// Drill is one rollback drill: when it started, when its rollout completed, the version that means
// restored, and how long restoring may take.
type Drill struct {
	Step    string
	Start   time.Time
	Done    time.Time // its rollout completed (zero: it never did)
	Version string
	Within  time.Duration
	// Status is the step's outcome; NothingToRollBack that there was no earlier revision.
	Status            string
	Error             string
	NothingToRollBack bool
	// Until ends the observation (the next step that changed something, or the end of the run).
	Until time.Time
}

// RestoreTime is how long after the drill's start service was restored: the later of its rollout
// completing and the start of the first second from which, until the window ends, every request
// succeeded and every answer came from the previous version. ok is false when that never happened.
func RestoreTime(d Drill, seconds []load.Second, start time.Time) (time.Duration, bool) {
	var clean time.Time // start of the current clean run of seconds
	for _, s := range seconds {
		t := start.Add(time.Duration(s.T) * time.Second)
		if t.Add(time.Second).Before(d.Start) || !t.Before(d.Until) {
			continue
		}
		good := s.Failed == 0 && s.OK > 0
		for v, n := range s.Versions {
			if v != d.Version && n > 0 {
				good = false
			}
		}
		if s.Versions[d.Version] == 0 {
			good = false
		}
		switch {
		case !good:
			clean = time.Time{}
		case clean.IsZero():
			clean = t
		}
	}
	if clean.IsZero() || d.Done.IsZero() {
		return 0, false
	}
	at := clean
	if d.Done.After(at) {
		at = d.Done
	}
	return max(at.Sub(d.Start), 0), true
}

// RollbackDrill passes when every drill restored service (all answers from the previous version, no
// failures) within its bound and the data checks of the run (acked-writes-durable, replica-checksums:
// no acknowledged write lost, replicas equal afterwards) passed. It errs when there was nothing to
// roll back to or no version to recognise the restored service by.
func RollbackDrill(drills []Drill, seconds []load.Second, start time.Time, data ...Result) Result {
	const name = "rollback-drill"
	if len(drills) == 0 {
		return result(name, Error, nil, "no rollback step ran")
	}
	obs := map[string]any{}
	var fails, errs, oks []string
	for _, d := range drills {
		switch {
		case d.NothingToRollBack:
			errs = append(errs, fmt.Sprintf("%s: nothing to roll back to (%s)", d.Step, d.Error))
			continue
		case d.Status == "error":
			errs = append(errs, fmt.Sprintf("%s: could not be carried out: %s", d.Step, d.Error))
			continue
		case d.Version == "":
			errs = append(errs, fmt.Sprintf("%s: no version to recognise restored service by (state rollback.version, and where the load reads versions: load.version)", d.Step))
			continue
		case d.Status != "ok":
			fails = append(fails, fmt.Sprintf("%s: the rollback itself failed: %s", d.Step, firstLine(d.Error)))
			continue
		}
		took, ok := RestoreTime(d, seconds, start)
		if !ok {
			fails = append(fails, fmt.Sprintf("%s: service never came back to %s with no failures before %s", d.Step, d.Version,
				d.Until.Sub(start).Round(time.Second)))
			obs[d.Step] = map[string]any{"restored": false}
			continue
		}
		obs[d.Step] = map[string]any{"restored": true, "time_to_restore_s": took.Seconds(), "within_s": d.Within.Seconds(), "version": d.Version}
		if took > d.Within {
			fails = append(fails, fmt.Sprintf("%s: restored to %s in %s, over the %s bound", d.Step, d.Version, took.Round(100*time.Millisecond), d.Within))
		} else {
			oks = append(oks, fmt.Sprintf("%s: restored to %s in %s (bound %s)", d.Step, d.Version, took.Round(100*time.Millisecond), d.Within))
		}
	}
	if len(data) == 0 {
		oks = append(oks, "data not judged (no acked-writes-durable or replica-checksums in this scenario)")
	}
	for _, dep := range data {
		switch {
		case dep.Status == Fail:
			fails = append(fails, fmt.Sprintf("after the drill %s failed: %s", dep.Name, firstLine(dep.Message)))
		case dep.Status == Error:
			errs = append(errs, fmt.Sprintf("after the drill %s could not measure: %s", dep.Name, firstLine(dep.Message)))
		}
	}
	return judged(name, obs, fails, errs, oks)
}

// judged is a check's result from what it found: fail when anything failed (what could not be
// measured is said beside), error when anything could not be measured, else pass.
func judged(name string, obs map[string]any, fails, errs, oks []string) Result {
	switch {
	case len(fails) > 0:
		return result(name, Fail, obs, "%s", strings.Join(append(fails, errs...), "; "))
	case len(errs) > 0:
		return result(name, Error, obs, "%s", strings.Join(errs, "; "))
	}
	return result(name, Pass, obs, "%s", strings.Join(oks, "; "))
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
