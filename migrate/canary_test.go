package migrate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/verify"
)

// liveFunc serves a window computed by a function (a stand-in for the load's aggregator).
type liveFunc func(from, to time.Time) load.VersionWindow

func (f liveFunc) Versions(from, to time.Time) load.VersionWindow { return f(from, to) }

func (f liveFunc) Known() (time.Time, string) { return time.Now(), "" }

// perSecond is a live load in which each whole second holds the given answers.
func perSecond(by map[string]load.VersionStats, unversionedFailed int) liveFunc {
	return func(from, to time.Time) load.VersionWindow {
		n := int(to.Sub(from) / time.Second)
		w := load.VersionWindow{By: map[string]load.VersionStats{}}
		for v, st := range by {
			w.By[v] = load.VersionStats{Requests: st.Requests * n, Failed: st.Failed * n}
		}
		w.Unversioned = load.VersionStats{Requests: unversionedFailed * n, Failed: unversionedFailed * n}
		return w
	}
}

// The gate reacts to a breach within about two seconds, well before its window ends; a window with no
// traffic from the new version ends in an error, never a pass; a change that could not be made ends
// the watch with its error.
func TestWatch(t *testing.T) {
	t.Parallel()
	start := time.Now()
	g := verify.GateSpec{MaxErrorRate: 0.01, MinRequests: 10}
	bad := &steps.Env{Start: start, Live: perSecond(map[string]load.VersionStats{"v2": {Requests: 10, Failed: 3}, "v1": {Requests: 20}}, 0)}
	res, serr, err := watch(context.Background(), bad.Live, "gate", start, nil, 20*time.Second, "v2", g)
	if err != nil || serr != nil || res.Status != verify.Fail || time.Since(start) > 4*time.Second {
		t.Errorf("breach: %s %q after %s (%v, %v)", res.Status, res.Message, time.Since(start), serr, err)
	}

	start = time.Now()
	blind := &steps.Env{Start: start, Live: perSecond(map[string]load.VersionStats{"v1": {Requests: 30}}, 0)}
	res, _, _ = watch(context.Background(), blind.Live, "gate", start, nil, 2*time.Second, "v2", g)
	if res.Status != verify.Error {
		t.Errorf("no canary traffic: %s %q", res.Status, res.Message)
	}

	scaled := make(chan error, 1)
	scaled <- context.DeadlineExceeded
	_, serr, _ = watch(context.Background(), blind.Live, "gate", time.Now(), scaled, time.Minute, "v2", g)
	if serr == nil {
		t.Error("a change that failed must end the watch with its error")
	}
}

// knownUpTo is a live load whose results reach the run lag behind now, or stop at a lost agent's
// last report.
type knownUpTo struct {
	liveFunc
	lag  time.Duration
	stop time.Time
	lost string
}

func (k knownUpTo) Known() (time.Time, string) {
	if k.lost != "" {
		return k.stop, k.lost
	}
	return time.Now().Add(-k.lag), ""
}

// A gate judges only what the run knows of the load: with a load agent's results 2 s behind it
// passes 2 s later than with load sent in process, and a window a lost agent no longer reports on
// is an error naming the agent, never a pass on the share that is left.
func TestWatchJudgesOnlyWhatIsKnown(t *testing.T) {
	t.Parallel()
	g := verify.GateSpec{MaxErrorRate: 0.01, MinRequests: 10}
	good := perSecond(map[string]load.VersionStats{"v2": {Requests: 20}}, 0)

	start := time.Now()
	res, _, err := watch(context.Background(), knownUpTo{liveFunc: good, lag: 2 * time.Second}, "gate", start, nil, 2*time.Second, "v2", g)
	if took := time.Since(start); err != nil || res.Status != verify.Pass || took < 4500*time.Millisecond {
		t.Errorf("results 2 s behind: %s %q after %s (%v); want a pass, no sooner than 5 s (2 s hold, 1 s in flight, 2 s behind)", res.Status, res.Message, took, err)
	}

	start = time.Now()
	lost := knownUpTo{liveFunc: good, stop: start.Add(500 * time.Millisecond), lost: "load agent rehearse-load-1 (share 2 of 2) was lost: no results for 10s"}
	res, _, err = watch(context.Background(), lost, "gate 1 (50%)", start, nil, 2*time.Second, "v2", g)
	if took := time.Since(start); err != nil || res.Status != verify.Error || !strings.Contains(res.Message, "rehearse-load-1") ||
		!strings.Contains(res.Message, "could not judge") || took > 2*time.Second {
		t.Errorf("a lost agent: %s %q after %s (%v); want an error naming it at once", res.Status, res.Message, took, err)
	}
	// Lost after the window ended and was reported in full: the gate judges the whole window.
	start = time.Now()
	late := knownUpTo{liveFunc: good, stop: start.Add(10 * time.Second), lost: "load agent rehearse-load-1 (share 2 of 2) was lost"}
	if res, _, _ = watch(context.Background(), late, "gate", start, nil, 2*time.Second, "v2", g); res.Status != verify.Pass {
		t.Errorf("an agent lost after the window: %s %q; want a pass", res.Status, res.Message)
	}
}
