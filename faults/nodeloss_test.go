package faults

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/verify"
)

// machines is a fake kind cluster: stopping a node makes the "control plane" mark it NotReady after
// notReadyAfter (never when 0); starting it makes its kubelet post a Ready heartbeat after
// readyAfter (never when 0).
type machines struct {
	t                         *testing.T
	cs                        *fake.Clientset
	notReadyAfter, readyAfter time.Duration
	// restartPods: a start restarts the containers of the node's pods (its kubelet back).
	restartPods   bool
	mu            sync.Mutex
	down          map[string]bool
	stops, starts int
}

func (m *machines) setReady(node string, s corev1.ConditionStatus) {
	n, err := m.cs.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		m.t.Error(err)
		return
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: s, LastHeartbeatTime: metav1.Now()}}
	if _, err := m.cs.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		m.t.Error(err)
	}
}

func (m *machines) StopNode(_ context.Context, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down[node], m.stops = true, m.stops+1
	if m.notReadyAfter > 0 {
		time.AfterFunc(m.notReadyAfter, func() { m.setReady(node, corev1.ConditionUnknown) })
	}
	return nil
}

func (m *machines) StartNode(_ context.Context, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down[node], m.starts = false, m.starts+1
	if m.restartPods {
		time.AfterFunc(m.readyAfter+100*time.Millisecond, func() {
			pods, _ := m.cs.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
			for _, p := range pods.Items {
				if p.Spec.NodeName == node {
					p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", RestartCount: 1}}
					_, _ = m.cs.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), &p, metav1.UpdateOptions{})
				}
			}
		})
	}
	if m.readyAfter > 0 {
		time.AfterFunc(m.readyAfter, func() { m.setReady(node, corev1.ConditionTrue) })
	}
	return nil
}

func (m *machines) StoppedNodes(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n, d := range m.down {
		if d {
			out = append(out, n)
		}
	}
	return out, nil
}

func lossCluster(t *testing.T, notReadyAfter, readyAfter time.Duration) (*steps.Env, *machines) {
	old := metav1.NewTime(time.Now().Add(-time.Minute))
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: old}}}}
	pod := readyPod("db-1")
	pod.Spec.NodeName = "w1"
	cs := fake.NewClientset(node, pod)
	m := &machines{t: t, cs: cs, notReadyAfter: notReadyAfter, readyAfter: readyAfter, down: map[string]bool{}}
	e := env(t, cs, 1)
	e.Machines = m
	return e, m
}

func lossStep(down time.Duration) scenarios.Step {
	return scenarios.Step{Name: "lose", Fault: &scenarios.Fault{Type: "node-loss", Node: "w1",
		For: scenarios.Duration{Duration: down}, Timeout: scenarios.Duration{Duration: 3 * time.Second}}}
}

func judgeLoss(rec *steps.Record) (verify.Loss, verify.Result) {
	l, _ := rec.Data()["loss"].(verify.Loss)
	return l, verify.FaultTookEffect([]verify.Fault{{Step: "lose", Kind: "fault/node-loss", Status: "ok", Loss: &l}})
}

// A lost node is stopped, seen NotReady, started after for, and Ready again: the evidence passes.
func TestNodeLossRecordsNotReadyAndReady(t *testing.T) {
	t.Parallel()
	e, m := lossCluster(t, 300*time.Millisecond, 300*time.Millisecond)
	var rec steps.Record
	if err := (NodeLoss{}).Run(context.Background(), e, lossStep(2*time.Second), &rec); err != nil {
		t.Fatal(err)
	}
	l, r := judgeLoss(&rec)
	if m.stops != 1 || m.starts != 1 || m.down["w1"] {
		t.Fatalf("stops %d starts %d down %v", m.stops, m.starts, m.down)
	}
	if l.NotReadyAfterS == nil || *l.NotReadyAfterS > 2 || l.StartedAfterS == nil || *l.StartedAfterS < 2 || l.ReadyAfterS == nil || *l.ReadyAfterS < *l.StartedAfterS {
		t.Errorf("loss: %+v", l)
	}
	if len(l.Pods) != 1 || l.Pods[0] != "ns/db-1" {
		t.Errorf("pods lost with the node: %v", l.Pods)
	}
	// The node's mark and lease went with the loss: nothing for another run's Repair to see.
	if n, err := e.Ops.Clientset().CoreV1().Nodes().Get(context.Background(), "w1", metav1.GetOptions{}); err != nil || n.Annotations[StoppedBy] != "" || n.Annotations[HeldUntil] != "" {
		t.Errorf("w1 still marked after the loss: %v %v", n.Annotations, err)
	}
	if r.Status != verify.Pass {
		t.Errorf("fault-took-effect: %s %s", r.Status, r.Message)
	}
}

