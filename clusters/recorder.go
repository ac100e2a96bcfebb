package clusters

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/rehearse-dev/rehearse/verify"
)

// Recorder watches, for the whole run, what the cluster does: the endpoints of the load's Service
// (each pod's ready/serving/terminating), the pods of its namespace (scheduling, readiness, deletion,
// container exits and restarts, removal), the namespace's Events and the cluster's Nodes (Ready,
// unschedulable), every change at the time it was seen. From it come graceful-termination's record
// of pods that left the Service while serving, and the cluster's timeline (cluster.jsonl) that
// explains failure bursts.
type Recorder struct {
	now    func() time.Time
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	err     error
	slices  map[string]map[string]epState // EndpointSlice name → pod → its endpoint's conditions
	pods    map[string]*podSeen
	nodes   map[string]nodeSeen
	log     []verify.Change // the cluster's timeline, bounded by MaxChanges
	dropped map[string]int  // changes past MaxChanges, by kind
	notes   []string        // what could not be watched (nodes, events), and why
	since   time.Time       // events older than this are history, not the run's
}

// MaxChanges bounds the recorder's timeline (cluster.jsonl): ~200 bytes a change. Past it, further
// changes are counted by kind, not kept, and the record says so.
const MaxChanges = 20000

// epState is an endpoint's conditions as kube-proxy reads them.
type epState struct{ present, ready, serving, terminating bool }

type nodeSeen struct{ ready, unschedulable bool }

type podSeen struct {
	ready       bool // its endpoint is ready in some slice now
	everReady   bool
	readyAtDel  bool // its endpoint was ready when its deletion was seen (or turned unready after it)
	unready     time.Time
	deleted     time.Time // deletionTimestamp
	deletedSeen time.Time
	exited      time.Time
	exitedSeen  time.Time
	container   string
	exitCode    int32
	reason      string
	gone        time.Time
	forced      bool            // deleted with less grace than its own (a pod-kill's SIGKILL)
	serving     map[string]bool // containers that expose a port: the ones that serve
	ep          epState         // its endpoint across the Service's slices now
	node        string
	podReady    bool
	restarts    map[string]int32
}

// StartRecorder starts watching the load's Service svc in namespace ns (its pods and
// EndpointSlices), the namespace's Events and the cluster's Nodes, and returns once the watches have
// synced (or with the error that kept the pods' or endpoints' from it). Events and Nodes that cannot
// be watched (a cluster that does not let this user list them) are left out and noted.
func StartRecorder(ctx context.Context, cs kubernetes.Interface, ns, svc string) (*Recorder, error) {
	return startRecorder(ctx, cs, ns, svc, time.Now)
}

func startRecorder(ctx context.Context, cs kubernetes.Interface, ns, svc string, now func() time.Time) (*Recorder, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &Recorder{now: now, cancel: cancel, done: make(chan struct{}), since: now().Add(-2 * time.Second),
		slices: map[string]map[string]epState{}, pods: map[string]*podSeen{}, nodes: map[string]nodeSeen{}, dropped: map[string]int{}}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	esf := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = discoveryv1.LabelServiceName + "=" + svc }))
	cf := informers.NewSharedInformerFactory(cs, 0)
	pods := f.Core().V1().Pods().Informer()
	eps := esf.Discovery().V1().EndpointSlices().Informer()
	watchErr := func(_ *cache.Reflector, err error) {
		r.mu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
	}
	_ = pods.SetWatchErrorHandler(watchErr)
	_ = eps.SetWatchErrorHandler(watchErr)
	handle := func(inf cache.SharedIndexInformer, fn func(o any, deleted bool)) {
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { fn(o, false) },
			UpdateFunc: func(_, o any) { fn(o, false) },
			DeleteFunc: func(o any) {
				// A deletion the watch missed comes as a tombstone with the object's last state.
				if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
					o = t.Obj
				}
				fn(o, true)
			},
		})
	}
	handle(eps, r.slice)
	handle(pods, r.pod)
	synced := []cache.InformerSynced{pods.HasSynced, eps.HasSynced}
	// Events and Nodes explain; they do not judge: one this user may not list is noted, not fatal.
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	if _, err := cs.CoreV1().Events(ns).List(lctx, metav1.ListOptions{Limit: 1}); err != nil {
		r.notes = append(r.notes, fmt.Sprintf("events of %s not watched: %v", ns, err))
	} else {
		ev := f.Core().V1().Events().Informer()
		handle(ev, r.event)
		synced = append(synced, ev.HasSynced)
	}
	if _, err := cs.CoreV1().Nodes().List(lctx, metav1.ListOptions{Limit: 1}); err != nil {
		r.notes = append(r.notes, fmt.Sprintf("nodes not watched: %v", err))
	} else {
		nodes := cf.Core().V1().Nodes().Informer()
		handle(nodes, r.node)
		synced = append(synced, nodes.HasSynced)
	}
	f.Start(ctx.Done())
	esf.Start(ctx.Done())
	cf.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		f.Shutdown()
		esf.Shutdown()
		cf.Shutdown()
		close(r.done)
	}()
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	if !cache.WaitForCacheSync(sctx.Done(), synced...) {
		cancel()
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.err != nil {
			return nil, fmt.Errorf("watching service %s in %s: %w", svc, ns, r.err)
		}
		return nil, fmt.Errorf("watching service %s in %s: the watches did not sync within a minute", svc, ns)
	}
	return r, nil
}

