package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workloads"
)

func TestAtTime(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	started := map[string]time.Time{"rollout": start.Add(20 * time.Second)}
	if at, ok := atTime("30s", start, started); !ok || !at.Equal(start.Add(30*time.Second)) {
		t.Errorf("30s: %v %v", at, ok)
	}
	if at, ok := atTime("rollout+5s", start, started); !ok || !at.Equal(start.Add(25*time.Second)) {
		t.Errorf("rollout+5s: %v %v", at, ok)
	}
	if _, ok := atTime("later+5s", start, started); ok {
		t.Errorf("a step that has not started gives no time")
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
