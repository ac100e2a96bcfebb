package runner

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A long phase says what it does, that it is still at it with what it waits for, and how long it took.
func TestPhaseSaysWhatItWaitsFor(t *testing.T) {
	old := phaseEvery
	phaseEvery = 20 * time.Millisecond
	defer func() { phaseEvery = old }()
	var out syncBuffer
	done := phase(&out, "Creating kind cluster x", func() string { return "Joining worker nodes" })
	time.Sleep(70 * time.Millisecond)
	done(nil)
	got := out.String()
	for _, want := range []string{"rehearse: Creating kind cluster x\n", "still creating kind cluster x (0s): Joining worker nodes", "done in"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress lacks %q:\n%s", want, got)
		}
	}
	n := strings.Count(got, "\n")
	time.Sleep(50 * time.Millisecond)
	if strings.Count(out.String(), "\n") != n {
		t.Errorf("the phase kept printing after it was done")
	}
}

func TestPodsStatus(t *testing.T) {
	pod := func(name, app string, ready bool, reason string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": app}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
		if reason != "" {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}}
		}
		return p
	}
	cs := fake.NewClientset(pod("db-0", "db", true, ""), pod("db-1", "db", false, "ContainerCreating"), pod("web-a", "web", true, ""))
	want := "db 1/2 ready (db-1: ContainerCreating), web 1/1 ready"
	if got := podsStatus(context.Background(), cs, "ns"); got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	if got := podsStatus(context.Background(), cs, "empty"); got != "no pods yet" {
		t.Errorf("empty namespace: %q", got)
	}
}
