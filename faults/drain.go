package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubectl/pkg/drain"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/verify"
	"github.com/rehearse-dev/rehearse/workloads"
)

// CordonedBy marks a node rehearse cordoned, with the run that did it: a run that crashed before it
// could uncordon leaves the mark, its lease (HeldUntil) runs out, and the next run (Repair)
// uncordons the node.
const CordonedBy = "rehearse.dev/cordoned-by"

// DefaultDrainTimeout bounds how long a drain retries evictions a PodDisruptionBudget refuses.
const DefaultDrainTimeout = 2 * time.Minute

// NodeDrain drains a node as kubectl drain does (k8s.io/kubectl's pkg/drain): cordon, then evict
// every pod through the Eviction API, honouring PodDisruptionBudgets with retries until a deadline,
// DaemonSet pods left, emptyDir data allowed to go. The node is chosen by name, by label, at random
// among the workers (seeded), or by what it runs. It is uncordoned when the step ends (at the end of
// the run with keep: true, and on every exit path). It records the pods evicted, the time to drain,
// the evictions a budget refused (429) and whether the node was left with no evictable pod: the
// evidence fault-took-effect judges.
type NodeDrain struct{}

func (NodeDrain) Name() string { return "fault/node-drain" }
func (NodeDrain) Takes(st scenarios.Step) bool {
	return st.Fault != nil && st.Fault.Type == "node-drain"
}

func (NodeDrain) Check(st scenarios.Step, sc *scenarios.Loaded) []steps.Problem {
	return append(nodeChoice(st.Fault, sc), notFor(st.Fault, "node-drain")...)
}

// nodeChoice checks how a node fault names its node: exactly one of node, label or running.
func nodeChoice(f *scenarios.Fault, sc *scenarios.Loaded) []steps.Problem {
	var ps []steps.Problem
	chosen := 0
	for _, set := range []bool{f.Node != "", f.Label != "", f.Running != nil} {
		if set {
			chosen++
		}
	}
	if chosen != 1 {
		ps = append(ps, steps.Problemf("fault", "%s needs exactly one of node, label or running (has %d)", f.Type, chosen))
	}
	if f.Node == "worker-with-primary" && sc.Workload.Sample == "" {
		ps = append(ps, steps.Problemf("fault.node", "worker-with-primary is the sample's; on your own workload use running: {selector: ...}"))
	}
	if f.Label != "" {
		if _, err := labels.Parse(f.Label); err != nil {
			ps = append(ps, steps.Problemf("fault.label", "%q: %v", f.Label, err))
		}
	}
	if f.Running != nil {
		if _, err := labels.Parse(f.Running.Selector); err != nil || f.Running.Selector == "" {
			ps = append(ps, steps.Problemf("fault.running.selector", "%q: want a label selector of the pod", f.Running.Selector))
		}
		if _, err := labels.Parse(f.Running.Avoid); err != nil {
			ps = append(ps, steps.Problemf("fault.running.avoid", "%q: %v", f.Running.Avoid, err))
		}
	}
	return ps
}

