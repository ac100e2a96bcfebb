package scenarios

import (
	"strings"
	"testing"
)

func TestReachesElsewhere(t *testing.T) {
	cases := []struct {
		cmd  string
		line int
		what string // "" when the command is fine
	}{
		{"kubectl get pods", 0, ""},
		{"kubectl --context prod get pods", 0, "passes --context to kubectl"},
		{"kubectl get pods --context=prod", 0, "passes --context to kubectl"},
		{"/usr/local/bin/kubectl --kubeconfig ~/.kube/prod apply -f x.yaml", 0, "passes --kubeconfig to kubectl"},
		{"helm upgrade orders ./chart --kube-context prod", 0, "passes --kube-context to helm"},
		{"kubectl --server=https://prod:6443 get ns", 0, "passes --server to kubectl"},
		{"echo hi\nKUBECONFIG=/tmp/prod kubectl get pods", 1, "sets KUBECONFIG"},
		{"export KUBECONFIG=$HOME/.kube/prod", 0, "sets KUBECONFIG"},
		{"export A=1 KUBECONFIG", 0, "sets KUBECONFIG"},
		{"unset KUBECONFIG", 0, "unsets KUBECONFIG (kubectl would fall back to ~/.kube/config)"},
		{"env KUBECONFIG=x kubectl get pods", 0, "sets KUBECONFIG"},
		// Quoted, commented or in another program's words, they are not what they look like.
		{"echo 'kubectl --context prod'", 0, ""},
		{"echo \"KUBECONFIG=x\"", 0, ""},
		{"kubectl get pods # --context prod", 0, ""},
		{"grep -- --context notes.txt", 0, ""},
		{"kubectl get cm -o jsonpath='{.data.context}'", 0, ""},
		// Separators end a simple command; a substitution starts one; continuations keep the line.
		{"kubectl get pods; helm --kubeconfig x list", 0, "passes --kubeconfig to helm"},
		{"echo $(kubectl config view --kubeconfig x)", 0, "passes --kubeconfig to kubectl"},
		{"kubectl get pods \\\n  --context prod", 1, "passes --context to kubectl"},
		{"kubectl get pods \"a\nb\"\nkubectl --context x get ns", 2, "passes --context to kubectl"},
		{"echo kubectl && echo --context", 0, ""},
	}
	for _, c := range cases {
		line, what, bad := ReachesElsewhere(c.cmd)
		if bad != (c.what != "") || what != c.what || (bad && line != c.line) {
			t.Errorf("%q: got (%d, %q, %v), want (%d, %q)", c.cmd, line, what, bad, c.line, c.what)
		}
	}
}

const runScenario = `apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: t1}
cluster: {provider: kind}
workload: {sample: orders-postgres}
load:
  rate: 10/s
  targets:
    - {name: w, method: POST, path: /orders, ledger: true}
steps:
  - name: ok
    run: {command: "kubectl get pods", timeout: 2m, expectExit: 1, env: {FOO: bar}}
  - name: empty
    run: {command: "  "}
  - name: prod
    run:
      command: kubectl --context prod get pods
  - name: allowed
    run: {command: "kubectl --context kind-x get pods", allowContext: true}
  - name: bad-timeout
    run: {command: "true", timeout: 10ms, expectExit: 300}
  - name: own-kubeconfig
    run: {command: "true", env: {KUBECONFIG: /tmp/x, REHEARSE_RUN_ID: y}}
verify:
  zero-failed-requests: {max: 0}
`

func TestRunStepProblems(t *testing.T) {
	l, err := Parse("r.yaml", []byte(runScenario))
	if err == nil {
		t.Fatal("want problems")
	}
	got := err.Error()
	for _, want := range []string{
		"r.yaml:14: steps[1].run.command: is empty",
		"r.yaml:17: steps[2].run.command: passes --context to kubectl: a runbook written for production names its contexts",
		"set allowContext: true",
		"r.yaml:21: steps[4].run.timeout: 10ms is too short",
		"r.yaml:21: steps[4].run.expectExit: 300: an exit code is 0-255",
		"r.yaml:23: steps[5].run.env.KUBECONFIG: sets KUBECONFIG",
		"r.yaml:23: steps[5].run.env.REHEARSE_RUN_ID: is set by rehearse",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	for _, not := range []string{"steps[0]", "steps[3]"} {
		if strings.Contains(got, not) {
			t.Errorf("%s should be fine:\n%s", not, got)
		}
	}
	if r := l.Steps[0].Run; r.TimeoutOr().String() != "2m0s" || r.Expected() != 1 || r.Env["FOO"] != "bar" {
		t.Errorf("steps[0].run = %+v", r)
	}
	if r := l.Steps[1].Run; r.TimeoutOr() != DefaultRunTimeout || r.Expected() != 0 {
		t.Errorf("defaults: %+v", r)
	}
}

func TestParseWithStepsPlacesExtraSteps(t *testing.T) {
	yml := strings.Repeat("\n", 9) + strings.SplitN(runScenario, "steps:", 2)[0] + "verify: {zero-failed-requests: {}}\n"
	extra := []Extra{
		{Step: Step{Name: "a", Run: &Run{Command: "kubectl get pods", Source: "rb.md:40"}}, Line: 40},
		{Step: Step{Name: "b", Run: &Run{Command: "echo hi\nkubectl --kubeconfig x get pods", Source: "rb.md:50", Lines: []int{51, 52}}}, Line: 50},
		{Step: Step{Name: "a", Run: &Run{Command: "true", Source: "rb.md:60"}}, Line: 60},
	}
	_, err := ParseWithSteps("rb.md", []byte(yml), nil, extra)
	if err == nil {
		t.Fatal("want problems")
	}
	got := err.Error()
	for _, want := range []string{
		"rb.md:52: steps[1].run.command: passes --kubeconfig to kubectl",
		"annotate the block <!-- rehearse: allow-context -->",
		"rb.md:60: steps[2].name: \"a\" is used twice",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "metadata") {
		t.Errorf("the YAML is fine:\n%s", got)
	}
}