// Stop ends the watches.
func (r *Recorder) Stop() {
	r.cancel()
	<-r.done
}

// add keeps a change (r.mu held).
func (r *Recorder) add(c verify.Change) {
	if len(r.log) >= MaxChanges {
		r.dropped[c.Kind]++
		return
	}
	r.log = append(r.log, c)
}

// Changes is the cluster's timeline as seen, in order; notes say what was not watched and what was
// dropped past MaxChanges.
func (r *Recorder) Changes() (changes []verify.Change, notes []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.log)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	notes = slices.Clone(r.notes)
	for _, k := range slices.Sorted(maps.Keys(r.dropped)) {
		notes = append(notes, fmt.Sprintf("%d %s changes past the first %d were dropped", r.dropped[k], k, MaxChanges))
	}
	return out, notes
}

func (r *Recorder) seen(name string) *podSeen {
	p := r.pods[name]
	if p == nil {
		p = &podSeen{restarts: map[string]int32{}}
		r.pods[name] = p
	}
	return p
}

func (r *Recorder) slice(o any, deleted bool) {
	es, ok := o.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	state := map[string]epState{}
	if !deleted {
		for _, ep := range es.Endpoints {
			if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
				continue
			}
			// Ready is what kube-proxy routes new connections by (nil means ready); serving and
			// terminating what it may fall back to while every endpoint terminates.
			c := ep.Conditions
			s := state[ep.TargetRef.Name]
			s.present = true
			s.ready = s.ready || c.Ready == nil || *c.Ready
			s.serving = s.serving || (c.Serving != nil && *c.Serving) || (c.Serving == nil && (c.Ready == nil || *c.Ready))
			s.terminating = s.terminating || (c.Terminating != nil && *c.Terminating)
			state[ep.TargetRef.Name] = s
		}
	}
	before := r.slices[es.Name]
	if deleted {
		delete(r.slices, es.Name)
	} else {
		r.slices[es.Name] = state
	}
	names := map[string]bool{}
	for k := range before {
		names[k] = true
	}
	for k := range state {
		names[k] = true
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		r.readiness(name, now)
	}
}

// endpoints counts the Service's ready and serving endpoints across every slice (r.mu held).
func (r *Recorder) endpoints() (ready, serving int) {
	rs, ss := map[string]bool{}, map[string]bool{}
	for _, s := range r.slices {
		for name, st := range s {
			if st.ready {
				rs[name] = true
			}
			if st.serving {
				ss[name] = true
			}
		}
	}
	return len(rs), len(ss)
}

// readiness recomputes a pod's endpoint across every slice and records a change.
func (r *Recorder) readiness(name string, now time.Time) {
	var st epState
	for _, s := range r.slices {
		e := s[name]
		st.present = st.present || e.present
		st.ready = st.ready || e.ready
		st.serving = st.serving || e.serving
		st.terminating = st.terminating || e.terminating
	}
	p := r.seen(name)
	switch {
	case st.ready && !p.ready:
		p.everReady = true
	case !st.ready && p.ready:
		p.unready = now
		if !p.deletedSeen.IsZero() {
			p.readyAtDel = true
		}
	}
	p.ready = st.ready
	if st == p.ep {
		return
	}
	p.ep = st
	what := verify.EndpointReady
	switch {
	case !st.present:
		what = verify.EndpointRemoved
	case !st.ready:
		what = verify.EndpointNotReady
	}
	var flags []string
	if st.present && st.serving {
		flags = append(flags, "serving")
	}
	if st.terminating {
		flags = append(flags, "terminating")
	}
	ready, serving := r.endpoints()
	r.add(verify.Change{At: now, Kind: "endpoint", Object: "pod/" + name, What: what, Node: p.node,
		ReadyEndpoints: &ready, ServingEndpoints: &serving, Detail: strings.Join(flags, ", ")})
}

