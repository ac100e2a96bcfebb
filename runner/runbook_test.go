package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/reports"
)

func TestLoadRunbook(t *testing.T) {
	l, err := Load("../scenarios/runbooks/orders-v2.md")
	if err != nil {
		t.Fatal(err)
	}
	if l.Metadata.Name != "orders-v2-runbook" || Kinds.Find(l.Steps[len(l.Steps)-1]).Name() != "run" {
		t.Errorf("loaded %s, steps %+v", l.Metadata.Name, l.Steps)
	}
	// The run's checks apply to a runbook as to a scenario file: served-version needs a migrate step.
	dir := t.TempDir()
	b, _ := os.ReadFile("../scenarios/runbooks/orders-v2.md")
	bad := strings.Replace(string(b), "  load-achieved: {}", "  load-achieved: {}\n  served-version: {}", 1)
	f := filepath.Join(dir, "rb.md")
	if err := os.WriteFile(f, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(f); err == nil || !strings.Contains(err.Error(), "rb.md:33: verify.served-version: no step moves the workload") {
		t.Errorf("served-version without a migrate step: %v", err)
	}
	// The check table's refusals name the runbook's lines too.
	bad = strings.Replace(string(b), "  load-achieved: {}", "  load-achieved: {max: 2}\n  no-such-check: {}", 1)
	if err := os.WriteFile(f, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(f)
	for _, want := range []string{"rb.md:32: verify.load-achieved.max: load-achieved takes only minShare, minRequests", "rb.md:33: verify.no-such-check: unknown check"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nwant %q", err, want)
		}
	}
}

func TestWindowNameNamesTheBlock(t *testing.T) {
	if got := windowName(reports.Step{Name: "contract", Did: map[string]any{"source": "rb.md:80", "heading": "Contract the schema"}}); got != `contract ("Contract the schema", rb.md:80)` {
		t.Errorf("block window %q", got)
	}
	if got := windowName(reports.Step{Name: "rollout"}); got != "rollout" {
		t.Errorf("step window %q", got)
	}
}
