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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/rehearse-dev/rehearse/faults"
)

// This file's name puts its test last but for the cluster's deletion (go test runs a package's
// files in name order). It kills a node's container and starts it again a few seconds later.
// TestMigrations, run right after it on two cores, failed in 4 runs of 9 (CI's included: requests
// stalled past the sample's 2 s query timeout, a canary's p99 over its gate, a rollback in 38 s
// instead of 8 s), and in none of 5 without it. The node and its system pods were back (see
// waitSettled); the cause is not found yet, so no rehearsal runs after this test.

// Ctrl-C while a fault is in effect: the run exits 2 and undoes the fault on its way out — a node
// being drained is uncordoned, a lost node's container is started again (and its node comes back
// Ready) — and deletes its namespace.
func TestFaultsInterrupted(t *testing.T) {
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
					// Every node schedulable, unmarked and Ready again (a started node within a minute).
					deadline := time.Now().Add(90 * time.Second)
					for {
						nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
						if err != nil {
							t.Fatal(err)
						}
						var bad []string
						for _, n := range nodes.Items {
							if n.Spec.Unschedulable || n.Annotations[faults.CordonedBy] != "" {
								t.Fatalf("node %s left cordoned (%v) or marked (%q)", n.Name, n.Spec.Unschedulable, n.Annotations[faults.CordonedBy])
							}
							if !ready(&n) {
								bad = append(bad, n.Name)
							}
						}
						if len(bad) == 0 {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("nodes not Ready again after the interrupted run: %v", bad)
						}
						time.Sleep(2 * time.Second)
					}
				})
			}
			// A started node is "Ready" at once; the tests after this one need its pods back too.
			waitSettled(t, ctx, cs, 2*time.Minute)
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// interruptAt runs the CLI on file and sends it SIGINT after when appears on its stderr; the run
// must exit 2.
func interruptAt(t *testing.T, ctx context.Context, bin, file, when string, after time.Duration) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "run", file, "--kubeconfig", shared.Kubeconfig, "--out", t.TempDir())
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
