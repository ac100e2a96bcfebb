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
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/rehearse-dev/rehearse/scenarios"
)

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadManifestsOrderAndErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "app/10-web.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n")
	write(t, dir, "app/00-config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n")
	write(t, dir, "app/05-seed.json", `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"seed"}}`)
	// A subdirectory is not read (as kubectl apply -f DIR): a green release kept aside is not deployed.
	write(t, dir, "app/green/10-web-green.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web-green}\n")
	write(t, dir, "app/README.md", "not a manifest")
	ns := write(t, dir, "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
	ms, err := ReadManifests([]string{ns, filepath.Join(dir, "app")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Object.GetKind()+"/"+m.Object.GetName())
	}
	want := "Namespace/shop ConfigMap/cfg Job/seed Deployment/web Service/web"
	if strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
	if !strings.HasSuffix(ms[4].Source, "10-web.yaml:6") {
		t.Errorf("source of the Service: %s", ms[4].Source)
	}

	for text, wantErr := range map[string]string{
		"apiVersion: v1\nmetadata: {name: x}\n":                            "bad.yaml:1: kind is missing",
		"kind: Pod\nmetadata: {name: x}\n":                                 "bad.yaml:1: apiVersion is missing",
		"apiVersion: v1\nkind: Pod\nmetadata: {}\n":                        "bad.yaml:1: Pod: metadata.name is missing",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: [\n":                  "bad.yaml:1: error converting YAML to JSON: yaml: line 3",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\nkind: Pod\n": "bad.yaml:5: apiVersion is missing",
		"apiVersion: v1\nkind: List\nmetadata: {name: x}\n":                "list objects are not applied",
	} {
		p := write(t, dir, "bad.yaml", text)
		if _, err := ReadManifests([]string{p}); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: error %v, want %q", text, err, wantErr)
		}
	}
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	if _, err := ReadManifests([]string{empty}); err == nil || !strings.Contains(err.Error(), "no *.yaml") {
		t.Errorf("empty directory: %v", err)
	}
}

func int32p(v int32) *int32 { return &v }

// Scale patches the replicas and is done only when the controller reports them and no surplus pod is
// left; a pod that lingers keeps it waiting (and the wait times out naming what it saw).
func TestScaleWaitsForPodsToGo(t *testing.T) {
	t.Parallel()
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Generation: 1, UID: "d-uid"},
		Spec:   appsv1.DeploymentSpec{Replicas: int32p(2), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 0}}
	yes := true
	owned := func(kind, name, uid string) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: types.UID(uid), Controller: &yes}}
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Namespace: "ns", UID: "rs-uid", OwnerReferences: owned("Deployment", "web", "d-uid")}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "ns", Labels: map[string]string{"app": "web"},
		OwnerReferences: owned("ReplicaSet", "web-abc", "rs-uid")}}
	// A canary's pod carries the same labels but belongs to another Deployment: not web's to wait for.
	canary := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-canary-1", Namespace: "ns", Labels: map[string]string{"app": "web", "track": "canary"},
		OwnerReferences: owned("ReplicaSet", "web-canary-abc", "other-rs-uid")}}
	cs := fake.NewClientset(d, rs, pod, canary)
	ops := &Ops{cs: cs}
	ctx := context.Background()
	err := ops.Scale(ctx, "ns", "deployment/web", 0, 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "0 wanted, 0 updated, 0 ready, 1 pods") {
		t.Fatalf("a terminating pod left must keep scale waiting: %v", err)
	}
	got, _ := cs.AppsV1().Deployments("ns").Get(ctx, "web", metav1.GetOptions{})
	if *got.Spec.Replicas != 0 {
		t.Errorf("replicas %d after scale to 0", *got.Spec.Replicas)
	}
	if err := cs.CoreV1().Pods("ns").Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ops.Scale(ctx, "ns", "deployment/web", 0, 3*time.Second); err != nil {
		t.Errorf("no pod left: %v", err)
	}
	if err := ops.Scale(ctx, "ns", "service/web", 0, time.Second); err == nil {
		t.Errorf("a Service cannot be scaled")
	}
}

