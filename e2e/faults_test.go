//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/rehearse-dev/rehearse/verify"
)

// Faults proven to take effect, and undone: each rehearsal runs alone (a drain moves every pod of
// its node, the shared cluster's included), and after each no node is left cordoned or marked.
func TestFaults(t *testing.T) {
	type want = faultWant
	cases := []faultCase{
		{"testdata/faults/podkill-sound.yaml", 0, []want{{"fault-took-effect", verify.Pass, "3 pods killed and replaced"}, {"zero-failed-requests", verify.Pass, ""}}, nil},
		{"testdata/faults/podkill-nothing-broken.yaml", 1, []want{{"fault-took-effect", verify.Fail, "kill: pod-kill matched no pod"}}, nil},
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
	runFaultCases(t, "faults", cases)
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

// runFaultCases runs each case alone and, after each, requires no node cordoned and the cluster
// settled: the next rehearsal shares it.
func runFaultCases(t *testing.T, feature string, cases []faultCase) {
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
					sum, _, code := rehearse(t, ctx, c.file)
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
					// The next rehearsal shares the cluster: a lost node's pods must be back first.
					waitSettled(t, ctx, cs, 2*time.Minute)
				})
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}
