package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// A POSIX shell splits the quoted command line back into exactly the arguments.
func TestShellQuoteRoundTrips(t *testing.T) {
	args := []string{"bin/rehearse", "run", "scenarios/smoke.yaml", "--out", "out dir", "", "it's", `"double"`,
		"$HOME", "`id`", "a\nb", "*.yaml", "~", "!x", `back\slash`, "ünï", "--allow-context=prod:eu,1", "; rm -rf /"}
	line := ShellQuote(args)
	if strings.Contains(line, "\n") && !strings.Contains(line, "'a\nb'") {
		t.Fatalf("a newline outside quotes: %q", line)
	}
	out, err := exec.Command("sh", "-c", `printf '%s\0' `+line).Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v", line, err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !slices.Equal(got, args) {
		t.Errorf("%s\nsplits into %q\nwant        %q", line, got, args)
	}
	if got := ShellQuote([]string{"bin/rehearse", "run", "a.yaml"}); got != "bin/rehearse run a.yaml" {
		t.Errorf("plain arguments quoted: %s", got)
	}
	if got := ShellQuote([]string{"X=1", "run"}); got != "'X=1' run" {
		t.Errorf("a first word with = is an assignment to a shell: %s", got)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

const ownScenario = `apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: own}
cluster: {provider: kind}
workload:
  manifests: [manifests]
  images: [web.tar]
  checksum: {command: [md5sum], selector: app=web}
load:
  rate: 10/s
  baseURL: http://127.0.0.1:30080
  targets: [{name: get, method: GET, path: /}]
steps:
  - {name: to-v2, migrate: {strategy: rolling, target: deployment/web, manifest: ../shared/v2.yaml, version: v2}}
verify:
  replica-checksums: {}
`

// tree is a scenario of one's own beside its manifests (a directory, with a file the run does not
// read), an image archive, and a manifest outside its directory; and a run directory for it.
func tree(t *testing.T) (file, runDir string, sc *scenarios.Loaded) {
	t.Helper()
	root := t.TempDir()
	file = filepath.Join(root, "scen", "own.yaml")
	write(t, file, ownScenario)
	write(t, filepath.Join(root, "scen/manifests/00-config.yaml"), "kind: ConfigMap\n")
	write(t, filepath.Join(root, "scen/manifests/10-web.yml"), "kind: Deployment\n")
	write(t, filepath.Join(root, "scen/manifests/sub/20-svc.json"), `{"kind": "Service"}`)
	write(t, filepath.Join(root, "scen/manifests/README.txt"), "not read by the run\n")
	write(t, filepath.Join(root, "scen/web.tar"), strings.Repeat("layer", 1000))
	write(t, filepath.Join(root, "shared/v2.yaml"), "kind: Deployment # v2\n")
	sc, err := scenarios.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return file, filepath.Join(root, "out", "own"), sc
}

func newRun(sc *scenarios.Loaded) *Run {
	return &Run{Format: Format, Scenario: sc.Metadata.Name, ScenarioFile: sc.File, ScenarioHash: sc.Hash, Seed: 42,
		RunID: "own-42-abc", Started: time.Now(), Args: []string{"rehearse", "run", sc.File}, Command: "rehearse run " + sc.File}
}

func TestWriteAndOpen(t *testing.T) {
	file, runDir, sc := tree(t)
	run := newRun(sc)
	if err := Write(runDir, sc, run); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(runDir, Dir)
	if b, _ := os.ReadFile(filepath.Join(bdir, ScenarioFile)); string(b) != ownScenario {
		t.Errorf("scenario.yaml is not the file's bytes:\n%s", b)
	}
	for _, f := range []string{"manifests/00-config.yaml", "manifests/10-web.yml", "manifests/sub/20-svc.json", "files/2/v2.yaml", RunFile} {
		if _, err := os.Stat(filepath.Join(bdir, f)); err != nil {
			t.Errorf("bundle lacks %s: %v", f, err)
		}
	}
	for _, f := range []string{"manifests/README.txt", "web.tar"} {
		if _, err := os.Stat(filepath.Join(bdir, f)); err == nil {
			t.Errorf("bundle holds %s", f)
		}
	}
	var fields []string
	for _, f := range run.Files {
		fields = append(fields, f.Field+" "+f.Kind+" "+f.Bundled)
		if len(f.SHA256) != 64 || !filepath.IsAbs(f.Source) {
			t.Errorf("%s: sha256 %q, source %q", f.Field, f.SHA256, f.Source)
		}
	}
	want := []string{"workload.manifests[0] manifest manifests", "workload.images[0] archive ", "steps[0].migrate.manifest manifest files/2/v2.yaml"}
	if !slices.Equal(fields, want) {
		t.Errorf("files %q, want %q", fields, want)
	}
	if a := run.Files[1]; a.Size != 5000 || a.Source != filepath.Join(filepath.Dir(file), "web.tar") {
		t.Errorf("archive recorded as %+v", a)
	}

	// The run's directory and its replay/ both open it; the original manifests are not needed.
	if err := os.RemoveAll(filepath.Join(filepath.Dir(file), "manifests")); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{runDir, bdir} {
		b, err := Open(dir)
		if err != nil {
			t.Fatalf("Open(%s): %v", dir, err)
		}
		if b.Dir != bdir || b.RunDir() != runDir || b.Run.Seed != 42 || b.Run.RunID != "own-42-abc" {
			t.Errorf("Open(%s) = dir %s, seed %d, run %s", dir, b.Dir, b.Run.Seed, b.Run.RunID)
		}
		wantRel := map[string]string{"manifests": filepath.Join(bdir, "manifests"), "../shared/v2.yaml": filepath.Join(bdir, "files/2/v2.yaml"),
			"web.tar": filepath.Join(filepath.Dir(file), "web.tar")}
		if len(b.Relocated) != len(wantRel) {
			t.Errorf("relocated %v", b.Relocated)
		}
		for k, v := range wantRel {
			if b.Relocated[k] != v {
				t.Errorf("relocated[%s] = %s, want %s", k, b.Relocated[k], v)
			}
		}
		src, _ := os.ReadFile(b.Scenario)
		l, err := scenarios.ParseRelocated(b.Scenario, src, b.Relocated)
		if err != nil {
			t.Fatalf("the bundled scenario does not load: %v", err)
		}
		if l.Hash != sc.Hash || l.Path("../shared/v2.yaml") != filepath.Join(bdir, "files/2/v2.yaml") {
			t.Errorf("bundled scenario: hash %s (want %s), v2 at %s", l.Hash, sc.Hash, l.Path("../shared/v2.yaml"))
		}
	}

	// A replay of the replay bundles from the bundle: the same bytes, the same hashes.
	src, _ := os.ReadFile(filepath.Join(bdir, ScenarioFile))
	b, _ := Open(runDir)
	l, _ := scenarios.ParseRelocated(b.Scenario, src, b.Relocated)
	again := filepath.Join(t.TempDir(), "own")
	run2 := newRun(l)
	if err := Write(again, l, run2); err != nil {
		t.Fatal(err)
	}
	for i := range run.Files {
		if run.Files[i].SHA256 != run2.Files[i].SHA256 || run.Files[i].Bundled != run2.Files[i].Bundled {
			t.Errorf("%s: bundled again as %+v, first %+v", run.Files[i].Field, run2.Files[i], run.Files[i])
		}
	}

	// The archive is not in the bundle: gone from where the run read it, the replay cannot run.
	if err := os.Remove(filepath.Join(filepath.Dir(file), "web.tar")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(runDir); err == nil || !strings.Contains(err.Error(), "web.tar") || !strings.Contains(err.Error(), "gone") {
		t.Errorf("archive gone: %v", err)
	}
}

// manifests: [.] with the run's directory inside the scenario's: the bundle does not copy itself,
// and does not put the directory where scenario.yaml and run.json are.
func TestWriteDoesNotCopyItself(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "s.yaml")
	write(t, file, strings.Replace(strings.Replace(ownScenario, "[manifests]", "[.]", 1), "  images: [web.tar]\n", "", 1))
	write(t, filepath.Join(root, "app.yaml"), "kind: Deployment\n")
	write(t, filepath.Join(root, "../shared/v2.yaml"), "kind: Deployment\n")
	sc, err := scenarios.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(root, "out", "own")
	for range 2 { // the second run finds the first one's bundle in the directory it copies
		if err := Write(runDir, sc, newRun(sc)); err != nil {
			t.Fatal(err)
		}
	}
	var copied []string
	filepath.WalkDir(filepath.Join(runDir, Dir, "files", "0"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(filepath.Join(runDir, Dir, "files", "0"), p)
			copied = append(copied, rel)
		}
		return nil
	})
	want := []string{filepath.Join(filepath.Base(root), "app.yaml"), filepath.Join(filepath.Base(root), "s.yaml")}
	if !slices.Equal(copied, want) {
		t.Errorf("copied %q, want %q", copied, want)
	}
	if _, err := Open(runDir); err != nil {
		t.Error(err)
	}
}

