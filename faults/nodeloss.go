package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/verify"
)

// DefaultLossFor is how long a lost node stays down when the step does not say: longer than the
// 50 s after which Kubernetes 1.34's control plane marks a silent node NotReady, so that the loss
// is seen.
const DefaultLossFor = 60 * time.Second

// DefaultLossTimeout bounds how long a started node may take to be Ready again.
const DefaultLossTimeout = 3 * time.Minute

// handBackWait bounds how long a run that ends early waits for the node it started again to be Ready.
var handBackWait = time.Minute

// NodeLoss loses a node as a crash would: its container is killed (no graceful shutdown, no
// eviction; its pods stop with it and stay bound to it), and started again after `for`. Local kind
// clusters only. It records the pods lost with the node, when the control plane saw it NotReady and
// when it was Ready again: the evidence fault-took-effect judges. The node is started on every
// exit path, and a crashed run's stopped node is started by the next run (Repair).
type NodeLoss struct{}

func (NodeLoss) Name() string                 { return "fault/node-loss" }
func (NodeLoss) Takes(st scenarios.Step) bool { return st.Fault != nil && st.Fault.Type == "node-loss" }

func (NodeLoss) Check(st scenarios.Step, sc *scenarios.Loaded) []steps.Problem {
	ps := nodeChoice(st.Fault, sc)
	if st.Fault.For.Duration < 0 {
		ps = append(ps, steps.Problemf("fault.for", "must not be negative"))
	}
	return append(ps, notFor(st.Fault, "node-loss")...)
}

func (NodeLoss) Preflight(st scenarios.Step, m steps.Machines) error {
	if m == nil {
		return errors.New("node-loss stops a node's container: it runs on local kind clusters only, and this cluster is not one")
	}
	return nil
}

