package reports

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	junit "github.com/joshdk/go-junit"

	"github.com/rehearse-dev/rehearse/verify"
)

// junitRun is sampleRun with what JUnit must also show: a step the system failed (and its
// step-NAME check), a step the harness could not carry out, a rollback drill, and the file.
func junitSummary() Summary {
	s := sampleRun().Summary
	t0 := s.Started
	s.ScenarioFile = "scenarios/smoke.yaml"
	s.Steps = append(s.Steps,
		Step{Name: "rollout", Kind: "migrate/rolling", Status: "failed", Started: t0.Add(1 * time.Second), Finished: t0.Add(4 * time.Second),
			Error: "rollout of deployment/orders never became ready\npods: orders-2 CrashLoopBackOff"},
		Step{Name: "restore", Kind: "rollback", Status: "ok", Started: t0.Add(10 * time.Second), Finished: t0.Add(11 * time.Second)},
		Step{Name: "probe", Kind: "exec", Status: "error", Started: t0.Add(11 * time.Second), Finished: t0.Add(11500 * time.Millisecond), Error: "API unreachable"},
		Step{Name: "contract", Kind: "run", Status: StepNotRun, Started: t0.Add(12 * time.Second), Finished: t0.Add(12 * time.Second),
			Error: "not run: probe error before it, and a runbook stops at its first failed block"},
	)
	s.Checks = append(s.Checks,
		verify.Result{Name: "fault-took-effect", Status: verify.Pass, Message: "drain: w1 drained in 1.5s, 1 pods evicted"},
		verify.Result{Name: "rollback-drill", Status: verify.Pass, Message: "restore: restored to v1 in 1.0s (bound 1m0s)"},
		verify.Result{Name: "step-rollout", Status: verify.Fail, Message: "the system failed the step: rollout of deployment/orders never became ready"},
	)
	return s
}

// Every count attribute is the count of its children, on each suite and on the root, and no two
// cases share classname and name (two scenarios of one name in a suite included).
func TestJUnitCountsAreTheChildren(t *testing.T) {
	a := junitSummary()
	b := sampleRun().Summary // same scenario name: its cases must not collide with a's
	b.Checks = []verify.Result{{Name: "zero-failed-requests", Status: verify.Pass, Message: "0 of 600 requests failed"}}
	out, err := JUnit([]Summary{a, b})
	if err != nil {
		t.Fatal(err)
	}
	var j junitSuites
	if err := xml.Unmarshal(out, &j); err != nil {
		t.Fatal(err)
	}
	var tests, failures, errors, skipped int
	seen := map[string]bool{}
	for _, s := range j.Suites {
		var f, e, sk int
		for _, c := range s.Cases {
			if c.Skipped != nil {
				sk++
				if c.Failure != nil || c.Error != nil || !strings.Contains(c.Skipped.Message, "not run") {
					t.Errorf("%s: skipped %+v with failure %v, error %v", c.Name, c.Skipped, c.Failure, c.Error)
				}
			}
			if c.Failure != nil {
				f++
			}
			if c.Error != nil {
				e++
			}
			if c.Failure != nil && c.Error != nil {
				t.Errorf("%s: both failure and error", c.Name)
			}
			key := c.Classname + "/" + c.Name
			if seen[key] {
				t.Errorf("two cases %s", key)
			}
			seen[key] = true
			if c.Time == "" {
				t.Errorf("%s: no time", key)
			}
		}
		if s.Tests != len(s.Cases) || s.Failures != f || s.Errors != e || s.Skipped != sk {
			t.Errorf("suite %s: tests=%d failures=%d errors=%d skipped=%d; children: %d cases, %d failures, %d errors, %d skipped",
				s.Name, s.Tests, s.Failures, s.Errors, s.Skipped, len(s.Cases), f, e, sk)
		}
		tests, failures, errors, skipped = tests+len(s.Cases), failures+f, errors+e, skipped+sk
	}
	// a: 6 checks + 6 steps; failures: zero-failed-requests, step-rollout, rollout; errors:
	// replica-checksums, probe; skipped: contract (a runbook block not run). b: 1 check + 2 steps.
	if tests != 15 || failures != 3 || errors != 2 || skipped != 1 {
		t.Errorf("cases: %d tests, %d failures, %d errors, %d skipped; want 15, 3, 2, 1", tests, failures, errors, skipped)
	}
	if j.Tests != tests || j.Failures != failures || j.Errors != errors || j.Skipped != skipped || j.Time != "24.000" {
		t.Errorf("root: tests=%d failures=%d errors=%d skipped=%d time=%s; want %d %d %d %d 24.000", j.Tests, j.Failures, j.Errors, j.Skipped, j.Time, tests, failures, errors, skipped)
	}
	if !seen["smoke/zero-failed-requests (2)"] {
		t.Errorf("the second scenario's case was not renamed: %v", seen)
	}
}

