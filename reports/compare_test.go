package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/verify"
)

// healthy is a passing rehearsal as summary.json holds it (read back from JSON, as compare reads it).
func healthy(t *testing.T) Summary {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s := Summary{
		Scenario: "rolling-orders", Verdict: VerdictPass, Started: t0, Finished: t0.Add(60 * time.Second), Seed: 1,
		Load: LoadSummary{Requests: 3000, Succeeded: 3000, TargetRate: 50, AchievedRate: 49.9, LatencyMS: map[string]float64{"p50": 3, "p99": 20, "max": 80}},
		Steps: []Step{
			{Name: "rollout", Kind: "migrate/rolling", Status: "ok", Started: t0.Add(10 * time.Second), Finished: t0.Add(30 * time.Second),
				Load: &StepLoad{Requests: 1000, P50MS: 3, P99MS: 22}},
			{Name: "drain", Kind: "fault/node-drain", Status: "ok", Started: t0.Add(30 * time.Second), Finished: t0.Add(40 * time.Second),
				Did: map[string]any{"drain": verify.Drain{Node: "w1", Evicted: []string{"a"}, DrainS: 10, Emptied: true}}},
			{Name: "canary", Kind: "migrate/canary", Status: "rolled-back", Started: t0.Add(40 * time.Second), Finished: t0.Add(45 * time.Second),
				Did: map[string]any{"outcome": "rolled-back", "time_to_restore_s": 4.5}},
			{Name: "undo", Kind: "rollback", Status: "ok", Started: t0.Add(45 * time.Second), Finished: t0.Add(50 * time.Second)},
		},
		Checks: []verify.Result{
			{Name: "zero-failed-requests", Status: verify.Pass, Message: "0 of 3000 requests failed"},
			{Name: "latency-slo", Status: verify.Pass, Message: "p99 20.0ms within bounds"},
			{Name: "rollback-drill", Status: verify.Pass, Message: "undo: restored to v1 in 6.0s",
				Observed: map[string]any{"undo": map[string]any{"restored": true, "time_to_restore_s": 6.0}}},
			{Name: "fault-took-effect", Status: verify.Pass, Message: "drain: w1 drained in 10.0s"},
		},
	}
	return fromDisk(t, s)
}