func (r *Recorder) pod(o any, deleted bool) {
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	obj := "pod/" + pod.Name
	p := r.seen(pod.Name)
	if p.serving == nil {
		p.serving = map[string]bool{}
		probe := false
		for _, c := range pod.Spec.Containers {
			if len(c.Ports) > 0 {
				p.serving[c.Name] = true
			}
			probe = probe || c.ReadinessProbe != nil
		}
		if len(p.serving) == 0 { // no container names a port: any of them may be the server
			for _, c := range pod.Spec.Containers {
				p.serving[c.Name] = true
			}
		}
		c := verify.Change{At: now, Kind: "pod", Object: obj, What: verify.PodCreated, Node: pod.Spec.NodeName}
		if !probe {
			c.Detail = verify.NoReadinessProbe
		}
		r.add(c)
	}
	if pod.Spec.NodeName != "" && p.node == "" {
		p.node = pod.Spec.NodeName
		r.add(verify.Change{At: now, Kind: "pod", Object: obj, What: verify.PodScheduled, Node: p.node})
	}
	ready := false
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	if ready != p.podReady && !deleted {
		p.podReady = ready
		what := verify.PodReady
		if !ready {
			what = verify.PodNotReady
		}
		r.add(verify.Change{At: now, Kind: "pod", Object: obj, What: what, Node: p.node})
	}
	if pod.DeletionTimestamp != nil && p.deletedSeen.IsZero() {
		// deletionTimestamp is when the pod will be killed (the request's time plus its grace): the
		// deletion began its grace period earlier.
		p.deleted, p.deletedSeen = pod.DeletionTimestamp.Time, now
		grace := ""
		if g := pod.DeletionGracePeriodSeconds; g != nil {
			p.deleted = p.deleted.Add(-time.Duration(*g) * time.Second)
			grace = fmt.Sprintf("grace %ds", *g)
		}
		own := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
			own = *g
		}
		p.forced = pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds < own
		// The endpoints controller may be quicker than this watch: an endpoint that turned unready
		// since the deletion began (to the API's second) was ready when it began.
		if p.ready || (!p.unready.IsZero() && !p.unready.Before(p.deleted)) {
			p.readyAtDel = true
		}
		r.add(verify.Change{At: now, Kind: "pod", Object: obj, What: verify.PodDeleting, Node: p.node, Detail: grace})
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.RestartCount > p.restarts[cs.Name] {
			p.restarts[cs.Name] = cs.RestartCount
			c := verify.Change{At: now, Kind: "pod", Object: obj, What: verify.PodRestarted, Node: p.node, Container: cs.Name,
				Detail: fmt.Sprintf("restart %d", cs.RestartCount)}
			if t := cs.LastTerminationState.Terminated; t != nil {
				code := t.ExitCode
				c.ExitCode, c.Reason = &code, t.Reason
				// When it ended (the API's second), not when its restart was seen: the kubelet
				// reports a restart a second or more after the kill that caused the failures (two
				// app pods OOM-killed at +33.5s were seen restarted at +34.9s, after the burst).
				if f := t.FinishedAt.Time; !f.IsZero() && f.Before(now) && now.Sub(f) < time.Minute {
					c.At = f
				}
			}
			r.add(c)
		}
		term := cs.State.Terminated
		if term == nil || !p.serving[cs.Name] || p.deletedSeen.IsZero() || !p.exitedSeen.IsZero() {
			continue
		}
		p.exited, p.exitedSeen = term.FinishedAt.Time, now
		p.container, p.exitCode, p.reason = cs.Name, term.ExitCode, term.Reason
		if !term.FinishedAt.IsZero() && term.FinishedAt.Time.Before(p.deleted.Add(-time.Second)) {
			continue // it had finished before its deletion (a completed Job's pod): no stop to tell
		}
		code := term.ExitCode
		r.add(verify.Change{At: now, Kind: "pod", Object: obj, What: verify.PodExited, Node: p.node, Container: cs.Name,
			ExitCode: &code, Reason: term.Reason})
	}
	if deleted && p.gone.IsZero() {
		p.gone = now
		if p.deletedSeen.IsZero() { // removed at once (a forced deletion): its deletion and removal are one
			p.deleted, p.deletedSeen = now.Truncate(time.Second), now
			p.forced = pod.Spec.TerminationGracePeriodSeconds == nil || *pod.Spec.TerminationGracePeriodSeconds > 0
			if p.ready {
				p.readyAtDel = true
			}
			r.add(verify.Change{At: now, Kind: "pod", Object: obj, What: verify.PodDeleting, Node: p.node, Detail: "forced: removed at once"})
		}
		r.add(verify.Change{At: now, Kind: "pod", Object: obj, What: verify.PodGone, Node: p.node})
	}
}

