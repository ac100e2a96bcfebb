package runbook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/scenarios"
)

const attachScenario = `apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: attached}
cluster: {provider: kind}
workload: {sample: orders-postgres}
load:
  rate: 10/s
  targets:
    - {name: w, method: POST, path: /orders, ledger: true}
steps:
  - {name: warmup, wait: 5s}
  - {name: deploy-v2, wait: 1s}
runbook: ../books/ops.md
verify:
  zero-failed-requests: {max: 0}
`

// attach writes a scenario naming ../books/ops.md, and that runbook, and attaches them.
func attach(t *testing.T, scenario, md string) (*Runbook, error) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"sc/s.yaml": scenario, "books/ops.md": md} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := scenarios.LoadFile(filepath.Join(dir, "sc/s.yaml"))
	if err != nil {
		t.Fatalf("the scenario file: %v", err)
	}
	return Attach(l)
}

func TestAttachRunsTheBlocksAfterTheScenariosSteps(t *testing.T) {
	md := "# Ops\n\n" + config + // a yaml rehearse block: not used, a warning says so (line 3)
		"\n## Deploy v2\n\n```sh\nkubectl get pods\n```\n" + // 21
		"\n<!-- rehearse: at=+5s -->\n```bash\necho two\n```\n" // 26
	rb, err := attach(t, attachScenario, md)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range rb.Steps {
		names = append(names, st.Name)
	}
	// The runbook's "Deploy v2" does not take the name of the scenario's own deploy-v2 step.
	if got := strings.Join(names, " "); got != "warmup deploy-v2 deploy-v2-2 deploy-v2-3" {
		t.Fatalf("steps %q", got)
	}
	first, second := rb.Steps[2].Run, rb.Steps[3].Run
	if first == nil || first.Source != "ops.md:21" || first.Heading != "Deploy v2" || first.Command != "kubectl get pods" {
		t.Fatalf("first block's step: %+v", first)
	}
	wantDir, _ := filepath.Abs(filepath.Join(filepath.Dir(rb.Loaded.File), "../books"))
	if first.Dir != wantDir {
		t.Errorf("block runs in %q, want the runbook's directory %q", first.Dir, wantDir)
	}
	if at := rb.Steps[3].At; !at.Set || at.Step != "deploy-v2-2" || at.Offset.Seconds() != 5 {
		t.Errorf("+5s is after the block before: %+v", at)
	}
	if second.Command != "echo two" {
		t.Errorf("second block %q", second.Command)
	}
	if len(rb.Warnings) != 1 || !strings.Contains(rb.Warnings[0].String(), "ops.md:3") ||
		!strings.Contains(rb.Warnings[0].Msg, "is not used") {
		t.Errorf("warnings %v: want the unused yaml rehearse block named at ops.md:3", rb.Warnings)
	}
}

func TestAttachProblemsNameTheRunbooksLines(t *testing.T) {
	md := "# Ops\n\n## Roll\n\n```sh\necho fine\n```\n\n## Prod\n\n```sh\necho about to\nkubectl --context prod get pods\n```\n" // 5, 11-13
	_, err := attach(t, attachScenario, md)
	if err == nil {
		t.Fatal("a block naming another context was accepted")
	}
	if got := err.Error(); !strings.Contains(got, "ops.md:13") || !strings.Contains(got, "--context") ||
		!strings.Contains(got, "rehearse: allow-context") {
		t.Fatalf("problem %q: want the runbook's file and the line of the kubectl, and how to allow it", got)
	}

	_, err = attach(t, attachScenario, "# Ops\n\nNothing to run here.\n\n<!-- rehearse: skip -->\n```sh\necho no\n```\n")
	if err == nil || !strings.Contains(err.Error(), "ops.md:1") || !strings.Contains(err.Error(), "no fenced shell block") {
		t.Fatalf("a runbook with nothing to run: %v", err)
	}

}

func TestRunbookFieldIsChecked(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ runbook, want string }{
		{"ops.txt", "want a Markdown runbook"},
		{"gone.md", "does not exist"},
	} {
		sc := strings.Replace(attachScenario, "runbook: ../books/ops.md", "runbook: "+c.runbook, 1)
		p := filepath.Join(dir, "s.yaml")
		if err := os.WriteFile(p, []byte(sc), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := scenarios.LoadFile(p)
		if err == nil || !strings.Contains(err.Error(), "s.yaml:13") || !strings.Contains(err.Error(), "runbook") ||
			!strings.Contains(err.Error(), c.want) {
			t.Errorf("runbook: %s: %v", c.runbook, err)
		}
	}
}