func fromDisk(t *testing.T, s Summary) Summary {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out Summary
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func check(s *Summary, name string) *verify.Result {
	for i := range s.Checks {
		if s.Checks[i].Name == name {
			return &s.Checks[i]
		}
	}
	panic("no check " + name)
}

func step(s *Summary, name string) *Step {
	for i := range s.Steps {
		if s.Steps[i].Name == name {
			return &s.Steps[i]
		}
	}
	panic("no step " + name)
}

func TestCompare(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Summary)
		th   func(*Thresholds)
		// regressions and improvements expected, by what changed (exactly these)
		regressions, improvements []string
	}{
		{name: "two healthy runs, with noise", edit: func(s *Summary) {
			s.Load.LatencyMS["p99"] = 23                   // +15%
			s.Load.AchievedRate = 48.0                     // -3.8%
			step(s, "rollout").Load.P99MS = 26             // +18%
			step(s, "canary").Did["time_to_restore_s"] = 5 // +11%
			step(s, "drain").Did["drain"].(map[string]any)["drain_s"] = 11.5
			check(s, "rollback-drill").Observed["undo"].(map[string]any)["time_to_restore_s"] = 7.0
		}},
		{name: "a stall: p99 5x, failed requests up", edit: func(s *Summary) {
			s.Load.LatencyMS["p99"] = 100
			s.Load.Failed, s.Load.Succeeded = 120, 2880
			step(s, "rollout").Load.P99MS, step(s, "rollout").Load.Failed = 110, 120
		}, regressions: []string{"failed requests", "p99", "p99 during rollout", "failed during rollout"}},
		{name: "a check pass → fail", edit: func(s *Summary) {
			c := check(s, "zero-failed-requests")
			c.Status, c.Message = verify.Fail, "3 of 3000 requests failed, budget 0; by step in flight: rollout: 3\nmore"
			s.Load.Failed = 3
		}, regressions: []string{"check zero-failed-requests", "failed requests"}},
		{name: "pass → error is a regression, too", edit: func(s *Summary) {
			check(s, "latency-slo").Status = verify.Error
		}, regressions: []string{"check latency-slo"}},
		{name: "a step that now fails: its check appears", edit: func(s *Summary) {
			step(s, "rollout").Status = "failed"
			s.Checks = append(s.Checks, verify.Result{Name: "step-rollout", Status: verify.Fail, Message: "the system failed the step: never ready"})
		}, regressions: []string{"check step-rollout"}},
		{name: "p99 up 50% but by 2 ms: noise", edit: func(s *Summary) {
			s.Load.LatencyMS["p99"] = 4
		}, th: func(th *Thresholds) {}, improvements: []string{"p99"}}, // 20 → 4 ms is an improvement
		{name: "achieved rate -10%", edit: func(s *Summary) { s.Load.AchievedRate = 44.9 }, regressions: []string{"achieved rate"}},
		{name: "another target: shares compared", edit: func(s *Summary) {
			s.Load.TargetRate, s.Load.AchievedRate = 100, 99.8 // 99.8% vs 99.8%: the same
		}},
		{name: "restore and drain slower", edit: func(s *Summary) {
			step(s, "canary").Did["time_to_restore_s"] = 12.0
			step(s, "drain").Did["drain"].(map[string]any)["drain_s"] = 25.0
			check(s, "rollback-drill").Observed["undo"].(map[string]any)["time_to_restore_s"] = 30.0
		}, regressions: []string{"time to restore (canary)", "drain time (drain)", "time to restore (undo)"}},
		{name: "a drill that never restored", edit: func(s *Summary) {
			c := check(s, "rollback-drill")
			c.Status, c.Observed = verify.Fail, map[string]any{"undo": map[string]any{"restored": false}}
		}, regressions: []string{"check rollback-drill", "time to restore (undo)"}},
		{name: "looser thresholds let the stall's p99 pass", edit: func(s *Summary) {
			s.Load.LatencyMS["p99"] = 100
			s.Load.Failed = 3
		}, th: func(th *Thresholds) { th.P99Increase, th.FailedIncrease = 5, 5 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			base, new := healthy(t), healthy(t)
			c.edit(&new)
			th := DefaultThresholds()
			if c.th != nil {
				c.th(&th)
			}
			cmp := Compare([]Summary{base}, []Summary{new}, th)
			var regs, imps []string
			for _, r := range cmp.Regressions() {
				regs = append(regs, r.What)
			}
			for _, r := range cmp.Improvements() {
				imps = append(imps, r.What)
			}
			if !sameSet(regs, c.regressions) || !sameSet(imps, c.improvements) {
				var all bytes.Buffer
				cmp.Text(&all, "base", "new")
				t.Errorf("regressions %q, improvements %q; want %q, %q\n%s", regs, imps, c.regressions, c.improvements, all.String())
			}
			// The reverse comparison turns each regression of a figure into an improvement.
			back := Compare([]Summary{new}, []Summary{base}, th)
			for _, r := range cmp.Regressions() {
				if !strings.HasPrefix(r.What, "check ") && !strings.HasPrefix(r.What, "time to restore") && !slices.ContainsFunc(back.Improvements(), func(i Change) bool { return i.What == r.What }) {
					t.Errorf("%s regressed base → new but did not improve new → base", r.What)
				}
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestCompareChecks(t *testing.T) {
	base, new := healthy(t), healthy(t)
	check(&base, "latency-slo").Status = verify.Fail
	check(&base, "fault-took-effect").Status = verify.Fail
	check(&new, "fault-took-effect").Status = verify.Error
	base.Checks = append(base.Checks, verify.Result{Name: "step-undo", Status: verify.Error})
	new.Checks = append(new.Checks, verify.Result{Name: "served-version", Status: verify.Pass})
	got := map[string]ChangeKind{}
	for _, ch := range Compare([]Summary{base}, []Summary{new}, DefaultThresholds()).Scenarios[0].Changes {
		if strings.HasPrefix(ch.What, "check ") {
			got[ch.What] = ch.Kind
		}
	}
	want := map[string]ChangeKind{
		"check zero-failed-requests": Same, "check rollback-drill": Same,
		"check latency-slo":       Improvement, // fail → pass
		"check fault-took-effect": Changed,     // fail → error: not passing either way
		"check step-undo":         Improvement, // a failing step's check gone
		"check served-version":    Changed,     // a new check that passes
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("checks: %v, want %v", got, want)
	}
}

// Suites match scenarios by name; one in a single run is reported, not a regression.
func TestCompareSuites(t *testing.T) {
	a, b, c := healthy(t), healthy(t), healthy(t)
	b.Scenario, c.Scenario = "canary-orders", "smoke"
	stalled := b
	stalled.Load.LatencyMS = map[string]float64{"p99": 200}
	cmp := Compare([]Summary{a, b}, []Summary{stalled, c}, DefaultThresholds())
	var names []string
	for _, s := range cmp.Scenarios {
		names = append(names, s.Name+":"+s.OnlyIn)
	}
	if fmt.Sprint(names) != "[rolling-orders:base canary-orders: smoke:new]" {
		t.Errorf("scenarios %v", names)
	}
	regs := cmp.Regressions()
	if len(regs) != 1 || regs[0].Scenario != "canary-orders" || regs[0].What != "p99" {
		t.Errorf("regressions %+v", regs)
	}
	// Two single runs are compared whatever their names.
	one := Compare([]Summary{a}, []Summary{c}, DefaultThresholds())
	if len(one.Scenarios) != 1 || one.Scenarios[0].OnlyIn != "" || one.Scenarios[0].BaseName != "rolling-orders" {
		t.Errorf("single runs: %+v", one.Scenarios)
	}
}

func TestCompareRenderings(t *testing.T) {
	base, new := healthy(t), healthy(t)
	new.Load.LatencyMS["p99"] = 100
	c := check(&new, "zero-failed-requests")
	c.Status, c.Message, new.Verdict = verify.Fail, "120 of 3000 requests failed | by step in flight: rollout: 120\nmore", VerdictFail
	other := healthy(t)
	other.Scenario = "smoke"
	cmp := Compare([]Summary{base, other}, []Summary{new}, DefaultThresholds())

	var text bytes.Buffer
	if err := cmp.Text(&text, "out-main", "out-pr"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"rehearse compare out-main → out-pr: 2 regressions, 0 improvements in 1 scenario compared (1 in only one run)",
		"rolling-orders: verdict pass → fail",
		"  REGRESSION   check zero-failed-requests: pass → fail\n",
		"                 120 of 3000 requests failed | by step in flight: rollout: 120\n",
		"  REGRESSION   p99: 20.0 ms → 100.0 ms (+400%, limit +20% and +5.0 ms)",
		"  same         failed requests: 0 → 0 (+0, limit +0)",
		"  same         drain time (drain): 10.0 s → 10.0 s (+0.0%, limit +50% and +2.0 s)",
		"  same         3 checks unchanged",
		"smoke: only in out-main (verdict pass), not compared",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}

	md := string(cmp.Markdown("out-main", "out-pr"))
	lines := strings.Split(md, "\n")
	if lines[0] != "## rehearse compare: 2 REGRESSIONS" || !strings.Contains(lines[3], "**Regressions:** **rolling-orders**: check zero-failed-requests: pass → fail") ||
		!strings.Contains(lines[3], "p99: 20.0 ms → 100.0 ms (+400%, limit +20% and +5.0 ms)") {
		t.Errorf("markdown's first lines:\n%s", strings.Join(lines[:min(6, len(lines))], "\n"))
	}
	for _, want := range []string{
		"Not compared: smoke (only in base)",
		"| rolling-orders | check zero-failed-requests: 120 of 3000 requests failed \\| by step in flight: rollout: 120 | pass | fail |  | **REGRESSION** |",
		"| rolling-orders | p99 | 20.0 ms | 100.0 ms | +400%, limit +20% and +5.0 ms | **REGRESSION** |",
		"| rolling-orders | achieved rate | 49.9 req/s | 49.9 req/s | +0.0%, limit -5% | same |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}

	// Many scenarios, all regressed: still under the limit, and it says what it cut.
	var bases, news []Summary
	for i := range 400 {
		b, n := healthy(t), healthy(t)
		b.Scenario, n.Scenario = fmt.Sprintf("s%03d", i), fmt.Sprintf("s%03d", i)
		n.Load.LatencyMS["p99"], n.Load.Failed = 900, 50
		bases, news = append(bases, b), append(news, n)
	}
	big := Compare(bases, news, DefaultThresholds()).Markdown("a", "b")
	if len(big) > MaxMarkdownBytes || !strings.Contains(string(big), "Cut to stay under 64 KB") || !strings.Contains(string(big), "+792 more") {
		t.Errorf("big comparison: %d bytes, cut noted: %v\n%.400s", len(big), strings.Contains(string(big), "Cut to stay"), big)
	}
}

func TestReadSummaries(t *testing.T) {
	dir := t.TempDir()
	write := func(path string, s any) {
		os.MkdirAll(filepath.Dir(path), 0o755)
		b, _ := json.Marshal(s)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, b := healthy(t), healthy(t)
	b.Scenario = "smoke"
	write(filepath.Join(dir, "suite", "rolling-orders", "summary.json"), a)
	write(filepath.Join(dir, "suite", "smoke", "summary.json"), b)
	os.WriteFile(filepath.Join(dir, "suite", "junit.xml"), []byte("<testsuites/>"), 0o644)
	write(filepath.Join(dir, "dup", "x", "summary.json"), a)
	write(filepath.Join(dir, "dup", "y", "summary.json"), a)
	write(filepath.Join(dir, "bad", "summary.json"), map[string]any{"verdict": "pass"})
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)

	for _, c := range []struct {
		path      string
		scenarios string
		err       string
	}{
		{"suite", "[rolling-orders smoke]", ""},
		{"suite/smoke", "[smoke]", ""},
		{"suite/smoke/summary.json", "[smoke]", ""},
		{"missing", "", "no such file"},
		{"empty", "", "no summary.json in it"},
		{"dup", "", `are both scenario "rolling-orders"`},
		{"bad", "", "not a rehearse summary"},
	} {
		got, err := ReadSummaries(filepath.Join(dir, c.path))
		var names []string
		for _, s := range got {
			names = append(names, s.Scenario)
		}
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.path, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one with %q", c.path, err, c.err)
		case c.err == "" && fmt.Sprint(names) != c.scenarios:
			t.Errorf("%s: scenarios %v, want %s", c.path, names, c.scenarios)
		}
	}
	// What it read keeps what compare needs from Did and the checks.
	got, _ := ReadSummaries(filepath.Join(dir, "suite", "rolling-orders"))
	if d, ok := DrainSeconds(*step(&got[0], "drain")); !ok || d != 10 {
		t.Errorf("drain time read back: %v %v", d, ok)
	}
	if r, ok := TimeToRestore(got[0], *step(&got[0], "undo")); !ok || r != 6 {
		t.Errorf("drill's time to restore read back: %v %v", r, ok)
	}
}
