package faults

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/verify"
	"github.com/rehearse-dev/rehearse/workloads"
)

func readyPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name), Labels: map[string]string{"app": "web"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
}

// clusterWithController is a fake cluster whose "controller" replaces each deleted pod with a new,
// ready one (when heal is set).
func clusterWithController(t *testing.T, heal bool, pods ...string) *fake.Clientset {
	var objs []runtime.Object
	for _, p := range pods {
		objs = append(objs, readyPod(p))
	}
	cs := fake.NewClientset(objs...)
	var n atomic.Int32
	cs.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if heal {
			go func() {
				time.Sleep(50 * time.Millisecond)
				_, _ = cs.CoreV1().Pods("ns").Create(context.Background(), readyPod(fmt.Sprintf("new-%d", n.Add(1))), metav1.CreateOptions{})
			}()
		}
		return false, nil, nil
	})
	return cs
}

func env(t *testing.T, cs *fake.Clientset, seed uint64) *steps.Env {
	return &steps.Env{Ops: workloads.OpsFor(cs), Namespace: "ns", Seed: seed, Start: time.Now()}
}

func kills(t *testing.T, rec *steps.Record) []verify.Kill {
	k, _ := rec.Data()["kills"].([]verify.Kill)
	return k
}

// The same seed kills the same pods; the kill records its victims, that they went and were replaced.
func TestPodKillIsSeededAndRecordsEvidence(t *testing.T) {
	st := scenarios.Step{Name: "kill", Fault: &scenarios.Fault{Type: "pod-kill", Selector: "app=web", Count: 2}}
	var victims [][]string
	for range 2 {
		cs := clusterWithController(t, true, "a", "b", "c", "d", "e")
		var rec steps.Record
		if err := (PodKill{}).Run(context.Background(), env(t, cs, 42), st, &rec); err != nil {
			t.Fatal(err)
		}
		k := kills(t, &rec)
		if len(k) != 1 || len(k[0].Pods) != 2 || k[0].Matched != 5 || !k[0].Gone || !k[0].Replaced {
			t.Fatalf("kills: %+v", k)
		}
		victims = append(victims, k[0].Pods)
	}
	if !slices.Equal(victims[0], victims[1]) {
		t.Errorf("the same seed chose %v, then %v", victims[0], victims[1])
	}
}

// A selector that matches nothing kills nothing, and says so (fault-took-effect fails on it).
func TestPodKillThatMatchesNothing(t *testing.T) {
	cs := clusterWithController(t, true, "a")
	st := scenarios.Step{Name: "kill", Fault: &scenarios.Fault{Type: "pod-kill", Selector: "app=nothing"}}
	var rec steps.Record
	if err := (PodKill{}).Run(context.Background(), env(t, cs, 1), st, &rec); err != nil {
		t.Fatal(err)
	}
	k := kills(t, &rec)
	if len(k) != 1 || k[0].Matched != 0 || len(k[0].Pods) != 0 {
		t.Errorf("kills: %+v", k)
	}
	r := verify.FaultTookEffect([]verify.Fault{{Step: "kill", Kind: "fault/pod-kill", Status: "ok", Kills: k}})
	if r.Status != verify.Fail {
		t.Errorf("fault-took-effect: %s %s", r.Status, r.Message)
	}
}

// Repair finds the nodes a crashed run left cordoned (by rehearse's mark) and only those.
func TestRepairUncordonsWhatRehearseCordoned(t *testing.T) {
	ours := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1", Annotations: map[string]string{CordonedBy: "run-1"}}, Spec: corev1.NodeSpec{Unschedulable: true}}
	theirs := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w2"}, Spec: corev1.NodeSpec{Unschedulable: true}}
	cs := fake.NewClientset(ours, theirs)
	fixed, err := Repair(context.Background(), cs, nil)
	if err != nil || len(fixed) != 1 {
		t.Fatalf("repaired %v: %v", fixed, err)
	}
	n1, _ := cs.CoreV1().Nodes().Get(context.Background(), "w1", metav1.GetOptions{})
	n2, _ := cs.CoreV1().Nodes().Get(context.Background(), "w2", metav1.GetOptions{})
	if n1.Spec.Unschedulable || n1.Annotations[CordonedBy] != "" {
		t.Errorf("w1 still cordoned or marked: %+v", n1)
	}
	if !n2.Spec.Unschedulable {
		t.Errorf("w2 was cordoned by someone else and must be left so")
	}
}

