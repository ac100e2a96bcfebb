package steps

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workloads"
)

func hostEnv(t *testing.T) *Env {
	t.Helper()
	out := t.TempDir()
	kc := filepath.Join(out, "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tools := t.TempDir()
	// A kubectl of the rehearsal's: the one the command must find first on its PATH.
	if err := os.WriteFile(filepath.Join(tools, "kubectl"), []byte("#!/bin/sh\necho rehearsal-kubectl \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &Env{Namespace: "rehearse-t", RunID: "t-42", Dir: t.TempDir(), OutDir: out, Kubeconfig: kc, ToolDirs: []string{tools}}
}

func runStep(t *testing.T, ctx context.Context, env *Env, name string, r *scenarios.Run) (*Record, error) {
	t.Helper()
	var rec Record
	err := Host{}.Run(ctx, env, scenarios.Step{Name: name, Run: r}, &rec)
	return &rec, err
}

func TestHostEnvironment(t *testing.T) {
	env := hostEnv(t)
	rec, err := runStep(t, context.Background(), env, "env", &scenarios.Run{
		Command: `echo "kc=$KUBECONFIG ns=$REHEARSE_NAMESPACE run=$REHEARSE_RUN_ID foo=$FOO dir=$PWD"; kubectl get pods; echo oops >&2`,
		Env:     map[string]string{"FOO": "bar"}})
	if err != nil {
		t.Fatal(err)
	}
	d := rec.Data()
	want := "kc=" + env.Kubeconfig + " ns=rehearse-t run=t-42 foo=bar dir=" + env.Dir + "\nrehearsal-kubectl get pods\noops"
	if d["output_tail"] != want {
		t.Errorf("output:\n%v\nwant:\n%s", d["output_tail"], want)
	}
	if d["exit_code"] != 0 || d["log"] != "steps/env.log" {
		t.Errorf("record %v", d)
	}
	b, err := os.ReadFile(filepath.Join(env.OutDir, "steps", "env.log"))
	if err != nil || string(b) != want+"\n" {
		t.Errorf("log file %q (%v)", b, err)
	}
}

func TestHostExitCodes(t *testing.T) {
	env := hostEnv(t)
	ctx := context.Background()
	// A non-zero exit: the step failed (the system or the runbook), with its output's tail.
	var lines []string
	for i := range 30 {
		lines = append(lines, "line "+strconv.Itoa(i))
	}
	rec, err := runStep(t, ctx, env, "fails", &scenarios.Run{Command: "printf '" + strings.Join(lines, `\n`) + `\n'; exit 3`, Source: "rb.md:12", Heading: "Contract"})
	if err == nil || !workloads.IsSystemFailure(err) {
		t.Fatalf("exit 3: %v, want a system failure", err)
	}
	if !strings.Contains(err.Error(), `the command (rb.md:12, "Contract") exited 3`) || !strings.Contains(err.Error(), "line 29") {
		t.Errorf("error %q", err)
	}
	tail := rec.Data()["output_tail"].(string)
	if n := strings.Count(tail, "\n") + 1; n != TailLines || !strings.HasPrefix(tail, "line 10\n") {
		t.Errorf("tail has %d lines:\n%s", n, tail)
	}
	if d := rec.Data(); d["exit_code"] != 3 || d["source"] != "rb.md:12" || d["heading"] != "Contract" {
		t.Errorf("record %v", d)
	}
	// pipefail and -u: a failing stage or an unset variable fails the block.
	if _, err := runStep(t, ctx, env, "pipe", &scenarios.Run{Command: "false | cat"}); !workloads.IsSystemFailure(err) {
		t.Errorf("false | cat: %v", err)
	}
	if _, err := runStep(t, ctx, env, "unset", &scenarios.Run{Command: "echo $NOT_SET_ANYWHERE"}); !workloads.IsSystemFailure(err) {
		t.Errorf("unset variable: %v", err)
	}
	// expectExit: the expected code passes, another fails, 0 too.
	one := 1
	if _, err := runStep(t, ctx, env, "expected", &scenarios.Run{Command: "exit 1", ExpectExit: &one}); err != nil {
		t.Errorf("exit 1 expected: %v", err)
	}
	if _, err := runStep(t, ctx, env, "unexpected", &scenarios.Run{Command: "true", ExpectExit: &one}); !workloads.IsSystemFailure(err) || !strings.Contains(err.Error(), "exited 0, expected 1") {
		t.Errorf("exit 0, 1 expected: %v", err)
	}
}

func TestHostTimeoutIsAnError(t *testing.T) {
	t.Parallel()
	env := hostEnv(t)
	start := time.Now()
	rec, err := runStep(t, context.Background(), env, "hangs", &scenarios.Run{Command: "echo started; sleep 60", Timeout: scenarios.Duration{Duration: time.Second}})
	if err == nil || workloads.IsSystemFailure(err) || !strings.Contains(err.Error(), "timeout of 1s") {
		t.Fatalf("err %v, want a harness error naming the timeout", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s", took)
	}
	if rec.Data()["output_tail"] != "started" {
		t.Errorf("record %v", rec.Data())
	}
}

func TestHostCannotStart(t *testing.T) {
	env := hostEnv(t)
	env.Dir = filepath.Join(env.Dir, "missing")
	_, err := runStep(t, context.Background(), env, "nowhere", &scenarios.Run{Command: "true"})
	if err == nil || workloads.IsSystemFailure(err) {
		t.Fatalf("err %v, want a harness error", err)
	}
	env = hostEnv(t)
	env.Kubeconfig = ""
	if _, err := runStep(t, context.Background(), env, "nokube", &scenarios.Run{Command: "true"}); err == nil || workloads.IsSystemFailure(err) {
		t.Fatalf("without the rehearsal's kubeconfig: %v, want a harness error", err)
	}
}

// gone says whether pid has ended (or is a zombie nobody reaped yet), waiting a little for it.
func gone(pid int) bool {
	for range 20 {
		if ended(pid) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func ended(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// childPID waits for the file the command writes its background child's pid into.
func childPID(t *testing.T, path string) int {
	t.Helper()
	for range 100 {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the command never started its child")
	return 0
}

func TestHostCancelKillsTheProcessGroup(t *testing.T) {
	t.Parallel()
	env := hostEnv(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		// The child ignores SIGTERM: only the SIGKILL after the grace ends it.
		_, err := runStep(t, ctx, env, "bg", &scenarios.Run{Command: `(trap '' TERM; exec sleep 300) & echo $! > ` + pidFile + `; wait`})
		errc <- err
	}()
	pid := childPID(t, pidFile)
	if ended(pid) {
		t.Fatal("the child is not running")
	}
	cancel()
	select {
	case err := <-errc:
		if err == nil || workloads.IsSystemFailure(err) || !errors.Is(err, context.Canceled) {
			t.Errorf("err %v, want a harness error of the cancel", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the step did not end on cancel")
	}
	if !gone(pid) {
		t.Errorf("the background child %d outlived the cancel", pid)
	}
}

func TestHostBackgroundJobsEndWithTheRun(t *testing.T) {
	t.Parallel()
	env := hostEnv(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	if _, err := runStep(t, context.Background(), env, "leaves", &scenarios.Run{Command: `sleep 300 >/dev/null 2>&1 & echo $! > ` + pidFile}); err != nil {
		t.Fatal(err)
	}
	pid := childPID(t, pidFile)
	if ended(pid) {
		t.Fatal("the background job should run on until the end of the run")
	}
	env.Cleanup(context.Background())
	if !gone(pid) {
		t.Errorf("the background job %d outlived the run", pid)
	}
}

func TestEnviron(t *testing.T) {
	got := environ([]string{"PATH=/usr/bin", "KUBECONFIG=/home/u/.kube/config", "HOME=/home/u"}, map[string]string{"KUBECONFIG": "/run/kc"}, []string{"/cache/kubectl"})
	want := map[string]bool{"PATH=/cache/kubectl:/usr/bin": true, "KUBECONFIG=/run/kc": true, "HOME=/home/u": true}
	if len(got) != len(want) {
		t.Fatalf("environ %v", got)
	}
	for _, kv := range got {
		if !want[kv] {
			t.Errorf("unexpected %q in %v", kv, got)
		}
	}
}
