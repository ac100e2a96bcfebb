//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/runner"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/verify"
)

const webImage = "rehearse.local/e2e-web:dev"

// ownWorkloadDir copies testdata/own into a temporary directory and saves the web image there as
// web.tar (docker save), as a team would ship an archive next to its scenario.
func ownWorkloadDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-r", "testdata/own/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	for _, args := range [][]string{{"tag", probeImage, webImage}, {"save", "-o", filepath.Join(dir, "web.tar"), webImage}} {
		if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
			t.Fatalf("docker %v: %v %s", args, err, out)
		}
	}
	return dir
}

func checkByName(sum *reports.Summary, name string) verify.Result {
	for _, c := range sum.Checks {
		if c.Name == name {
			return c
		}
	}
	return verify.Result{Name: name, Status: "missing"}
}

func TestOwnWorkload(t *testing.T) {
	t.Parallel() // beside the other tests; node-level faults run in their own lane (TestFaultLane)
	f := features.New("a workload of one's own manifests").
		Assess("manifests + image archive + exec/scale steps + exec checksums: passes and leaves nothing", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			dir := ownWorkloadDir(t)
			sum, out, code := rehearse(t, ctx, filepath.Join(dir, "own-good.yaml"))
			if code != 0 || sum.Verdict != reports.VerdictPass {
				t.Errorf("exit %d, verdict %s; want 0 and pass", code, sum.Verdict)
			}
			kinds := map[string]string{}
			by := map[string]reports.Step{}
			for _, s := range sum.Steps {
				kinds[s.Name] = s.Kind + " " + s.Status
				by[s.Name] = s
			}
			// One timeline: touch ran during the warmup, scale-up waited for both.
			if w, x, s := by["warmup"], by["touch"], by["scale-up"]; !x.Started.Before(w.Finished) || x.Started.Sub(w.Started) < time.Second ||
				s.Started.Before(w.Finished) || s.Started.Before(x.Finished) {
				t.Errorf("timeline: warmup %s-%s, touch %s-%s, scale-up from %s", w.Started, w.Finished, x.Started, x.Finished, s.Started)
			}
			if kinds["touch"] != "exec ok" || kinds["scale-up"] != "scale ok" {
				t.Errorf("steps: %v", kinds)
			}
			if c := checkByName(sum, "replica-checksums"); !strings.Contains(c.Message, "3 replicas") {
				t.Errorf("replica-checksums must have compared the 3 scaled-up pods: %s", c.Message)
			}
			if b, err := os.ReadFile(filepath.Join(out, "metrics.prom")); err != nil || !strings.Contains(string(b), `rehearse_verdict{scenario="own-good",verdict="pass"} 1`) {
				t.Errorf("metrics.prom: %v\n%s", err, b)
			}
			if namespaceExists(t, ctx, "rehearse-own-good") {
				t.Errorf("namespace rehearse-own-good left behind")
			}
			return ctx
		}).
		Assess("writes kept per replica and diverging replicas: acked-writes-durable and replica-checksums fail", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			dir := ownWorkloadDir(t)
			sum, _, code := rehearse(t, ctx, filepath.Join(dir, "own-broken.yaml"))
			if code != 1 || sum.Verdict != reports.VerdictFail {
				t.Errorf("exit %d, verdict %s; want 1 and fail", code, sum.Verdict)
			}
			if c := checkByName(sum, "acked-writes-durable"); c.Status != verify.Fail || !strings.Contains(c.Message, "acknowledged writes are missing") {
				t.Errorf("acked-writes-durable: %s %s", c.Status, c.Message)
			}
			if c := checkByName(sum, "replica-checksums"); c.Status != verify.Fail || !strings.Contains(c.Message, "differs from") {
				t.Errorf("replica-checksums: %s %s", c.Status, c.Message)
			}
			if c := checkByName(sum, "zero-failed-requests"); c.Status != verify.Pass {
				t.Errorf("zero-failed-requests: every POST was answered 201, got %s %s", c.Status, c.Message)
			}
			return ctx
		}).
		Assess("pods refused at admission: the run stops in seconds, naming the reason and the scenario's label", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			dir := ownWorkloadDir(t)
			sc, err := scenarios.LoadFile(filepath.Join(dir, "own-restricted.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			sc.Cluster.Kubeconfig = shared.Kubeconfig
			var runErr error
			var took time.Duration
			inPool(func() {
				began := time.Now()
				_, runErr = runner.Run(ctx, sc, runner.Options{OutDir: t.TempDir(), Seed: 7})
				took = time.Since(began)
			})
			msg := fmt.Sprint(runErr)
			if code := runner.ExitCode(nil, runErr); code != 2 {
				t.Errorf("exit %d (%s); want 2", code, msg)
			}
			for _, want := range []string{"ReplicaSet web-", "cannot create its pods", `violates PodSecurity "restricted`, "workload.namespace.labels set pod-security.kubernetes.io/enforce: restricted"} {
				if !strings.Contains(msg, want) {
					t.Errorf("the error does not say %q:\n%s", want, msg)
				}
			}
			if took > 2*time.Minute {
				t.Errorf("stopped after %s: the refusal was not seen before the rollout's timeout", took)
			}
			if namespaceExists(t, ctx, "rehearse-own-restricted") {
				t.Errorf("namespace rehearse-own-restricted left behind")
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// sharedClientset is a client of the suite's cluster.
func sharedClientset(t testing.TB) kubernetes.Interface {
	t.Helper()
	cfg, err := shared.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// namespaceExists says whether namespace exists on the shared cluster.
func namespaceExists(t *testing.T, ctx context.Context, namespace string) bool {
	t.Helper()
	_, err := sharedClientset(t).CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}
