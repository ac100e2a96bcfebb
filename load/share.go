package load

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Share is the part of a run's one plan that one of several load agents sends: of the requests the
// seed plans, numbered from 0 in schedule order, agent Index sends those with n mod Of == Index, at
// the times the whole schedule gives them. Every request is sent by exactly one agent, with the id
// and target it has with one agent (<run ID>-<n+1>), so the ledger and a replay are the same
// whatever Of is. The zero Share is the whole plan.
type Share struct {
	Index int `json:"index"`
	Of    int `json:"of"`
}

// Whole says whether the share is the whole plan.
func (s Share) Whole() bool { return s.Of <= 1 }

// Check refuses a share that names no agent.
func (s Share) Check() error {
	if s.Of < 0 || s.Index < 0 || (s.Of > 0 && s.Index >= s.Of) || (s.Of == 0 && s.Index != 0) {
		return fmt.Errorf("load share %d of %d: want 0 ≤ index < of", s.Index, s.Of)
	}
	return nil
}

// Global is the plan's number of this share's local request k (both from 0).
func (s Share) Global(k uint64) uint64 {
	if s.Whole() {
		return k
	}
	return uint64(s.Index) + k*uint64(s.Of)
}

// Local is this share's number of the plan's request g, and whether g is this share's.
func (s Share) Local(g uint64) (uint64, bool) {
	if s.Whole() {
		return g, true
	}
	if g%uint64(s.Of) != uint64(s.Index) {
		return 0, false
	}
	return g / uint64(s.Of), true
}

// String names the share as a report does: "share 2 of 3" (counted from 1).
func (s Share) String() string {
	if s.Whole() {
		return "the whole plan"
	}
	return fmt.Sprintf("share %d of %d", s.Index+1, s.Of)
}

// sharePacer releases a share's requests at the whole schedule's times: its local hit k is due when
// the whole rate's integral passes Global(k).
type sharePacer struct {
	whole *stepPacer
	share Share
}

func (p *sharePacer) Rate(elapsed time.Duration) float64 {
	return p.whole.Rate(elapsed) / float64(max(p.share.Of, 1))
}

func (p *sharePacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	g := float64(p.share.Global(hits))
	if g < p.whole.expected(elapsed) {
		return 0, false
	}
	if p.whole.Rate(elapsed) <= 0 {
		return time.Second, false
	}
	wait := p.whole.at(g) - elapsed
	if wait <= 0 {
		// The integral is at g within rounding: the next call finds it due.
		wait = time.Microsecond
	}
	return time.Duration(math.Ceil(float64(wait))) + time.Microsecond, false
}

// versionSeenHeader carries, in a load agent's results, the version the answer said: read where the
// scenario says (a body field too), since the bodies stay behind.
const versionSeenHeader = "X-Rehearse-Version-Seen"

// maxKeptBody bounds the failed answer's body a load agent's result keeps (its first line is what a
// failure sample shows).
const maxKeptBody = 512

// keepForMerge trims a result for the run that merges it: the version its answer said as a header,
// and of the body only a failed answer's beginning.
func keepForMerge(res *vegeta.Result, a *Aggregator) {
	if v := a.version.Read(res.Headers, res.Body); v != "" {
		if res.Headers == nil {
			res.Headers = http.Header{}
		}
		res.Headers.Set(versionSeenHeader, v)
	}
	target, _, _ := strings.Cut(res.Headers.Get(requestHeader), "; id=")
	if res.Error == "" && a.succeeded(target, res.Code) {
		res.Body = nil
		return
	}
	if len(res.Body) > maxKeptBody {
		res.Body = res.Body[:maxKeptBody]
	}
}