func TestOpenRefusesWhatIsNotABundle(t *testing.T) {
	_, runDir, sc := tree(t)
	if err := Write(runDir, sc, newRun(sc)); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(runDir, Dir)
	good, _ := os.ReadFile(filepath.Join(bdir, RunFile))
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	empty := t.TempDir()
	if _, err := Open(empty); !errors.Is(err, ErrNoBundle) || !strings.Contains(err.Error(), "replay/run.json") {
		t.Errorf("a directory without a bundle: %v", err)
	}
	if _, err := Open(filepath.Join(empty, "nope")); !errors.Is(err, ErrNoBundle) {
		t.Errorf("no directory: %v", err)
	}
	cases := []struct {
		name    string
		file    string
		data    []byte
		wantErr string
	}{
		{"not JSON", RunFile, []byte("{seed: 1"), "malformed: run.json"},
		{"no format", RunFile, edit(func(m map[string]any) { delete(m, "format") }), "no format"},
		{"newer format", RunFile, edit(func(m map[string]any) { m["format"] = 2 }), "format 2 is newer"},
		{"no seed", RunFile, edit(func(m map[string]any) { m["seed"] = 0 }), "no seed"},
		{"no run ID", RunFile, edit(func(m map[string]any) { delete(m, "run_id") }), "no run_id"},
		{"bad hash", RunFile, edit(func(m map[string]any) { m["scenario_hash"] = "abc" }), "not a sha256"},
		{"escaping bundled path", RunFile, edit(func(m map[string]any) {
			m["files"].([]any)[0].(map[string]any)["bundled"] = "../../x"
		}), "not inside the bundle"},
		{"scenario edited", ScenarioFile, []byte(ownScenario + "# tweak\n"), "edited since the run"},
		{"manifest edited", "manifests/10-web.yml", []byte("kind: Deployment # patched\n"), "is not what the run read"},
		{"manifest gone", "files/2/v2.yaml", nil, "v2.yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(bdir, filepath.FromSlash(c.file))
			orig, _ := os.ReadFile(path)
			defer os.WriteFile(path, orig, 0o644)
			if c.data == nil {
				os.Remove(path)
			} else if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Open(runDir)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("error %v, want one containing %q", err, c.wantErr)
			}
		})
	}
	if _, err := Open(runDir); err != nil {
		t.Errorf("restored bundle: %v", err)
	}
}

