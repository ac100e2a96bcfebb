package reports

import (
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/verify"
)

func TestHostCommandsInReports(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	st := Step{Name: "contract", Kind: "run", Status: "failed", Started: t0.Add(10 * time.Second), Finished: t0.Add(12 * time.Second),
		Error: "the command (rb.md:40, \"Contract the schema\") exited 1; last lines of output:\nERROR: column \"name\" does not exist",
		Did: map[string]any{"command": "kubectl exec orders-db-0 -- psql -c 'ALTER TABLE orders DROP COLUMN name'", "source": "rb.md:40",
			"heading": "Contract the schema", "exit_code": 1, "output_tail": "psql: starting\nERROR: column \"name\" does not exist"}}
	s := Summary{Scenario: "rb", Verdict: VerdictFail, Started: t0, Finished: t0.Add(time.Minute), Steps: []Step{st},
		Checks: []verify.Result{{Name: "step-contract", Status: verify.Fail, Message: "the system failed the step"}}}
	md := string(Markdown(&Run{Summary: s}, "report.html"))
	for _, want := range []string{`block "Contract the schema" at rb.md:40; exit 1; output: …ERROR: column "name" does not exist`,
		`**contract — "Contract the schema" at rb.md:40**: `, "exit 1 after 2.0s", "psql -c 'ALTER TABLE orders DROP COLUMN name'", "psql: starting"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
	j, err := JUnit([]Summary{s})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"output_tail: psql: starting", "source: rb.md:40", "exit_code: 1"} {
		if !strings.Contains(string(j), want) {
			t.Errorf("junit.xml lacks %q:\n%s", want, j)
		}
	}
}
