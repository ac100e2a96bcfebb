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

// A kustomize base deployed and rolled to an overlay under load: the sound overlay passes with its
// release serving; the broken one (a release that fails a share of its requests) fails.
func TestKustomize(t *testing.T) {
	f := features.New("kustomize").
		Assess("base → overlay rolling: the sound overlay passes, the broken one fails", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			t.Run("sound", func(t *testing.T) {
				t.Parallel()
				sum, _, code := rehearse(t, ctx, "testdata/kustomize/kustomize-sound.yaml")
				if code != 0 || sum.Verdict != reports.VerdictPass {
					t.Errorf("exit %d, verdict %s; want 0 and pass", code, sum.Verdict)
				}
				if c := checkByName(sum, "served-version"); c.Status != verify.Pass || !strings.Contains(c.Message, "v2") {
					t.Errorf("served-version: %s %q", c.Status, c.Message)
				}
				if st := stepByName(sum, "to-v2"); st.Status != "ok" || st.Did["revision_after"] == st.Did["revision_before"] {
					t.Errorf("to-v2: %s %v", st.Status, st.Did)
				}
			})
			t.Run("broken", func(t *testing.T) {
				t.Parallel()
				sum, _, code := rehearse(t, ctx, "testdata/kustomize/kustomize-broken.yaml")
				if code != 1 || sum.Verdict != reports.VerdictFail {
					t.Errorf("exit %d, verdict %s; want 1 and fail", code, sum.Verdict)
				}
				if c := checkByName(sum, "zero-failed-requests"); c.Status != verify.Fail || !strings.Contains(c.Message, "to-v2") {
					t.Errorf("zero-failed-requests: %s %q; want a failure during to-v2", c.Status, c.Message)
				}
			})
			return ctx
		}).Feature()
	testenv.Test(t, f)
}
