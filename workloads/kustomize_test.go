package workloads

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// An overlay is built in-process with its base: the objects it makes, with the overlay's changes.
func TestKustomizeBuildsAnOverlay(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "base/kustomization.yaml", "resources: [web.yaml, svc.yaml]\nlabels: [{pairs: {app: web}, includeSelectors: true}]\n")
	write(t, dir, "base/web.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers: [{name: web, image: web:1, args: [--color=blue]}]\n")
	write(t, dir, "base/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: NodePort, ports: [{port: 80}]}\n")
	write(t, dir, "overlays/green/kustomization.yaml", "resources: [../../base]\nimages: [{name: web, newTag: \"2\"}]\npatches:\n- patch: |-\n    - op: replace\n      path: /spec/template/spec/containers/0/args/0\n      value: --color=green\n  target: {kind: Deployment, name: web}\n")
	ms, err := Kustomize(dir + "/overlays/green")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Object.GetKind()+"/"+m.Object.GetName())
	}
	if strings.Join(got, " ") != "Deployment/web Service/web" {
		t.Fatalf("objects %v", got)
	}
	d := ms[0].Object
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	c := cs[0].(map[string]any)
	if c["image"] != "web:2" || c["args"].([]any)[0] != "--color=green" || d.GetLabels()["app"] != "web" {
		t.Errorf("deployment %v", d.Object)
	}
	if !strings.HasPrefix(ms[0].Source, "kustomize "+dir+"/overlays/green:") {
		t.Errorf("source %s", ms[1].Source)
	}
	if _, err := Kustomize(dir + "/base/.."); err == nil || !strings.Contains(err.Error(), "no kustomization.yaml") {
		t.Errorf("a directory without a kustomization: %v", err)
	}
	write(t, dir, "broken/kustomization.yaml", "resources: [missing.yaml]\n")
	if _, err := Kustomize(dir + "/broken"); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("a kustomization naming a missing file: %v", err)
	}
}
