//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/rehearse-dev/rehearse/clusters"
	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/verify"
)

// TestFaultLane runs the node-level faults, one after another, on the workers set apart for them
// (faultLane), beside every other test: each rehearsal's namespace asks for the lane, so all its
// pods run there and no other test's pod does; a drain or a lost node touches nothing else. The
// node losses come after the drains: a node started again after a loss made the rehearsals after it
// on the same node fail (see nodeLoss); the Ctrl-C tests during a fault last. The longest
// migrations of TestMigrations come first (migrationCase.inLane), before any node of the lane was
// drained or restarted. Pod kills act on pods, not nodes: they run in the pool (TestPodKills).
func TestFaultLane(t *testing.T) {
	t.Parallel()
	t.Cleanup(occupied("lane"))
	t.Run("migrations", migrationsInLane)
	t.Run("drains and pod kills", faultsTaken)
	t.Run("node losses", nodeLoss)
	t.Run("Ctrl-C during a fault", faultsInterrupted)
}

// Faults proven to take effect, and undone: after each rehearsal no node is left cordoned or marked.
func faultsTaken(t *testing.T) {
	type want = faultWant
	cases := []faultCase{
		{"testdata/faults/drain-sound.yaml", 0, []want{{"fault-took-effect", verify.Pass, "pods evicted"}, {"zero-failed-requests", verify.Pass, ""}}, nil},
		// Its only pod drained: the failures are explained by the Service's window without a ready endpoint.
		{"testdata/faults/drain-single-broken.yaml", 1, []want{{"zero-failed-requests", verify.Fail, "drain"}, {"fault-took-effect", verify.Pass, "pods evicted"}},
			[]string{"the load's Service had no ready endpoint from +", "the fault drain (fault/node-drain) was acting"}},
		{"testdata/faults/drain-blocked-broken.yaml", 1, []want{{"fault-took-effect", verify.Fail, "evicted nothing"}}, nil},
		// Shipped scenarios, as they stand (node-loss-replica restarts a node: zx_nodeloss_test.go).
		{"../scenarios/drain-during-rolling.yaml", 0, []want{{"fault-took-effect", verify.Pass, "pods evicted"}, {"zero-failed-requests", verify.Pass, ""}, {"served-version", verify.Pass, "all v2"}}, nil},
		{"../scenarios/primary-node-drain.yaml", 0, []want{{"fault-took-effect", verify.Pass, "pods evicted"}, {"acked-writes-durable", verify.Pass, ""}, {"replica-checksums", verify.Pass, ""}},
			[]string{"pod/orders-db-0 received SIGTERM at +"}},
		// Its twin as a runbook would do it: switch the primary over first, then drain. The cost is
		// the switchover's seconds without a writable primary (its budget), and the step says so.
		{"../scenarios/primary-node-drain-switchover.yaml", 0, []want{{"zero-failed-requests", verify.Pass, ""}, {"acked-writes-durable", verify.Pass, ""},
			{"replica-checksums", verify.Pass, "2 members"}, {"fault-took-effect", verify.Pass, "pods evicted"}}, nil},
	}
	runFaultCases(t, "faults", faultLane, cases)
}

type faultWant struct {
	check  string
	status verify.Status
	text   string
}

type faultCase struct {
	file  string
	code  int
	wants []faultWant
	// explained: what the explanations of its failure bursts must say, each in some line
	explained []string
}

// runFaultCases runs each case in the fault lane, one at a time, and, after each, requires that the
// faults acted on the lane's nodes only, no node cordoned and the cluster settled: the next
// rehearsal shares it.
func runFaultCases(t *testing.T, feature, lane string, cases []faultCase) {
	f := features.New(feature).
		Assess("faults that took effect pass; faults that did nothing, and systems that cannot take them, fail", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cases {
				name := strings.TrimSuffix(c.file[strings.LastIndex(c.file, "/")+1:], ".yaml")
				t.Run(name, func(t *testing.T) {
					start := time.Now()
					sum, _, code := rehearseIn(t, ctx, c.file, lane)
					if lane != "" {
						inLane(t, ctx, cs, sum)
					}
					t.Logf("%s: exit %d in %s", name, code, time.Since(start).Round(time.Second))
					for _, s := range sum.Steps {
						t.Logf("  step %-8s %-8s %5.1fs %v %s", s.Name, s.Status, s.Finished.Sub(s.Started).Seconds(), s.Did, s.Error)
					}
					if code != c.code {
						t.Errorf("exit %d, verdict %s; want exit %d", code, sum.Verdict, c.code)
					}
					for _, w := range c.wants {
						if got := checkByName(sum, w.check); got.Status != w.status || !strings.Contains(got.Message, w.text) {
							t.Errorf("%s: %s %q; want %s containing %q", w.check, got.Status, got.Message, w.status, w.text)
						}
					}
					lines := strings.Join(verify.ExplanationLines(sum.Explanations), "\n")
					for _, e := range c.explained {
						if !strings.Contains(lines, e) {
							t.Errorf("the explanation lacks %q:\n%s", e, lines)
						}
					}
					noNodeCordoned(t, ctx, cs)
					if lane != "" {
						// The next rehearsal shares the cluster: a lost node's pods must be back first.
						waitSettled(t, ctx, cs, 2*time.Minute)
					}
				})
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// Pod kills, proven to take effect or to have done nothing, act on the rehearsal's own pods and no
// node: they run in the pool beside the other tests.
func TestPodKills(t *testing.T) {
	t.Parallel()
	type want = faultWant
	runFaultCases(t, "pod kills", "", []faultCase{
		{"testdata/faults/podkill-sound.yaml", 0, []want{{"fault-took-effect", verify.Pass, "3 pods killed and replaced"}, {"zero-failed-requests", verify.Pass, ""}}, nil},
		{"testdata/faults/podkill-nothing-broken.yaml", 1, []want{{"fault-took-effect", verify.Fail, "kill: pod-kill matched no pod"}}, nil},
	})
}

// inLane fails the test for every node a fault of the rehearsal acted on that is not one of the
// fault lane's: its namespace did not place it there (the admission plugins or the annotations are
// missing), and it ran among the other tests' pods.
func inLane(t *testing.T, ctx context.Context, cs kubernetes.Interface, sum *reports.Summary) {
	t.Helper()
	for _, st := range sum.Steps {
		for _, key := range []string{"drain", "loss"} {
			raw, ok := st.Did[key]
			if !ok {
				continue
			}
			var acted struct{ Node string }
			if b, err := json.Marshal(raw); err != nil || json.Unmarshal(b, &acted) != nil || acted.Node == "" {
				t.Errorf("step %s: no node in its %s record: %v", st.Name, key, raw)
				continue
			}
			n, err := cs.CoreV1().Nodes().Get(ctx, acted.Node, metav1.GetOptions{})
			if err != nil {
				t.Errorf("step %s: node %s: %v", st.Name, acted.Node, err)
			} else if n.Labels[clusters.PoolKey] != faultLane {
				t.Errorf("step %s acted on node %s, outside the %s lane (labels %v): the rehearsal ran among the other tests' pods", st.Name, acted.Node, faultLane, n.Labels)
			}
		}
	}
}