// A real JUnit reader sees the failure's message, type and body, the scenario file, each case's
// time and the properties.
func TestJUnitAsAReaderSeesIt(t *testing.T) {
	out, err := JUnit([]Summary{junitSummary()})
	if err != nil {
		t.Fatal(err)
	}
	suites, err := junit.Ingest(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(suites) != 1 {
		t.Fatalf("%d suites", len(suites))
	}
	s := suites[0]
	if s.Totals.Tests != 12 || s.Totals.Failed != 3 || s.Totals.Error != 2 || s.Totals.Passed != 6 || s.Totals.Skipped != 1 {
		t.Errorf("totals %+v", s.Totals)
	}
	for k, want := range map[string]string{"seed": "42", "target_rate": "50", "node_image": "rehearse.local/kind-node:v1.34.4",
		"scenario_hash": "abcdef0123456789", "fault.drain": "fault/node-drain 8.0s-10.0s ok: drain: w1: 1 pods evicted in 1.5s, emptied, uncordoned"} {
		if s.Properties[k] != want {
			t.Errorf("property %s = %q, want %q", k, s.Properties[k], want)
		}
	}
	cases := map[string]junit.Test{}
	for _, c := range s.Tests {
		cases[c.Classname+"/"+c.Name] = c
		if c.Properties["file"] != "scenarios/smoke.yaml" {
			t.Errorf("%s/%s: file %q", c.Classname, c.Name, c.Properties["file"])
		}
	}
	type want struct {
		status       junit.Status
		message, typ string
		body         string // a part of the body
		took         time.Duration
	}
	for key, w := range map[string]want{
		"smoke/zero-failed-requests": {junit.StatusFailed, "12 of 600 requests failed", "zero-failed-requests", "scale-to-zero: 12", 12 * time.Second},
		"smoke/replica-checksums":    {junit.StatusError, "could not compute checksums: <exec> failed & more", "replica-checksums", "<exec> failed & more", 12 * time.Second},
		"smoke/load-achieved":        {status: junit.StatusPassed, took: 12 * time.Second},
		"smoke/fault-took-effect":    {status: junit.StatusPassed, took: 2 * time.Second}, // the drain, 8s-10s
		"smoke/rollback-drill":       {status: junit.StatusPassed, took: 1 * time.Second}, // restore at 10s until probe at 11s
		"smoke/step-rollout":         {junit.StatusFailed, "the system failed the step: rollout of deployment/orders never became ready", "step-rollout", "never became ready", 3 * time.Second},
		"smoke.steps/rollout":        {junit.StatusFailed, "rollout of deployment/orders never became ready", StepFailed, "migrate/rolling failed, +1.0s to +4.0s", 3 * time.Second},
		"smoke.steps/probe":          {junit.StatusError, "API unreachable", StepError, "exec error", 500 * time.Millisecond},
		"smoke.steps/drain":          {status: junit.StatusPassed, took: 2 * time.Second},
	} {
		c, ok := cases[key]
		if !ok {
			t.Errorf("no case %s (have %v)", key, keys(cases))
			continue
		}
		if c.Status != w.status || c.Duration != w.took {
			t.Errorf("%s: status %s, time %s; want %s, %s", key, c.Status, c.Duration, w.status, w.took)
		}
		if w.status == junit.StatusPassed {
			if c.Error != nil {
				t.Errorf("%s: passed with an error %v", key, c.Error)
			}
			continue
		}
		e, ok := c.Error.(junit.Error)
		if !ok {
			t.Errorf("%s: no failure read: %#v", key, c.Error)
			continue
		}
		if c.Message != w.message || e.Message != w.message || e.Type != w.typ || !strings.Contains(e.Body, w.body) {
			t.Errorf("%s: message %q type %q body %q; want message %q, type %q, body with %q", key, e.Message, e.Type, e.Body, w.message, w.typ, w.body)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
