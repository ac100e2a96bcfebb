package workloads

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func webDeployment() *appsv1.Deployment {
	labels := map[string]string{"app": "web"}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Labels: labels},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "web", Image: "web:1", Args: []string{"--color=blue"}, Env: []corev1.EnvVar{{Name: "A", Value: "1"}}},
					{Name: "proxy", Image: "proxy:1"}}}}}}
}

// A canary or green is the target with the release's change: its container's image, env or args, a
// strategic merge patch of the whole object, or a new template; pods on its track, never matching
// only the target's selector.
func TestTrackTakesEveryChange(t *testing.T) {
	for _, c := range []struct {
		name   string
		change Change
		check  func(*corev1.PodSpec) string
	}{
		{"args", Change{Args: []string{"--color=green"}}, func(p *corev1.PodSpec) string {
			return strings.Join(p.Containers[0].Args, " ") + " " + p.Containers[0].Image
		}},
		{"env of a named container", Change{Container: "proxy", Env: map[string]string{"B": "2"}}, func(p *corev1.PodSpec) string {
			return p.Containers[1].Env[0].Name + "=" + p.Containers[1].Env[0].Value + " " + p.Containers[0].Env[0].Value
		}},
		{"patch", Change{Patch: []byte("spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        resources: {limits: {memory: 64Mi}}\n")},
			func(p *corev1.PodSpec) string {
				return p.Containers[0].Resources.Limits.Memory().String() + " " + p.Containers[0].Image + " " + p.Containers[1].Image
			}},
		{"template", Change{Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "new"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:2"}}}}},
			func(p *corev1.PodSpec) string {
				return p.Containers[0].Image + " " + string(rune('0'+len(p.Containers)))
			}},
	} {
		cs := fake.NewClientset(webDeployment())
		ops := OpsFor(cs)
		if err := ops.Track(context.Background(), "ns", "deployment/web", "web-canary", "canary", 1, c.change); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		d, err := cs.AppsV1().Deployments("ns").Get(context.Background(), "web-canary", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := c.check(&d.Spec.Template.Spec)
		want := map[string]string{"args": "--color=green web:1", "env of a named container": "B=2 1",
			"patch": "64Mi web:1 proxy:1", "template": "web:2 1"}[c.name]
		if got != want {
			t.Errorf("%s: %q, want %q", c.name, got, want)
		}
		if d.Spec.Selector.MatchLabels[TrackLabel] != "canary" || d.Spec.Template.Labels[TrackLabel] != "canary" || d.Spec.Template.Labels["app"] != "web" {
			t.Errorf("%s: selector %v, labels %v", c.name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
		}
		// The target itself is untouched.
		orig, _ := cs.AppsV1().Deployments("ns").Get(context.Background(), "web", metav1.GetOptions{})
		if orig.Spec.Template.Spec.Containers[0].Image != "web:1" || orig.Spec.Template.Spec.Containers[0].Args[0] != "--color=blue" {
			t.Errorf("%s: the target changed: %+v", c.name, orig.Spec.Template.Spec.Containers[0])
		}
	}
	// A template whose pods the target's Service would not select is refused.
	cs := fake.NewClientset(webDeployment())
	err := OpsFor(cs).Track(context.Background(), "ns", "deployment/web", "web-canary", "canary", 1,
		Change{Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web2"}}}})
	if err == nil || !strings.Contains(err.Error(), "lacks the label app=web") {
		t.Errorf("a template without the target's labels: %v", err)
	}
	err = OpsFor(cs).Track(context.Background(), "ns", "deployment/web", "web-canary", "canary", 1, Change{Patch: []byte("{not json")})
	if err == nil || !strings.Contains(err.Error(), "patch") {
		t.Errorf("a broken patch: %v", err)
	}
}