func TestDifferences(t *testing.T) {
	yes, no := true, false
	orig := &Run{Rehearse: Build{Version: "v0.3.0", Revision: "aaa", Modified: &no},
		NodeImage: &Image{Ref: "rehearse.local/kind-node:v1.34.4", ID: "sha256:n1"},
		Images:    []Image{{Ref: "rehearse.local/orders:dev", ID: "sha256:o1"}, {Ref: "rehearse.local/postgres:15", ID: "sha256:p1"}},
		Files:     []File{{Field: "workload.images[0]", Path: "web.tar", Source: "/x/web.tar", Kind: Archive, SHA256: strings.Repeat("a", 64)}}}
	same := *orig
	if d := Differences(orig, &same); len(d) != 0 {
		t.Errorf("the same run differs: %q", d)
	}
	now := &Run{Rehearse: Build{Version: "v0.3.1", Revision: "bbb", Modified: &yes},
		NodeImage: &Image{Ref: "rehearse.local/kind-node:v1.34.4", ID: "sha256:n2"},
		Images:    []Image{{Ref: "rehearse.local/orders:dev", ID: "sha256:o2"}, {Ref: "rehearse.local/postgres:15", ID: "sha256:p1"}},
		Files:     []File{{Field: "workload.images[0]", Path: "web.tar", Source: "/x/web.tar", Kind: Archive, SHA256: strings.Repeat("b", 64)}}}
	got := strings.Join(Differences(orig, now), "\n")
	for _, want := range []string{"rehearse differs: the run was made by v0.3.0 at aaa, this is v0.3.1 at bbb with uncommitted changes",
		"node image differs: the run's was rehearse.local/kind-node:v1.34.4 (sha256:n1), this one is rehearse.local/kind-node:v1.34.4 (sha256:n2)",
		"image rehearse.local/orders:dev differs: the run's was sha256:o1, now sha256:o2",
		"image archive web.tar (/x/web.tar) changed: sha256 aaaaaaaaaaaa at the run, bbbbbbbbbbbb now"} {
		if !strings.Contains(got, want) {
			t.Errorf("differences lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "postgres") {
		t.Errorf("an unchanged image reported:\n%s", got)
	}
	dirty := *orig
	dirty.Rehearse.Modified = &yes
	if d := Differences(orig, &dirty); len(d) != 1 || !strings.Contains(d[0], "uncommitted changes") {
		t.Errorf("a build with uncommitted changes at one revision: %q", d)
	}
	unstamped := &Run{Rehearse: Build{Version: "(devel)"}, NodeImage: orig.NodeImage, Images: orig.Images, Files: orig.Files}
	if d := Differences(orig, unstamped); len(d) != 1 || !strings.Contains(d[0], "cannot be told") {
		t.Errorf("a build without a revision: %q", d)
	}
	released := &Run{Rehearse: Build{Version: "v0.3.0"}}
	if d := Differences(released, released); len(d) != 0 {
		t.Errorf("one released version: %q", d)
	}
	elsewhere := &Run{Rehearse: orig.Rehearse}
	got = strings.Join(Differences(orig, elsewhere), "\n")
	if !strings.Contains(got, "node image: the run's was") || !strings.Contains(got, "this run did not load it") {
		t.Errorf("a replay on a cluster that is not local kind:\n%s", got)
	}
}

func TestRunJSONNamesItsFields(t *testing.T) {
	runDir := t.TempDir()
	os.MkdirAll(filepath.Join(runDir, Dir), 0o755)
	m := false
	r := &Run{Format: Format, Seed: 42, RunID: "x", Rehearse: Build{Version: "(devel)", Revision: "abc", Modified: &m},
		NodeImage: &Image{Ref: "r", ID: "sha256:1"}, ReplayOf: &Origin{RunID: "y", Bundle: "out/x/replay"}}
	if err := Update(runDir, r); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(runDir, Dir, RunFile))
	for _, want := range []string{`"seed": 42`, `"run_id": "x"`, `"vcs_revision": "abc"`, `"vcs_modified": false`, `"node_image": {`, `"replay_of": {`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("run.json lacks %s:\n%s", want, b)
		}
	}
	if CurrentBuild().Go == "" {
		t.Error("no Go version in the build information")
	}
}
