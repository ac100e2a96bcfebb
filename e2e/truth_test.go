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
	type want struct {
		check  string
		status verify.Status
		text   string
	}
	cases := []struct {
		file  string
		code  int
		wants []want
	}{
		{"testdata/truth/slow-start-broken.yaml", 1, []want{{"zero-failed-requests", verify.Fail, "scale-up"}}},
		{"testdata/truth/slow-start-sound.yaml", 0, []want{{"zero-failed-requests", verify.Pass, "0 of"}, {"load-achieved", verify.Pass, "every second"}}},
		{"testdata/truth/redirect-broken.yaml", 1, []want{{"zero-failed-requests", verify.Fail, "during steady"}, {"acked-writes-durable", verify.Error, "no write was acknowledged"}}},
		{"testdata/truth/ack-only-broken.yaml", 1, []want{{"acked-writes-durable", verify.Error, "cannot tell stored from missing"}}},
		{"testdata/truth/durable-sound.yaml", 0, []want{{"acked-writes-durable", verify.Pass, "5 control ids read as missing"}, {"zero-failed-requests", verify.Pass, ""}}},
	}
	f := features.New("verdicts that cannot be fooled").
		Assess("broken rehearsals fail the named check; their sound twins pass", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			for _, c := range cases {
				t.Run(strings.TrimSuffix(c.file[len("testdata/truth/"):], ".yaml"), func(t *testing.T) {
					t.Parallel()
					sum, _, code := rehearse(t, ctx, c.file)
					if code != c.code {
						t.Errorf("exit %d, verdict %s; want exit %d", code, sum.Verdict, c.code)
					}
					if c.code == 0 && sum.Verdict != reports.VerdictPass {
						t.Errorf("verdict %s", sum.Verdict)
					}
					for _, w := range c.wants {
						if got := checkByName(sum, w.check); got.Status != w.status || !strings.Contains(got.Message, w.text) {
							t.Errorf("%s: %s %q; want %s containing %q", w.check, got.Status, got.Message, w.status, w.text)
						}
					}
				})
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}