// node records a node's Ready and unschedulable changes.
func (r *Recorder) node(o any, deleted bool) {
	n, ok := o.(*corev1.Node)
	if !ok {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	obj := "node/" + n.Name
	if deleted {
		delete(r.nodes, n.Name)
		r.add(verify.Change{At: now, Kind: "node", Object: obj, What: "gone", Node: n.Name})
		return
	}
	var st nodeSeen
	detail := ""
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			st.ready = c.Status == corev1.ConditionTrue
			detail = strings.TrimSpace(c.Reason + ": " + c.Message)
		}
	}
	st.unschedulable = n.Spec.Unschedulable
	before, known := r.nodes[n.Name]
	r.nodes[n.Name] = st
	if !known || st.ready != before.ready {
		what := verify.NodeReady
		if !st.ready {
			what = verify.NodeNotReady
		}
		r.add(verify.Change{At: now, Kind: "node", Object: obj, What: what, Node: n.Name, Detail: detail})
	}
	if known && st.unschedulable != before.unschedulable {
		what := "schedulable"
		if st.unschedulable {
			what = "unschedulable"
		}
		r.add(verify.Change{At: now, Kind: "node", Object: obj, What: what, Node: n.Name})
	}
}

// event records an Event of the namespace that happened since the recorder started (each time it
// recurs, as its count grows).
func (r *Recorder) event(o any, deleted bool) {
	if deleted {
		return
	}
	ev, ok := o.(*corev1.Event)
	if !ok {
		return
	}
	when := ev.LastTimestamp.Time
	if ev.EventTime.After(when) {
		when = ev.EventTime.Time
	}
	if when.IsZero() {
		when = ev.FirstTimestamp.Time
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !when.IsZero() && when.Before(r.since) {
		return
	}
	obj := strings.ToLower(ev.InvolvedObject.Kind) + "/" + ev.InvolvedObject.Name
	r.add(verify.Change{At: r.now(), Kind: "event", Object: obj, What: ev.Reason, Node: ev.Source.Host,
		Detail: firstLineOf(ev.Message), Warning: ev.Type == corev1.EventTypeWarning})
}

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Stopping is how many pods that were ready endpoints when their deletion began have been seen
// neither to exit nor to go away yet.
func (r *Recorder) Stopping() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.pods {
		if p.everReady && p.readyAtDel && !p.forced && p.exitedSeen.IsZero() && p.gone.IsZero() {
			n++
		}
	}
	return n
}

// Settle waits, at most max, until no pod the recorder saw leave the Service is still stopping: a run
// whose last step was a rollout (a runbook's last block) has its old pods judged on how they stopped,
// not reported as still stopping at the end. It returns how many are still stopping.
func (r *Recorder) Settle(ctx context.Context, max time.Duration) int {
	deadline := time.Now().Add(max)
	for {
		n := r.Stopping()
		if n == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return n
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Terminations is every pod that was a ready endpoint of the Service when its deletion began, with
// the times it was seen to stop; and the error that broke a watch, if one did.
func (r *Recorder) Terminations() ([]verify.Termination, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []verify.Termination
	for name, p := range r.pods {
		if !p.everReady || !p.readyAtDel {
			continue
		}
		out = append(out, verify.Termination{Pod: name, Deleted: p.deleted, DeletedSeen: p.deletedSeen, Unready: p.unready,
			Exited: p.exited, ExitedSeen: p.exitedSeen, Container: p.container, ExitCode: p.exitCode, Reason: p.reason, Gone: p.gone,
			Forced: p.forced})
	}
	return out, r.err
}
