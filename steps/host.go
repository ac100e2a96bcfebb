package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workloads"
)

// DefaultShell runs a host command: bash stops at the first failing command, unset variable or
// failing stage of a pipeline.
var DefaultShell = []string{"bash", "-euo", "pipefail", "-c"}

// TailLines is how many of a host command's last output lines its record keeps (the whole output is
// in the run directory).
const TailLines = 20

// killGrace is how long a host command's process group has between SIGTERM and SIGKILL.
const killGrace = 3 * time.Second

// Host runs a command line on this machine (a run step, a runbook block) with a kubeconfig that holds
// the rehearsal's cluster only and kubectl on its PATH. A non-zero exit (other than expectExit) is a
// failure of the system or the runbook; a command that cannot start, runs past its timeout or is
// interrupted is the harness's error. Its whole process group is killed when it is interrupted or
// times out; what it left running in the background is killed at the end of the run.
type Host struct{}

func (Host) Name() string                                      { return "run" }
func (Host) Takes(st scenarios.Step) bool                      { return st.Run != nil }
func (Host) Check(scenarios.Step, *scenarios.Loaded) []Problem { return nil } // scenarios checks command, timeout, safety

// Describe is the command, and for a runbook's block its file:line and heading.
func (Host) Describe(st scenarios.Step) map[string]any {
	r := st.Run
	d := map[string]any{"command": r.Command}
	if r.Source != "" {
		d["source"] = r.Source
	}
	if r.Heading != "" {
		d["heading"] = r.Heading
	}
	return d
}

func (Host) Run(ctx context.Context, env *Env, st scenarios.Step, rec *Record) error {
	r := st.Run
	if env.Kubeconfig == "" {
		// Never the user's own kubeconfig: without one of the rehearsal's, nothing runs.
		return errors.New("no kubeconfig of the rehearsal's cluster to give the command")
	}
	for k, v := range (Host{}).Describe(st) {
		rec.Set(k, v)
	}
	dir := env.OutDir
	if dir == "" {
		dir = os.TempDir()
	}
	logPath := filepath.Join(dir, "steps", st.Name+".log")
	vars := map[string]string{"KUBECONFIG": env.Kubeconfig, "REHEARSE_RUN_ID": env.RunID}
	if nss := env.Namespaces(); len(nss) > 0 {
		vars["REHEARSE_NAMESPACE"] = nss[0]
	}
	for k, v := range r.Env {
		vars[k] = v
	}
	wd := env.Dir
	if r.Dir != "" {
		wd = r.Dir
	}
	res, err := Shell(ctx, ShellSpec{Command: r.Command, Dir: wd, Env: vars, PathDirs: env.ToolDirs,
		Timeout: r.TimeoutOr(), Log: logPath})
	if res.Log != "" {
		if rel, rerr := filepath.Rel(dir, res.Log); rerr == nil && env.OutDir != "" {
			rec.Set("log", filepath.ToSlash(rel))
		} else {
			rec.Set("log", res.Log)
		}
	}
	if res.Started {
		if res.ExitCode >= 0 {
			rec.Set("exit_code", res.ExitCode)
		}
		if res.Signal != "" {
			rec.Set("signal", res.Signal) // killed: no exit code
		}
		rec.Set("duration_s", res.Duration.Round(time.Millisecond).Seconds())
		rec.Set("output_tail", res.Tail)
	}
	if res.Left != nil {
		env.Defer(res.Left) // what it started in the background ends with the run
	}
	if err != nil {
		return err
	}
	if want := r.Expected(); res.ExitCode != want {
		what := fmt.Sprintf("exited %d", res.ExitCode)
		if res.Signal != "" {
			what = "was killed by " + res.Signal
		}
		if want != 0 {
			what += fmt.Sprintf(", expected %d", want)
		}
		where := ""
		if r.Source != "" {
			where = fmt.Sprintf(" (%s, %q)", r.Source, r.Heading)
		}
		return workloads.Failed(fmt.Errorf("the command%s %s; last lines of output:\n%s", where, what, res.Tail))
	}
	return nil
}

