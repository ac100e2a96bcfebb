package runner

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/clusters"
	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/replay"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
)

// stubDocker answers for the local docker engine: the image a kind cluster's nodes run and the
// image ID of each local image.
func stubDocker(t *testing.T, node replay.Image, ids map[string]string) {
	t.Helper()
	oldID, oldNode, oldBuild := localImageID, nodeImageOf, currentBuild
	t.Cleanup(func() { localImageID, nodeImageOf, currentBuild = oldID, oldNode, oldBuild })
	currentBuild = func() replay.Build {
		return replay.Build{Version: "v0.0.0-20261125104835-4898bae38177", Revision: "4898bae38177"}
	}
	localImageID = func(_ context.Context, ref string) string { return ids[ref] }
	nodeImageOf = func(*clusters.Cluster, context.Context) (string, string, error) { return node.Ref, node.ID, nil }
}

// bundleRun is what Run does about the bundle before and once it has the cluster.
func bundleRun(t *testing.T, sc *scenarios.Loaded, opts Options, kc *kindCluster) (*replay.Run, string) {
	t.Helper()
	seed := chooseSeed(opts.Seed)
	out := opts.RunDir(sc.Metadata.Name)
	b := newBundle(sc, opts, seed, load.NewRunID(sc.Metadata.Name, seed))
	if err := replay.Write(out, sc, b); err != nil {
		t.Fatal(err)
	}
	if err := recordCluster(context.Background(), out, b, sc, opts, kc); err != nil {
		t.Fatal(err)
	}
	return b, out
}

