//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/verify"
)

// buildCLI builds the rehearse binary the way `make build` does, once for the suite (tests that run
// side by side would otherwise link it each).
func buildCLI(t *testing.T, ctx context.Context) string {
	t.Helper()
	if err := compileCLI(ctx); err != nil {
		t.Fatal(err)
	}
	return cli.bin
}

// compileCLI builds the rehearse binary once. The suite's set-up does (waitTurn), before the first
// test: with an empty Go build cache (a cold CI run) it is a full compile of a minute or more on two
// cores, which the first CLI test made beside the first rehearsals (the host saturated 35 of 46 s
// of a sound blue-green rehearsal, whose gate then saw a p99 of 1.6 s). -trimpath: a fresh clone
// in another directory finds it in the build cache.
func compileCLI(ctx context.Context) error {
	cli.Do(func() {
		dir, err := os.MkdirTemp("", "rehearse-e2e-cli-")
		if err != nil {
			cli.err = err
			return
		}
		cli.bin = filepath.Join(dir, "rehearse")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", cli.bin, "../cmd/rehearse")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			cli.err = fmt.Errorf("build: %v %s", err, out)
		}
	})
	return cli.err
}

var cli struct {
	sync.Once
	bin string
	err error
}

// renamedContext writes a copy of the suite's kubeconfig whose context is called name, as a team's
// kubeconfig for a shared cluster would be (not kind-*).
func renamedContext(t *testing.T, name string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(shared.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Contexts[shared.Context]
	if c == nil {
		t.Fatalf("no context %s in %s", shared.Context, shared.Kubeconfig)
	}
	delete(cfg.Contexts, shared.Context)
	cfg.Contexts[name] = c
	cfg.CurrentContext = name
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func readSummary(t *testing.T, path string) *reports.Summary {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s reports.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

var metricsLine = regexp.MustCompile(`metrics on (http://\S+/metrics)`)

func TestCLIOnAnExistingContext(t *testing.T) {
	t.Parallel() // beside the other tests; node-level faults run in their own lane (TestFaultLane)
	holdPoolSlot(t)
	f := features.New("rehearse run on an existing, non-kind context").
		Assess("refused without --allow-context (exit 2), nothing touched", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			bin := buildCLI(t, ctx)
			kc := renamedContext(t, "staging-e2e")
			cmd := exec.CommandContext(ctx, bin, "run", "testdata/scale-to-zero.yaml", "--kubeconfig", kc, "--context", "staging-e2e", "--out", t.TempDir())
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), "--allow-context staging-e2e") {
				t.Errorf("exit %d (%v), want 2 naming --allow-context:\n%s", code, err, out)
			}
			if namespaceExists(t, ctx, "rehearse-scale-to-zero") {
				t.Errorf("a refused run created its namespace")
			}
			return ctx
		}).
		Assess("allowed: app scaled to 0 fails zero-failed-requests on that step; a capped client fails load-achieved; suite junit and metrics", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			bin := buildCLI(t, ctx)
			kc := renamedContext(t, "staging-e2e")
			outDir := t.TempDir()
			cmd := exec.CommandContext(ctx, bin, "run", "testdata/scale-to-zero.yaml", "testdata/load-short.yaml", "--kubeconfig", kc,
				"--context", "staging-e2e", "--allow-context", "staging-e2e", "--out", outDir, "--seed", "11", "--metrics-addr", "127.0.0.1:0")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stdout strings.Builder
			cmd.Stdout = &stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// While the first scenario runs, its metrics answer on the printed address.
			scraped := make(chan string, 1)
			go func() {
				sc := bufio.NewScanner(stderr)
				sent := false
				for sc.Scan() {
					line := sc.Text()
					t.Log(line)
					if m := metricsLine.FindStringSubmatch(line); m != nil && !sent {
						sent = true
						go func(url string) { scraped <- scrapeUntil(url, "rehearse_requests_total{", 20*time.Second) }(m[1])
					}
				}
			}()
			_ = cmd.Wait()
			t.Logf("stdout:\n%s", stdout.String())
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Errorf("exit %d, want 1 (checks failed)", code)
			}
			select {
			case body := <-scraped:
				if !strings.Contains(body, `rehearse_requests_total{code="201",scenario="scale-to-zero",target="write"}`) {
					t.Errorf("live metrics lack the write counter:\n%s", body)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("no metrics address was printed")
			}

			s := readSummary(t, filepath.Join(outDir, "scale-to-zero", "summary.json"))
			zf := checkByName(s, "zero-failed-requests")
			if zf.Status != verify.Fail {
				t.Errorf("scale-to-zero: zero-failed-requests %s %s", zf.Status, zf.Message)
			}
			by, _ := zf.Observed["attribution"].(map[string]any)
			if len(by) == 0 {
				t.Errorf("no attribution: %v", zf.Observed)
			}
			for step := range by {
				if !strings.Contains(step, "scale-to-zero") {
					t.Errorf("failures attributed to %q, not to the scale step: %v", step, by)
				}
			}
			l := readSummary(t, filepath.Join(outDir, "load-short", "summary.json"))
			if c := checkByName(l, "load-achieved"); c.Status != verify.Fail {
				t.Errorf("load-short: load-achieved %s %s", c.Status, c.Message)
			}
			for _, name := range []string{"scale-to-zero", "load-short"} {
				b, err := os.ReadFile(filepath.Join(outDir, name, "metrics.prom"))
				if err != nil || !strings.Contains(string(b), `rehearse_verdict{scenario="`+name+`",verdict="fail"} 1`) {
					t.Errorf("%s metrics.prom: %v", name, err)
				}
				if namespaceExists(t, ctx, "rehearse-"+name) {
					t.Errorf("namespace rehearse-%s left behind", name)
				}
			}
			b, err := os.ReadFile(filepath.Join(outDir, "junit.xml"))
			var j struct {
				Suites []struct {
					Name     string `xml:"name,attr"`
					Failures int    `xml:"failures,attr"`
				} `xml:"testsuite"`
			}
			if err != nil || xml.Unmarshal(b, &j) != nil || len(j.Suites) != 2 || j.Suites[0].Name != "scale-to-zero" || j.Suites[1].Name != "load-short" ||
				j.Suites[0].Failures == 0 || j.Suites[1].Failures == 0 {
				t.Errorf("suite junit.xml: %v %+v\n%s", err, j, b)
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// scrapeUntil GETs url until the body holds want (or the time is up) and returns the last body.
func scrapeUntil(url, want string, within time.Duration) string {
	deadline := time.Now().Add(within)
	body := ""
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if strings.Contains(body, want) {
				break
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return body
}

// Ctrl-C during a plain run, in a slot of the pool beside the other tests, in a namespace of its own
// (smoke-short's is TestRunScenarios'). It held the suite's start to itself once (113 s in CI, every
// other test waiting), then ran first in the fault lane, which had become the suite's longest path.
func TestCLIInterrupted(t *testing.T) {
	t.Parallel()
	holdPoolSlot(t)
	f := features.New("Ctrl-C during a run").
		Assess("SIGINT mid-load: exit 2, the workload's namespace is deleted, the reused cluster kept", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			file := renamedScenario(t, "testdata/smoke-short.yaml", "interrupted-short")
			interruptAt(t, ctx, buildCLI(t, ctx), file, "step steady", 3*time.Second) // load is running
			if namespaceExists(t, ctx, "rehearse-interrupted-short") {
				t.Errorf("namespace rehearse-interrupted-short left behind after Ctrl-C")
			}
			if _, err := shared.Nodes(); err != nil {
				t.Errorf("the reused cluster must survive: %v", err)
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// renamedScenario writes a copy of a scenario file (its metadata on one line) named name, for a
// namespace of its own. It returns the copy's path.
func renamedScenario(t *testing.T, file, name string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	meta := regexp.MustCompile(`(?m)^metadata: \{name: [^}]+\}$`)
	if !meta.Match(b) {
		t.Fatalf("%s: want its metadata on one line", file)
	}
	out := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(out, meta.ReplaceAll(b, []byte("metadata: {name: "+name+"}")), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
