package verify

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/load"
)

// Change is one thing the cluster (or one of the run's steps) did, as the run's recorder saw it:
// a line of cluster.jsonl. T is on the run's clock, seconds since the load's second 0.
type Change struct {
	At        time.Time `json:"-"`
	T         float64   `json:"t"`
	Kind      string    `json:"kind"`   // endpoint, pod, node, event, step, action (KindAction)
	Object    string    `json:"object"` // pod/NAME, node/NAME, step/NAME, or an event's object
	What      string    `json:"what"`   // see below; an event's reason
	Node      string    `json:"node,omitempty"`
	Container string    `json:"container,omitempty"`
	ExitCode  *int32    `json:"exit_code,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	// ReadyEndpoints is, on an endpoint change, how many ready endpoints the load's Service has after it.
	ReadyEndpoints *int `json:"ready_endpoints,omitempty"`
	// ServingEndpoints counts those serving (ready, or terminating and still passing readiness):
	// kube-proxy falls back to them while none is ready.
	ServingEndpoints *int   `json:"serving_endpoints,omitempty"`
	Detail           string `json:"detail,omitempty"`
	Warning          bool   `json:"warning,omitempty"` // an event of type Warning
}

// What a Change says, by kind:
//
//	endpoint  ready, not-ready (or terminating), removed: the pod's endpoint in the load's Service
//	pod       created (Detail "no readiness probe" when it has none), scheduled (Node), ready,
//	          not-ready, deleting (its deletion began; Detail the grace), exited (Container, ExitCode,
//	          Reason: a container of a pod being deleted stopped), restarted (Container, Reason and
//	          ExitCode of its last run: OOMKilled, Error), gone
//	node      ready, not-ready, unschedulable, schedulable
//	event     the event's reason (Killing, Evicted, Unhealthy, BackOff...), Detail its message
//	step      start, end (Detail: its kind and status)
const (
	EndpointReady    = "ready"
	EndpointNotReady = "not-ready"
	EndpointRemoved  = "removed"
	PodCreated       = "created"
	PodScheduled     = "scheduled"
	PodReady         = "ready"
	PodNotReady      = "not-ready"
	PodDeleting      = "deleting"
	PodExited        = "exited"
	PodRestarted     = "restarted"
	PodGone          = "gone"
	NodeReady        = "ready"
	NodeNotReady     = "not-ready"
	NoReadinessProbe = "no readiness probe"
)

// Burst is a run of contiguous seconds with failed requests.
type Burst struct {
	From     float64 `json:"from"` // seconds since the load's start
	To       float64 `json:"to"`   // end of its last second
	Failed   int     `json:"failed"`
	Requests int     `json:"requests"`
	// ByVersion are the failed answers that named a version (a new release's own 5xx).
	ByVersion map[string]int `json:"failed_by_version,omitempty"`
	// Met is what the failed requests met, from the sampled failures: "150 HTTP 500, 19 connection
	// refused" (the load's own record, not the cluster's).
	Met string `json:"met,omitempty"`
	// Sampled failures in the burst, and how many of them got no HTTP answer (refused, reset, timed
	// out): only those can be a stopped pod's doing.
	Sampled    int `json:"sampled,omitempty"`
	Unanswered int `json:"unanswered,omitempty"`
	// InFlightTo is when the last sampled failure of the burst ended (its send time plus its
	// latency): a request sent by To that timed out was still waiting after To, and what the
	// cluster did meanwhile (a lost node marked NotReady) is part of its story.
	InFlightTo float64 `json:"in_flight_to,omitempty"`
}

// after is how far past To the burst's failed requests were still in flight.
func (b Burst) after() float64 { return max(0, b.InFlightTo-b.To) }

// answeredOnly says the burst's sampled failures were all HTTP answers: an app answered them, so no
// pod that had stopped listening failed them.
func (b Burst) answeredOnly() bool { return b.Sampled > 0 && b.Unanswered == 0 }

func (b Burst) String() string {
	return fmt.Sprintf("%d of %d requests failed from +%.0fs to +%.0fs", b.Failed, b.Requests, b.From, b.To)
}

// Explanation is what the cluster did in and just before a burst: facts with their times, each
// line naming what it saw; never a guess stated as fact.
type Explanation struct {
	Burst     Burst    `json:"burst"`
	Lines     []string `json:"lines"`
	Explained bool     `json:"explained"` // false: no cluster change explains this burst
}

// Unexplained is the line of a burst no rule fits.
const Unexplained = "no cluster change explains this burst"

// Bursts are the runs of seconds with failed requests (a second without failures ends one).
func Bursts(seconds []load.Second) []Burst {
	var out []Burst
	var cur *Burst
	for _, s := range seconds {
		if s.Failed == 0 {
			cur = nil
			continue
		}
		if cur == nil || float64(s.T) > cur.To {
			out = append(out, Burst{From: float64(s.T), To: float64(s.T)})
			cur = &out[len(out)-1]
		}
		cur.To = float64(s.T + 1)
		cur.Failed += s.Failed
		cur.Requests += s.OK + s.Failed
		for v, n := range s.VersionFailed {
			if cur.ByVersion == nil {
				cur.ByVersion = map[string]int{}
			}
			cur.ByVersion[v] += n
		}
	}
	return out
}

// MaxExplained bounds the bursts explained one by one; the rest are counted.
const MaxExplained = 20

// Explain names, for each burst, what the cluster did in it and just before it (changes in time
// order, T set), then what the failed requests met by the load's own record (failures: the sampled
// ones; start: the load's second 0).
func Explain(bursts []Burst, changes []Change, failures []load.Failure, start time.Time) []Explanation {
	var out []Explanation
	tl := newTimeline(changes)
	for i, b := range bursts {
		if i == MaxExplained {
			break
		}
		b.Met = met(&b, failures, start)
		var lines []string
		for _, rule := range rules {
			lines = append(lines, rule(b, tl)...)
		}
		e := Explanation{Burst: b, Lines: dedupe(lines), Explained: len(lines) > 0}
		if !e.Explained {
			e.Lines = []string{Unexplained}
		}
		if line := metLine(b); line != "" {
			e.Lines = append(e.Lines, line)
		}
		out = append(out, e)
	}
	return out
}

// met sums what the sampled failures in the burst met, most first: an HTTP status (the app
// answered), a refused or reset connection, a timeout, a request never sent.
func met(b *Burst, failures []load.Failure, start time.Time) string {
	by := map[string]int{}
	for _, f := range failures {
		t := f.Time.Sub(start).Seconds()
		if t < b.From || t >= b.To {
			continue
		}
		e := strings.ToLower(f.Error)
		b.Sampled++
		b.InFlightTo = max(b.InFlightTo, t+f.Latency.Seconds())
		if f.Code == 0 && !strings.Contains(e, load.NotSent) {
			b.Unanswered++
		}
		switch {
		case f.Code > 0:
			by[fmt.Sprintf("HTTP %d", f.Code)]++
		case strings.Contains(e, load.NotSent):
			by["not sent (the client was saturated)"]++
		case strings.Contains(e, "connection refused"):
			by["connection refused"]++
		case strings.Contains(e, "no route to host"):
			by["no route to host"]++
		case strings.Contains(e, "reset"):
			by["connection reset"]++
		case strings.Contains(e, "timeout") || strings.Contains(e, "deadline"):
			by["timed out"]++
		case strings.Contains(e, "eof"):
			by["connection closed without an answer"]++
		default:
			by[errorGist(f.Error)]++
		}
	}
	kinds := slices.Sorted(maps.Keys(by))
	slices.SortStableFunc(kinds, func(a, b string) int { return by[b] - by[a] })
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", by[k], k))
	}
	return strings.Join(parts, ", ")
}

// errorGist is an error without the request it came from (`Post "URL": `), cut short.
func errorGist(e string) string {
	if i := strings.Index(e, `": `); i >= 0 && strings.HasPrefix(e, strings.SplitN(e, " ", 2)[0]+` "`) {
		e = e[i+3:]
	}
	e = strings.TrimSpace(firstLine(e))
	if r := []rune(e); len(r) > 80 {
		e = string(r[:80]) + "…"
	}
	if e == "" {
		return "an error without a message"
	}
	return e
}

// metLine says what the burst's failed requests met, and which versions answered them.
func metLine(b Burst) string {
	if b.Met == "" && len(b.ByVersion) == 0 {
		return ""
	}
	line := "the failed requests met"
	if b.Met != "" {
		line += " (by the sampled failures): " + b.Met
	}
	if len(b.ByVersion) > 0 {
		var vs []string
		for _, v := range slices.Sorted(maps.Keys(b.ByVersion)) {
			vs = append(vs, fmt.Sprintf("%s %d", v, b.ByVersion[v]))
		}
		line += "; failed answers by version: " + strings.Join(vs, ", ")
	}
	return line
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// timeline indexes the changes the rules read.
type timeline struct {
	all  []Change
	pods map[string][]Change // pod/NAME → its pod and endpoint changes
}

func newTimeline(changes []Change) *timeline {
	tl := &timeline{all: changes, pods: map[string][]Change{}}
	for _, c := range changes {
		if c.Kind == "pod" || c.Kind == "endpoint" {
			tl.pods[c.Object] = append(tl.pods[c.Object], c)
		}
	}
	return tl
}

// first is the first change of the pod's of kind and what at or after from (ok false: none).
func first(cs []Change, kind, what string, from float64) (Change, bool) {
	for _, c := range cs {
		if c.Kind == kind && c.What == what && c.T >= from {
			return c, true
		}
	}
	return Change{}, false
}

// endpointLeft is when the pod's endpoint stopped being ready at or after from.
func endpointLeft(cs []Change, from float64) (Change, bool) {
	for _, c := range cs {
		if c.Kind == "endpoint" && (c.What == EndpointNotReady || c.What == EndpointRemoved) && c.T >= from {
			return c, true
		}
	}
	return Change{}, false
}

// readyAt says whether the pod's endpoint was ready at t (by its last endpoint change before t).
func readyAt(cs []Change, t float64) bool {
	ready := false
	for _, c := range cs {
		if c.Kind != "endpoint" || c.T > t {
			continue
		}
		ready = c.What == EndpointReady
	}
	return ready
}

func near(t float64, b Burst, before, after float64) bool {
	return t >= b.From-before && t <= b.To+after
}

type rule func(Burst, *timeline) []string

// rules in the order their lines are given.
var rules = []rule{faultActing, stepActions, noReadyEndpoint, unanswered(exitedWhileReady), nodeNotReady, unanswered(restarted),
	unanswered(servingBeforeReady), evicted, unschedulable}

// unanswered applies a rule about a pod's stop, restart or start only to a burst with failures no
// HTTP answer met: a pod that is not listening answers nothing, so it did not fail answered requests.
func unanswered(r rule) rule {
	return func(b Burst, tl *timeline) []string {
		if b.answeredOnly() {
			return nil
		}
		return r(b, tl)
	}
}

// faultActing: a fault step the rehearsal injected was acting in the burst (a node-loss's node is
// gone long before the control plane says NotReady: nothing in the API shows it meanwhile).
func faultActing(b Burst, tl *timeline) []string {
	var out []string
	start := map[string]Change{}
	for _, c := range tl.all {
		if c.Kind != "step" {
			continue
		}
		switch c.What {
		case "start":
			if strings.HasPrefix(c.Detail, "fault/") {
				start[c.Object] = c
			}
		case "end":
			s, ok := start[c.Object]
			if ok && s.T < b.To && c.T >= b.From-2 {
				out = append(out, fmt.Sprintf("the fault %s (%s) was acting, from +%.1fs to +%.1fs", strings.TrimPrefix(c.Object, "step/"), s.Detail, s.T, c.T))
			}
			delete(start, c.Object)
		}
	}
	return out
}

// KindAction is a change a step made to the cluster itself (its Detail says which step and what).
const KindAction = "action"

// stepActions: a step changed the system in or just before the burst (a database member fenced,
// demoted or promoted): each action, with its time, on one line per step.
func stepActions(b Burst, tl *timeline) []string {
	var order []string
	by := map[string][]string{}
	for _, c := range tl.all {
		if c.Kind != KindAction || c.T < b.From-2 || c.T >= b.To+1 {
			continue
		}
		step, what, _ := strings.Cut(c.Detail, ": ")
		if _, ok := by[step]; !ok {
			order = append(order, step)
		}
		by[step] = append(by[step], fmt.Sprintf("%s at +%.1fs", what, c.T))
	}
	var out []string
	for _, step := range order {
		out = append(out, step+" acted: "+strings.Join(CapList(by[step], 6), "; "))
	}
	return out
}

// noReadyEndpoint: the load's Service had no ready endpoint during the burst (and, when terminating
// endpoints still served for part of it, until when: kube-proxy falls back to them).
func noReadyEndpoint(b Burst, tl *timeline) []string {
	var out []string
	ready, known := -1, false
	var zeroFrom, servedUntil float64
	flush := func(to float64) {
		if !known || ready != 0 || zeroFrom >= b.To || to <= b.From {
			return
		}
		end := fmt.Sprintf("to +%.1fs", to)
		if to == inf {
			end = "to the end of the record"
		}
		line := fmt.Sprintf("the load's Service had no ready endpoint from +%.1fs %s", zeroFrom, end)
		switch {
		case servedUntil == inf:
			line += "; terminating endpoints still served throughout (kube-proxy falls back to them while none is ready)"
		case servedUntil > zeroFrom:
			line += fmt.Sprintf("; terminating endpoints still served until +%.1fs (kube-proxy falls back to them while none is ready)", servedUntil)
		}
		out = append(out, line)
	}
	for _, c := range tl.all {
		if c.Kind != "endpoint" || c.ReadyEndpoints == nil {
			continue
		}
		n := *c.ReadyEndpoints
		if known && ready == 0 && n > 0 {
			flush(c.T)
		}
		if n == 0 && (!known || ready != 0) {
			zeroFrom, servedUntil = c.T, 0
		}
		if n == 0 && c.ServingEndpoints != nil && *c.ServingEndpoints > 0 {
			servedUntil = inf // serving still: until a later change says otherwise
		} else if n == 0 && servedUntil == inf {
			servedUntil = c.T
		}
		ready, known = n, true
	}
	flush(inf)
	return out
}

const inf = 1e18

// exitedWhileReady: a pod's serving container stopped (at SIGTERM, or a crash) while its endpoint
// was still ready, or just before it left: requests routed to it met a closed port. The endpoint
// leaves the Service when the pod's deletion is seen; kube-proxy on every node drops it a moment
// later, so a pod that stops listening at SIGTERM loses what is routed to it meanwhile.
func exitedWhileReady(b Burst, tl *timeline) []string {
	var out []string
	for _, obj := range slices.Sorted(maps.Keys(tl.pods)) {
		cs := tl.pods[obj]
		for _, ex := range cs {
			if ex.Kind != "pod" || ex.What != PodExited || !near(ex.T, b, 5, 0.5) {
				continue
			}
			del, deleting := first(cs, "pod", PodDeleting, -inf)
			if deleting && del.T > ex.T {
				deleting = false
			}
			readyThen := readyAt(cs, ex.T)
			left, hasLeft := endpointLeft(cs, ex.T-3)
			// It counts when the endpoint was ready as the container stopped, or left the Service
			// within 2 s before it (kube-proxy's lag), or the pod stopped within 2 s of SIGTERM.
			lag := hasLeft && left.T <= ex.T && ex.T-left.T < 2
			quick := deleting && ex.T-del.T < 2
			if !readyThen && !lag && !quick {
				continue
			}
			var s strings.Builder
			fmt.Fprintf(&s, "%s", obj)
			forced := deleting && (del.Detail == "grace 0s" || strings.HasPrefix(del.Detail, "forced"))
			switch {
			case forced:
				fmt.Fprintf(&s, " was deleted with no grace at +%.1fs (killed, not asked to stop) and", del.T)
			case deleting:
				fmt.Fprintf(&s, " received SIGTERM at +%.1fs (its deletion began) and", del.T)
			}
			fmt.Fprintf(&s, " its container %s exited at +%.1fs%s", ex.Container, ex.T, exitSays(ex))
			switch {
			case readyThen && hasLeft && left.T > ex.T:
				fmt.Fprintf(&s, "; its endpoint stayed ready until +%.1fs: requests went to a pod that had stopped listening", left.T)
			case readyThen:
				s.WriteString("; its endpoint was still ready then: requests went to a pod that had stopped listening")
			case hasLeft:
				fmt.Fprintf(&s, "; its endpoint left the Service at +%.1fs, %.1fs before: kube-proxy routes to an endpoint for a moment after it leaves", left.T, ex.T-left.T)
			}
			switch {
			case !readyThen && !lag:
				s.WriteString(" (not an endpoint of the load's Service then: what depends on it met its stop)")
			case deleting && !forced:
				s.WriteString(" (a preStop delay or a graceful drain would cover the gap)")
			}
			out = append(out, s.String())
			break
		}
	}
	return out
}

func exitSays(c Change) string {
	var parts []string
	if c.ExitCode != nil {
		parts = append(parts, fmt.Sprintf("exit %d", *c.ExitCode))
	}
	if c.Reason != "" {
		parts = append(parts, c.Reason)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// nodeNotReady: a node went NotReady in the burst, in the minute before it, or while its failed
// requests were still in flight (a lost node's requests time out until it is marked NotReady).
func nodeNotReady(b Burst, tl *timeline) []string {
	var out []string
	for i, c := range tl.all {
		if c.Kind != "node" || c.What != NodeNotReady || !near(c.T, b, 60, b.after()) {
			continue
		}
		until := "and not Ready again in the record"
		for _, d := range tl.all[i+1:] {
			if d.Kind == "node" && d.Object == c.Object && d.What == NodeReady {
				until = fmt.Sprintf("until +%.1fs", d.T)
				break
			}
		}
		out = append(out, fmt.Sprintf("%s NotReady at +%.1fs %s", c.Object, c.T, until))
	}
	return out
}

// restarted: a container restarted, or was OOM-killed, in or just before the burst (a pod not being
// deleted: the deletion's exits are exitedWhileReady's).
func restarted(b Burst, tl *timeline) []string {
	var out []string
	for _, c := range tl.all {
		if c.Kind == "pod" && c.What == PodRestarted && near(c.T, b, 5, 0.5) {
			ready := ""
			if readyAt(tl.pods[c.Object], c.T) {
				ready = "; its endpoint was ready then: requests routed to it met a container starting over"
			}
			out = append(out, fmt.Sprintf("%s container %s ended at +%.1fs%s and was restarted%s", c.Object, c.Container, c.T, exitSays(c), ready))
		}
	}
	return out
}

// servingBeforeReady: a pod without a readiness probe became a ready endpoint just before or in the
// burst: it may have taken requests before its app listened (a question, not a finding).
func servingBeforeReady(b Burst, tl *timeline) []string {
	var out []string
	for _, obj := range slices.Sorted(maps.Keys(tl.pods)) {
		cs := tl.pods[obj]
		created, ok := first(cs, "pod", PodCreated, -inf)
		if !ok || created.Detail != NoReadinessProbe {
			continue
		}
		ep, ok := first(cs, "endpoint", EndpointReady, -inf)
		if !ok || !near(ep.T, b, 3, 0) {
			continue
		}
		out = append(out, fmt.Sprintf("%s was added to the Service's ready endpoints at +%.1fs, %.1fs after it was created; it has no readiness probe: serving before its app listens?",
			obj, ep.T, ep.T-created.T))
	}
	return out
}

// evicted: the cluster evicted pods (an Evicted or a preemption event) in or just before the burst.
func evicted(b Burst, tl *timeline) []string {
	var out []string
	for _, c := range tl.all {
		if c.Kind == "event" && (c.What == "Evicted" || c.What == "Preempted" || c.What == "TaintManagerEviction") && near(c.T, b, 10, 0) {
			out = append(out, fmt.Sprintf("%s: %s at +%.1fs: %s", c.Object, c.What, c.T, c.Detail))
		}
	}
	return out
}

// unschedulable: a pod the scheduler could place on no node (FailedScheduling: too little CPU or
// memory left to request, a volume bound to a full node, a taint) in or in the 30 s before the
// burst, once per pod with the first such event: a replacement that never starts looks, from the
// load's side, like a Service that lost its endpoints for no reason.
func unschedulable(b Burst, tl *timeline) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range tl.all {
		if c.Kind == "event" && c.What == "FailedScheduling" && !seen[c.Object] && near(c.T, b, 30, 0) {
			seen[c.Object] = true
			out = append(out, fmt.Sprintf("%s could not be scheduled (FailedScheduling at +%.1fs): %s", c.Object, c.T, c.Detail))
		}
	}
	return out
}

// OnRunClock sets each change's T: seconds since start (the load's second 0), to the millisecond.
func OnRunClock(changes []Change, start time.Time) []Change {
	for i := range changes {
		changes[i].T = math.Round(changes[i].At.Sub(start).Seconds()*1000) / 1000
	}
	return changes
}

// ExplanationLines are the explanations as a check's lines: each burst, then what explains it.
func ExplanationLines(es []Explanation) []string {
	var out []string
	for _, e := range es {
		for _, l := range e.Lines {
			out = append(out, fmt.Sprintf("%s: %s", e.Burst, l))
		}
	}
	return out
}
