//go:build e2e

package e2e

import (
	"context"
	"encoding/xml"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/rehearse-dev/rehearse/clusters"
	"github.com/rehearse-dev/rehearse/replay"
	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/runbook"
	"github.com/rehearse-dev/rehearse/runner"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// rehearse runs a scenario file or a Markdown runbook on the shared cluster, logs its checks and
// steps, and returns its summary, its run directory and its exit code.
func rehearse(t *testing.T, ctx context.Context, file string) (*reports.Summary, string, int) {
	t.Helper()
	return rehearseIn(t, ctx, file, "")
}

// rehearseIn rehearses file with its namespace placed on the cluster's pool of workers lane (the
// annotations a team would write in workload.namespace), or anywhere but a pool when lane is "".
func rehearseIn(t *testing.T, ctx context.Context, file, lane string) (*reports.Summary, string, int) {
	t.Helper()
	var sc *scenarios.Loaded
	var err error
	if runbook.IsRunbook(file) {
		sc, err = runner.Load(file)
	} else {
		sc, err = scenarios.LoadFile(file)
	}
	if err != nil {
		t.Fatal(err)
	}
	sc.Cluster.Kubeconfig = shared.Kubeconfig
	sc.Cluster.Name = clusterName // shipped scenarios name the default cluster
	if lane != "" {
		if sc.Workload.Namespace == nil {
			sc.Workload.Namespace = &scenarios.NamespaceMeta{}
		}
		if sc.Workload.Namespace.Annotations == nil {
			sc.Workload.Namespace.Annotations = map[string]string{}
		}
		maps.Copy(sc.Workload.Namespace.Annotations, clusters.PoolAnnotations(lane))
	}
	out := t.TempDir()
	if keep := os.Getenv("REHEARSE_E2E_OUT"); keep != "" { // keep the reports to look at
		out = keep
	}
	var began time.Time
	var took time.Duration
	var sum *reports.Summary
	teardown := &lineTime{prefix: "rehearse: deleting the workload"}
	run := func(release func()) {
		began = time.Now()
		teardown.then = release
		sum, err = runner.Run(ctx, sc, runner.Options{OutDir: out, Seed: 7, Progress: teardown})
		took = time.Since(began)
	}
	if lane == "" {
		inPoolUntil(run) // beside the other tests, as many at once as the pool allows, to its teardown
	} else {
		run(func() {}) // the lane's tests run one at a time by themselves
	}
	code := runner.ExitCode(sum, err)
	if err != nil {
		t.Logf("run %s: %v", file, err)
	}
	if sum == nil {
		t.Fatalf("no summary (exit %d)", code)
	}
	for _, c := range sum.Checks {
		t.Logf("%s: %-22s %-5s %s", sum.Scenario, c.Name, c.Status, c.Message)
	}
	for _, s := range sum.Steps {
		if s.Kind == "run" {
			t.Logf("  step %-22s %-7s %5.1fs exit %v %s", s.Name, s.Status, s.Finished.Sub(s.Started).Seconds(), s.Did["exit_code"], reports.FirstLine(s.Error))
		}
	}
	dir := filepath.Join(out, sc.Metadata.Name)
	recapOnFailure(t, sum, code, dir, phasesOf(began, took, sum, teardown.at()))
	explainedAsItShould(t, sum, dir)
	if sum.Load.Failed > 0 {
		// The failures themselves, so that a run that failed unexpectedly can be understood from the
		// test log alone (the reports go with the test's temporary directory).
		if md, err := os.ReadFile(filepath.Join(dir, "summary.md")); err == nil {
			if i := strings.Index(string(md), "# First failures"); i >= 0 {
				t.Logf("%s: %s", sum.Scenario, string(md[i:]))
			}
		}
	}
	return sum, dir, code
}

func TestRunScenarios(t *testing.T) {
	t.Parallel() // beside the other tests; node-level faults run in their own lane (TestFaultLane)
	f := features.New("rehearse run").
		Assess("a healthy smoke rehearsal passes and writes its reports", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			sum, dir, code := rehearse(t, ctx, "testdata/smoke-short.yaml")
			if code != 0 || sum.Verdict != reports.VerdictPass {
				t.Errorf("exit %d, verdict %s", code, sum.Verdict)
			}
			if sum.Load.Requests < 250 {
				t.Errorf("only %d requests", sum.Load.Requests)
			}
			for _, f := range []string{"summary.json", "summary.md", "junit.xml", "report.html", "results.bin", "ledger.tsv"} {
				if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
					t.Errorf("%s missing or empty: %v", f, err)
				}
			}
			// The replay bundle: the seed, the node image and the sample's images by their IDs.
			if rb, err := replay.Open(dir); err != nil {
				t.Errorf("replay bundle: %v", err)
			} else if rb.Run.Seed != sum.Seed || rb.Run.NodeImage == nil || !strings.HasPrefix(rb.Run.NodeImage.ID, "sha256:") ||
				len(rb.Run.Images) != 2 || !strings.HasPrefix(rb.Run.Images[0].ID, "sha256:") || sum.Replay != "replay/run.json" {
				t.Errorf("replay bundle: seed %d (summary %d), node image %+v, images %+v, summary's replay %q",
					rb.Run.Seed, sum.Seed, rb.Run.NodeImage, rb.Run.Images, sum.Replay)
			}
			b, _ := os.ReadFile(filepath.Join(dir, "junit.xml"))
			var j struct {
				Suites []struct {
					Cases []struct {
						Name string `xml:"name,attr"`
					} `xml:"testcase"`
				} `xml:"testsuite"`
			}
			// A testcase per check and per step.
			if err := xml.Unmarshal(b, &j); err != nil || len(j.Suites) != 1 || len(j.Suites[0].Cases) != len(sum.Checks)+len(sum.Steps) {
				t.Errorf("junit.xml: %v %+v", err, j)
			}
			// The report renders in a real browser with the timeline's bars on screen.
			if px := renderedTimelinePixels(t, ctx, filepath.Join(dir, "report.html")); px < 2000 {
				t.Errorf("screenshot of report.html shows %d pixels of served-request bars, want the timeline visible (>= 2000)", px)
			} else {
				t.Logf("report.html rendered in Chromium: %d pixels of timeline bars", px)
			}
			return ctx
		}).
		Assess("rolling out the faulty v2-bad fails zero-failed-requests, attributed to the rollout", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			sum, _, code := rehearse(t, ctx, "testdata/broken-rollout.yaml")
			if code != 1 || sum.Verdict != reports.VerdictFail {
				t.Errorf("exit %d, verdict %s; want 1 and fail", code, sum.Verdict)
			}
			for _, c := range sum.Checks {
				if c.Name == "zero-failed-requests" {
					if c.Status != "fail" || !(strings.Contains(c.Message, "rollout-bad") || strings.Contains(c.Message, "after-bad")) {
						t.Errorf("zero-failed-requests: %s %s", c.Status, c.Message)
					}
					// Before the faulty release nothing failed: the failures belong to it alone.
					if strings.Contains(c.Message, "warmup:") || strings.Contains(c.Message, "expand:") {
						t.Errorf("failures attributed to steps before the faulty rollout: %s", c.Message)
					}
				}
				if c.Name == "acked-writes-durable" && c.Status != "pass" {
					t.Errorf("acked-writes-durable: %s %s (v2-bad fails requests, it loses no acknowledged write)", c.Status, c.Message)
				}
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// explainedAsItShould holds every rehearsal to the cluster timeline's promises: cluster.jsonl is
// written; a run without failed requests has no explanation; one with failures has each burst (up to
// verify.MaxExplained) explained or said to be unexplained, and none with no line.
func explainedAsItShould(t *testing.T, sum *reports.Summary, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, runner.ClusterFile)); err != nil {
		t.Errorf("%s: no cluster timeline: %v", sum.Scenario, err)
	}
	if sum.Load.Failed == 0 {
		if len(sum.Explanations) > 0 {
			t.Errorf("%s: no request failed, yet explanations: %+v", sum.Scenario, sum.Explanations)
		}
		return
	}
	if len(sum.Explanations) == 0 && len(sum.ClusterNotes) == 0 {
		t.Errorf("%s: %d requests failed and nothing explains them or says why not", sum.Scenario, sum.Load.Failed)
	}
	for _, e := range sum.Explanations {
		if len(e.Lines) == 0 {
			t.Errorf("%s: burst %s has no line", sum.Scenario, e.Burst)
		}
		t.Logf("%s: %s: %s", sum.Scenario, e.Burst, strings.Join(e.Lines, " | "))
	}
}
