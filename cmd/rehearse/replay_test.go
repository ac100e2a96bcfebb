package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/replay"
	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/runner"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/verify"
)

// ran is what the stubbed runner was asked to run.
type ran struct {
	sc   *scenarios.Loaded
	opts runner.Options
}

func stubRunner(t *testing.T) *[]ran {
	t.Helper()
	var calls []ran
	old := runScenario
	t.Cleanup(func() { runScenario = old })
	runScenario = func(_ context.Context, sc *scenarios.Loaded, opts runner.Options) (*reports.Summary, error) {
		calls = append(calls, ran{sc, opts})
		return &reports.Summary{Scenario: sc.Metadata.Name, Verdict: reports.VerdictPass,
			Checks: []verify.Result{{Name: "zero-failed-requests", Status: verify.Pass}}}, nil
	}
	return &calls
}

// original writes the bundle of a run of the smoke scenario into out/smoke, made with a context
// and an allow-list.
func original(t *testing.T, out string) string {
	t.Helper()
	sc, err := runner.Load("../../scenarios/smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(out, "smoke")
	r := &replay.Run{Format: replay.Format, Scenario: "smoke", ScenarioHash: sc.Hash, Seed: 42, RunID: "smoke-42-orig",
		Started: time.Now(), WorkingDir: "/work/main", Args: []string{"bin/rehearse", "run", "scenarios/smoke.yaml", "--context", "kind-ci", "--allow-context", "kind-ci"},
		Options: replay.Options{Out: "out", Context: "kind-ci", AllowContexts: []string{"kind-ci"}}}
	r.Command = replay.ShellQuote(r.Args)
	if err := replay.Write(dir, sc, r); err != nil {
		t.Fatal(err)
	}
	return dir
}

func exitOf(err error) int {
	var ec exitCode
	if errors.As(err, &ec) {
		return ec.code
	}
	if err != nil {
		return exitError
	}
	return 0
}

func TestRunReplay(t *testing.T) {
	calls := stubRunner(t)
	out := t.TempDir()
	runDir := original(t, out)

	for _, dir := range []string{runDir, filepath.Join(runDir, "replay")} {
		*calls = nil
		stdout, err := execute("run", "--replay", dir)
		if err != nil {
			t.Fatalf("run --replay %s: %v\n%s", dir, err, stdout)
		}
		if len(*calls) != 1 {
			t.Fatalf("%d runs", len(*calls))
		}
		c := (*calls)[0]
		if c.sc.File != filepath.Join(runDir, "replay", "scenario.yaml") || c.sc.Metadata.Name != "smoke" {
			t.Errorf("ran %s (%s), want the bundle's copy", c.sc.File, c.sc.Metadata.Name)
		}
		if c.opts.Seed != 42 || c.opts.Replay == nil || c.opts.Replay.Run.RunID != "smoke-42-orig" {
			t.Errorf("seed %d, replay %+v", c.opts.Seed, c.opts.Replay)
		}
		if c.opts.Context != "" || c.opts.AllowContexts != nil {
			t.Errorf("the run's cluster flags were reused: %q %q", c.opts.Context, c.opts.AllowContexts)
		}
		if d := c.opts.RunDir("smoke"); !strings.HasPrefix(d, filepath.Join(out, "smoke-replay-")) {
			t.Errorf("the replay's reports go to %s", d)
		}
		for _, want := range []string{"replaying run smoke-42-orig of smoke (seed 42",
			"the run was: cd /work/main && bin/rehearse run scenarios/smoke.yaml --context kind-ci --allow-context kind-ci",
			"the run was given --context kind-ci --allow-context kind-ci, which a replay does not reuse (given now: none)"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, stdout)
			}
		}
	}

	// DIR given from inside the run's directory: the replay still goes beside the run.
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	if err := os.Chdir(runDir); err != nil {
		t.Fatal(err)
	}
	*calls = nil
	if _, err := execute("run", "--replay", "replay"); err != nil {
		t.Fatal(err)
	}
	d, _ := filepath.Abs((*calls)[0].opts.RunDir("smoke"))
	if !strings.HasPrefix(d, filepath.Join(out, "smoke-replay-")) {
		t.Errorf("replay/ from inside the run's directory: reports in %s", d)
	}
	os.Chdir(wd)

	// --out as for any run; the cluster flags given again: nothing to say about them.
	*calls = nil
	other := filepath.Join(t.TempDir(), "again")
	stdout, err := execute("run", "--replay", runDir, "--out", other, "--context", "kind-ci", "--allow-context", "kind-ci")
	if err != nil {
		t.Fatal(err)
	}
	if d := (*calls)[0].opts.RunDir("smoke"); d != filepath.Join(other, "smoke") || (*calls)[0].opts.Context != "kind-ci" {
		t.Errorf("--out: reports in %s, context %q", d, (*calls)[0].opts.Context)
	}
	if strings.Contains(stdout, "does not reuse") {
		t.Errorf("flags given again still reported:\n%s", stdout)
	}

	// Refused, exit 2, before anything runs.
	*calls = nil
	os.MkdirAll(filepath.Join(out, "broken", "replay"), 0o755)
	os.WriteFile(filepath.Join(out, "broken", "replay", "run.json"), []byte(`{"format": 1, "seed": 42`), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--replay", runDir, "../../scenarios/smoke.yaml"}, "give no scenario file with it"},
		{[]string{"run", "--replay", runDir, "--seed", "7"}, "--seed cannot be given with it"},
		{[]string{"run", "--replay", t.TempDir()}, "no replay bundle in"},
		{[]string{"run", "--replay", filepath.Join(out, "nope")}, "no replay bundle"},
		{[]string{"run", "--replay", filepath.Join(out, "broken")}, "malformed"},
		{[]string{"run", "--replay", runDir, "--out", out}, "would write over the run it replays"},
	} {
		stdout, err := execute(c.args...)
		if exitOf(err) != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: exit %d, %v (want %q)\n%s", c.args, exitOf(err), err, c.want, stdout)
		}
	}
	if len(*calls) != 0 {
		t.Errorf("a refused replay ran %d scenarios", len(*calls))
	}
	if _, err := execute("run"); err == nil {
		t.Error("run with neither scenarios nor --replay")
	}
}

// A run says how to replay it.
func TestRunPrintsTheReplayCommand(t *testing.T) {
	calls := stubRunner(t)
	out := t.TempDir()
	original(t, out) // what runner.Run would have left in out/smoke
	stdout, err := execute("run", "../../scenarios/smoke.yaml", "--out", out)
	if err != nil || len(*calls) != 1 {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if want := "  replay: rehearse run --replay " + filepath.Join(out, "smoke") + "\n"; !strings.Contains(stdout, want) {
		t.Errorf("output lacks %q:\n%s", want, stdout)
	}
	if got := (*calls)[0].opts.Args; len(got) == 0 {
		t.Error("the command line is not passed to the run")
	}
}
