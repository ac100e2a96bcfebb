//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/verify"
)

// Rehearsals built to look healthy to a naive harness, each beside its sound twin. They are
// independent (own namespaces and NodePorts), so they run side by side on the shared cluster.
func TestVerdictsCannotBeFooled(t *testing.T) {
	t.Parallel() // beside the other tests; node-level faults run in their own lane (TestFaultLane)
	type want struct {
		check  string
		status verify.Status
		text   string
	}
	cases := []struct {
		file  string
		code  int
		wants []want
		runs  int // how many times in a row it must get its verdict (a verdict that is luck is none)
		// explained: substrings the explanation of its failed requests must have, each in some line,
		// in every run where requests failed
		explained []string
	}{
		// Pods that exit at once on SIGTERM: a request that met the gap is luck, the verdict is not.
		// Whenever requests met the gap (3 of 5 runs, in a CI run), the cluster explains them.
		{file: "testdata/truth/abrupt-exit-broken.yaml", code: 1, runs: 5, wants: []want{{"graceful-termination", verify.Fail, "stopped serving less than 2s after their deletion began"}},
			explained: []string{"received SIGTERM at", "its container web exited at", "endpoint"}},
		{file: "testdata/truth/graceful-exit-sound.yaml", code: 0, wants: []want{{"graceful-termination", verify.Pass, "each served at least 2s"}, {"zero-failed-requests", verify.Pass, "0 of"}}},
		{file: "testdata/truth/slow-start-broken.yaml", code: 1, wants: []want{{"zero-failed-requests", verify.Fail, "scale-up"}}},
		{file: "testdata/truth/slow-start-sound.yaml", code: 0, wants: []want{{"zero-failed-requests", verify.Pass, "0 of"}, {"load-achieved", verify.Pass, "every second"}}},
		{file: "testdata/truth/redirect-broken.yaml", code: 1, wants: []want{{"zero-failed-requests", verify.Fail, "during steady"}, {"acked-writes-durable", verify.Error, "no write was acknowledged"}}},
		{file: "testdata/truth/ack-only-broken.yaml", code: 1, wants: []want{{"acked-writes-durable", verify.Error, "cannot tell stored from missing"}}},
		{file: "testdata/truth/durable-sound.yaml", code: 0, wants: []want{{"acked-writes-durable", verify.Pass, "5 control ids read as missing"}, {"zero-failed-requests", verify.Pass, ""}}},
	}
	f := features.New("verdicts that cannot be fooled").
		Assess("broken rehearsals fail the named check; their sound twins pass", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			for _, c := range cases {
				t.Run(strings.TrimSuffix(c.file[len("testdata/truth/"):], ".yaml"), func(t *testing.T) {
					t.Parallel()
					for run := range max(c.runs, 1) {
						sum, _, code := rehearse(t, ctx, c.file)
						if code != c.code {
							t.Errorf("run %d: exit %d, verdict %s; want exit %d", run+1, code, sum.Verdict, c.code)
						}
						if c.code == 0 && sum.Verdict != reports.VerdictPass {
							t.Errorf("run %d: verdict %s", run+1, sum.Verdict)
						}
						lines := strings.Join(verify.ExplanationLines(sum.Explanations), "\n")
						for _, e := range c.explained {
							if sum.Load.Failed > 0 && !strings.Contains(lines, e) {
								t.Errorf("run %d: the explanation lacks %q:\n%s", run+1, e, lines)
							}
						}
						for _, w := range c.wants {
							if got := checkByName(sum, w.check); got.Status != w.status || !strings.Contains(got.Message, w.text) {
								t.Errorf("run %d: %s: %s %q; want %s containing %q", run+1, w.check, got.Status, got.Message, w.status, w.text)
							}
						}
					}
				})
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}
