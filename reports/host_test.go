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
	expand := Step{Name: "expand", Kind: "run", Status: "ok", Started: t0.Add(2 * time.Second), Finished: t0.Add(3 * time.Second),
		Did: map[string]any{"command": "kubectl exec orders-db-0 -- psql -c 'ALTER TABLE orders ADD full_name text'", "source": "rb.md:20",
			"heading": "Expand <the> schema", "exit_code": 0, "output_tail": "ALTER TABLE", "log": "steps/expand.log"},
		Load: &StepLoad{Requests: 50, Failed: 0, P99MS: 4.25}}
	after := Step{Name: "verify", Kind: "run", Status: StepNotRun, Started: t0.Add(12 * time.Second), Finished: t0.Add(12 * time.Second),
		Error: "not run: contract failed before it, and a runbook stops at its first failed block",
		Did:   map[string]any{"command": "curl -fsS localhost/healthz", "source": "rb.md:55", "heading": "Verify"}}
	wait := Step{Name: "settle", Kind: "wait", Status: "ok", Started: t0, Finished: t0.Add(time.Second)}
	s := Summary{Scenario: "rb", Verdict: VerdictFail, Started: t0, Finished: t0.Add(time.Minute), Steps: []Step{wait, expand, st, after},
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

	// report.html has the runbook as its reader knows it: every block under its heading, in order,
	// with its command, how it ended and the load in its window; the failed one's output unfolded.
	var h strings.Builder
	if err := HTML(&h, &Run{Summary: s}); err != nil {
		t.Fatal(err)
	}
	page := h.String()
	i := strings.Index(page, `<h2 id="runbook">`)
	if i < 0 {
		t.Fatalf("report.html has no runbook section")
	}
	rb := page[i:strings.Index(page, `<h2 id="failures">`)]
	last := 0
	for _, want := range []string{"Expand &lt;the&gt; schema", "rb.md:20 · step expand", "exit 0 after 1.0s · 50 requests, 0 failed, p99 4.3 ms",
		"ADD full_name text", "(all of it in steps/expand.log)",
		"Contract the schema", "rb.md:40", "exit 1 after 2.0s", "<details open>", "ERROR: column &#34;name&#34; does not exist",
		"Verify", "not-run", "not run: contract failed before it", "curl -fsS localhost/healthz"} {
		j := strings.Index(rb[last:], want)
		if j < 0 {
			t.Errorf("the runbook section lacks %q after byte %d:\n%s", want, last, rb)
			continue
		}
		last += j
	}
	if strings.Contains(rb, "step settle") || strings.Count(rb, `<div class="block">`) != 3 {
		t.Errorf("the runbook section holds what is not a block:\n%s", rb)
	}
}
