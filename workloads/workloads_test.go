package workloads

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/e2e-framework/klient/decoder"
)

func TestSampleManifestRenders(t *testing.T) {
	opts := SampleOptions{Namespace: "ns1", NodePort: 30001}
	opts.defaults()
	out, err := render("orders-postgres.yaml", renderData{opts, "su", "repl", "app"})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decoder.DecodeAll(context.Background(), strings.NewReader(out))
	if err != nil {
		t.Fatalf("rendered manifest does not decode: %v\n%s", err, out)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetObjectKind().GroupVersionKind().Kind+"/"+o.GetName())
		if o.GetNamespace() != "ns1" {
			t.Errorf("%s/%s in namespace %q", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), o.GetNamespace())
		}
		switch obj := o.(type) {
		case *appsv1.StatefulSet:
			c := obj.Spec.Template.Spec.Containers[0]
			if *obj.Spec.Replicas != 3 || c.Image != PostgresImage || c.ImagePullPolicy != corev1.PullNever || c.ReadinessProbe == nil {
				t.Errorf("statefulset: replicas %d image %s policy %s", *obj.Spec.Replicas, c.Image, c.ImagePullPolicy)
			}
		case *appsv1.Deployment:
			c := obj.Spec.Template.Spec.Containers[0]
			if obj.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 || c.Image != OrdersImage ||
				c.Env[0].Value != "v1" || c.Lifecycle.PreStop == nil || obj.Spec.Template.Spec.TerminationGracePeriodSeconds == nil {
				t.Errorf("deployment not set up for zero-downtime rollouts: %+v", obj.Spec)
			}
		case *corev1.Service:
			if obj.Name == "orders" && (obj.Spec.Type != corev1.ServiceTypeNodePort || obj.Spec.Ports[0].NodePort != 30001) {
				t.Errorf("app service: %s nodePort %d", obj.Spec.Type, obj.Spec.Ports[0].NodePort)
			}
		case *corev1.ConfigMap:
			// The topology's primary and the write Service's selector start on the same member.
			if obj.Data["primary"] != "orders-db-0" {
				t.Errorf("topology: primary %q", obj.Data["primary"])
			}
		case *corev1.Secret:
			if !strings.Contains(obj.StringData["DATABASE_URL"], "orders:app@orders-db-primary:5432/orders") {
				t.Errorf("DATABASE_URL = %q", obj.StringData["DATABASE_URL"])
			}
		}
	}
	want := []string{"Secret/orders-db", "ConfigMap/orders-db-topology", "Service/orders-db", "Service/orders-db-primary", "Service/orders-db-read",
		"PodDisruptionBudget/orders-db", "StatefulSet/orders-db", "PodDisruptionBudget/orders", "Deployment/orders", "Service/orders"}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
}

func TestMigrationJobRenders(t *testing.T) {
	out, err := render("orders-migrate-job.yaml", map[string]any{
		"Name": "m1", "Namespace": "ns1", "OrdersImage": OrdersImage, "PullPolicy": "Never",
		"Direction": "up", "Step": "expand", "BatchSize": 500,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decoder.DecodeAny(strings.NewReader(out)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "args: [migrate, up, expand, --batch, \"500\"]") {
		t.Errorf("job args wrong:\n%s", out)
	}
	if _, err := render("orders-migrate-job.yaml", map[string]any{"Name": "x"}); err == nil {
		t.Error("a job rendered with missing fields")
	}
}

func TestCheckStaticRejectsDynamicExecutables(t *testing.T) {
	// /bin/sh on any glibc system is dynamically linked.
	if err := checkStatic("/bin/sh"); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("checkStatic(/bin/sh) = %v", err)
	}
}

// Tearing a rehearsal's namespace down deletes its pods itself (with no grace period: the fake
// records no options), after the namespace, which then admits no new pod, and then their volume
// claims, which the namespace controller would otherwise wait out.
func TestDeleteNamespaceDeletesItsPodsAndClaims(t *testing.T) {
	cs := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "rehearse-x"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "rehearse-x"}})
	if err := OpsFor(cs).DeleteNamespace(context.Background(), "rehearse-x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, a := range cs.Actions() {
		if a.GetVerb() == "delete" || a.GetVerb() == "delete-collection" {
			order = append(order, a.GetVerb()+" "+a.GetResource().Resource)
		}
	}
	if want := []string{"delete namespaces", "delete-collection pods", "delete-collection persistentvolumeclaims"}; !cmp.Equal(order, want) {
		t.Errorf("deletes %v, want %v", order, want)
	}
}

