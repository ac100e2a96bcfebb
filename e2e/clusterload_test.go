//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/verify"
	"github.com/rehearse-dev/rehearse/workloads"
)

// Load from inside the cluster (load.from: cluster): generator pods send the plan's shares to the
// Service by its in-cluster name and stream their results back through the API server.
func TestLoadFromCluster(t *testing.T) {
	t.Parallel() // beside the other tests; node-level faults run in their own lane (TestFaultLane)
	ctx := context.Background()
	cs := sharedClientset(t)

	t.Run("sound", func(t *testing.T) {
		t.Parallel()
		sum, _, code := rehearse(t, ctx, "testdata/cluster-load/smoke-cluster.yaml")
		if code != 0 || sum.Verdict != reports.VerdictPass {
			t.Errorf("exit %d, verdict %s; want 0 and pass", code, sum.Verdict)
		}
		l := sum.Load
		if l.From != "cluster" || len(l.Agents) != 2 {
			t.Fatalf("load from %q by %d agents, want cluster and 2", l.From, len(l.Agents))
		}
		got := 0
		for _, a := range l.Agents {
			if a.Lost != "" || a.Results == 0 {
				t.Errorf("agent %+v", a)
			}
			got += a.Results
		}
		if got != l.Requests {
			t.Errorf("the agents reported %d results, the run counts %d requests", got, l.Requests)
		}
		t.Logf("from the cluster: %d requests, p50 %.1f ms, p99 %.1f ms%s", l.Requests, l.LatencyMS["p50"], l.LatencyMS["p99"], reports.AgentsNote(l))
	})

	t.Run("agent-lost", func(t *testing.T) {
		t.Parallel()
		// Delete one generator pod 5 s into its load, as a node's eviction or an operator would.
		const ns, victim = "rehearse-agent-lost", "rehearse-load-1"
		killed := make(chan time.Time, 1)
		kctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			for kctx.Err() == nil {
				p, err := cs.CoreV1().Pods(ns).Get(kctx, victim, metav1.GetOptions{})
				if err == nil && p.Status.Phase == "Running" && p.DeletionTimestamp == nil {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			time.Sleep(5 * time.Second)
			grace := int64(0)
			if err := cs.CoreV1().Pods(ns).Delete(kctx, victim, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err == nil {
				killed <- time.Now()
			}
		}()
		sum, _, code := rehearse(t, ctx, "testdata/cluster-load/agent-lost.yaml")
		select {
		case <-killed:
		default:
			t.Fatal("the generator pod was never deleted")
		}
		if code != 1 || sum.Verdict != reports.VerdictFail {
			t.Errorf("exit %d, verdict %s; want 1 and fail", code, sum.Verdict)
		}
		if c := checkByName(sum, "zero-failed-requests"); c.Status != verify.Fail {
			t.Errorf("zero-failed-requests %s: %s", c.Status, c.Message)
		}
		l := sum.Load
		if len(l.Agents) != 2 || l.Agents[0].Lost != "" || l.Agents[1].Lost == "" || l.Agents[1].Unsent < 50 {
			t.Fatalf("agents %+v: want %s lost with its share's rest unsent", l.Agents, victim)
		}
		if l.NotSent < l.Agents[1].Unsent || l.Requests < int(l.Scheduled)-5 {
			t.Errorf("load %+v: the lost share must count as not sent, within the whole schedule", l)
		}
		if !strings.Contains(strings.Join(sum.Warnings, "\n"), victim) {
			t.Errorf("warnings %q do not name the lost agent", sum.Warnings)
		}
		t.Logf("%s lost at +%.1fs (%s): %d requests unsent; the run: %d of %d failed",
			victim, l.Agents[1].LostAt.Seconds(), l.Agents[1].Lost, l.Agents[1].Unsent, l.Failed, l.Requests)
	})

	t.Run("canary-gate", func(t *testing.T) {
		t.Parallel()
		sum, _, code := rehearse(t, ctx, "testdata/cluster-load/canary-bad-from-cluster.yaml")
		if code != 0 || sum.Verdict != reports.VerdictPass {
			t.Errorf("exit %d, verdict %s; want 0 and pass (the safety net held)", code, sum.Verdict)
		}
		s := stepByName(sum, "canary-v2-bad")
		if s.Status != "rolled-back" {
			t.Fatalf("canary step %+v, want rolled-back by its gate", s)
		}
		if c := checkByName(sum, "served-version"); c.Status != verify.Pass || !strings.Contains(c.Message, "v1") {
			t.Errorf("served-version %s: %s", c.Status, c.Message)
		}
		t.Logf("gate on the agents' merged results: breach %v; restored in %v s", s.Did["breach"], s.Did["time_to_restore_s"])
	})

	t.Run("interrupted", func(t *testing.T) {
		t.Parallel()
		inPool(func() { interruptedWithAgents(t, ctx, cs) })
	})

	t.Run("existing-context", func(t *testing.T) {
		t.Parallel()
		// The suite's cluster reached at its API server's own address on the kind network, under
		// a team's context name: not a local kind cluster to rehearse, so no node port on loopback.
		kc := contextAtNodeAddress(t, ctx, "staging-load")
		out := t.TempDir()
		bin := buildCLI(t, ctx)
		var stdout []byte
		var code int
		inPool(func() {
			cmd := exec.CommandContext(ctx, bin, "run", "testdata/cluster-load/staging-cluster-load.yaml", "--kubeconfig", kc,
				"--context", "staging-load", "--allow-context", "staging-load", "--out", out, "--seed", "5")
			stdout, _ = cmd.CombinedOutput()
			code = cmd.ProcessState.ExitCode()
		})
		t.Logf("%s", stdout)
		if code != 0 {
			t.Fatalf("exit %d, want 0", code)
		}
		sum := readSummary(t, filepath.Join(out, "staging-cluster-load", "summary.json"))
		if sum.Load.From != "cluster" || len(sum.Load.Agents) != 1 || sum.Verdict != reports.VerdictPass {
			t.Errorf("load from %q by %d agents, verdict %s; want the cluster's (the default off kind) and pass", sum.Load.From, len(sum.Load.Agents), sum.Verdict)
		}
		if !strings.Contains(string(stdout), "load agent rehearse-load-0 on") {
			t.Errorf("the run did not say where its load agent runs")
		}
	})
}

// interruptedWithAgents sends SIGINT to a run whose load comes from generator pods: it exits 2 and
// no generator pod is left; how long they took to go is logged.
func interruptedWithAgents(t *testing.T, ctx context.Context, cs kubernetes.Interface) {
	const ns = "rehearse-cluster-load-interrupted"
	bin := buildCLI(t, ctx)
	cmd := exec.CommandContext(ctx, bin, "run", "testdata/cluster-load/cluster-load-interrupted.yaml", "--kubeconfig", shared.Kubeconfig, "--out", t.TempDir())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var interrupted time.Time
	gone := make(chan time.Duration, 1)
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		t.Log(sc.Text())
		if interrupted.IsZero() && strings.Contains(sc.Text(), "step steady, ") { // the load is on
			interrupted = time.Now()
			_ = cmd.Process.Signal(os.Interrupt)
			go func() {
				for time.Since(interrupted) < 2*time.Minute {
					l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: workloads.AgentLabel})
					if err == nil && len(l.Items) == 0 {
						gone <- time.Since(interrupted)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
				gone <- -1
			}()
		}
	}
	_ = cmd.Wait()
	if interrupted.IsZero() {
		t.Fatal("the run never reported its load")
	}
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("exit %d after SIGINT, want 2", code)
	}
	if d := <-gone; d < 0 {
		t.Errorf("generator pods still there 2 min after Ctrl-C")
	} else {
		t.Logf("Ctrl-C to no generator pod: %s; the run exited after %s", d.Round(100*time.Millisecond), time.Since(interrupted).Round(100*time.Millisecond))
	}
	if namespaceExists(t, ctx, ns) {
		t.Errorf("namespace %s left behind after Ctrl-C", ns)
	}
}

// contextAtNodeAddress writes a kubeconfig for the suite's cluster whose context is called name
// and whose server is the control-plane container's own address (its API server certificate names
// it), as a kubeconfig for a cluster elsewhere would: rehearse does not take it for a local kind
// cluster.
func contextAtNodeAddress(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", clusterName+"-control-plane").Output()
	ip := strings.Fields(string(out))
	if err != nil || len(ip) == 0 {
		t.Fatalf("control-plane address: %v %q", err, out)
	}
	path := renamedContext(t, name)
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clusters[cfg.Contexts[name].Cluster].Server = "https://" + ip[0] + ":6443"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