func planOf(t *testing.T, sc *scenarios.Loaded, seed uint64, runID string) []load.Planned {
	t.Helper()
	p, err := load.Plan(loadConfig(sc, "http://127.0.0.1:30001", t.TempDir(), seed, runID), 3000)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func targets(p []load.Planned) []string {
	var out []string
	for _, r := range p {
		out = append(out, r.Target)
	}
	return out
}

// A run's bundle records what reproduces it; a replay from it runs the bundled scenario with its
// seed — the same request sequence (and, by the same seed, the same fault victims: see
// faults.TestPodKillIsSeededAndRecordsEvidence) — under a run ID of its own, and warns of what it
// could not hold equal.
func TestBundleRecordsTheRunAndAReplayRepeatsIt(t *testing.T) {
	sc, err := Load("../scenarios/pod-kill-during-canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	node := replay.Image{Ref: "rehearse.local/kind-node:v1.34.4", ID: "sha256:node1"}
	stubDocker(t, node, map[string]string{"rehearse.local/orders:dev": "sha256:orders1", "rehearse.local/postgres:15": "sha256:pg1"})
	tmp := t.TempDir()
	args := []string{"bin/rehearse", "run", "../scenarios/pod-kill-during-canary.yaml", "--seed", "42", "--context", "kind-rehearse", "--out", tmp + "/out"}
	opts := Options{OutDir: filepath.Join(tmp, "out"), Seed: 42, Args: args, Context: "kind-rehearse"}
	orig, out := bundleRun(t, sc, opts, &kindCluster{Cluster: &clusters.Cluster{Name: "rehearse"}})
	if out != filepath.Join(tmp, "out", "pod-kill-during-canary") {
		t.Errorf("run directory %s", out)
	}

	b, err := replay.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	r := b.Run
	if r.Seed != 42 || r.RunID != orig.RunID || !strings.HasPrefix(r.RunID, "pod-kill-during-canary-42-") || r.ScenarioHash != sc.Hash ||
		r.ScenarioFile != "../scenarios/pod-kill-during-canary.yaml" || r.WorkingDir != wd || !slices.Equal(r.Args, args) ||
		r.Command != "bin/rehearse run ../scenarios/pod-kill-during-canary.yaml --seed 42 --context kind-rehearse --out "+tmp+"/out" {
		t.Errorf("run.json: %+v", r)
	}
	if r.Options.Context != "kind-rehearse" || r.Cluster == nil || r.Cluster.Kind != "rehearse" || r.Cluster.Context != "kind-rehearse" || r.Cluster.Created {
		t.Errorf("options %+v, cluster %+v", r.Options, r.Cluster)
	}
	if r.NodeImage == nil || *r.NodeImage != node || !slices.Equal(r.Images, []replay.Image{
		{Ref: "rehearse.local/orders:dev", ID: "sha256:orders1"}, {Ref: "rehearse.local/postgres:15", ID: "sha256:pg1"}}) {
		t.Errorf("node image %+v, images %+v", r.NodeImage, r.Images)
	}
	if r.Rehearse.Revision != "4898bae38177" || r.Format != replay.Format || r.ReplayOf != nil {
		t.Errorf("build %+v, format %d, replay of %+v", r.Rehearse, r.Format, r.ReplayOf)
	}

	// The replay: the bundled scenario, the bundle's seed, its own directory; the orders image was
	// rebuilt since.
	again, err := LoadReplay(b)
	if err != nil {
		t.Fatal(err)
	}
	if again.Hash != sc.Hash || again.File != filepath.Join(out, "replay", "scenario.yaml") {
		t.Errorf("replayed %s (%s), want the bundle's copy of %s", again.File, again.Hash, sc.Hash)
	}
	stubDocker(t, node, map[string]string{"rehearse.local/orders:dev": "sha256:orders2", "rehearse.local/postgres:15": "sha256:pg1"})
	var warnings bytes.Buffer
	time.Sleep(time.Millisecond) // a run ID's nonce is the clock's
	ropts := Options{Dir: filepath.Join(tmp, "out", "pod-kill-during-canary-replay-1"), Seed: b.Run.Seed, Replay: b, Progress: &warnings,
		Args: []string{"bin/rehearse", "run", "--replay", out}}
	rep, rout := bundleRun(t, again, ropts, &kindCluster{Cluster: &clusters.Cluster{Name: "rehearse"}, created: true})
	if rout != ropts.Dir || rep.Seed != 42 || rep.RunID == orig.RunID || rep.ScenarioHash != sc.Hash {
		t.Errorf("replay in %s: seed %d, run ID %s (the run's %s), hash %s", rout, rep.Seed, rep.RunID, orig.RunID, rep.ScenarioHash)
	}
	if rep.ReplayOf == nil || rep.ReplayOf.RunID != orig.RunID || rep.ReplayOf.Bundle != b.Dir || len(rep.ReplayOf.Differences) != 1 {
		t.Fatalf("replay of %+v", rep.ReplayOf)
	}
	if want := "rehearse: warning: replay: image rehearse.local/orders:dev differs: the run's was sha256:orders1, now sha256:orders2\n"; warnings.String() != want {
		t.Errorf("warnings:\n%s\nwant\n%s", warnings.String(), want)
	}
	if _, err := replay.Open(rout); err != nil {
		t.Errorf("a replay's own bundle: %v", err)
	}

	// The same request sequence: the bundle's seed and run ID plan the same requests, ids included;
	// the replay's run ID the same targets in the same order, numbered alike; another seed others.
	fromBundle := planOf(t, again, b.Run.Seed, b.Run.RunID)
	if !slices.Equal(planOf(t, sc, orig.Seed, orig.RunID), fromBundle) {
		t.Error("the run and its bundle plan different requests")
	}
	replayed := planOf(t, again, rep.Seed, rep.RunID)
	if !slices.Equal(targets(fromBundle), targets(replayed)) {
		t.Error("the replay plans other targets")
	}
	for i := range replayed {
		if replayed[i].ID != strings.Replace(fromBundle[i].ID, orig.RunID, rep.RunID, 1) {
			t.Fatalf("request %d: the replay's id %s, the run's %s", i+1, replayed[i].ID, fromBundle[i].ID)
		}
	}
	if slices.Equal(targets(fromBundle), targets(planOf(t, again, 43, b.Run.RunID))) {
		t.Error("seed 43 plans the targets seed 42 does")
	}
}

// On a cluster that is not a local kind cluster nothing about images is known, and a replay there
// says so.
func TestBundleOnAnExistingCluster(t *testing.T) {
	sc, err := Load("../scenarios/smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	stubDocker(t, replay.Image{Ref: "n", ID: "sha256:n"}, map[string]string{"rehearse.local/orders:dev": "sha256:o"})
	tmp := t.TempDir()
	orig, out := bundleRun(t, sc, Options{OutDir: tmp, Seed: 7, Context: "prod", AllowContexts: []string{"prod"}}, nil)
	if orig.NodeImage != nil || orig.Images != nil || orig.Cluster == nil || orig.Cluster.Context != "prod" || orig.Cluster.Kind != "" {
		t.Errorf("cluster %+v, node image %+v, images %+v", orig.Cluster, orig.NodeImage, orig.Images)
	}
	b, err := replay.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Run.Options.AllowContexts, []string{"prod"}) {
		t.Errorf("options %+v", b.Run.Options)
	}
	// The run on kind, its replay elsewhere: warned.
	b.Run.NodeImage = &replay.Image{Ref: "n", ID: "sha256:n"}
	var w bytes.Buffer
	rep, _ := bundleRun(t, sc, Options{Dir: filepath.Join(tmp, "again"), Seed: 7, Replay: b, Progress: &w}, nil)
	if len(rep.ReplayOf.Differences) != 1 || !strings.Contains(w.String(), "this cluster's is not known") {
		t.Errorf("differences %q", rep.ReplayOf.Differences)
	}
}

func TestChooseSeedAndRunDir(t *testing.T) {
	if chooseSeed(42) != 42 || chooseSeed(0) == 0 {
		t.Error("chooseSeed")
	}
	if d := (Options{OutDir: "out"}).RunDir("smoke"); d != filepath.Join("out", "smoke") {
		t.Errorf("RunDir %s", d)
	}
	if d := (Options{OutDir: "out", Dir: "elsewhere"}).RunDir("smoke"); d != "elsewhere" {
		t.Errorf("RunDir with Dir %s", d)
	}
	// A step reads a relocated file where the bundle keeps it.
	env := &steps.Env{Dir: "/s", Relocated: map[string]string{"v2.yaml": "/b/files/0/v2.yaml"}}
	if env.Path("v2.yaml") != "/b/files/0/v2.yaml" || env.Path("v3.yaml") != "/s/v3.yaml" {
		t.Errorf("env paths %s %s", env.Path("v2.yaml"), env.Path("v3.yaml"))
	}
}

// A runbook's run replays: the bundle keeps the Markdown as runbook.md (and parses it as one), or,
// for a scenario file that names a runbook, the runbook beside it; the blocks run where they ran.
func TestRunbooksReplay(t *testing.T) {
	node := replay.Image{Ref: "rehearse.local/kind-node:v1.34.4", ID: "sha256:node1"}
	stubDocker(t, node, map[string]string{})
	tmp := t.TempDir()
	book := filepath.Join(tmp, "books", "ops.md")
	md, err := os.ReadFile("../scenarios/runbooks/orders-v2.md")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(book), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(book, md, 0o644); err != nil {
		t.Fatal(err)
	}
	scenario := filepath.Join(tmp, "sc", "ops.yaml")
	if err := os.MkdirAll(filepath.Dir(scenario), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(scenario, []byte(`apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: ops-attached}
cluster: {provider: kind}
workload: {sample: orders-postgres}
load:
  rate: 10/s
  targets:
    - {name: w, method: POST, path: /orders, ledger: true}
runbook: ../books/ops.md
verify:
  zero-failed-requests: {max: 0}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, bundled string }{{book, "runbook.md"}, {scenario, "scenario.yaml"}} {
		sc, err := Load(c.file)
		if err != nil {
			t.Fatal(err)
		}
		blocks := 0
		for _, st := range sc.Steps {
			if st.Run != nil {
				blocks++
			}
		}
		if blocks < 4 {
			t.Fatalf("%s: %d blocks run", c.file, blocks)
		}
		opts := Options{OutDir: filepath.Join(tmp, "out"), Seed: 7, Args: []string{"rehearse", "run", c.file}}
		_, out := bundleRun(t, sc, opts, &kindCluster{Cluster: &clusters.Cluster{Name: "rehearse"}})
		b, err := replay.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(b.Scenario) != c.bundled {
			t.Errorf("%s bundled as %s, want %s", c.file, b.Scenario, c.bundled)
		}
		again, err := LoadReplay(b)
		if err != nil {
			t.Fatalf("replay of %s: %v", c.file, err)
		}
		if again.Hash != sc.Hash || len(again.Steps) != len(sc.Steps) {
			t.Errorf("replayed %s: hash %s steps %d, want %s and %d", c.file, again.Hash, len(again.Steps), sc.Hash, len(sc.Steps))
		}
		// Host commands run in the original directories (what they name is not in the bundle).
		if want := filepath.Dir(c.file); again.CommandDir() != want {
			t.Errorf("replay of %s: commands in %s, want %s", c.file, again.CommandDir(), want)
		}
		last := again.Steps[len(again.Steps)-1].Run
		if want := filepath.Dir(book); c.file == scenario && (last == nil || last.Dir != want) {
			t.Errorf("replayed attached runbook's block runs in %+v, want %s", last, want)
		}
		if c.file == scenario {
			found := false
			for _, f := range b.Run.Files {
				found = found || (f.Field == "runbook" && f.SHA256 != "")
			}
			if !found {
				t.Errorf("the runbook is not in the bundle: %+v", b.Run.Files)
			}
		}
	}
}

// A kustomization is checked at validate (it builds, it makes the rollout's target), deployed and
// rolled by what it builds, and kept out of the replay bundle (its bases may lie anywhere): the
// bundle records what it built, and a replay says when it builds something else.
func TestKustomizations(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("base/kustomization.yaml", "resources: [web.yaml]\n")
	write("base/web.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: web, image: web:1}]}}}\n")
	write("v2/kustomization.yaml", "resources: [../base]\nimages: [{name: web, newTag: \"2\"}]\n")
	write("other/kustomization.yaml", "resources: [api.yaml]\n")
	write("other/api.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\n")
	write("empty/README", "no kustomization here\n")
	scenario := func(workload, step string) string {
		return `apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: k}
cluster: {provider: kind}
workload: ` + workload + `
load: {rate: 5/s, service: web, targets: [{name: r, method: GET, path: /}]}
verify: {zero-failed-requests: {}}
steps:
  - ` + step + "\n"
	}
	load := func(text string) (*scenarios.Loaded, error) {
		t.Helper()
		p := filepath.Join(dir, "k.yaml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return Load(p)
	}
	roll := "{name: v2, migrate: {strategy: rolling, target: deployment/web, kustomize: v2, version: v2}}"
	sc, err := load(scenario("{kustomize: base}", roll))
	if err != nil {
		t.Fatal(err)
	}
	for text, want := range map[string]string{
		scenario("{kustomize: empty}", roll):                                                                    "k.yaml:5: workload.kustomize: empty holds no kustomization.yaml",
		scenario("{kustomize: base, sample: orders-postgres}", roll):                                            "k.yaml:5: workload: give sample, or manifests, kustomize or helm of your own, not both",
		scenario("{kustomize: base}", strings.Replace(roll, "kustomize: v2", "kustomize: other", 1)):            "steps[0].migrate.kustomize: other makes no deployment/web",
		scenario("{kustomize: base}", strings.Replace(roll, "kustomize: v2", "kustomize: v2, image: web:3", 1)): "it says 2: image/env/args, kustomize",
	} {
		if _, err := load(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v, want %q", err, want)
		}
	}

	stubDocker(t, replay.Image{Ref: "rehearse.local/kind-node:v1.34.4", ID: "sha256:node1"}, map[string]string{})
	opts := Options{OutDir: filepath.Join(t.TempDir(), "out"), Seed: 9, Args: []string{"rehearse", "run", sc.File}}
	orig, out := bundleRun(t, sc, opts, &kindCluster{Cluster: &clusters.Cluster{Name: "rehearse"}})
	kinds := map[string]string{}
	for _, f := range orig.Files {
		kinds[f.Field] = f.Kind
		if f.SHA256 == "" || f.Bundled != "" {
			t.Errorf("%s: sha256 %q, bundled %q: a kustomization is recorded by what it builds, and read where it is", f.Field, f.SHA256, f.Bundled)
		}
	}
	if kinds["workload.kustomize"] != replay.Kustomization || kinds["steps[0].migrate.kustomize"] != replay.Kustomization {
		t.Fatalf("files %+v", orig.Files)
	}
	b, err := replay.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadReplay(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Path("v2"); got != filepath.Join(dir, "v2") {
		t.Errorf("the replay builds v2 from %s, want where the run did", got)
	}
	// The base changes: the replay says v2 builds other objects now.
	write("base/web.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 5}\n")
	ropts := Options{Dir: filepath.Join(t.TempDir(), "replay"), Seed: b.Run.Seed, Replay: b, Progress: io.Discard, Args: []string{"rehearse", "run", "--replay", out}}
	rep, _ := bundleRun(t, again, ropts, &kindCluster{Cluster: &clusters.Cluster{Name: "rehearse"}})
	if rep.ReplayOf == nil {
		t.Fatal("the replay records no origin")
	}
	if d := strings.Join(rep.ReplayOf.Differences, "\n"); !strings.Contains(d, "kustomization v2 (") || !strings.Contains(d, "builds other objects now") {
		t.Errorf("differences %q: want the kustomization named", d)
	}
}

// A chart is loaded at validate: one whose dependencies are not vendored is refused (a rehearsal
// downloads nothing), and so is a helm upgrade without a release or a rollback of another release.
func TestHelmChecks(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "web"), os.DirFS("../e2e/testdata/helm/web")); err != nil {
		t.Fatal(err)
	}
	sc, err := Load("../e2e/testdata/helm/helm-sound.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Workload.Helm.ReleaseName(sc.Metadata.Name) != "shop" {
		t.Errorf("release %s", sc.Workload.Helm.ReleaseName(sc.Metadata.Name))
	}
	src, err := os.ReadFile("../e2e/testdata/helm/helm-sound.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "s.yaml")
	try := func(text string) error {
		t.Helper()
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(file)
		return err
	}
	if err := try(string(src)); err != nil {
		t.Fatalf("the copy: %v", err)
	}
	for _, c := range []struct{ from, to, want string }{
		{"target: helm/shop", "target: helm/other", `rollback.target: "helm/other": the workload's release is shop`},
		{"  helm: {chart: web, release: shop}", "  manifests: [web/values.yaml]", "migrate.helm: a helm upgrade is of the workload's release: install it with workload.helm"},
	} {
		if err := try(strings.Replace(string(src), c.from, c.to, 1)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s → %s: %v, want %q", c.from, c.to, err, c.want)
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, "web", "charts")); err != nil {
		t.Fatal(err)
	}
	err = try(string(src))
	if err == nil || !strings.Contains(err.Error(), "workload.helm.chart") || !strings.Contains(err.Error(), "missing in charts/ directory: settings") ||
		!strings.Contains(err.Error(), "downloads nothing") {
		t.Errorf("a chart whose dependency is not vendored: %v", err)
	}
}

// A chart is read where it is at a replay (its templates are not manifests to copy), its values files
// are bundled, and a replay says when the chart changed.
func TestHelmReplay(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "web"), os.DirFS("../e2e/testdata/helm/web")); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../e2e/testdata/helm/helm-sound.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(src), "helm: {chart: web, release: shop}", "helm: {chart: web, release: shop, values: [prod.yaml]}", 1)
	for name, b := range map[string]string{"s.yaml": text, "prod.yaml": "replicas: 2\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := Load(filepath.Join(dir, "s.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	stubDocker(t, replay.Image{Ref: "rehearse.local/kind-node:v1.34.4", ID: "sha256:node1"}, map[string]string{})
	orig, out := bundleRun(t, sc, Options{OutDir: filepath.Join(t.TempDir(), "out"), Seed: 3, Args: []string{"rehearse", "run", sc.File}},
		&kindCluster{Cluster: &clusters.Cluster{Name: "rehearse"}})
	kinds := map[string]string{}
	for _, f := range orig.Files {
		kinds[f.Field] = f.Kind
	}
	if kinds["workload.helm.chart"] != replay.Chart || kinds["workload.helm.values[0]"] != replay.Manifest {
		t.Fatalf("files %+v", orig.Files)
	}
	b, err := replay.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadReplay(b)
	if err != nil {
		t.Fatalf("the replay does not load: %v", err)
	}
	if again.Path("web") != filepath.Join(dir, "web") || again.Path("prod.yaml") == filepath.Join(dir, "prod.yaml") {
		t.Errorf("chart from %s, values from %s: want the chart where it was, the values from the bundle", again.Path("web"), again.Path("prod.yaml"))
	}
	if err := os.WriteFile(filepath.Join(dir, "web", "templates", "extra.yaml"), []byte("# more\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, _ := bundleRun(t, again, Options{Dir: filepath.Join(t.TempDir(), "replay"), Seed: b.Run.Seed, Replay: b, Progress: io.Discard,
		Args: []string{"rehearse", "run", "--replay", out}}, &kindCluster{Cluster: &clusters.Cluster{Name: "rehearse"}})
	if rep.ReplayOf == nil || !strings.Contains(strings.Join(rep.ReplayOf.Differences, "\n"), "chart web (") {
		t.Errorf("differences %v: want the chart named", rep.ReplayOf)
	}
}
