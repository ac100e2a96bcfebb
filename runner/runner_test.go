package runner

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"go.yaml.in/yaml/v3"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/verify"
	"github.com/rehearse-dev/rehearse/workloads"
)

func step(name, at string) scenarios.Step {
	st := scenarios.Step{Name: name, Wait: scenarios.Duration{Duration: time.Millisecond}}
	if at != "" {
		var a scenarios.At
		if err := yaml.Unmarshal([]byte(at), &a); err != nil {
			panic(err)
		}
		st.At = a
	}
	return st
}

// The timeline: steps without at in sequence, steps with at concurrently, from the start, another
// step's start, or its end.
// The steps' times are long beside the tolerance a busy host's scheduler needs (a step started up
// to 200 ms after its time): at a tenth of them, with 40 ms allowed, the test failed beside a kind
// cluster being created (run queue 52 on two cores).
func TestTimeline(t *testing.T) {
	t.Parallel()
	start := time.Now()
	took := map[string]time.Duration{"rollout": 3 * time.Second, "kill": 500 * time.Millisecond, "after": 200 * time.Millisecond,
		"drain": 200 * time.Millisecond, "early": 100 * time.Millisecond, "next": 100 * time.Millisecond}
	list := []scenarios.Step{step("rollout", ""), step("kill", "rollout+1s"), step("after", "rollout.end+500ms"),
		step("drain", ""), step("early", "200ms"), step("next", "")}
	var mu sync.Mutex
	var began []string
	evs := timeline(context.Background(), list, start, steps.Builtin, func(ctx context.Context, st scenarios.Step, _ *steps.Record) error {
		time.Sleep(took[st.Name])
		if st.Name == "kill" {
			return workloads.Failed(errors.New("pod did not come back"))
		}
		return nil
	}, func(ev reports.Step) { mu.Lock(); began = append(began, ev.Name); mu.Unlock() }, func(reports.Step) {})
	if len(evs) != len(list) {
		t.Fatalf("%d events: %+v", len(evs), evs)
	}
	by := map[string]reports.Step{}
	for _, ev := range evs {
		by[ev.Name] = ev
	}
	near := func(what string, got, want time.Time) {
		if d := got.Sub(want); d < 0 || d > 200*time.Millisecond {
			t.Errorf("%s at %s, want %s", what, got.Sub(start), want.Sub(start))
		}
	}
	r := by["rollout"]
	near("rollout", r.Started, start)
	near("kill (rollout+1s)", by["kill"].Started, r.Started.Add(time.Second))
	if !by["kill"].Started.Before(r.Finished) {
		t.Errorf("kill must run during the rollout")
	}
	near("after (rollout.end+500ms)", by["after"].Started, r.Finished.Add(500*time.Millisecond))
	near("early (200ms)", by["early"].Started, start.Add(200*time.Millisecond))
	// drain has no at: it waits for every earlier step, kill and after included.
	near("drain", by["drain"].Started, by["after"].Finished)
	near("next", by["next"].Started, maxTime(by["drain"].Finished, by["early"].Finished))
	if !by["kill"].Planned.Equal(r.Started.Add(time.Second)) {
		t.Errorf("kill planned %s", by["kill"].Planned.Sub(start))
	}
	if by["kill"].Status != "failed" || by["rollout"].Status != "ok" {
		t.Errorf("statuses: kill %s, rollout %s", by["kill"].Status, by["rollout"].Status)
	}
	if evs[0].Name != "rollout" || evs[5].Name != "next" {
		t.Errorf("events must be in file order: %v", evs)
	}
	if len(began) != 6 || began[0] != "rollout" || began[1] != "early" {
		t.Errorf("start order %v", began)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// A runbook stops at its first failed block: the blocks after it are not run (an overlapping one
// already running is not stopped), while steps of no chain, or of another chain, go on.
func TestTimelineChainStopsAtAFailure(t *testing.T) {
	chained := func(name, at, chain string) scenarios.Step {
		st := step(name, at)
		st.Chain = chain
		st.Wait = scenarios.Duration{}
		st.Run = &scenarios.Run{Command: "echo " + name, Source: chain + ":9", Heading: "Do " + name}
		return st
	}
	list := []scenarios.Step{step("warmup", ""), chained("expand", "", "rb.md"), chained("overlap", "expand+5ms", "rb.md"),
		chained("deploy", "", "rb.md"), chained("contract", "", "rb.md"), step("own", ""), chained("other", "", "other.md")}
	var ran []string
	var mu sync.Mutex
	var ended []string
	evs := timeline(context.Background(), list, time.Now(), steps.Builtin, func(ctx context.Context, st scenarios.Step, _ *steps.Record) error {
		mu.Lock()
		ran = append(ran, st.Name)
		mu.Unlock()
		switch st.Name {
		case "expand":
			time.Sleep(30 * time.Millisecond)
			return workloads.Failed(errors.New("exit 1"))
		case "overlap":
			time.Sleep(40 * time.Millisecond)
		}
		return nil
	}, func(reports.Step) {}, func(ev reports.Step) { mu.Lock(); ended = append(ended, ev.Name+" "+ev.Status); mu.Unlock() })
	if got, want := strings.Join(ran, " "), "warmup expand overlap own other"; got != want {
		t.Errorf("ran %q, want %q", got, want)
	}
	if len(evs) != len(list) {
		t.Fatalf("%d events, want every step reported: %+v", len(evs), evs)
	}
	for _, ev := range evs {
		want := map[string]string{"warmup": "ok", "expand": "failed", "overlap": "ok", "deploy": reports.StepNotRun,
			"contract": reports.StepNotRun, "own": "ok", "other": "ok"}[ev.Name]
		if ev.Status != want {
			t.Errorf("%s: %s %q, want %s", ev.Name, ev.Status, ev.Error, want)
		}
		if ev.Status == reports.StepNotRun && !strings.Contains(ev.Error, "expand failed before it") {
			t.Errorf("%s: %q does not name the block that failed", ev.Name, ev.Error)
		}
		// A block not run is still shown as the runbook's reader knows it.
		if ev.Status == reports.StepNotRun && (ev.Kind != "run" || ev.Did["command"] != "echo "+ev.Name || ev.Did["heading"] != "Do "+ev.Name) {
			t.Errorf("%s: kind %s, did %v", ev.Name, ev.Kind, ev.Did)
		}
	}
	if !slices.Contains(ended, "deploy not-run") {
		t.Errorf("progress never heard of the block not run: %v", ended)
	}
}

func TestTimelineStopsWhenInterrupted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	list := []scenarios.Step{step("long", ""), step("during", "long+10ms"), step("later", ""), step("after-end", "long.end+1s")}
	begun := time.Now()
	evs := timeline(ctx, list, begun, steps.Builtin, func(ctx context.Context, st scenarios.Step, _ *steps.Record) error {
		<-ctx.Done()
		return ctx.Err()
	}, func(reports.Step) {}, func(reports.Step) {})
	if time.Since(begun) > time.Second {
		t.Errorf("took %s after the interrupt", time.Since(begun))
	}
	if len(evs) != 2 || evs[0].Name != "long" || evs[1].Name != "during" || evs[0].Status != "error" {
		t.Errorf("only the steps that started are recorded, as errors: %+v", evs)
	}
}

func TestExitCode(t *testing.T) {
	pass := &reports.Summary{Verdict: reports.VerdictPass}
	for _, c := range []struct {
		sum  *reports.Summary
		err  error
		want int
	}{
		{pass, nil, 0},
		{&reports.Summary{Verdict: reports.VerdictFail}, nil, 1},
		{&reports.Summary{Verdict: reports.VerdictError}, nil, 1}, // a check that could not measure is not a pass
		{nil, harness("no cluster"), 2},
		{pass, harness("reports: disk full"), 2},
		{nil, errors.New("anything"), 2},
	} {
		if got := ExitCode(c.sum, c.err); got != c.want {
			t.Errorf("ExitCode(%v, %v) = %d, want %d", c.sum, c.err, got, c.want)
		}
	}
}

// What this version cannot rehearse is refused before anything is created, with exit 2.
// Check finds, from the kinds' table, what a run would refuse, with file:line and field; validate
// and run call the same function.
// Canary and blue-green take every change rolling takes on one's own workload: image, env, args, a
// patch, a whole manifest — one of them, checked as rolling's are.
func TestTrackedReleasesTakeEveryChange(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"app.yaml":   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
		"web-2.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {metadata: {labels: {app: web}}}}\n",
		"other.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := `apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: t}
cluster: {provider: kind}
workload: {manifests: [app.yaml]}
load: {rate: 5/s, service: web, targets: [{name: r, method: GET, path: /}], version: {json: version}}
verify: {zero-failed-requests: {}}
steps:
`
	check := func(step string) error {
		t.Helper()
		sc, err := scenarios.Parse(filepath.Join(dir, "t.yaml"), []byte(base+step+"\n"))
		if err != nil {
			return err
		}
		if ps := Check(sc); len(ps) > 0 {
			return ps
		}
		return nil
	}
	canary := "  - {name: c, migrate: {strategy: canary, target: deployment/web, version: v2, weights: [50, 100], "
	green := "  - {name: b, migrate: {strategy: blue-green, target: deployment/web, service: web, version: v2, "
	for _, ok := range []string{
		canary + "args: [--color=green]}}",
		canary + "patch: '{spec: {template: {spec: {containers: [{name: web, args: [--color=green]}]}}}}'}}",
		canary + "manifest: web-2.yaml}}",
		green + "args: [--color=green]}}",
		green + "patch: '{spec: {template: {metadata: {annotations: {a: b}}}}}'}}",
		"  - {name: r, migrate: {strategy: rolling, target: deployment/web, args: [--color=green]}}",
	} {
		if err := check(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		canary + "}}": "t.yaml:9: steps[0].migrate: the new release needs one of image/env/args, manifest or patch: it says nothing to change",
		canary + "args: [x], patch: '{spec: {}}'}}":                                                   "the new release needs exactly one of image/env/args, manifest or patch; it says 2: image/env/args, patch",
		canary + "manifest: other.yaml}}":                                                             "steps[0].migrate.manifest: " + filepath.Join(dir, "other.yaml") + ": no Deployment named web (the new version of deployment/web) in it; found Deployment/api",
		green + "image: web:2, manifest: other.yaml}}":                                                "the new release needs exactly one of image/env/args, manifest or patch; it says 2: image/env/args, manifest",
		"  - {name: r, migrate: {strategy: rolling, target: deployment/web, args: [a], patch: '{}'}}": "a rolling change needs exactly one of image/env/args, manifest, patch, kustomize or helm; it says 2: image/env/args, patch",
	} {
		if err := check(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", bad, err, want)
		}
	}
}

func TestCheckReadsTheKindsTable(t *testing.T) {
	base := `apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: t}
cluster: {provider: kind}
workload: {sample: orders-postgres}
load: {rate: 5/s, targets: [{name: r, method: GET, path: /healthz}]}
verify: {zero-failed-requests: {}}
steps:
`
	for step, want := range map[string]string{
		"  - {name: k, fault: {type: node-loss, node: w, keep: true}}":                                                               "t.yaml:9: steps[0].fault.keep: is for node-drain, not node-loss",
		"  - {name: k, fault: {type: node-loss, for: 30s}}":                                                                          "t.yaml:9: steps[0].fault: node-loss needs exactly one of node, label or running (has 0)",
		"  - {name: k, fault: {type: node-drain, node: w, for: 30s}}":                                                                "t.yaml:9: steps[0].fault.for: is for pod-kill and node-loss, not node-drain",
		"  - {name: k, fault: {type: pod-kill, selector: app=orders, mode: percent}}":                                                "t.yaml:9: steps[0].fault.percent: 0: want 1 to 100",
		"  - {name: k, fault: {type: pod-kill, selector: app=orders, every: 5s}}":                                                    "t.yaml:9: steps[0].fault.every: every and for go together",
		"  - {name: k, fault: {type: pod-kill, selector: app=orders, keep: true}}":                                                   "t.yaml:9: steps[0].fault.keep: is for node-drain, not pod-kill",
		"  - {name: k, fault: {type: node-drain, node: a, label: b=c}}":                                                              "t.yaml:9: steps[0].fault: node-drain needs exactly one of node, label or running (has 2)",
		"  - {name: k, fault: {type: node-drain, selector: app=x, node: a}}":                                                         "t.yaml:9: steps[0].fault.selector: is for pod-kill, not node-drain",
		"  - {name: b, migrate: {strategy: blue-green, target: deployment/orders}}":                                                  "t.yaml:9: steps[0].migrate.version: the version to move the sample to is required",
		"  - {name: c, migrate: {strategy: canary, target: deployment/orders, version: v2}}":                                         "t.yaml:9: steps[0].migrate.weights: a canary needs weights",
		"  - {name: c, migrate: {strategy: canary, target: deployment/orders, version: v2, weights: [50, 10]}}":                      "t.yaml:9: steps[0].migrate.weights[1]: 10: weights rise",
		"  - {name: c, migrate: {strategy: canary, target: statefulset/orders-db, version: v2, weights: [50]}}":                      `t.yaml:9: steps[0].migrate.target: "statefulset/orders-db": want deployment/NAME`,
		"  - {name: c, migrate: {strategy: canary, target: deployment/orders, version: v2, weights: [50], expect: maybe}}":           `t.yaml:9: steps[0].migrate.expect: "maybe"`,
		"  - {name: c, migrate: {strategy: canary, target: deployment/orders, version: v2, weights: [50], keep: 5s}}":                "t.yaml:9: steps[0].migrate.keep: is for the blue-green strategy, not canary",
		"  - {name: c, migrate: {strategy: canary, target: deployment/orders, version: v2, weights: [50], gate: {maxErrorRate: 2}}}": "t.yaml:9: steps[0].migrate.gate.maxErrorRate: 2",
		"  - {name: c, migrate: {strategy: blue-green, target: deployment/orders, version: v2, image: x:1}}":                         "t.yaml:9: steps[0].migrate: the sample's releases are versions",
		"  - {name: p, migrate: {strategy: rolling, target: statefulset/orders-db, env: {A: b}, partitions: [2, 1]}}":                "t.yaml:9: steps[0].migrate.partitions: the last partition is 1",
		"  - {name: p, migrate: {strategy: rolling, target: statefulset/orders-db, env: {A: b}, partitions: [1, 2, 0]}}":             "t.yaml:9: steps[0].migrate.partitions[1]: 2: partitions fall",
		"  - {name: p, migrate: {strategy: rolling, target: deployment/orders, version: v2, partitions: [0]}}":                       "t.yaml:9: steps[0].migrate.partitions: partitions are a StatefulSet's",
		"  - {name: d, rollback: {target: schema/shrink, within: 30s}}":                                                              `t.yaml:9: steps[0].rollback.target: "schema/shrink": want schema/expand`,
		"  - {name: v, migrate: {strategy: schema, step: contract, version: v3}}":                                                    "t.yaml:9: steps[0].migrate: a schema step changes no version",
		"  - {name: v, migrate: {strategy: rolling, target: deployment/orders, version: v7}}":                                        `t.yaml:9: steps[0].migrate.version: unknown version "v7"`,
		"  - {name: v, migrate: {strategy: rolling, target: deployment/orders}}":                                                     "t.yaml:9: steps[0].migrate: a rolling change needs one of version (the sample), image/env/args, manifest, patch, kustomize or helm: it says nothing to change",
		"  - {name: v, migrate: {strategy: rolling, target: service/orders, version: v2}}":                                           `t.yaml:9: steps[0].migrate.target: "service/orders"`,
		"  - {name: v, migrate: {strategy: schema, target: deployment/orders, step: shrink}}":                                        `t.yaml:9: steps[0].migrate.step: schema step "shrink"`,
		"  - {name: v, migrate: {strategy: rolling, target: deployment/orders, manifest: x.yaml}}":                                   "t.yaml:9: steps[0].migrate.manifest: a manifest rolls one's own workload",
		"  - {name: s, switchover: {to: orders-db-3}}":                                                                               `t.yaml:9: steps[0].switchover.to: "orders-db-3": want a member of the sample's database, orders-db-0 to orders-db-2`,
		"  - {name: s, switchover: {to: db-01}}":                                                                                     `t.yaml:9: steps[0].switchover.to: "db-01"`,
	} {
		sc, err := scenarios.Parse("t.yaml", []byte(base+step+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		ps := Check(sc)
		if len(ps) == 0 || !strings.Contains(ps.Error(), want) {
			t.Errorf("%s: %v, want %q", step, ps, want)
		}
	}
	for _, step := range []string{"  - {name: s, scale: {target: deployment/orders, replicas: 0}}",
		"  - {name: r, migrate: {strategy: rolling, target: deployment/orders, version: v2}}",
		"  - {name: d, rollback: {target: deployment/orders, within: 30s}}",
		"  - {name: b, migrate: {strategy: blue-green, target: deployment/orders, version: v2, keep: 5s, smoke: {path: /healthz}}}",
		"  - {name: c, migrate: {strategy: canary, target: deployment/orders, version: v2-bad, weights: [34, 100], hold: 5s, expect: rolled-back, gate: {maxErrorRate: 0.01}}}",
		"  - {name: e, migrate: {strategy: schema, step: expand, down: true}}",
		"  - {name: d, rollback: {target: schema/expand, within: 30s}}",
		"  - {name: k, fault: {type: pod-kill, selector: app=orders, mode: percent, percent: 50, grace: 0s, every: 5s, for: 20s}}",
		"  - {name: k, fault: {type: node-drain, running: {selector: statefulset.kubernetes.io/pod-name=orders-db-0}, timeout: 30s}}",
		"  - {name: k, fault: {type: node-drain, node: random-worker, keep: true}}",
		"  - {name: p, migrate: {strategy: rolling, target: statefulset/orders-db, container: postgres, env: {A: b}, partitions: [2, 1, 0]}}",
		"  - {name: s, switchover: {to: orders-db-2, within: 10s}}",
		"  - {name: f, failover: {after: 2s, rejoin: 1m}}"} {
		sc, err := scenarios.Parse("t.yaml", []byte(base+step+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if ps := Check(sc); len(ps) > 0 {
			t.Errorf("%s is implemented: %v", step, ps)
		}
	}
	sc, err := scenarios.Parse("t.yaml", []byte(strings.Replace(base, "verify: {zero-failed-requests: {}}", "verify: {rollback-drill: {}}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if ps := Check(sc); len(ps) != 3 || !strings.Contains(ps.Error(), "t.yaml:7: verify.rollback-drill: no rollback step to judge") {
		t.Errorf("rollback-drill without a drill or its companion checks: %v", ps)
	}
}

// switchover and failover are the sample's: one's own workload is refused at the step's line, and
// replication is the sample's setting.
func TestTopologyStepsAreTheSamples(t *testing.T) {
	own := `apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: t}
cluster: {provider: kind}
workload: {manifests: [m.yaml], replication: sync}
load: {rate: 5/s, service: web, targets: [{name: r, method: GET, path: /}]}
verify: {zero-failed-requests: {}}
steps:
  - {name: f, failover: {}}
`
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "m.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), 0o644)
	_, err := scenarios.Parse(filepath.Join(dir, "t.yaml"), []byte(own))
	if err == nil || !strings.Contains(err.Error(), "workload.replication: sets the sample's replication") {
		t.Errorf("replication on one's own workload: %v", err)
	}
	sc, err := scenarios.Parse(filepath.Join(dir, "t.yaml"), []byte(strings.Replace(own, ", replication: sync", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if ps := Check(sc); !strings.Contains(ps.Error(), "t.yaml:9: steps[0].failover: changes the sample's database primary") {
		t.Errorf("failover on one's own workload: %v", ps)
	}
}

func TestOutcomeTellsSystemFailuresFromHarnessErrors(t *testing.T) {
	rollout := workloads.Failed(fmt.Errorf("deployment/web not rolled out: %w", context.DeadlineExceeded))
	if got := outcome(fmt.Errorf("step: %w", rollout)); got != "failed" {
		t.Errorf("a rollout that never became ready: %s, want failed", got)
	}
	if got := outcome(errors.New("dial tcp 127.0.0.1:6443: connection refused")); got != "error" {
		t.Errorf("an unreachable API: %s, want error", got)
	}
}

func TestDefaultMinRequests(t *testing.T) {
	for _, c := range []struct {
		t    load.Totals
		want int
	}{
		{load.Totals{Duration: 60 * time.Second, Scheduled: 3000}, 60},     // 50/s: one a second
		{load.Totals{Duration: 60 * time.Second, Scheduled: 30}, 15},       // 0.5/s: half the schedule
		{load.Totals{Duration: 60 * time.Second}, 60},                      // saturation: no schedule
		{load.Totals{Duration: 100 * time.Millisecond, Scheduled: 0.5}, 1}, // never below one
	} {
		if got := verify.DefaultMinRequests(c.t); got != c.want {
			t.Errorf("%+v: %d, want %d", c.t, got, c.want)
		}
	}
}

// Load reports the file's problems and the step kinds' at once: a badly typed rate hides neither an
// unknown version of the sample nor a template field that does not exist.
func TestLoadReportsEverything(t *testing.T) {
	p := filepath.Join(t.TempDir(), "t.yaml")
	src := `apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: t}
cluster: {provider: kind}
workload: {sample: orders-postgres}
load:
  rate: -5/s
  targets: [{name: w, method: POST, path: /orders, body: '{{.Nope}}'}]
steps:
  - {name: r, migrate: {strategy: rolling, target: deployment/orders, version: v7}}
verify: {zero-failed-requests: {}}
`
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil {
		t.Fatal("no problem found")
	}
	for _, want := range []string{"t.yaml:7: load.rate", "t.yaml:8: load.targets[0].body", `t.yaml:10: steps[0].migrate.version: unknown version "v7"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nwant %q", err, want)
		}
	}
}

func TestRelativeFile(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, want string }{
		{filepath.Join(wd, "testdata", "x.yaml"), "testdata/x.yaml"},
		{"./scenarios/../s.yaml", "s.yaml"},
		{filepath.Join(filepath.Dir(wd), "scenarios", "smoke.yaml"), "../scenarios/smoke.yaml"},
		{"", ""},
	} {
		if got := RelativeFile(c.in); got != c.want {
			t.Errorf("RelativeFile(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Each step gets the load whose own time lies in its exact window, by the rule failures are
// attributed with: a scale-down under load, 20 failures all after +5.2 s, charges none of them to the
// warmup wait that ended at +5.0 s (counting whole seconds charged it 8 of 20), and the table and the
// attribution agree for every step that changes something.
func TestStepLoadsExactWindowsAgreeWithAttribution(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	agg := load.NewAggregator(start)
	failures := 0
	for i := range 1000 { // 50/s for 20 s
		at := start.Add(time.Duration(i) * 20 * time.Millisecond)
		r := &vegeta.Result{Timestamp: at, Latency: 5 * time.Millisecond, Code: 200}
		if at.After(start.Add(5200*time.Millisecond)) && failures < 20 && i%3 == 0 {
			r.Code, r.Error = 0, "connection refused"
			failures++
		}
		agg.Add(r)
	}
	ran := []reports.Step{
		{Name: "warmup", Kind: "wait", Started: start, Finished: start.Add(5 * time.Second)},
		{Name: "scale-down", Kind: "scale", Started: start.Add(5 * time.Second), Finished: start.Add(12 * time.Second)},
		{Name: "kill", Kind: "fault/pod-kill", Started: start.Add(5500 * time.Millisecond), Finished: start.Add(6 * time.Second)},
	}
	stepLoads(ran, agg.Window)
	if l := ran[0].Load; l.Failed != 0 || l.Requests != 251 {
		t.Errorf("warmup: %+v, want 251 requests (0 s to 5.0 s, both ends), 0 failed", l)
	}
	if l := ran[1].Load; l.Failed != 20 || l.Requests != 351 {
		t.Errorf("scale-down: %+v, want 351 requests and all 20 failures", l)
	}
	var windows []verify.Window
	for _, s := range ran {
		windows = append(windows, verify.Window{Name: s.Name, Kind: s.Kind, Start: s.Started, End: s.Finished})
	}
	by := verify.Attribute(agg.Failures(), windows)
	for _, s := range ran[1:] {
		charged := 0
		for key, n := range by {
			if slices.Contains(strings.Split(key, "+"), s.Name) {
				charged += n
			}
		}
		if charged != s.Load.Failed {
			t.Errorf("%s: table says %d failed, attribution charges it %d (%v)", s.Name, s.Load.Failed, charged, by)
		}
	}
}

// The verify section is the check table's to judge: unknown checks, options a check does not take
// (they would be ignored), each check's own option problems and what it needs of the scenario, at
// the file's line; and options a check takes pass.
func TestChecksTable(t *testing.T) {
	base := `apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: t}
cluster: {provider: kind}
workload: {sample: orders-postgres}
load: {rate: 5/s, targets: [{name: r, method: GET, path: /healthz}]}
steps:
  - {name: k, fault: {type: pod-kill, selector: app=orders}}
  - {name: v, migrate: {strategy: rolling, target: deployment/orders, version: v2}}
verify:
`
	for check, want := range map[string]string{
		"  zero-failed: {}":                                "t.yaml:11: verify.zero-failed: unknown check; known: zero-failed-requests, acked-writes-durable",
		"  fault-took-effect: {max: 3}":                    "t.yaml:11: verify.fault-took-effect.max: fault-took-effect takes no option: max would be ignored",
		"  served-version: {readPath: '/x/{{.ID}}'}":       "t.yaml:11: verify.served-version.readPath: served-version takes only minRequests: readPath would be ignored",
		"  load-achieved: {max: 0}":                        "t.yaml:11: verify.load-achieved.max: load-achieved takes only minShare, minRequests: max would be ignored",
		"  zero-failed-requests: {minServe: 2s}":           "verify.zero-failed-requests.minServe: zero-failed-requests takes only max, minRequests",
		"  zero-failed-requests: {max: -1}":                "t.yaml:11: verify.zero-failed-requests.max: must not be negative",
		"  zero-failed-requests: {minRequests: -1}":        "t.yaml:11: verify.zero-failed-requests.minRequests: must not be negative",
		"  load-achieved: {minShare: 2}":                   "t.yaml:11: verify.load-achieved.minShare: must be between 0 and 1",
		"  latency-slo: {p99: 5s}":                         "t.yaml:11: verify.latency-slo.p99: 5s is not under load.timeout (5s)",
		"  latency-slo: {p99: 1s, per: pod}":               `t.yaml:11: verify.latency-slo.per: "pod": want step`,
		"  latency-slo: {}":                                "t.yaml:11: verify.latency-slo: needs p50 or p99",
		"  acked-writes-durable: {readPath: /healthz}":     `t.yaml:11: verify.acked-writes-durable.readPath: "/healthz" must contain {{.ID}}`,
		"  acked-writes-durable: {found: {status: [700]}}": "t.yaml:11: verify.acked-writes-durable.found.status: 700 is not an HTTP status",
		"  acked-writes-durable: {minAcked: -2}":           "t.yaml:11: verify.acked-writes-durable.minAcked: must not be negative",
		"  graceful-termination: {max: -1}":                "t.yaml:11: verify.graceful-termination.max: must not be negative",
		"  graceful-termination: {p99: 1s}":                "verify.graceful-termination.p99: graceful-termination takes only max, minServe",
		"  rollback-drill: {}":                             "t.yaml:11: verify.rollback-drill: no rollback step to judge",
		"  {}":                                             "verify: no checks",
	} {
		src := base + check + "\n"
		if check == "  {}" {
			src = strings.Replace(base, "verify:\n", "verify: {}\n", 1)
		}
		sc, err := scenarios.Parse("t.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", check, err)
		}
		if ps := Check(sc); len(ps) == 0 || !strings.Contains(ps.Error(), want) {
			t.Errorf("%s: %v\nwant %q", check, ps, want)
		}
	}
	for _, check := range []string{"  zero-failed-requests: {max: 3, minRequests: 10}", "  fault-took-effect: {}",
		"  served-version: {minRequests: 5}", "  load-achieved: {minShare: 0.9, minRequests: 10}", "  latency-slo: {p50: 100ms, p99: 1s, per: step}",
		"  acked-writes-durable: {minAcked: 5}", "  graceful-termination: {max: 1, minServe: 3s}", "  replica-checksums: {}"} {
		sc, err := scenarios.Parse("t.yaml", []byte(base+check+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if ps := Check(sc); len(ps) > 0 {
			t.Errorf("%s refused: %v", check, ps)
		}
	}
	// One's own workload: the data checks say what they need of it.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	own := strings.Replace(base, "workload: {sample: orders-postgres}", "workload: {manifests: [web.yaml]}", 1)
	own = strings.Replace(own, "load: {rate: 5/s,", "load: {rate: 5/s, service: web,", 1)
	own = strings.Replace(own, "version: v2}}", "image: web:2}}", 1)
	sc, err := scenarios.Parse(filepath.Join(dir, "t.yaml"), []byte(own+"  replica-checksums: {}\n  acked-writes-durable: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ps := Check(sc).Error()
	for _, want := range []string{"t.yaml:11: verify.replica-checksums: your own workload needs workload.checksum",
		"t.yaml:12: verify.acked-writes-durable.readPath: your own workload needs a readPath"} {
		if !strings.Contains(ps, want) {
			t.Errorf("own workload: %s\nwant %q", ps, want)
		}
	}
}

var update = flag.Bool("update", false, "rewrite scenarios/scenario.schema.json")

// The JSON Schema is derived from the types and the check table: each check with the options it
// takes and no other. `go test ./runner -run TestSchemaIsCurrent -update` rewrites it.
func TestSchemaIsCurrent(t *testing.T) {
	got, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	const file = "../scenarios/scenario.schema.json"
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shipped, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(shipped) != string(got) {
		t.Fatal("scenario.schema.json is stale: run `go test ./runner -run TestSchemaIsCurrent -update`")
	}
	var s struct {
		Properties struct {
			Verify struct {
				Properties map[string]struct {
					Properties           map[string]any `json:"properties"`
					AdditionalProperties bool           `json:"additionalProperties"`
				} `json:"properties"`
				AdditionalProperties bool `json:"additionalProperties"`
			} `json:"verify"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(got, &s); err != nil {
		t.Fatal(err)
	}
	v := s.Properties.Verify
	if len(v.Properties) != len(verify.Table) || v.AdditionalProperties {
		t.Fatalf("verify: %d checks (want %d), additionalProperties %v", len(v.Properties), len(verify.Table), v.AdditionalProperties)
	}
	for _, c := range verify.Table {
		p := v.Properties[c.Name()]
		if len(p.Properties) != len(c.Options()) || p.AdditionalProperties {
			t.Errorf("%s: options %v, want %v only", c.Name(), p.Properties, c.Options())
		}
	}
}

// README's table of checks is the check table's: a row for each check, naming the options it takes
// and no other, and no row for a check there is not.
func TestREADMEChecksAreTheTable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	tick := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell := strings.Split(line, "|")[1]
		ms := tick.FindAllStringSubmatch(cell, -1)
		name := ms[0][1]
		if verify.Table.Find(name) == nil && !strings.HasPrefix(name, "step-") {
			continue // another table
		}
		var opts []string
		for _, m := range ms[1:] {
			opt, _, _ := strings.Cut(m[1], ":")
			opts = append(opts, opt)
		}
		rows[name] = opts
	}
	for _, c := range verify.Table {
		got, ok := rows[c.Name()]
		want := slices.Clone(c.Options())
		slices.Sort(got)
		slices.Sort(want)
		if !ok || !slices.Equal(got, want) {
			t.Errorf("README's row of %s names options %v (found %v), the table %v", c.Name(), got, ok, want)
		}
	}
}

// A Pod Security refusal under the scenario's own enforce label names that label; other errors, or a
// namespace without it, get no hint.
func TestAdmissionHint(t *testing.T) {
	refused := errors.New(`ReplicaSet web-1 in namespace rehearse-x cannot create its pods, and will not by itself: pods "web-1-a" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true`)
	meta := &scenarios.NamespaceMeta{Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "team": "a"}}
	if h := admissionHint(refused, meta); !strings.Contains(h, "workload.namespace.labels set pod-security.kubernetes.io/enforce: restricted") {
		t.Errorf("hint %q", h)
	}
	for _, c := range []struct {
		err  error
		meta *scenarios.NamespaceMeta
	}{
		{refused, nil},
		{refused, &scenarios.NamespaceMeta{Labels: map[string]string{"team": "a"}}},
		{errors.New("timed out"), meta},
	} {
		if h := admissionHint(c.err, c.meta); h != "" {
			t.Errorf("admissionHint(%v, %v) = %q, want none", c.err, c.meta, h)
		}
	}
}

// Load comes from the host where the cluster's node ports are on loopback (a local kind cluster, or
// a loopback baseURL), from the cluster anywhere else, and from where load.from says when it does.
func TestLoadFrom(t *testing.T) {
	kind := &kindCluster{}
	for _, c := range []struct {
		from, base string
		kc         *kindCluster
		want       string
	}{
		{"", "", kind, "host"},
		{"", "", nil, "cluster"},
		{"", "http://127.0.0.1:30080", nil, "host"},
		{"cluster", "", kind, "cluster"},
		{"host", "", nil, "host"},
	} {
		sc := &scenarios.Loaded{Scenario: &scenarios.Scenario{}}
		sc.Load.From, sc.Load.BaseURL = c.from, c.base
		if got := loadFrom(sc, c.kc); got != c.want {
			t.Errorf("from %q, baseURL %q, kind %v: %s, want %s", c.from, c.base, c.kc != nil, got, c.want)
		}
	}
}