func (NodeDrain) Run(ctx context.Context, env *steps.Env, st scenarios.Step, rec *steps.Record) error {
	f := st.Fault
	cs := env.Ops.Clientset()
	node, err := pickNode(ctx, env, st.Name, f)
	if err != nil {
		return err
	}
	d := verify.Drain{Node: node}
	rec.Set("drain", d)
	timeout := f.Timeout.Duration
	if timeout <= 0 {
		timeout = DefaultDrainTimeout
	}
	var mu sync.Mutex
	var errOut bytes.Buffer
	h := &drain.Helper{
		Ctx: ctx, Client: cs, Force: true, GracePeriodSeconds: -1, IgnoreAllDaemonSets: true, DeleteEmptyDirData: true,
		Timeout: timeout, EvictErrorRetryDelay: time.Second, Out: &bytes.Buffer{}, ErrOut: &lockedWriter{mu: &mu, w: &errOut},
		// The rehearsal's load agents stand for clients outside the cluster: a drain does not move them.
		AdditionalFilters: []drain.PodFilter{func(p corev1.Pod) drain.PodDeleteStatus {
			if _, ok := p.Labels[workloads.AgentLabel]; ok {
				return drain.MakePodDeleteStatusSkip()
			}
			return drain.MakePodDeleteStatusOkay()
		}},
		OnPodDeletionOrEvictionFinished: func(p *corev1.Pod, _ bool, err error) {
			if err == nil {
				mu.Lock()
				d.Evicted = append(d.Evicted, p.Namespace+"/"+p.Name)
				mu.Unlock()
			}
		},
	}
	// Mark (and keep the mark's lease renewed), then cordon; unmark and uncordon when the step ends
	// (or the run does, with keep).
	release, err := hold(ctx, cs, node, CordonedBy, env.RunID)
	if err != nil {
		return err
	}
	undo := func(ctx context.Context) {
		release()
		if err := Uncordon(ctx, cs, node); err == nil {
			mu.Lock()
			d.Uncordoned = true
			mu.Unlock()
		}
	}
	env.Defer(undo)
	n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	env.Log("node-drain: draining %s", node)
	start := time.Now()
	if err := drain.RunCordonOrUncordon(h, n, true); err != nil {
		return fmt.Errorf("cordon %s: %w", node, err)
	}
	derr := drain.RunNodeDrain(h, node)
	mu.Lock()
	d.DrainS = math.Round(time.Since(start).Seconds()*10) / 10
	d.Refused429 = strings.Count(errOut.String(), "will retry after")
	if derr != nil {
		d.Error = derr.Error()
	}
	mu.Unlock()
	left, lerr := evictable(context.WithoutCancel(ctx), h, node)
	mu.Lock()
	d.Left, d.Emptied = left, lerr == nil && len(left) == 0
	rec.Set("drain", d)
	mu.Unlock()
	if !f.Keep {
		undo(context.WithoutCancel(ctx))
		mu.Lock()
		rec.Set("drain", d)
		mu.Unlock()
	}
	if derr != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	// A drain a budget blocked is the system refusing the fault: fault-took-effect judges it from
	// the record; the step itself ends normally so that the run goes on and uncordons.
	return nil
}

// evictable are the pods on node a drain would evict (none after a complete drain).
func evictable(ctx context.Context, h *drain.Helper, node string) ([]string, error) {
	hc := *h
	hc.Ctx = ctx
	list, errs := hc.GetPodsForDeletion(node)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var out []string
	for _, p := range list.Pods() {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Namespace+"/"+p.Name)
		}
	}
	return out, nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// pickNode resolves the fault's node: a name, random-worker, worker-with-primary, a label, or the
// node running a pod.
func pickNode(ctx context.Context, env *steps.Env, step string, f *scenarios.Fault) (string, error) {
	cs := env.Ops.Clientset()
	running := ""
	switch {
	case f.Running != nil:
		running = f.Running.Selector
	case f.Node == "worker-with-primary":
		// The primary the topology names now (a switchover or a failover moves it).
		primary := "orders-db-0"
		if env.Sample != nil {
			p, err := env.Sample.Primary(ctx)
			if err != nil {
				return "", err
			}
			primary = p
		}
		running = "statefulset.kubernetes.io/pod-name=" + primary
	}
	if running != "" {
		avoid := ""
		if f.Running != nil {
			avoid = f.Running.Avoid
		}
		// Nodes that run a pod avoid picks are not chosen.
		avoided := map[string]bool{}
		if avoid != "" {
			pods, err := selected(ctx, env, avoid)
			if err != nil {
				return "", err
			}
			for _, p := range pods {
				avoided[p.Spec.NodeName] = true
			}
		}
		candidates, err := selected(ctx, env, running)
		if err != nil {
			return "", err
		}
		slices.SortFunc(candidates, byName)
		for _, p := range candidates {
			if p.Spec.NodeName != "" && p.DeletionTimestamp == nil && !avoided[p.Spec.NodeName] {
				return p.Spec.NodeName, nil
			}
		}
		if avoid != "" {
			return "", workloads.Failed(fmt.Errorf("no node runs a pod matching %q and none matching %q: no node for %s", running, avoid, f.Type))
		}
		return "", workloads.Failed(fmt.Errorf("no running pod matches %q: no node for %s", running, f.Type))
	}
	if f.Node != "" && f.Node != "random-worker" {
		return f.Node, nil
	}
	sel := f.Label
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return "", err
	}
	var names []string
	for _, n := range nodes.Items {
		if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; f.Node == "random-worker" && cp {
			continue
		}
		names = append(names, n.Name)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "", fmt.Errorf("no node matches (label %q, %s)", sel, f.Node)
	}
	if f.Node == "random-worker" {
		return names[rng(env, step).IntN(len(names))], nil
	}
	return names[0], nil
}

