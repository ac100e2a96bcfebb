package clusters

import (
	"context"
	"fmt"
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

// Recorder watches, for the whole run, what the cluster does to the pods behind the load's Service:
// their endpoints' readiness in the Service's EndpointSlices, and each pod's deletion, its
// containers' exits and its removal, every change at the time it was seen. It is the first rule of
// the cluster's own timeline: which pods left the Service while serving, and how they stopped.
type Recorder struct {
	now    func() time.Time
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	err    error
	slices map[string]map[string]bool // EndpointSlice name → pod → ready
	pods   map[string]*podSeen
}

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
}

// StartRecorder starts watching the pods and EndpointSlices of Service svc in namespace ns, and
// returns once both watches have synced (or with the error that kept them from it).
func StartRecorder(ctx context.Context, cs kubernetes.Interface, ns, svc string) (*Recorder, error) {
	return startRecorder(ctx, cs, ns, svc, time.Now)
}

func startRecorder(ctx context.Context, cs kubernetes.Interface, ns, svc string, now func() time.Time) (*Recorder, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &Recorder{now: now, cancel: cancel, done: make(chan struct{}),
		slices: map[string]map[string]bool{}, pods: map[string]*podSeen{}}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	esf := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = discoveryv1.LabelServiceName + "=" + svc }))
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
	_, _ = eps.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.slice(o, false) },
		UpdateFunc: func(_, o any) { r.slice(o, false) },
		DeleteFunc: func(o any) { r.slice(o, true) },
	})
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.pod(o, false) },
		UpdateFunc: func(_, o any) { r.pod(o, false) },
		DeleteFunc: func(o any) { r.pod(o, true) },
	})
	f.Start(ctx.Done())
	esf.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		f.Shutdown()
		esf.Shutdown()
		close(r.done)
	}()
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	if !cache.WaitForCacheSync(sctx.Done(), pods.HasSynced, eps.HasSynced) {
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

func (r *Recorder) seen(name string) *podSeen {
	p := r.pods[name]
	if p == nil {
		p = &podSeen{}
		r.pods[name] = p
	}
	return p
}

func (r *Recorder) slice(o any, deleted bool) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	es, ok := o.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	ready := map[string]bool{}
	if !deleted {
		for _, ep := range es.Endpoints {
			if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
				continue
			}
			// Ready is what kube-proxy routes new connections by (nil means ready).
			ready[ep.TargetRef.Name] = ready[ep.TargetRef.Name] || ep.Conditions.Ready == nil || *ep.Conditions.Ready
		}
	}
	before := r.slices[es.Name]
	if deleted {
		delete(r.slices, es.Name)
	} else {
		r.slices[es.Name] = ready
	}
	for name := range mergeKeys(before, ready) {
		r.readiness(name, now)
	}
}

// readiness recomputes a pod's readiness across every slice and records a change.
func (r *Recorder) readiness(name string, now time.Time) {
	ready := false
	for _, s := range r.slices {
		ready = ready || s[name]
	}
	p := r.seen(name)
	switch {
	case ready && !p.ready:
		p.everReady = true
	case !ready && p.ready:
		p.unready = now
		if !p.deletedSeen.IsZero() {
			p.readyAtDel = true
		}
	}
	p.ready = ready
}

func mergeKeys(a, b map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func (r *Recorder) pod(o any, deleted bool) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.seen(pod.Name)
	if p.serving == nil {
		p.serving = map[string]bool{}
		for _, c := range pod.Spec.Containers {
			if len(c.Ports) > 0 {
				p.serving[c.Name] = true
			}
		}
		if len(p.serving) == 0 { // no container names a port: any of them may be the server
			for _, c := range pod.Spec.Containers {
				p.serving[c.Name] = true
			}
		}
	}
	if pod.DeletionTimestamp != nil && p.deletedSeen.IsZero() {
		// deletionTimestamp is when the pod will be killed (the request's time plus its grace): the
		// deletion began its grace period earlier.
		p.deleted, p.deletedSeen = pod.DeletionTimestamp.Time, now
		if g := pod.DeletionGracePeriodSeconds; g != nil {
			p.deleted = p.deleted.Add(-time.Duration(*g) * time.Second)
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
	}
	for _, cs := range pod.Status.ContainerStatuses {
		term := cs.State.Terminated
		if term == nil || !p.serving[cs.Name] || p.deletedSeen.IsZero() || !p.exitedSeen.IsZero() {
			continue
		}
		p.exited, p.exitedSeen = term.FinishedAt.Time, now
		p.container, p.exitCode, p.reason = cs.Name, term.ExitCode, term.Reason
	}
	if deleted && p.gone.IsZero() {
		p.gone = now
		if p.deletedSeen.IsZero() { // removed at once (a forced deletion): its deletion and removal are one
			p.deleted, p.deletedSeen = now.Truncate(time.Second), now
			p.forced = pod.Spec.TerminationGracePeriodSeconds == nil || *pod.Spec.TerminationGracePeriodSeconds > 0
			if p.ready {
				p.readyAtDel = true
			}
		}
	}
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