// A node back before the control plane noticed it was gone proves nothing: fault-took-effect fails
// and says why; an old Ready condition is not taken for the node being back.
func TestNodeLossNeverSeenNotReadyFails(t *testing.T) {
	t.Parallel()
	e, _ := lossCluster(t, 0, 0)
	var rec steps.Record
	if err := (NodeLoss{}).Run(context.Background(), e, lossStep(time.Second), &rec); err != nil {
		t.Fatal(err)
	}
	l, r := judgeLoss(&rec)
	if l.ReadyAfterS != nil {
		t.Errorf("the old Ready condition was taken for the node being back: %+v", l)
	}
	if r.Status != verify.Fail || !strings.Contains(r.Message, "never seen NotReady") {
		t.Errorf("fault-took-effect: %s %s", r.Status, r.Message)
	}
}

// A loss too short for the control plane to see NotReady is proved by its pods: killed with the node
// and restarted once it is back (its twin above, with nothing restarted, fails).
func TestShortNodeLossProvedByRestartedPods(t *testing.T) {
	t.Parallel()
	e, m := lossCluster(t, 0, 200*time.Millisecond)
	m.restartPods = true
	var rec steps.Record
	if err := (NodeLoss{}).Run(context.Background(), e, lossStep(time.Second), &rec); err != nil {
		t.Fatal(err)
	}
	l, r := judgeLoss(&rec)
	if l.NotReadyAfterS != nil || len(l.Restarted) != 1 || l.Restarted[0] != "ns/db-1" {
		t.Fatalf("loss: %+v", l)
	}
	if r.Status != verify.Pass || !strings.Contains(r.Message, "too short to be seen NotReady; 1 of its 1 pods were killed with it and restarted") {
		t.Errorf("fault-took-effect: %s %s", r.Status, r.Message)
	}
}

// A node that never comes back fails the check by name.
func TestNodeLossNeverReadyAgainFails(t *testing.T) {
	t.Parallel()
	e, _ := lossCluster(t, 200*time.Millisecond, 0)
	var rec steps.Record
	if err := (NodeLoss{}).Run(context.Background(), e, lossStep(time.Second), &rec); err != nil {
		t.Fatal(err)
	}
	_, r := judgeLoss(&rec)
	if r.Status != verify.Fail || !strings.Contains(r.Message, "never Ready again") {
		t.Errorf("fault-took-effect: %s %s", r.Status, r.Message)
	}
}

// Ctrl-C while the node is down starts it at once and waits for its kubelet's Ready heartbeat, so
// that the run hands the cluster back working; the run's clean-up does not start it twice.
func TestNodeLossInterruptedStartsTheNode(t *testing.T) {
	t.Parallel()
	e, m := lossCluster(t, 200*time.Millisecond, 700*time.Millisecond)
	var logs []string
	e.Logf = func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	var rec steps.Record
	err := (NodeLoss{}).Run(ctx, e, lossStep(time.Minute), &rec)
	if err == nil {
		t.Fatal("an interrupted loss returned no error")
	}
	e.Cleanup(context.Background())
	if m.down["w1"] || m.starts != 1 {
		t.Errorf("after Ctrl-C: down %v, started %d times", m.down, m.starts)
	}
	if ready, beat, err := nodeReady(context.Background(), m.cs, "w1"); err != nil || !ready || time.Since(beat) > time.Second {
		t.Errorf("returned before the started node was Ready again: ready %v, heartbeat %s ago, %v", ready, time.Since(beat), err)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "w1 Ready again") {
		t.Errorf("log: %q", logs)
	}
}

