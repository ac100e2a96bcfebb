package workloads

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

const podSecurityRefusal = `Error creating: pods "web-5c7d9-x2k4p" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "web" must set securityContext.allowPrivilegeEscalation=false), runAsNonRoot != true (pod or container "web" must set securityContext.runAsNonRoot=true)`

func failedCreate(name, kind, owner, msg string, at time.Time) *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: "shop"},
		InvolvedObject: corev1.ObjectReference{Kind: kind, Name: owner, Namespace: "shop"},
		Reason:         "FailedCreate", Message: msg, Type: corev1.EventTypeWarning,
		LastTimestamp: metav1.NewTime(at),
	}
}

// Refused finds a controller's pods refused at admission, its own (a Deployment's ReplicaSets by
// name), since the wait began; a quota exceeded is not hopeless, nor is an older refusal or one of
// another controller's.
func TestRefused(t *testing.T) {
	now := time.Now()
	cs := fake.NewClientset(
		failedCreate("e1", "ReplicaSet", "web-5c7d9", podSecurityRefusal, now),
		failedCreate("e2", "ReplicaSet", "api-77f4b", podSecurityRefusal, now),
		failedCreate("e3", "ReplicaSet", "cache-6b2f1", `Error creating: pods "cache-6b2f1-a" is forbidden: exceeded quota: compute, requested: cpu=1, used: cpu=2, limited: cpu=2`, now),
		failedCreate("e4", "StatefulSet", "old", podSecurityRefusal, now.Add(-time.Hour)),
		failedCreate("e5", "Job", "migrate", `Error creating: admission webhook "policy.example.com" denied the request: image not signed`, now),
	)
	ops := &Ops{cs: cs}
	ctx := context.Background()
	for _, c := range []struct {
		owner, want string
	}{
		{"web", "ReplicaSet web-5c7d9"},
		{"api", "ReplicaSet api-77f4b"},
		{"cache", ""},
		{"old", ""},
		{"migrate", "Job migrate"},
		{"we", ""},
	} {
		r, err := ops.Refused(ctx, "shop", c.owner, now.Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if r != nil {
			got = r.Kind + " " + r.Name
			if strings.HasPrefix(r.Message, "Error creating") || !strings.Contains(r.Error(), "cannot create its pods") {
				t.Errorf("%s: %q", c.owner, r.Error())
			}
		}
		if got != c.want {
			t.Errorf("Refused(%q) = %q, want %q", c.owner, got, c.want)
		}
	}
}

// UnlessRefused ends a wait as soon as a refusal appears, with it as a system failure; with none,
// the wait's own outcome stands.
func TestUnlessRefused(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset()
	ops := &Ops{cs: cs}
	ns := func() []string { return []string{"shop"} }
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, _ = cs.CoreV1().Events("shop").Create(context.Background(), failedCreate("e1", "StatefulSet", "orders-db", podSecurityRefusal, time.Now()), metav1.CreateOptions{})
	}()
	start := time.Now()
	err := ops.UnlessRefused(context.Background(), ns, func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(30 * time.Second):
			return errors.New("timed out")
		}
	})
	var r *Refusal
	if !errors.As(err, &r) || !IsSystemFailure(err) || r.Name != "orders-db" {
		t.Fatalf("err %v; want the refusal of orders-db, as a system failure", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s to see the refusal", took)
	}

	quiet := &Ops{cs: fake.NewClientset()}
	if err := quiet.UnlessRefused(context.Background(), ns, func(context.Context) error { return nil }); err != nil {
		t.Errorf("nothing refused, the wait passed: %v", err)
	}
	want := errors.New("db not ready")
	if err := quiet.UnlessRefused(context.Background(), ns, func(context.Context) error { return want }); err != want {
		t.Errorf("nothing refused, the wait failed: %v, want %v", err, want)
	}
}

// A rollout whose pods are refused at admission is given up in seconds, saying why, not at its
// timeout.
func TestWaitRolloutGivesUpOnRefusedPods(t *testing.T) {
	t.Parallel()
	three := int32(3)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Generation: 1},
		Spec: appsv1.DeploymentSpec{Replicas: &three, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	cs := fake.NewClientset(d)
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, _ = cs.CoreV1().Events("shop").Create(context.Background(), failedCreate("e1", "ReplicaSet", "web-5c7d9", podSecurityRefusal, time.Now()), metav1.CreateOptions{})
	}()
	start := time.Now()
	err := (&Ops{cs: cs}).WaitRollout(context.Background(), "shop", "deployment/web", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "ReplicaSet web-5c7d9 cannot create its pods") || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Fatalf("err %v; want the refusal named", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("gave up after %s", took)
	}
}
