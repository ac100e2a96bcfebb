package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/scenarios"
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
func TestTimeline(t *testing.T) {
	start := time.Now()
	took := map[string]time.Duration{"rollout": 300 * time.Millisecond, "kill": 50 * time.Millisecond, "after": 20 * time.Millisecond,
		"drain": 20 * time.Millisecond, "early": 10 * time.Millisecond, "next": 10 * time.Millisecond}
	steps := []scenarios.Step{step("rollout", ""), step("kill", "rollout+100ms"), step("after", "rollout.end+50ms"),
		step("drain", ""), step("early", "20ms"), step("next", "")}
	var mu sync.Mutex
	var began []string
	evs := timeline(context.Background(), steps, start, func(ctx context.Context, st scenarios.Step) error {
		time.Sleep(took[st.Name])
		if st.Name == "kill" {
			return workloads.Failed(errors.New("pod did not come back"))
		}
		return nil
	}, func(ev reports.Step) { mu.Lock(); began = append(began, ev.Name); mu.Unlock() }, func(reports.Step) {})
	if len(evs) != len(steps) {
		t.Fatalf("%d events: %+v", len(evs), evs)
	}
	by := map[string]reports.Step{}
	for _, ev := range evs {
		by[ev.Name] = ev
	}
	near := func(what string, got, want time.Time) {
		if d := got.Sub(want); d < 0 || d > 40*time.Millisecond {
			t.Errorf("%s at %s, want %s", what, got.Sub(start), want.Sub(start))
		}
	}
	r := by["rollout"]
	near("rollout", r.Started, start)
	near("kill (rollout+100ms)", by["kill"].Started, r.Started.Add(100*time.Millisecond))
	if !by["kill"].Started.Before(r.Finished) {
		t.Errorf("kill must run during the rollout")
	}
	near("after (rollout.end+50ms)", by["after"].Started, r.Finished.Add(50*time.Millisecond))
	near("early (20ms)", by["early"].Started, start.Add(20*time.Millisecond))
	// drain has no at: it waits for every earlier step, kill and after included.
	near("drain", by["drain"].Started, by["after"].Finished)
	near("next", by["next"].Started, maxTime(by["drain"].Finished, by["early"].Finished))
	if !by["kill"].Planned.Equal(r.Started.Add(100 * time.Millisecond)) {
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

func TestTimelineStopsWhenInterrupted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	steps := []scenarios.Step{step("long", ""), step("during", "long+10ms"), step("later", ""), step("after-end", "long.end+1s")}
	begun := time.Now()
	evs := timeline(ctx, steps, begun, func(ctx context.Context, st scenarios.Step) error {
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
func TestSupportedRefusesWhatIsNotImplemented(t *testing.T) {
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
		"  - {name: k, fault: {type: pod-kill, selector: app=orders}}":                           "fault steps are not implemented",
		"  - {name: b, migrate: {strategy: blue-green, target: deployment/orders, version: v2}}": "blue-green strategy is not implemented",
		"  - {name: d, rollback: {target: deployment/orders, within: 30s}}":                      "rollback drills are not implemented",
	} {
		sc, err := scenarios.Parse("t.yaml", []byte(base+step+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		err = supported(sc)
		if err == nil || !strings.Contains(err.Error(), want) || ExitCode(nil, err) != 2 {
			t.Errorf("%s: %v", step, err)
		}
	}
	sc, err := scenarios.Parse("t.yaml", []byte(base+"  - {name: s, scale: {target: deployment/orders, replicas: 0}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := supported(sc); err != nil {
		t.Errorf("scale is supported: %v", err)
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
		if got := defaultMinRequests(c.t); got != c.want {
			t.Errorf("%+v: %d, want %d", c.t, got, c.want)
		}
	}
}
