package migrate

import (
	"context"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/verify"
)

// liveFunc serves a window computed by a function (a stand-in for the load's aggregator).
type liveFunc func(from, to time.Time) load.VersionWindow

func (f liveFunc) Versions(from, to time.Time) load.VersionWindow { return f(from, to) }

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
	res, serr, err := watch(context.Background(), bad.Live.Versions, "gate", start, nil, 20*time.Second, "v2", g)
	if err != nil || serr != nil || res.Status != verify.Fail || time.Since(start) > 4*time.Second {
		t.Errorf("breach: %s %q after %s (%v, %v)", res.Status, res.Message, time.Since(start), serr, err)
	}

	start = time.Now()
	blind := &steps.Env{Start: start, Live: perSecond(map[string]load.VersionStats{"v1": {Requests: 30}}, 0)}
	res, _, _ = watch(context.Background(), blind.Live.Versions, "gate", start, nil, 2*time.Second, "v2", g)
	if res.Status != verify.Error {
		t.Errorf("no canary traffic: %s %q", res.Status, res.Message)
	}

	scaled := make(chan error, 1)
	scaled <- context.DeadlineExceeded
	_, serr, _ = watch(context.Background(), blind.Live.Versions, "gate", time.Now(), scaled, time.Minute, "v2", g)
	if serr == nil {
		t.Error("a change that failed must end the watch with its error")
	}
}
