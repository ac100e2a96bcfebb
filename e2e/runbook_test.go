//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/verify"
)

// Runbooks: the shipped runbook passes as it stands, its twin that contracts before the rollout to
// v3 has finished fails zero-failed-requests naming the contract block by heading and line, and a
// block that never ends is killed at its timeout and makes the run an error.
func TestRunbooks(t *testing.T) {
	t.Parallel() // beside the other tests; node-level faults run in their own lane (TestFaultLane)
	f := features.New("runbooks").
		Assess("a runbook's blocks run as host steps and are judged", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			t.Run("orders-v2", func(t *testing.T) {
				t.Parallel()
				sum, dir, code := rehearse(t, ctx, "../scenarios/runbooks/orders-v2.md")
				if code != 0 {
					t.Errorf("exit %d, verdict %s; want 0", code, sum.Verdict)
				}
				for _, name := range []string{"zero-failed-requests", "acked-writes-durable", "replica-checksums"} {
					if c := checkByName(sum, name); c.Status != verify.Pass {
						t.Errorf("%s: %s %q", name, c.Status, c.Message)
					}
				}
				st := stepByName(sum, "contract-the-schema")
				if st.Kind != "run" || st.Status != "ok" || st.Did["source"] != "orders-v2.md:"+blockLine(t, "../scenarios/runbooks/orders-v2.md", "## Contract the schema") || st.Did["heading"] != "Contract the schema" {
					t.Errorf("contract step %+v", st)
				}
				// Every block's whole output is kept, and kubectl (the node image's) answered.
				b, err := os.ReadFile(filepath.Join(dir, "steps", "served-by-v3.log"))
				if err != nil || strings.Count(string(b), " v3") < 3 {
					t.Errorf("served-by-v3.log: %q (%v)", b, err)
				}
				if stepByName(sum, "restore-from-backup").Name != "" {
					t.Errorf("a skipped block ran")
				}
			})
			t.Run("contract-too-early", func(t *testing.T) {
				t.Parallel()
				sum, dir, code := rehearse(t, ctx, "testdata/runbooks/contract-too-early.md")
				if code != 1 {
					t.Errorf("exit %d, verdict %s; want 1", code, sum.Verdict)
				}
				at := "contract-too-early.md:" + blockLine(t, "testdata/runbooks/contract-too-early.md", "## Contract the schema")
				c := checkByName(sum, "zero-failed-requests")
				if c.Status != verify.Fail || !strings.Contains(c.Message, `contract-the-schema ("Contract the schema", `+at+`)`) {
					t.Errorf("zero-failed-requests: %s %q; want a failure naming the contract block", c.Status, c.Message)
				}
				md, err := os.ReadFile(filepath.Join(dir, "summary.md"))
				if err != nil || !strings.Contains(string(md), `block "Contract the schema" at `+at) {
					t.Errorf("summary.md does not name the block (%v)", err)
				}
			})
			t.Run("hangs", func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				sum, dir, code := rehearse(t, ctx, "testdata/runbooks/hangs.md")
				// The block that failed on its own makes the verdict fail; the hanging one's check errs.
				if code != 1 || sum.Verdict != "fail" {
					t.Errorf("exit %d, verdict %s; want 1 and fail", code, sum.Verdict)
				}
				st := stepByName(sum, "wait-for-a-condition-that-never-comes")
				if st.Status != "error" || !strings.Contains(st.Error, "timeout of 5s") {
					t.Errorf("step %s %q; want an error at its 5s timeout", st.Status, st.Error)
				}
				if d := st.Finished.Sub(st.Started); d > 15*time.Second {
					t.Errorf("the block took %s to be stopped", d)
				}
				if c := checkByName(sum, "step-wait-for-a-condition-that-never-comes"); c.Status != verify.Error {
					t.Errorf("its check: %s %q", c.Status, c.Message)
				}
				// The block before it failed on its own: its exit and output are in every report.
				if st := stepByName(sum, "check-the-replicas"); st.Status != "failed" {
					t.Errorf("check-the-replicas: %s %q, want failed", st.Status, st.Error)
				}
				// A runbook stops at its first failed block.
				if st := stepByName(sum, "go-on"); st.Status != reports.StepNotRun || st.Did["exit_code"] != nil {
					t.Errorf("go-on: %s %q %v, want not run", st.Status, st.Error, st.Did)
				}
				for file, wants := range map[string][]string{
					"summary.json": {`"exit_code": 3`, "not streaming", `"source": "hangs.md:`},
					"summary.md":   {"exit 3", "replica orders-db-2: not streaming", `"Check the replicas" at hangs.md:`},
					"junit.xml":    {"step-failed", "replica orders-db-2: not streaming", "exited 3", "exit_code: 3", `<skipped message="not run: `},
				} {
					b, err := os.ReadFile(filepath.Join(dir, file))
					for _, w := range wants {
						if err != nil || !strings.Contains(string(b), w) {
							t.Errorf("%s lacks %q (%v)", file, w, err)
						}
					}
				}
				t.Logf("hangs: %s in all", time.Since(start).Round(time.Second))
			})
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// Ctrl-C during a runbook's block (a scenario file names the runbook): the run exits 2, the block's
// shell and the child it left in the background are gone, and so is the namespace.
func TestRunbookInterrupted(t *testing.T) {
	t.Parallel() // beside the other tests; node-level faults run in their own lane (TestFaultLane)
	holdPoolSlot(t)
	f := features.New("Ctrl-C during a block").
		Assess("SIGINT while a block runs: exit 2, its process group gone, no namespace left", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			bin := buildCLI(t, ctx)
			marks := t.TempDir()
			// MARKER_DIR: the CLI's environment, and so the block's.
			interruptAt(t, ctx, bin, "testdata/runbooks/interrupted.yaml", "step take-the-lock (run)", 3*time.Second, "MARKER_DIR="+marks)
			for _, f := range []string{"shell.pid", "child.pid"} {
				b, err := os.ReadFile(filepath.Join(marks, f))
				if err != nil {
					t.Errorf("the block never wrote %s: %v", f, err)
					continue
				}
				pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
				if err != nil {
					t.Fatalf("%s: %q", f, b)
				}
				if alive(pid) {
					t.Errorf("%s %d still runs after the run exited", f, pid)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			if namespaceExists(t, ctx, "rehearse-runbook-interrupted") {
				t.Errorf("namespace rehearse-runbook-interrupted left behind after Ctrl-C")
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// alive says whether a process runs (a zombie, exited and not yet reaped, does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: comm may hold spaces, the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// blockLine is the line (1-based, as text) of the first fenced block after the line heading in the
// Markdown file: where a runbook's step is said to come from.
func blockLine(t *testing.T, file, heading string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for i, line := range strings.Split(string(b), "\n") {
		if line == heading {
			seen = true
		} else if seen && strings.HasPrefix(line, "```") {
			return strconv.Itoa(i + 1)
		}
	}
	t.Fatalf("%s: no block after %q", file, heading)
	return ""
}