// every/for: rounds are due at 0, every, 2×every, ... while within for.
func TestPodKillRounds(t *testing.T) {
	t.Parallel()
	cs := clusterWithController(t, true, "a", "b", "c")
	st := scenarios.Step{Name: "kill", Fault: &scenarios.Fault{Type: "pod-kill", Selector: "app=web",
		Every: scenarios.Duration{Duration: 300 * time.Millisecond}, For: scenarios.Duration{Duration: 800 * time.Millisecond}}}
	var rec steps.Record
	if err := (PodKill{}).Run(context.Background(), env(t, cs, 3), st, &rec); err != nil {
		t.Fatal(err)
	}
	if k := kills(t, &rec); len(k) != 3 {
		t.Errorf("%d rounds, want 3 (at 0, 0.3 and 0.6 s): %+v", len(k), k)
	}
}

// Another rehearsal's drain in progress on the same cluster (its lease renewed) is left alone; a
// mark whose lease ran out is a crashed run's, and is taken back.
func TestRepairLeavesALiveRunsCordon(t *testing.T) {
	at := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	live := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1", Annotations: map[string]string{CordonedBy: "run-live", HeldUntil: at(20 * time.Second)}}, Spec: corev1.NodeSpec{Unschedulable: true}}
	dead := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w2", Annotations: map[string]string{CordonedBy: "run-dead", HeldUntil: at(-time.Second)}}, Spec: corev1.NodeSpec{Unschedulable: true}}
	cs := fake.NewClientset(live, dead)
	notes, err := Repair(context.Background(), cs, nil)
	if err != nil || len(notes) != 2 {
		t.Fatalf("notes %v: %v", notes, err)
	}
	if !strings.Contains(strings.Join(notes, "\n"), "left w1 cordoned: run run-live is draining it") {
		t.Errorf("notes do not say w1 was left alone: %v", notes)
	}
	n1, _ := cs.CoreV1().Nodes().Get(context.Background(), "w1", metav1.GetOptions{})
	n2, _ := cs.CoreV1().Nodes().Get(context.Background(), "w2", metav1.GetOptions{})
	if !n1.Spec.Unschedulable || n1.Annotations[CordonedBy] != "run-live" {
		t.Errorf("w1 is a live run's drain and was touched: %+v", n1)
	}
	if n2.Spec.Unschedulable || n2.Annotations[CordonedBy] != "" || n2.Annotations[HeldUntil] != "" {
		t.Errorf("w2's lease ran out and it is still cordoned or marked: %+v", n2.Annotations)
	}
}

// A hold renews its lease while it lasts; released, it stops renewing, and Repair may take it back
// once the lease runs out.
func TestHoldRenewsItsLease(t *testing.T) {
	defer func(ttl, renew time.Duration) { holdTTL, holdRenew = ttl, renew }(holdTTL, holdRenew)
	holdTTL, holdRenew = 2*time.Second, 50*time.Millisecond
	cs := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"}})
	ctx := context.Background()
	release, err := hold(ctx, cs, "w1", CordonedBy, "run-1")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := cs.CoreV1().Nodes().Get(ctx, "w1", metav1.GetOptions{})
	first := n.Annotations[HeldUntil]
	time.Sleep(1100 * time.Millisecond) // RFC 3339 has whole seconds
	n, _ = cs.CoreV1().Nodes().Get(ctx, "w1", metav1.GetOptions{})
	if run, _ := heldBy(n, CordonedBy, time.Now()); run != "run-1" || n.Annotations[HeldUntil] == first {
		t.Errorf("lease not renewed: held by %q, until %s (first %s)", run, n.Annotations[HeldUntil], first)
	}
	release()
	n, _ = cs.CoreV1().Nodes().Get(ctx, "w1", metav1.GetOptions{})
	if run, _ := heldBy(n, CordonedBy, time.Now().Add(holdTTL+time.Second)); run != "" {
		t.Errorf("released hold still live after its TTL: %q", run)
	}
}
