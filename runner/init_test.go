package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rehearse init writes, from a chart, a kustomization or manifests, a scenario that validates as
// written: the system deployed as it is shipped, its Service loaded, one rollout of its Deployment.
func TestInitWritesAScenarioThatValidates(t *testing.T) {
	for _, c := range []struct{ source, workload, service, target string }{
		{"../e2e/testdata/helm/web", "helm: {chart: ", "service: init-web", "deployment/init-web"},
		{"../e2e/testdata/kustomize/base", "kustomize: ", "service: web", "deployment/web"},
		{"../scenarios/own-web/manifests", "manifests: [", "service: web", "deployment/web"},
	} {
		out := filepath.Join(t.TempDir(), "sub", "init.yaml")
		b, err := Init(c.source, "init-web", out)
		if err != nil {
			t.Fatalf("%s: %v", c.source, err)
		}
		text := string(b)
		for _, want := range []string{c.workload, c.service, "target: " + c.target, "FILL IN", "zero-failed-requests"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: lacks %q:\n%s", c.source, want, text)
			}
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(out); err != nil {
			t.Errorf("%s: the scenario init wrote does not validate: %v\n%s", c.source, err, text)
		}
	}
	if _, err := Init("../e2e/testdata/helm", "x", "x.yaml"); err == nil {
		t.Errorf("a directory of scenario files (no Deployment) made a scenario")
	}
}