// ShellSpec is one host command to run.
type ShellSpec struct {
	Command string
	// Shell is the argv the command is appended to (default DefaultShell).
	Shell []string
	// Dir is the working directory; Env is added to this process's environment (replacing what it
	// names); PathDirs are put in front of PATH.
	Dir      string
	Env      map[string]string
	PathDirs []string
	Timeout  time.Duration
	// Log is the file stdout and stderr both go to, whole (its directory is created).
	Log string
}

// ShellResult is how a host command ended.
type ShellResult struct {
	Started  bool // it started (ExitCode, Duration and Tail mean something)
	ExitCode int  // -1 when killed by a signal
	Signal   string
	Duration time.Duration
	Tail     string // its last TailLines lines of output
	Log      string
	// Left, when not nil, kills what the command left running in its process group (background
	// jobs): for the end of the run.
	Left func(context.Context)
}

// Shell runs spec.Command in a process group of its own. An error means the harness could not run it
// to its end: it could not start, ran past its timeout, or ctx ended; the process group is killed
// then (SIGTERM, SIGKILL after a grace). A command that exited, whatever its code, is no error.
func Shell(ctx context.Context, spec ShellSpec) (ShellResult, error) {
	res := ShellResult{Log: spec.Log}
	if err := os.MkdirAll(filepath.Dir(spec.Log), 0o755); err != nil {
		return res, err
	}
	out, err := os.Create(spec.Log)
	if err != nil {
		return res, err
	}
	defer out.Close()
	shell := spec.Shell
	if len(shell) == 0 {
		shell = DefaultShell
	}
	cmd := exec.Command(shell[0], append(shell[1:], spec.Command)...)
	cmd.Dir = spec.Dir
	cmd.Env = environ(os.Environ(), spec.Env, spec.PathDirs)
	// Both streams go straight to the file (no pipe): a background job that keeps them open cannot
	// hold Wait up, and their order is kept.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("could not start %s: %w", shell[0], err)
	}
	res.Started = true
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = scenarios.DefaultRunTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var why error
	select {
	case err = <-done:
	case <-timer.C:
		why = fmt.Errorf("the command ran past its timeout of %s and was killed", timeout)
	case <-ctx.Done():
		why = fmt.Errorf("the command was interrupted and killed: %w", ctx.Err())
	}
	if why != nil {
		killGroup(pgid, done)
		res.Duration, res.ExitCode = time.Since(start), -1
		res.Tail = tailOf(spec.Log, TailLines)
		return res, why
	}
	res.Duration = time.Since(start)
	res.ExitCode = cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Signal = ws.Signal().String()
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return res, err
	}
	res.Tail = tailOf(spec.Log, TailLines)
	if groupAlive(pgid) {
		res.Left = func(context.Context) { killGroup(pgid, nil) }
	}
	return res, nil
}

// killGroup ends process group pgid: SIGTERM, then SIGKILL for what is left after the grace. done,
// when not nil, is the leader's Wait, drained.
func killGroup(pgid int, done <-chan error) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(killGrace)
	if done != nil {
		select {
		case <-done:
			done = nil
		case <-time.After(killGrace):
		}
	}
	for groupAlive(pgid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if done != nil {
		<-done
	}
	// SIGKILL is delivered asynchronously; a killed orphan may linger as a zombie until init reaps it.
	for end := time.Now().Add(time.Second); groupAlive(pgid) && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
}

// groupAlive says whether any process of group pgid is left.
func groupAlive(pgid int) bool { return syscall.Kill(-pgid, 0) == nil }

// environ is base with vars set (replacing what base has of them) and dirs in front of PATH.
func environ(base []string, vars map[string]string, dirs []string) []string {
	out := make([]string, 0, len(base)+len(vars)+1)
	path := ""
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		if k == "PATH" {
			path = v
			continue
		}
		if _, ok := vars[k]; ok {
			continue
		}
		out = append(out, kv)
	}
	if p, ok := vars["PATH"]; ok {
		path = p
	}
	if len(dirs) > 0 {
		path = strings.Join(append(append([]string{}, dirs...), path), string(os.PathListSeparator))
	}
	out = append(out, "PATH="+path)
	for k, v := range vars {
		if k != "PATH" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// tailOf is the last n lines of the file at path (at most 64 KB of it are read).
func tailOf(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const most = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > most {
		_, _ = f.Seek(st.Size()-most, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	b = bytes.TrimRight(b, "\n")
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