// Uncordon makes node schedulable again and removes rehearse's mark.
func Uncordon(ctx context.Context, cs kubernetes.Interface, node string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null,%q:null}},"spec":{"unschedulable":null}}`, CordonedBy, HeldUntil)
	_, err := cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "rehearse"})
	return err
}

// Stopped is what Repair needs of a local kind cluster: its node containers a crashed run left
// stopped, and a way to start them.
type Stopped interface {
	steps.Machines
	StoppedNodes(ctx context.Context) ([]string, error)
}

// Repair puts right what a crashed rehearsal left behind, and says what: node containers it stopped
// (node-loss) are started and waited for until Ready, nodes it cordoned are uncordoned. A node whose
// mark a live run still renews is another rehearsal's fault in progress on the same cluster: it is
// left alone, and said so. m is nil when the cluster is not a local kind cluster.
func Repair(ctx context.Context, cs kubernetes.Interface, m Stopped) ([]string, error) {
	var fixed []string
	live := func(node, key string) string {
		n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		if run, until := heldBy(n, key, time.Now()); run != "" {
			return fmt.Sprintf("left %s alone: run %s holds it (its lease runs to %s)", node, run, until.Local().Format(time.TimeOnly))
		}
		return ""
	}
	if m != nil {
		down, err := m.StoppedNodes(ctx)
		if err != nil {
			return nil, err
		}
		for _, n := range down {
			if note := live(n, StoppedBy); note != "" {
				fixed = append(fixed, note)
				continue
			}
			if err := m.StartNode(ctx, n); err != nil {
				return fixed, err
			}
			started := time.Now()
			for {
				if back, _, err := readySince(ctx, cs, n, started); err == nil && back {
					break
				}
				if time.Since(started) > DefaultLossTimeout {
					return fixed, fmt.Errorf("node %s was started again but is not Ready after %s", n, DefaultLossTimeout)
				}
				select {
				case <-ctx.Done():
					return fixed, ctx.Err()
				case <-time.After(time.Second):
				}
			}
			_ = unmark(ctx, cs, n, StoppedBy)
			fixed = append(fixed, fmt.Sprintf("started %s (stopped by a node-loss) and it is Ready", n))
		}
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fixed, err
	}
	now := time.Now()
	for _, n := range nodes.Items {
		if by, ok := n.Annotations[CordonedBy]; ok {
			if run, until := heldBy(&n, CordonedBy, now); run != "" {
				fixed = append(fixed, fmt.Sprintf("left %s cordoned: run %s is draining it (its lease runs to %s)", n.Name, run, until.Local().Format(time.TimeOnly)))
				continue
			}
			if err := Uncordon(ctx, cs, n.Name); err != nil {
				return fixed, err
			}
			fixed = append(fixed, fmt.Sprintf("uncordoned %s (cordoned by %s)", n.Name, by))
		}
	}
	return fixed, nil
}