func (NodeLoss) Run(ctx context.Context, env *steps.Env, st scenarios.Step, rec *steps.Record) error {
	f := st.Fault
	if env.Machines == nil {
		return errors.New("node-loss runs on local kind clusters only")
	}
	cs := env.Ops.Clientset()
	node, err := pickNode(ctx, env, st.Name, f)
	if err != nil {
		return err
	}
	down, timeout := f.For.Duration, f.Timeout.Duration
	if down <= 0 {
		down = DefaultLossFor
	}
	if timeout <= 0 {
		timeout = DefaultLossTimeout
	}
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()})
	if err != nil {
		return err
	}
	l := verify.Loss{Node: node, AtS: since(env.Start)}
	before := map[string]podMark{}
	for _, p := range pods.Items {
		l.Pods = append(l.Pods, p.Namespace+"/"+p.Name)
		// A finished pod (a completed Job's) has nothing to restart.
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			before[p.Namespace+"/"+p.Name] = markOf(&p)
		}
	}
	var mu sync.Mutex
	set := func(change func(*verify.Loss)) {
		mu.Lock()
		defer mu.Unlock()
		change(&l)
		rec.Set("loss", l)
	}
	set(func(*verify.Loss) {})

	// Started again on every exit path: here once `for` is over, or by the run's clean-up when the
	// step ends early (Ctrl-C, an error).
	var once sync.Once
	var startErr error
	var startedAt time.Time
	stopped := time.Now()
	release := func() {}
	start := func(ctx context.Context) {
		once.Do(func() {
			startErr = env.Machines.StartNode(ctx, node)
			startedAt = time.Now()
			release()
			if startErr == nil {
				_ = unmark(ctx, cs, node, StoppedBy)
			}
			set(func(l *verify.Loss) { t := since(stopped); l.StartedAfterS = &t })
		})
	}
	// On an early exit the node is started and given a bounded time to post a Ready heartbeat, so
	// that the cluster is handed back working, not mid-boot, to whatever runs on it next (a second
	// Ctrl-C ends the wait with the process). A step that ran to its end has waited already.
	var waited bool
	handBack := func(ctx context.Context) {
		start(ctx)
		if startErr != nil || waited {
			return
		}
		waited = true
		wctx, cancel := context.WithTimeout(ctx, handBackWait)
		defer cancel()
		env.Log("node-loss: started %s again; waiting up to %s for it to be Ready", node, handBackWait)
		for {
			if back, _, err := readySince(wctx, cs, node, startedAt); err == nil && back {
				env.Log("node-loss: %s Ready again", node)
				return
			}
			select {
			case <-wctx.Done():
				env.Log("node-loss: %s not Ready after %s; it is started and comes back by itself", node, handBackWait)
				return
			case <-time.After(time.Second):
			}
		}
	}
	env.Defer(handBack)
	// The Node object carries the loss's mark and lease while its container is down: another run's
	// Repair starts only a node no live run holds.
	if release, err = hold(ctx, cs, node, StoppedBy, env.RunID); err != nil {
		once.Do(func() {})
		waited = true
		return err
	}
	env.Log("node-loss: stopping %s for %s (%d pods on it)", node, down, len(l.Pods))
	if err := env.Machines.StopNode(ctx, node); err != nil {
		release()
		_ = unmark(context.WithoutCancel(ctx), cs, node, StoppedBy)
		once.Do(func() {}) // never stopped: nothing to start, nothing to wait for
		waited = true
		return err
	}
	stopped = time.Now()
	set(func(l *verify.Loss) { l.AtS = since(env.Start) })

	// Down: watch for the control plane to see it NotReady.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for end := stopped.Add(down); time.Now().Before(end); {
		if l.NotReadyAfterS == nil {
			if ready, _, err := nodeReady(ctx, cs, node); err == nil && !ready {
				set(func(l *verify.Loss) { t := since(stopped); l.NotReadyAfterS = &t })
				env.Log("node-loss: %s NotReady %.0fs after it stopped", node, since(stopped))
			}
		}
		select {
		case <-ctx.Done():
			handBack(context.WithoutCancel(ctx))
			return ctx.Err()
		case <-tick.C:
		}
	}
	start(context.WithoutCancel(ctx))
	if startErr != nil {
		set(func(l *verify.Loss) { l.Error = startErr.Error() })
		return fmt.Errorf("starting %s again: %w", node, startErr)
	}
	started := startedAt
	env.Log("node-loss: started %s again", node)

	// Up: Ready again means a Ready heartbeat posted after the start (readySince).
	for deadline := started.Add(timeout); ; {
		back, notReady, err := readySince(ctx, cs, node, started)
		if err == nil && notReady && l.NotReadyAfterS == nil {
			set(func(l *verify.Loss) { t := since(stopped); l.NotReadyAfterS = &t })
		}
		if err == nil && back {
			waited = true
			set(func(l *verify.Loss) { t := since(stopped); l.ReadyAfterS = &t })
			env.Log("node-loss: %s Ready %.0fs after it started", node, time.Since(started).Seconds())
			if l.NotReadyAfterS == nil {
				// Too short for the control plane to notice: the proof it happened is its pods,
				// killed with it and restarted by its kubelet once it was back.
				r := restartedPods(ctx, cs, before, restartedWait)
				set(func(l *verify.Loss) { l.Restarted = r })
			}
			return nil
		}
		if time.Now().After(deadline) {
			waited = true
			set(func(l *verify.Loss) { l.Error = fmt.Sprintf("not Ready %s after it was started", timeout) })
			return nil // fault-took-effect judges it from the record
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// restartedWait bounds how long a node back from a short loss is watched for its pods' restarts.
const restartedWait = 30 * time.Second

// podMark is what tells a pod's containers were killed: its uid (a pod replaced) and its
// containers' restarts.
type podMark struct {
	uid      string
	restarts int32
}

func markOf(p *corev1.Pod) podMark {
	m := podMark{uid: string(p.UID)}
	for _, c := range p.Status.ContainerStatuses {
		m.restarts += c.RestartCount
	}
	return m
}

// restartedPods are the pods of before (namespace/name) seen, within wait, with more restarts or
// replaced by a pod of the same name; a pod deleted meanwhile is not counted.
func restartedPods(ctx context.Context, cs kubernetes.Interface, before map[string]podMark, wait time.Duration) []string {
	deadline := time.Now().Add(wait)
	seen := map[string]bool{}
	for {
		for key, m := range before {
			if seen[key] {
				continue
			}
			ns, name, _ := strings.Cut(key, "/")
			p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			if now := markOf(p); now.uid != m.uid || now.restarts > m.restarts {
				seen[key] = true
			}
		}
		if len(seen) == len(before) || time.Now().After(deadline) {
			return slices.Sorted(maps.Keys(seen))
		}
		select {
		case <-ctx.Done():
			return slices.Sorted(maps.Keys(seen))
		case <-time.After(time.Second):
		}
	}
}

// nodeReady reads node's Ready condition and its last heartbeat.
func nodeReady(ctx context.Context, cs kubernetes.Interface, node string) (bool, time.Time, error) {
	n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return false, time.Time{}, err
	}
	ready, beat := readyCondition(n)
	return ready, beat, nil
}

// readySince says whether node is back — Ready with a heartbeat posted since started (a node the
// control plane never marked NotReady still shows its old Ready condition) — or NotReady.
func readySince(ctx context.Context, cs kubernetes.Interface, node string, started time.Time) (back, notReady bool, err error) {
	ready, beat, err := nodeReady(ctx, cs, node)
	if err != nil {
		return false, false, err
	}
	return ready && !beat.Before(started.Truncate(time.Second)), !ready, nil
}

func since(t time.Time) float64 { return math.Round(time.Since(t).Seconds()*10) / 10 }

func readyCondition(n *corev1.Node) (bool, time.Time) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue, c.LastHeartbeatTime.Time
		}
	}
	return false, time.Time{}
}