// A node that does not come back after a Ctrl-C is waited for a bounded time only, and the log says so.
func TestNodeLossInterruptedWaitIsBounded(t *testing.T) {
	defer func(w time.Duration) { handBackWait = w }(handBackWait)
	handBackWait = 300 * time.Millisecond
	e, m := lossCluster(t, 200*time.Millisecond, 0)
	var logs []string
	e.Logf = func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	var rec steps.Record
	if err := (NodeLoss{}).Run(ctx, e, lossStep(time.Minute), &rec); err == nil {
		t.Fatal("an interrupted loss returned no error")
	}
	e.Cleanup(context.Background())
	if d := time.Since(start); d > 3*time.Second || m.starts != 1 {
		t.Errorf("returned after %s, started %d times", d, m.starts)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "w1 not Ready after 300ms") {
		t.Errorf("log: %q", logs)
	}
}

// Elsewhere than a local kind cluster, node-loss is refused before anything runs.
func TestNodeLossPreflight(t *testing.T) {
	if err := (NodeLoss{}).Preflight(lossStep(time.Second), nil); err == nil || !strings.Contains(err.Error(), "kind") {
		t.Errorf("preflight without machines: %v", err)
	}
	if err := (NodeLoss{}).Preflight(lossStep(time.Second), &machines{}); err != nil {
		t.Errorf("preflight with machines: %v", err)
	}
}

// Repair starts a node container a crashed run left stopped and waits until it is Ready.
func TestRepairStartsStoppedNodes(t *testing.T) {
	e, m := lossCluster(t, 0, 200*time.Millisecond)
	m.down["w1"] = true
	fixed, err := Repair(context.Background(), e.Ops.Clientset(), m)
	if err != nil || len(fixed) != 1 || !strings.Contains(fixed[0], "started w1") {
		t.Fatalf("repaired %v: %v", fixed, err)
	}
	if m.down["w1"] {
		t.Error("w1 still down")
	}
}

// running.avoid: the node chosen runs a pod the selector picks and none that avoid picks; when every
// such node also runs an avoided pod, nothing is chosen and the step says why.
func TestPickNodeAvoids(t *testing.T) {
	pod := func(name, node string) *corev1.Pod {
		p := readyPod(name)
		p.Labels = map[string]string{"app": "db", "name": name}
		p.Spec.NodeName = node
		return p
	}
	cs := fake.NewClientset(pod("db-0", "w1"), pod("db-1", "w1"), pod("db-2", "w2"))
	e := env(t, cs, 1)
	f := &scenarios.Fault{Type: "node-loss", Running: &scenarios.NodeRunning{Selector: "app=db", Avoid: "name=db-0"}}
	if n, err := pickNode(context.Background(), e, "s", f); err != nil || n != "w2" {
		t.Errorf("picked %q, %v; want w2", n, err)
	}
	f.Running.Avoid = "app=db"
	if n, err := pickNode(context.Background(), e, "s", f); err == nil || !strings.Contains(err.Error(), "no node runs") {
		t.Errorf("picked %q, %v; want none", n, err)
	}
}

// A node another rehearsal's node-loss holds down (its lease renewed) is not started by Repair.
func TestRepairLeavesALiveRunsLoss(t *testing.T) {
	e, m := lossCluster(t, 0, 200*time.Millisecond)
	m.down["w1"] = true
	cs := e.Ops.Clientset()
	release, err := hold(context.Background(), cs, "w1", StoppedBy, "run-live")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	notes, err := Repair(context.Background(), cs, m)
	if err != nil || len(notes) != 1 || !strings.Contains(notes[0], "left w1 alone: run run-live holds it") {
		t.Fatalf("notes %v: %v", notes, err)
	}
	if !m.down["w1"] {
		t.Error("w1 was started although a live run holds it down")
	}
}
