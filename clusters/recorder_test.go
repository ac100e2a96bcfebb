package clusters

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/google/go-cmp/cmp"

	"github.com/rehearse-dev/rehearse/verify"
)

// clock is a test's time, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func slice(svc string, ready map[string]bool) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: svc + "-abc", Namespace: "ns",
		Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, AddressType: discoveryv1.AddressTypeIPv4}
	for name, r := range ready {
		r := r
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"},
			Conditions: discoveryv1.EndpointConditions{Ready: &r}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: name}})
	}
	return es
}

func webPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "web", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}},
			{Name: "sidecar"},
		}}}
}

// The recorder's record of a pod that left the Service: deletion, endpoint unready, exit, removal,
// each at the time it was seen; and only pods that were ready endpoints when their deletion began.
func TestRecorderSeesPodsLeaveTheService(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	cs := fake.NewClientset(webPod("abrupt"), webPod("graceful"), webPod("unready-first"), webPod("other-service"),
		slice("web", map[string]bool{"abrupt": true, "graceful": true, "unready-first": true}),
		slice("db", map[string]bool{"other-service": true}))
	r, err := startRecorder(ctx, cs, "ns", "web", clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	pods := cs.CoreV1().Pods("ns")
	slices := cs.DiscoveryV1().EndpointSlices("ns")
	settle := func() { time.Sleep(100 * time.Millisecond) } // the informers deliver asynchronously
	update := func(p *corev1.Pod) {
		if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		settle()
	}
	deleting := func(name string, at time.Time) *corev1.Pod {
		// As the API server sets them: the deadline (the request's second plus the grace) and the grace.
		p := webPod(name)
		grace := int64(30)
		ts := metav1.NewTime(at.Truncate(time.Second).Add(time.Duration(grace) * time.Second))
		p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &ts, &grace
		p.Spec.TerminationGracePeriodSeconds = &grace
		return p
	}
	exited := func(p *corev1.Pod, container string, at time.Time, code int32) *corev1.Pod {
		p = p.DeepCopy()
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: container,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: "Error",
				FinishedAt: metav1.NewTime(at.Truncate(time.Second))}}})
		return p
	}
	settle()

	// abrupt: deleted at +10.3 s (seen then), its endpoint unready at +10.4 s, exited at +10.5 s.
	clk.set(t0.Add(10300 * time.Millisecond))
	abrupt := deleting("abrupt", clk.now())
	update(abrupt)
	clk.set(t0.Add(10400 * time.Millisecond))
	if _, err := slices.Update(ctx, slice("web", map[string]bool{"abrupt": false, "graceful": true, "unready-first": true}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	settle()
	clk.set(t0.Add(10900 * time.Millisecond))
	update(exited(abrupt, "web", t0.Add(10500*time.Millisecond), 2))

	// unready-first: the endpoints controller is seen before the pod's own deletion.
	clk.set(t0.Add(20200 * time.Millisecond))
	if _, err := slices.Update(ctx, slice("web", map[string]bool{"graceful": true, "unready-first": false}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	settle()
	clk.set(t0.Add(20300 * time.Millisecond))
	update(deleting("unready-first", t0.Add(20100*time.Millisecond)))

	// graceful: deleted at +30 s, its sidecar exits at once (not the server), its server 13 s later.
	clk.set(t0.Add(30 * time.Second))
	graceful := deleting("graceful", clk.now())
	update(graceful)
	clk.set(t0.Add(30500 * time.Millisecond))
	graceful = exited(graceful, "sidecar", t0.Add(30400*time.Millisecond), 0)
	update(graceful)
	clk.set(t0.Add(43500 * time.Millisecond))
	update(exited(graceful, "web", t0.Add(43200*time.Millisecond), 0))
	clk.set(t0.Add(44 * time.Second))
	if err := pods.Delete(ctx, "graceful", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pod of another Service is deleted too: not this recorder's business.
	update(deleting("other-service", clk.now()))
	settle()

	got, err := r.Terminations()
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]verify.Termination{}
	for _, tr := range got {
		by[tr.Pod] = tr
	}
	if len(by) != 3 {
		t.Fatalf("terminations of %v, want abrupt, graceful, unready-first", by)
	}
	a := by["abrupt"]
	if !a.Deleted.Equal(t0.Add(10*time.Second)) || !a.DeletedSeen.Equal(t0.Add(10300*time.Millisecond)) || !a.Unready.Equal(t0.Add(10400*time.Millisecond)) ||
		!a.ExitedSeen.Equal(t0.Add(10900*time.Millisecond)) || a.Container != "web" || a.ExitCode != 2 {
		t.Errorf("abrupt: %+v", a)
	}
	if d, _, _ := a.ServedFor(); d != 600*time.Millisecond {
		t.Errorf("abrupt served for %s after its deletion began, want 0.6s (the smaller bound)", d)
	}
	g := by["graceful"]
	if g.Container != "web" || !g.Gone.Equal(t0.Add(44*time.Second)) {
		t.Errorf("graceful: %+v (the server's exit, not the sidecar's)", g)
	}
	if d, _, _ := g.ServedFor(); d < 13*time.Second {
		t.Errorf("graceful served for %s, want 13s or more", d)
	}
	if u := by["unready-first"]; !u.Unready.Equal(t0.Add(20200 * time.Millisecond)) {
		t.Errorf("unready-first: %+v", u)
	}
	res := verify.GracefulTermination(got, t0, 0, 0, false, nil)
	if res.Status != verify.Fail {
		t.Errorf("graceful-termination %s: %s", res.Status, res.Message)
	}

	// unready-first is still stopping; Settle waits for it to go, and no longer.
	if n := r.Stopping(); n != 1 {
		t.Errorf("%d pods still stopping, want 1 (unready-first)", n)
	}
	if n := r.Settle(ctx, 100*time.Millisecond); n != 1 {
		t.Errorf("Settle with it still there: %d, want 1", n)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = pods.Delete(ctx, "unready-first", metav1.DeleteOptions{})
	}()
	if n := r.Settle(ctx, 10*time.Second); n != 0 {
		t.Errorf("Settle after its removal: %d still stopping", n)
	}
}

// A pod whose endpoint was taken out of the Service before its deletion (its readiness failed long
// before) received no traffic when it stopped: it is not judged.
func TestRecorderIgnoresPodsThatWereNotServing(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	cs := fake.NewClientset(webPod("web-1"), slice("web", map[string]bool{"web-1": true}))
	r, err := startRecorder(ctx, cs, "ns", "web", clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	time.Sleep(100 * time.Millisecond)
	clk.set(t0.Add(5 * time.Second))
	if _, err := cs.DiscoveryV1().EndpointSlices("ns").Update(ctx, slice("web", map[string]bool{"web-1": false}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	clk.set(t0.Add(20 * time.Second))
	p := webPod("web-1")
	ts := metav1.NewTime(clk.now())
	p.DeletionTimestamp = &ts
	if _, err := cs.CoreV1().Pods("ns").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if got, _ := r.Terminations(); len(got) != 0 {
		t.Errorf("terminations %+v, want none", got)
	}
}

// The recorder's timeline: endpoints with the Service's count of ready ones, a pod's life (created
// without a readiness probe, scheduled, deleting, its server's exit, gone), restarts with their last
// exit, nodes' readiness and events of the run (not older ones); and the explanation it gives.
func TestRecorderTimeline(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	node := func(name string, ready corev1.ConditionStatus) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, Reason: "KubeletReady"}}}}
	}
	old := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "old", Namespace: "ns"}, Reason: "Pulled",
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "abrupt"}, LastTimestamp: metav1.NewTime(t0.Add(-time.Hour))}
	abrupt := webPod("abrupt")
	abrupt.Spec.NodeName = "worker"
	cs := fake.NewClientset(abrupt, webPod("steady"), node("worker", corev1.ConditionTrue), old,
		slice("web", map[string]bool{"abrupt": true, "steady": true}))
	r, err := startRecorder(ctx, cs, "ns", "web", clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	settle := func() { time.Sleep(100 * time.Millisecond) }
	settle()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		settle()
	}
	clk.set(t0.Add(10 * time.Second))
	p := abrupt.DeepCopy()
	grace := int64(30)
	ts := metav1.NewTime(t0.Add(40 * time.Second))
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &ts, &grace
	must(cs.CoreV1().Pods("ns").Update(ctx, p, metav1.UpdateOptions{}))
	clk.set(t0.Add(10100 * time.Millisecond))
	p = p.DeepCopy()
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}}}}
	must(cs.CoreV1().Pods("ns").Update(ctx, p, metav1.UpdateOptions{}))
	clk.set(t0.Add(10400 * time.Millisecond))
	must(cs.DiscoveryV1().EndpointSlices("ns").Update(ctx, slice("web", map[string]bool{"steady": true}), metav1.UpdateOptions{}))
	clk.set(t0.Add(10600 * time.Millisecond))
	must(nil, cs.CoreV1().Pods("ns").Delete(ctx, "abrupt", metav1.DeleteOptions{}))
	clk.set(t0.Add(21500 * time.Millisecond))
	s := webPod("steady")
	// Killed at +20s, its restart seen at +21.5s: it is on the timeline when it ended.
	s.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", RestartCount: 1,
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled",
			FinishedAt: metav1.NewTime(t0.Add(20 * time.Second))}}}}
	must(cs.CoreV1().Pods("ns").Update(ctx, s, metav1.UpdateOptions{}))
	clk.set(t0.Add(30 * time.Second))
	must(cs.CoreV1().Nodes().Update(ctx, node("worker", corev1.ConditionUnknown), metav1.UpdateOptions{}))
	must(cs.CoreV1().Events("ns").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: "ns"}, Reason: "Evicted",
		Type: corev1.EventTypeWarning, Message: "The node was low on resource: memory.",
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "steady"}, LastTimestamp: metav1.NewTime(t0.Add(30 * time.Second))}, metav1.CreateOptions{}))

	// A Job's pod that completed long before is deleted (a drain): its deletion is told, not a stop.
	done := webPod("job-done")
	done.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", FinishedAt: metav1.NewTime(t0.Add(-time.Hour))}}}}
	must(cs.CoreV1().Pods("ns").Create(ctx, done, metav1.CreateOptions{}))
	clk.set(t0.Add(40 * time.Second))
	done = done.DeepCopy()
	dts := metav1.NewTime(t0.Add(70 * time.Second))
	done.DeletionTimestamp, done.DeletionGracePeriodSeconds = &dts, &grace
	must(cs.CoreV1().Pods("ns").Update(ctx, done, metav1.UpdateOptions{}))
	must(nil, cs.CoreV1().Pods("ns").Delete(ctx, "job-done", metav1.DeleteOptions{}))

	changes, notes := r.Changes()
	if len(notes) != 0 {
		t.Errorf("notes %q", notes)
	}
	var got []string
	for _, c := range verify.OnRunClock(changes, t0) {
		line := fmt.Sprintf("%.1f %s %s %s", c.T, c.Kind, c.Object, c.What)
		if c.ReadyEndpoints != nil {
			line += fmt.Sprintf(" ready=%d", *c.ReadyEndpoints)
		}
		if c.ExitCode != nil {
			line += fmt.Sprintf(" %s exit %d %s", c.Container, *c.ExitCode, c.Reason)
		}
		got = append(got, line)
	}
	want := []string{
		// as listed at the start (the order of the informers' first lists)
		"0.0 pod pod/abrupt created", "0.0 pod pod/abrupt scheduled", "0.0 pod pod/steady created",
		"0.0 endpoint pod/abrupt ready ready=2", "0.0 endpoint pod/steady ready ready=2", "0.0 node node/worker ready",
		"10.0 pod pod/abrupt deleting", "10.1 pod pod/abrupt exited web exit 2 Error",
		"10.4 endpoint pod/abrupt removed ready=1", "10.6 pod pod/abrupt gone",
		"20.0 pod pod/steady restarted web exit 137 OOMKilled",
		"30.0 node node/worker not-ready", "30.0 event pod/steady Evicted",
		"30.0 pod pod/job-done created", "40.0 pod pod/job-done deleting", "40.0 pod pod/job-done gone",
	}
	sort.Strings(want[:6])
	sort.Strings(got[:min(6, len(got))])
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("timeline (-want +got):\n%s", d)
	}
	es := verify.Explain([]verify.Burst{{From: 10, To: 11, Failed: 9}}, changes, nil, t0)
	if len(es) != 1 || !strings.Contains(strings.Join(es[0].Lines, "\n"), "pod/abrupt received SIGTERM at +10.0s") {
		t.Errorf("explanation %+v", es)
	}
}
