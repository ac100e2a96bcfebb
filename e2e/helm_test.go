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

// A chart of one's own through Helm's Go SDK: installed, upgraded under load by a values change, and
// rolled back by helm rollback as a drill, with versions read from the app's JSON body; its twin's
// values change makes pods that never become ready, and the upgrade fails.
func TestHelm(t *testing.T) {
	f := features.New("helm").
		Assess("install, upgrade by values, helm rollback drill; a bad values change fails", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			t.Run("sound", func(t *testing.T) {
				t.Parallel()
				sum, _, code := rehearse(t, ctx, "testdata/helm/helm-sound.yaml")
				if code != 0 || sum.Verdict != reports.VerdictPass {
					t.Errorf("exit %d, verdict %s; want 0 and pass", code, sum.Verdict)
				}
				up := stepByName(sum, "to-v2")
				if up.Status != "ok" || up.Did["helm_revision_before"] != 1 || up.Did["helm_revision_after"] != 2 {
					t.Errorf("to-v2: %s %v", up.Status, up.Did)
				}
				drill := stepByName(sum, "drill")
				if drill.Status != "ok" || drill.Did["helm_rolled_back_to"] != 1 || drill.Did["helm_revision_now"] != 3 {
					t.Errorf("drill: %s %v", drill.Status, drill.Did)
				}
				for _, name := range []string{"served-version", "rollback-drill"} {
					if c := checkByName(sum, name); c.Status != verify.Pass {
						t.Errorf("%s: %s %q", name, c.Status, c.Message)
					}
				}
				if c := checkByName(sum, "rollback-drill"); !strings.Contains(c.Message, "restored") {
					t.Errorf("rollback-drill: %q", c.Message)
				}
			})
			t.Run("broken", func(t *testing.T) {
				t.Parallel()
				sum, _, code := rehearse(t, ctx, "testdata/helm/helm-broken.yaml")
				if code != 1 || sum.Verdict != reports.VerdictFail {
					t.Errorf("exit %d, verdict %s; want 1 and fail", code, sum.Verdict)
				}
				if st := stepByName(sum, "to-v2"); st.Status != "failed" {
					t.Errorf("to-v2: %s %q; want failed (its pods never became ready)", st.Status, st.Error)
				}
			})
			return ctx
		}).Feature()
	testenv.Test(t, f)
}
