//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/runner"
	"github.com/rehearse-dev/rehearse/verify"
)

// A team's system as they ship it: a kustomize base rolled to an overlay, and a chart through Helm's
// Go SDK (installed, upgraded by values, rolled back by helm rollback as a drill, its app saying its
// version only in its JSON body), each beside its broken twin.
func TestShippedAsTheTeamShipsIt(t *testing.T) {
	t.Parallel() // beside the other tests; node-level faults run in their own lane (TestFaultLane)
	f := features.New("kustomize and helm").
		Assess("sound systems pass, broken twins fail", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			twin(t, ctx, "kustomize-sound", reports.VerdictPass, func(t *testing.T, sum *reports.Summary) {
				if c := checkByName(sum, "served-version"); c.Status != verify.Pass || !strings.Contains(c.Message, "v2") {
					t.Errorf("served-version: %s %q", c.Status, c.Message)
				}
				if st := stepByName(sum, "to-v2"); st.Status != "ok" || st.Did["revision_after"] == st.Did["revision_before"] {
					t.Errorf("to-v2: %s %v", st.Status, st.Did)
				}
			})
			// The overlay rolled to is a release that fails a share of its requests.
			twin(t, ctx, "kustomize-broken", reports.VerdictFail, func(t *testing.T, sum *reports.Summary) {
				if c := checkByName(sum, "zero-failed-requests"); c.Status != verify.Fail || !strings.Contains(c.Message, "to-v2") {
					t.Errorf("zero-failed-requests: %s %q; want a failure during to-v2", c.Status, c.Message)
				}
			})
			twin(t, ctx, "helm-sound", reports.VerdictPass, func(t *testing.T, sum *reports.Summary) {
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
				if c := checkByName(sum, "rollback-drill"); !strings.Contains(c.Message, "restored to v1") {
					t.Errorf("rollback-drill: %q", c.Message)
				}
			})
			// The values change makes pods that never become ready: the upgrade's rollout fails.
			twin(t, ctx, "helm-broken", reports.VerdictFail, func(t *testing.T, sum *reports.Summary) {
				if st := stepByName(sum, "to-v2"); st.Status != "failed" {
					t.Errorf("to-v2: %s %q; want failed", st.Status, st.Error)
				}
			})
			// A canary by an args change, its versions read from the JSON body.
			twin(t, ctx, "helm-canary-sound", reports.VerdictPass, func(t *testing.T, sum *reports.Summary) {
				if st := stepByName(sum, "canary-v2"); st.Status != "promoted" {
					t.Errorf("canary-v2: %s %q; want promoted", st.Status, st.Error)
				}
			})
			// The body says the stable version: no answer may count as the canary's, and served-version
			// cannot pass.
			twin(t, ctx, "helm-canary-broken", "", func(t *testing.T, sum *reports.Summary) {
				if sum.Verdict == reports.VerdictPass {
					t.Errorf("verdict pass")
				}
				if st := stepByName(sum, "canary-v2"); st.Status == "promoted" {
					t.Errorf("canary-v2 promoted though no answer said v2")
				}
				if c := checkByName(sum, "served-version"); c.Status == verify.Pass {
					t.Errorf("served-version: %s %q", c.Status, c.Message)
				}
			})
			// An app that says its version nowhere: the canary gate judges it by its own probes of
			// each track's pods.
			twin(t, ctx, "probe-canary-sound", reports.VerdictPass, func(t *testing.T, sum *reports.Summary) {
				st := stepByName(sum, "canary-v2")
				if st.Status != "promoted" || st.Did["attribution"] == nil {
					t.Errorf("canary-v2: %s %q %v; want promoted, judged by probes", st.Status, st.Error, st.Did["attribution"])
				}
			})
			twin(t, ctx, "probe-canary-broken", reports.VerdictFail, func(t *testing.T, sum *reports.Summary) {
				if st := stepByName(sum, "canary-v2"); st.Status != "failed" || st.Did["outcome"] != "rolled-back" {
					t.Errorf("canary-v2: %s %v; want failed, rolled back by its gate", st.Status, st.Did["outcome"])
				}
			})
			// rehearse init's scenario for the chart, run as written, passes.
			t.Run("init-helm", func(t *testing.T) {
				t.Parallel()
				out := filepath.Join(t.TempDir(), "init.yaml")
				b, err := runner.Init("testdata/helm/web", "init-helm", out)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(out, b, 0o644); err != nil {
					t.Fatal(err)
				}
				sum, _, code := rehearse(t, ctx, out)
				if code != 0 || sum.Verdict != reports.VerdictPass {
					t.Errorf("exit %d, verdict %s; want 0 and pass:\n%s", code, sum.Verdict, b)
				}
			})
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// twin rehearses testdata/{kustomize,helm}/NAME.yaml beside the others and wants its verdict (pass
// and exit 0; fail, or "" for fail or error, and exit 1), then what more says.
func twin(t *testing.T, ctx context.Context, name, verdict string, more func(*testing.T, *reports.Summary)) {
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		dir, _, _ := strings.Cut(name, "-")
		sum, _, code := rehearse(t, ctx, "testdata/"+dir+"/"+name+".yaml")
		wantCode := 1
		if verdict == reports.VerdictPass {
			wantCode = 0
		}
		if code != wantCode || (verdict != "" && sum.Verdict != verdict) {
			t.Errorf("exit %d, verdict %s; want %d and %s", code, sum.Verdict, wantCode, verdict)
		}
		more(t, sum)
	})
}