// A deploy's progress line: per app, how many pods are ready, and why one is not.
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
	if got := OpsFor(cs).PodsStatus(context.Background(), "ns"); got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	if got := OpsFor(cs).PodsStatus(context.Background(), "empty"); got != "no pods yet" {
		t.Errorf("empty namespace: %q", got)
	}
}

func TestSurgeFollowsTheDeploymentsStrategy(t *testing.T) {
	dep := func(replicas int32, typ appsv1.DeploymentStrategyType, surge *intstr.IntOrString) *appsv1.Deployment {
		d := &appsv1.Deployment{}
		d.Spec.Replicas = &replicas
		d.Spec.Strategy.Type = typ
		if surge != nil {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: surge}
		}
		return d
	}
	one, zero, half := intstr.FromInt32(1), intstr.FromInt32(0), intstr.FromString("50%")
	for _, c := range []struct {
		name string
		d    *appsv1.Deployment
		want int
	}{
		{"maxSurge 1", dep(3, appsv1.RollingUpdateDeploymentStrategyType, &one), 1},
		{"50% of 3 rounds up", dep(3, appsv1.RollingUpdateDeploymentStrategyType, &half), 2},
		{"default 25% of 8", dep(8, "", nil), 2},
		{"default 25% of 3 rounds up", dep(3, appsv1.RollingUpdateDeploymentStrategyType, nil), 1},
		{"maxSurge 0 still moves one", dep(3, appsv1.RollingUpdateDeploymentStrategyType, &zero), 1},
		{"Recreate moves one", dep(5, appsv1.RecreateDeploymentStrategyType, nil), 1},
	} {
		if got := surgeOf(c.d); got != c.want {
			t.Errorf("%s: surge %d, want %d", c.name, got, c.want)
		}
	}
}

// A failed rehearsal keeps what its workload said: one file per container, and the instance before
// a restart beside it.
func TestSaveLogs(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orders-db-0", Namespace: "ns"},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "postgres", RestartCount: 1}, {Name: "exporter"}}}}
	ops := OpsFor(fake.NewClientset(pod))
	dir := t.TempDir()
	n, err := ops.SaveLogs(context.Background(), []string{"ns"}, dir, 64<<10)
	if err != nil || n != 3 {
		t.Fatalf("wrote %d files: %v", n, err)
	}
	for _, f := range []string{"orders-db-0_postgres.log", "orders-db-0_postgres.previous.log", "orders-db-0_exporter.log"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || len(b) == 0 {
			t.Errorf("%s: %q %v", f, b, err)
		}
	}
}

// WAL positions are two hexadecimal halves: compared as the 64-bit number they make, and a position
// that cannot be read is never "at least" anything.
func TestLSNAtLeast(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"0/3000060", "0/3000060", true}, {"0/3000061", "0/3000060", true}, {"0/3000060", "0/3000061", false},
		{"1/0", "0/FFFFFFFF", true}, {"0/10000000", "0/9FFFFFF", true}, {"", "0/1", false}, {"0/1", "bogus", false},
	} {
		if got := LSNAtLeast(c.a, c.b); got != c.want {
			t.Errorf("LSNAtLeast(%q, %q) = %t", c.a, c.b, got)
		}
	}
}
