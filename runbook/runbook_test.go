package runbook

import (
	"strings"
	"testing"
)

const config = "```yaml rehearse\n" +
	`apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: rb}
cluster: {provider: kind}
workload: {sample: orders-postgres}
load:
  rate: 10/s
  targets:
    - {name: w, method: POST, path: /orders, ledger: true}
steps:
  - {name: warmup, wait: 5s}
verify:
  zero-failed-requests: {max: 0}
` + "```\n"

func parse(t *testing.T, md string) (*Runbook, error) {
	t.Helper()
	return Parse("rb.md", []byte(md))
}

func TestBlocksBecomeSteps(t *testing.T) {
	md := "# Runbook\n\n" + config + // config: lines 3-17
		"\n## Expand the schema!\n\n" + // 19
		"```sh\nkubectl get pods\n```\n\n" + // 21-23
		"Some prose.\n\n```bash\necho second\n```\n\n" + // 27-29
		"- in a list:\n\n  ```shell\n  echo third\n  ```\n\n" + // 33-35
		"## Deploy `v2`\n\n" + // 37
		"<!-- rehearse: name=roll at=+10s timeout=2m expectExit=1 allow-context -->\n" + // 39
		"```console\n$ kubectl --context prod rollout status deploy/orders \\\n    --timeout=1m\nWaiting for rollout...\n$ echo done\ndone\n```\n\n" + // 40-46
		"<!-- rehearse: skip -->\n```sh\nrm -rf /\n```\n\n" + // 48-51
		"```go\nfmt.Println(1)\n```\n\n" +
		"## Expand the schema\n\n```sh\necho other\n```\n" // 57, 59
	rb, err := parse(t, md)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		name, heading string
		line          int
		cmd           string
		lines         []int
	}
	wants := []want{
		{"expand-the-schema", "Expand the schema!", 21, "kubectl get pods", []int{22}},
		{"expand-the-schema-2", "Expand the schema!", 27, "echo second", []int{28}},
		{"expand-the-schema-3", "Expand the schema!", 33, "echo third", []int{34}},
		{"roll", "Deploy v2", 40, "kubectl --context prod rollout status deploy/orders \\\n    --timeout=1m\necho done", []int{41, 42, 44}},
		{"block-skipped", "Deploy v2", 49, "rm -rf /", []int{50}},
		{"expand-the-schema-4", "Expand the schema", 59, "echo other", []int{60}},
	}
	if len(rb.Blocks) != len(wants) {
		t.Fatalf("%d blocks: %+v", len(rb.Blocks), rb.Blocks)
	}
	for i, w := range wants {
		b := rb.Blocks[i]
		if w.name == "block-skipped" {
			if !b.Skip || b.Step != nil {
				t.Errorf("block %d should be skipped: %+v", i, b)
			}
			continue
		}
		if b.Name != w.name || b.Heading != w.heading || b.Line != w.line || b.Command != w.cmd || !equal(b.Lines, w.lines) {
			t.Errorf("block %d = %q %q line %d %q %v\nwant %+v", i, b.Name, b.Heading, b.Line, b.Command, b.Lines, w)
		}
	}
	// The YAML's own steps first, then the blocks in document order.
	var names []string
	for _, st := range rb.Steps {
		names = append(names, st.Name)
	}
	if got := strings.Join(names, " "); got != "warmup expand-the-schema expand-the-schema-2 expand-the-schema-3 roll expand-the-schema-4" {
		t.Errorf("steps %s", got)
	}
	roll := rb.Blocks[3].Step
	if roll.At.String() != "expand-the-schema-3+10s" || roll.Run.TimeoutOr().String() != "2m0s" || roll.Run.Expected() != 1 || !roll.Run.AllowContext {
		t.Errorf("annotated step %+v %+v", roll, roll.Run)
	}
	if roll.Run.Source != "rb.md:40" || roll.Run.Heading != "Deploy v2" {
		t.Errorf("source %q heading %q", roll.Run.Source, roll.Run.Heading)
	}
	var plan strings.Builder
	rb.WritePlan(&plan)
	for _, want := range []string{`line 40: step roll ("Deploy v2"), at expand-the-schema-3+10s, timeout 2m0s, expects exit 1`, `line 49: "Deploy v2": skipped`, "      echo done"} {
		if !strings.Contains(plan.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, plan.String())
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestProblemsAtTheirLines(t *testing.T) {
	md := "# R\n\n" + config + // 3-17
		"\n## A\n\n" + // 19
		"<!-- rehearse: nmae=x timeout=fast expectExit=300 at=later name=Bad_Name -->\n" + // 21
		"```sh\necho a\n```\n\n" + // 22-24
		"## B\n\n" + // 26
		"```sh\necho fine\nexport KUBECONFIG=$HOME/.kube/prod\nkubectl get pods\n```\n\n" + // 28-32
		"<!-- rehearse: skip -->\nA paragraph, not a block.\n\n" + // 34
		"```console\nno prompt here\n```\n" // 37
	_, err := parse(t, md)
	if err == nil {
		t.Fatal("want problems")
	}
	got := err.Error()
	for _, want := range []string{
		"rb.md:21: rehearse annotation nmae=x: unknown setting; known: name=, at=, timeout=, expectExit=, skip, allow-context",
		"rb.md:21: rehearse annotation timeout=fast: want a duration of at least 1s",
		"rb.md:21: rehearse annotation expectExit=300: want an exit code, 0-255",
		"rb.md:21: rehearse annotation at=later: want +10s",
		`rb.md:21: rehearse annotation name=Bad_Name: "Bad_Name" must be`,
		"rb.md:30: steps[2].run.command: sets KUBECONFIG: a runbook written for production names its contexts; a rehearsal must never reach a cluster other than its own",
		"annotate the block <!-- rehearse: allow-context -->",
		"rb.md:34: a rehearse annotation must come right before the fenced shell block",
		`rb.md:37: the ` + "```console" + ` block under "B" has no command`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
}

func TestYAMLProblemsAtRunbookLines(t *testing.T) {
	bad := strings.Replace(config, "rate: 10/s", "rate: fast", 1)
	bad = strings.Replace(bad, "max: 0}", "max: 0, bogus: 1}", 1)
	md := "# R\n\nProse.\n\n" + bad + "\n## A\n\n```sh\necho a\n```\n" // config fence at line 5: rate at 12
	_, err := parse(t, md)
	if err == nil {
		t.Fatal("want problems")
	}
	got := err.Error()
	for _, want := range []string{`rb.md:12: load.rate: bad rate "fast"`, `rb.md:18: verify.zero-failed-requests.bogus: unknown field "bogus"`} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if _, err := parse(t, "# No config\n\n```sh\necho\n```\n"); err == nil || !strings.Contains(err.Error(), "rb.md:1: no ```yaml rehearse block") {
		t.Errorf("no config: %v", err)
	}
	if _, err := parse(t, config+"\n"+config); err == nil || !strings.Contains(err.Error(), "rb.md:17: a second ```yaml rehearse block") {
		t.Errorf("two configs: %v", err)
	}
}

func TestShippedRunbooksParse(t *testing.T) {
	for _, f := range []string{"../scenarios/runbooks/orders-v2.md", "../e2e/testdata/runbooks/contract-too-early.md", "../e2e/testdata/runbooks/hangs.md"} {
		rb, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, b := range rb.Blocks {
			if !b.Skip && strings.TrimSpace(b.Command) == "" {
				t.Errorf("%s:%d: empty block", f, b.Line)
			}
		}
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{"Expand the schema!": "expand-the-schema", "  ": "block", "Deploy v2 (orders)": "deploy-v2-orders",
		strings.Repeat("x", 80): strings.Repeat("x", 50), "Étape 2": "tape-2"} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}