// Service is restored when exactly the wanted pods are ready and not terminating: a draining pod is
// out of the endpoints already, so a rollback need not wait for it to be gone.
func TestWaitServingCountsReadyPodsNotTerminating(t *testing.T) {
	t.Parallel()
	yes := true
	owned := func(kind, name, uid string) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: types.UID(uid), Controller: &yes}}
	}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "d"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "ns", UID: "rs", OwnerReferences: owned("Deployment", "web", "d")}}
	ready := corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	now := metav1.Now()
	pod := func(name string, terminating bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "web"},
			OwnerReferences: owned("ReplicaSet", "web-1", "rs")}, Status: ready}
		if terminating {
			p.DeletionTimestamp, p.Finalizers = &now, []string{"test"}
		}
		return p
	}
	ops := &Ops{cs: fake.NewClientset(d, rs, pod("a", false), pod("b", true))}
	if err := ops.WaitServing(context.Background(), "ns", "deployment/web", 1, 2*time.Second); err != nil {
		t.Errorf("one pod ready, one draining: %v", err)
	}
	if err := ops.WaitServing(context.Background(), "ns", "deployment/web", 2, time.Second); err == nil || !strings.Contains(err.Error(), "1 of 2 pods serving") {
		t.Errorf("a draining pod counted as serving: %v", err)
	}
}

// A stalled rollout says why: the pods not ready, their waiting reasons, restarts, and the last log
// lines of a crashing container.
func TestDiagnoseNamesCrashingPods(t *testing.T) {
	yes := true
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "d"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-2", Namespace: "ns", UID: "rs",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "d", Controller: &yes}}}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-2-x", Namespace: "ns", Labels: map[string]string{"app": "web"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-2", UID: "rs", Controller: &yes}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "web", RestartCount: 4,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s"}}}}}}
	ops := &Ops{cs: fake.NewClientset(d, rs, pod)}
	got := ops.Diagnose(context.Background(), "ns", "deployment/web")
	for _, want := range []string{"pod web-2-x: Running, not ready", "web: CrashLoopBackOff back-off 40s", "web restarted 4 times", "last log lines of web"} {
		if !strings.Contains(got, want) {
			t.Errorf("diagnosis %q lacks %q", got, want)
		}
	}
}

// The rehearsal's namespace carries workload.namespace's labels and annotations, and rehearse's own
// label whatever they say; a namespace that exists already is given them before anything runs in it.
func TestNamespaceCarriesItsMetadata(t *testing.T) {
	meta := &scenarios.NamespaceMeta{
		Labels:      map[string]string{"pod-security.kubernetes.io/enforce": "baseline"},
		Annotations: map[string]string{"scheduler.alpha.kubernetes.io/node-selector": "pool=faults"},
	}
	existing := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "old", Labels: map[string]string{"keep": "me"}}}
	ops := &Ops{cs: fake.NewClientset(existing)}
	ctx := context.Background()
	for _, name := range []string{"new", "old"} {
		if err := ops.ensureNamespace(ctx, name, meta); err != nil {
			t.Fatal(err)
		}
		ns, err := ops.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ns.Labels["pod-security.kubernetes.io/enforce"] != "baseline" || ns.Annotations["scheduler.alpha.kubernetes.io/node-selector"] != "pool=faults" {
			t.Errorf("%s: labels %v annotations %v", name, ns.Labels, ns.Annotations)
		}
		if name == "new" && ns.Labels["app.kubernetes.io/part-of"] != "rehearse" {
			t.Errorf("new: rehearse's label lost: %v", ns.Labels)
		}
		if name == "old" && ns.Labels["keep"] != "me" {
			t.Errorf("old: its own labels were replaced: %v", ns.Labels)
		}
	}
	if err := ops.ensureNamespace(ctx, "plain", nil); err != nil {
		t.Fatal(err)
	}
	if ns, _ := ops.cs.CoreV1().Namespaces().Get(ctx, "plain", metav1.GetOptions{}); len(ns.Annotations) != 0 || ns.Labels["app.kubernetes.io/part-of"] != "rehearse" {
		t.Errorf("plain: %v %v", ns.Labels, ns.Annotations)
	}
}

// Containers that start only from an image on the node are found wherever a pod spec is: a Pod, a
// workload's template, a CronJob's job's; init containers too. Others are not listed.
func TestNeverPulledImages(t *testing.T) {
	ms, err := parseManifests("app.yaml", []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers: [{name: schema, image: team/migrate:2, imagePullPolicy: Never}]
      containers:
        - {name: web, image: team/web:2, imagePullPolicy: Never}
        - {name: proxy, image: envoy:1.30, imagePullPolicy: IfNotPresent}
---
apiVersion: v1
kind: Pod
metadata: {name: debug}
spec:
  containers: [{name: sh, image: busybox}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: job, image: team/job:1, imagePullPolicy: Never}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {imagePullPolicy: Never}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := NeverPulledImages(ms)
	want := []NeverPulled{
		{Source: "app.yaml:1", Object: "deployment/web", Container: "schema", Image: "team/migrate:2"},
		{Source: "app.yaml:1", Object: "deployment/web", Container: "web", Image: "team/web:2"},
		{Source: "app.yaml:18", Object: "cronjob/nightly", Container: "job", Image: "team/job:1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("never-pulled containers (-want +got):\n%s", diff)
	}
}
