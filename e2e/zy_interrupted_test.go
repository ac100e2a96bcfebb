//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

// faultsInterrupted runs last in the fault lane (TestFaultLane). It kills a node's container and
// starts it again a few seconds later. TestMigrations, run right after it on two cores when both
// shared every worker, failed in 4 runs of 9 (CI's included: requests stalled past the sample's 2 s
// query timeout, a canary's p99 over its gate, a rollback in 38 s instead of 8 s), and in none of 5
// without it. The node and its system pods were back (see waitSettled); the cause is not found yet,
// so no rehearsal runs after this one on the lane's workers, and no other test has a pod there.

// Ctrl-C while a fault is in effect: the run exits 2 and undoes the fault on its way out — a node
// being drained is uncordoned, a lost node's container is started again (and its node comes back
// Ready) — and deletes its namespace.
func faultsInterrupted(t *testing.T) {
	cases := []struct{ file, ns, when string }{
		{"testdata/faults/drain-interrupted.yaml", "rehearse-drain-interrupted", "node-drain: draining"},
		{"testdata/faults/loss-interrupted.yaml", "rehearse-loss-interrupted", "node-loss: stopping"},
	}
	f := features.New("Ctrl-C during a fault").
		Assess("SIGINT during a drain and during a node loss: exit 2, the node uncordoned or started, no namespace left", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
			if err != nil {
				t.Fatal(err)
			}
			bin := buildCLI(t, ctx)
			for _, c := range cases {
				t.Run(c.ns, func(t *testing.T) {
					interruptAt(t, ctx, bin, c.file, c.when, 4*time.Second)
					if namespaceExists(t, ctx, c.ns) {
						t.Errorf("namespace %s left behind after Ctrl-C", c.ns)
					}
					if stopped, err := shared.StoppedNodes(ctx); err != nil || len(stopped) > 0 {
						t.Errorf("node containers left stopped: %v %v", stopped, err)
					}
					noNodeCordoned(t, ctx, cs)
					// Every node Ready again, with a heartbeat since its container last started (a
					// started node shows its old Ready condition at once), and its system pods back:
					// the tests after this one share the cluster.
					waitSettled(t, ctx, cs, 90*time.Second)
				})
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// interruptAt runs the CLI on file (with env added to its environment) and sends it SIGINT after
// when appears on its stderr; the run must exit 2.
func interruptAt(t *testing.T, ctx context.Context, bin, file, when string, after time.Duration, env ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "run", file, "--kubeconfig", shared.Kubeconfig, "--out", t.TempDir())
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	interrupted := time.Time{}
	for sc.Scan() {
		t.Log(sc.Text())
		if interrupted.IsZero() && strings.Contains(sc.Text(), when) {
			time.Sleep(after)
			interrupted = time.Now()
			_ = cmd.Process.Signal(os.Interrupt)
		}
	}
	_ = cmd.Wait()
	if interrupted.IsZero() {
		t.Fatalf("the run never printed %q", when)
	}
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("exit %d after SIGINT, want 2", code)
	}
	t.Logf("exited %s after SIGINT", time.Since(interrupted).Round(100*time.Millisecond))
}
