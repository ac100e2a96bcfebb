package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/verify"
)

func writeSummary(t *testing.T, dir string, s reports.Summary) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s)
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCompareCommand(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	run := func(name string, p99 float64, failed int) reports.Summary {
		st := verify.Pass
		if failed > 0 {
			st = verify.Fail
		}
		return reports.Summary{Scenario: name, Verdict: string(st), Started: t0, Finished: t0.Add(time.Minute),
			Load:   reports.LoadSummary{Requests: 3000, Failed: failed, TargetRate: 50, AchievedRate: 49.9, LatencyMS: map[string]float64{"p99": p99}},
			Checks: []verify.Result{{Name: "zero-failed-requests", Status: st, Message: "some failed"}}}
	}
	dir := t.TempDir()
	base, same, stalled := filepath.Join(dir, "base"), filepath.Join(dir, "same"), filepath.Join(dir, "stalled")
	writeSummary(t, filepath.Join(base, "smoke"), run("smoke", 20, 0))
	writeSummary(t, filepath.Join(base, "canary-orders"), run("canary-orders", 30, 0))
	writeSummary(t, filepath.Join(same, "smoke"), run("smoke", 21, 0))
	writeSummary(t, filepath.Join(same, "canary-orders"), run("canary-orders", 29, 0))
	writeSummary(t, filepath.Join(stalled, "smoke"), run("smoke", 100, 40))
	writeSummary(t, filepath.Join(stalled, "own-web"), run("own-web", 5, 0))

	code := func(err error) int {
		var ec exitCode
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ec):
			return ec.code
		}
		return exitError // what main exits with for any other error (bad flags, arguments)
	}
	for _, c := range []struct {
		args []string
		code int
		out  []string // in stdout
		err  string   // in the error main prints
	}{
		{[]string{base, same}, 0, []string{"0 regressions, 0 improvements in 2 scenarios compared", "same         p99: 20.0 ms → 21.0 ms"}, ""},
		{[]string{base, stalled}, 1, []string{"REGRESSION   check zero-failed-requests: pass → fail", "REGRESSION   p99: 20.0 ms → 100.0 ms (+400%",
			"canary-orders: only in " + base, "own-web: only in " + stalled},
			"3 regressions: smoke: check zero-failed-requests: pass → fail; smoke: failed requests: 0 → 40"},
		{[]string{filepath.Join(base, "smoke"), filepath.Join(stalled, "smoke", "summary.json"), "--format", "markdown"}, 1,
			[]string{"## rehearse compare: 3 REGRESSIONS", "| smoke | p99 | 20.0 ms | 100.0 ms |"}, "smoke: p99: 20.0 ms → 100.0 ms"},
		{[]string{base, stalled, "--max-p99-increase", "500%", "--max-failed-increase", "40"}, 1, nil, "1 regression: smoke: check zero-failed-requests"},
		{[]string{filepath.Join(base, "smoke"), filepath.Join(stalled, "smoke"), "--p99-slack", "1s"}, 1, nil, "2 regressions"},
		{[]string{base, filepath.Join(dir, "missing")}, 2, nil, "no such file"},
		{[]string{base, same, "--format", "html"}, 2, nil, "text or markdown"},
		{[]string{base, same, "--max-p99-increase", "lots"}, 2, nil, "a percentage"},
		{[]string{base}, 2, nil, "accepts 2 arg(s)"},
	} {
		out, err := execute(append([]string{"compare"}, c.args...)...)
		if got := code(err); got != c.code {
			t.Errorf("compare %v: exit %d (%v), want %d\n%s", c.args, got, err, c.code, out)
			continue
		}
		for _, want := range c.out {
			if !strings.Contains(out, want) {
				t.Errorf("compare %v: output lacks %q:\n%s", c.args, want, out)
			}
		}
		if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("compare %v: error %v, want one with %q", c.args, err, c.err)
		}
	}
}

func TestPercentFlag(t *testing.T) {
	for in, want := range map[string]float64{"20%": 0.2, "20": 0.2, "0.5%": 0.005, " 150% ": 1.5} {
		var p percent
		if err := p.Set(in); err != nil || float64(p) != want {
			t.Errorf("Set(%q) = %v, %v; want %v", in, float64(p), err, want)
		}
	}
	for _, in := range []string{"-5%", "x", ""} {
		var p percent
		if err := p.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
	p := percent(0.2)
	if p.String() != "20%" {
		t.Errorf("String() = %q", p.String())
	}
}
