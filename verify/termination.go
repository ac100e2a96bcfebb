package verify

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// DefaultMinServe is how long a pod must keep serving after its deletion began, by default: the
// endpoints controller takes it out of the Service's EndpointSlices in milliseconds, but kube-proxy
// on every node applies that change only at its next sync (iptables mode: at most one a second,
// minSyncPeriod), and until then new connections still reach the pod. Two seconds cover that with a
// second to spare; a preStop pause of a few seconds, or serving on for a few seconds after SIGTERM,
// is what covers it in a sound system.
const DefaultMinServe = 2 * time.Second

// Termination is what the cluster recorder saw of one pod that was a ready endpoint of the load's
// Service when its deletion began (a scale-down, a rollout, an eviction, a pod-kill).
type Termination struct {
	Pod string `json:"pod"`
	// Deleted is when the pod's deletion began: metadata.deletionTimestamp (to the second) and when
	// the recorder saw it (to the millisecond, a little later).
	Deleted     time.Time `json:"deleted"`
	DeletedSeen time.Time `json:"deleted_seen"`
	// Unready is when the recorder saw the pod's endpoint stop being ready (zero: never seen).
	Unready time.Time `json:"unready,omitempty"`
	// Exited is when the first of its serving containers exited: its finishedAt (to the second) and
	// when the recorder saw it (zero: the pod went away before its exit was reported).
	Exited     time.Time `json:"exited,omitempty"`
	ExitedSeen time.Time `json:"exited_seen,omitempty"`
	Container  string    `json:"container,omitempty"`
	ExitCode   int32     `json:"exit_code"`
	Reason     string    `json:"reason,omitempty"`
	// Gone is when the recorder saw the pod removed (zero: still there at the end).
	Gone time.Time `json:"gone,omitempty"`
	// Forced: deleted with less grace than the pod's own (a pod-kill with grace: 0s). How it stopped
	// was the deleter's choice, not the system's: not judged.
	Forced bool `json:"forced,omitempty"`
}

// ServedFor is how long the pod kept serving after its deletion began, as closely as the evidence
// bounds it. The API's times are whole seconds: its exit's second's end minus its deletion's second's
// start never understates it, but may overstate it by up to two seconds. The recorder's times are
// milliseconds, each late by its watch's lag: the exit is seen after kubelet reports it (later, not
// sooner), and the deletion seen is capped at its API second's end, so a watch that stalled on the
// deletion understates it by less than a second. The smaller of the two judges: a pod that exits at
// SIGTERM is caught whichever second its exit falls in; a pod that serves a few seconds (a preStop
// pause of 3 s) is not failed by a clock's rounding. under is true when the API's bound judged: the
// true time is then strictly less than d (an exit at +11.05 s of a deletion at +10.9 s is a bound of
// 2 s for 0.15 s served; it is no proof of 2 s served). ok is false when no exit was seen at all (the
// pod is still there, or went away unreported: the time it was seen gone bounds the exit instead).
func (t Termination) ServedFor() (d time.Duration, under, ok bool) {
	deleted := t.DeletedSeen
	if !t.Deleted.IsZero() && t.Deleted.Add(time.Second).Before(deleted) {
		deleted = t.Deleted.Add(time.Second)
	}
	seen := time.Duration(-1)
	if !t.ExitedSeen.IsZero() {
		seen = max(t.ExitedSeen.Sub(deleted), 0)
	}
	if !t.Exited.IsZero() {
		api := max(t.Exited.Add(time.Second).Sub(t.Deleted), 0)
		if seen < 0 || api <= seen {
			return api, true, true
		}
	}
	if seen >= 0 {
		return seen, false, true
	}
	if t.Gone.IsZero() {
		return 0, false, false
	}
	return max(t.Gone.Sub(deleted), 0), false, true
}

// servedAtLeast is whether the evidence shows the pod served at least min after its deletion began.
func (t Termination) servedAtLeast(min time.Duration) (served time.Duration, under, atLeast, ok bool) {
	served, under, ok = t.ServedFor()
	atLeast = served > min || (served == min && !under)
	return served, under, atLeast, ok
}

// GracefulTermination judges how every pod that left the load's Service while serving stopped: each
// must have kept serving at least minServe after its deletion began, or requests the cluster still
// routed to it met a closed port — whether or not one happened to be in flight at that moment (a
// race a run may win by luck). Fails when more than max pods stopped sooner, naming them with their
// times; an error when the recorder could not watch (watchErr) or, when the check was asked for, no
// ready pod was terminated at all (nothing to judge).
func GracefulTermination(ts []Termination, start time.Time, minServe time.Duration, max int, asked bool, watchErr error) Result {
	const name = "graceful-termination"
	if watchErr != nil {
		return result(name, Error, nil, "the pods behind the load's Service could not be watched: %v", watchErr)
	}
	if minServe <= 0 {
		minServe = DefaultMinServe
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].DeletedSeen.Before(ts[j].DeletedSeen) })
	obs := map[string]any{"terminations": ts, "min_serve_s": minServe.Seconds()}
	if len(ts) == 0 {
		status := Pass
		if asked {
			status = Error
		}
		return result(name, status, obs, "no pod left the load's Service while it was ready: nothing to judge")
	}
	at := func(t time.Time) string { return fmt.Sprintf("+%.1fs", t.Sub(start).Seconds()) }
	var abrupt, unknown []string
	var shortest time.Duration = -1
	forced := 0
	for _, t := range ts {
		if t.Forced {
			forced++
			continue
		}
		served, under, enough, ok := t.servedAtLeast(minServe)
		if !ok {
			unknown = append(unknown, t.Pod)
			continue
		}
		if shortest < 0 || served < shortest {
			shortest = served
		}
		if enough {
			continue
		}
		how := "exited"
		if t.Exited.IsZero() && t.ExitedSeen.IsZero() {
			how = "was gone"
		} else if t.Reason != "" || t.ExitCode != 0 {
			how = fmt.Sprintf("exited (%s, code %d)", strings.TrimSpace(t.Reason), t.ExitCode)
		}
		within := fmt.Sprintf("within %.1fs", served.Seconds())
		if under {
			within = fmt.Sprintf("in under %.0fs (the API's whole seconds)", served.Seconds())
		}
		line := fmt.Sprintf("%s: deleted at %s, %s %s", t.Pod, at(t.DeletedSeen), how, within)
		if !t.Unready.IsZero() {
			line += fmt.Sprintf(", its endpoint seen unready at %s", at(t.Unready))
		}
		abrupt = append(abrupt, line)
	}
	obs["abrupt"] = len(abrupt)
	judged := len(ts) - len(unknown) - forced
	switch {
	case forced == len(ts):
		status := Pass
		if asked {
			status = Error
		}
		return result(name, status, obs, "the %d pods that left the load's Service while ready were killed with less grace than their own: nothing to judge", forced)
	case len(abrupt) > max:
		return result(name, Fail, obs, "%d of %d pods stopped serving less than %s after their deletion began, while kube-proxy could still send them new connections (a preStop pause or serving on after SIGTERM covers it): %s",
			len(abrupt), judged, minServe, strings.Join(CapList(abrupt, 5), "; "))
	case judged == 0:
		return result(name, Error, obs, "%d pods left the Service while ready, and none was seen to stop: %s", len(ts), strings.Join(CapList(unknown, 5), ", "))
	}
	msg := fmt.Sprintf("%d pods left the Service while ready; each served at least %s after its deletion began (shortest %.1fs)", judged, minServe, shortest.Seconds())
	if len(abrupt) > 0 {
		msg += fmt.Sprintf("; %d sooner, within the budget of %d: %s", len(abrupt), max, strings.Join(CapList(abrupt, 3), "; "))
	}
	if len(unknown) > 0 {
		msg += fmt.Sprintf("; %d still stopping at the end", len(unknown))
	}
	if forced > 0 {
		msg += fmt.Sprintf("; %d killed with less grace than their own, not judged", forced)
	}
	return result(name, Pass, obs, "%s", msg)
}

// CapList is xs cut to its first n, with "+K more" for the rest.
func CapList(xs []string, n int) []string {
	if len(xs) <= n {
		return xs
	}
	return append(append([]string{}, xs[:n]...), fmt.Sprintf("+%d more", len(xs)-n))
}
