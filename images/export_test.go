package images

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeImage is an image in fakeDocker's store.
type fakeImage struct {
	Ref, ID, Key string
}

// fakeDocker is an engine in memory that answers the commands Export and Import run: image inspect
// (with inspectFormat), save -o and load -i. Its archives are JSON files listing the images.
type fakeDocker struct {
	mu     sync.Mutex
	images map[string]fakeImage
	calls  []string
	nextID int
}

func newFakeDocker() *fakeDocker { return &fakeDocker{images: map[string]fakeImage{}} }

// add builds ref with key: a new image ID, as a build gives.
func (f *fakeDocker) add(ref, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.images[ref] = fakeImage{Ref: ref, ID: fmt.Sprintf("sha256:%064d", f.nextID), Key: key}
}

func (f *fakeDocker) Run(_ context.Context, _ io.Reader, args ...string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, strings.Join(args, " "))
	switch {
	case len(args) == 5 && args[0] == "image" && args[1] == "inspect" && args[2] == "--format":
		if args[3] != inspectFormat {
			return "", fmt.Errorf("fake docker: unexpected format %q", args[3])
		}
		im, ok := f.images[args[4]]
		if !ok {
			return "", fmt.Errorf("Error: No such image: %s", args[4])
		}
		// As docker prints inspectFormat: the ID, a space, the label; trimmed.
		return strings.TrimSpace(im.ID + " " + im.Key), nil
	case len(args) >= 4 && args[0] == "save" && args[1] == "-o":
		var ims []fakeImage
		for _, ref := range args[3:] {
			im, ok := f.images[ref]
			if !ok {
				return "", fmt.Errorf("Error response from daemon: reference does not exist")
			}
			ims = append(ims, im)
		}
		b, _ := json.Marshal(ims)
		return "", os.WriteFile(args[2], b, 0o644)
	case len(args) == 3 && args[0] == "load" && args[1] == "-i":
		b, err := os.ReadFile(args[2])
		if err != nil {
			return "", err
		}
		var ims []fakeImage
		if err := json.Unmarshal(b, &ims); err != nil {
			return "", fmt.Errorf("fake docker: %s is no archive: %w", args[2], err)
		}
		var out []string
		for _, im := range ims {
			f.images[im.Ref] = im
			out = append(out, "Loaded image: "+im.Ref)
		}
		return strings.Join(out, "\n"), nil
	}
	return "", fmt.Errorf("fake docker: unexpected command %q", args)
}

// count is how many commands starting with prefix ran.
func (f *fakeDocker) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// imageGraph is a small build: a file step (Go binaries), a base image, an intermediate image only
// the node needs, the node image, and a workload image.
func imageGraph(nodeInput string) (roots []*Step, all map[string]*Step) {
	bins := &Step{Name: "kubernetes", Inputs: []string{"k8s v1"}}
	base := &Step{Name: "node-base", Ref: "rehearse.local/kind-node-base:bookworm", Inputs: []string{"debootstrap"}}
	stage1 := &Step{Name: "node-stage1", Ref: "rehearse.local/kind-node-stage1:v1", Inputs: []string{"copy bins"}, Deps: []*Step{base, bins}}
	node := &Step{Name: "node", Ref: "rehearse.local/kind-node:v1", Inputs: []string{nodeInput}, Deps: []*Step{stage1}}
	pg := &Step{Name: "image-postgres", Ref: "rehearse.local/postgres:15", Inputs: []string{"pg"}}
	all = map[string]*Step{"kubernetes": bins, "node-base": base, "node-stage1": stage1, "node": node, "image-postgres": pg}
	return []*Step{base, node, pg}, all
}

// buildAll gives every image of the graph its current key in f, as `rehearse images build` would:
// an image that has it already is kept.
func buildAll(t *testing.T, f *fakeDocker, roots []*Step) map[*Step]string {
	t.Helper()
	keys, err := Keys(roots...)
	if err != nil {
		t.Fatal(err)
	}
	order, _ := Graph(roots...)
	for _, s := range order {
		if im, ok := f.images[s.Ref]; s.Ref != "" && (!ok || im.Key != keys[s]) {
			f.add(s.Ref, keys[s])
		}
	}
	return keys
}

func TestExportWritesEveryImageAndAManifest(t *testing.T) {
	f := newFakeDocker()
	roots, all := imageGraph("n1")
	keys := buildAll(t, f, roots)
	byRef := map[string]*Step{}
	for _, s := range all {
		byRef[s.Ref] = s
	}
	dir := filepath.Join(t.TempDir(), "cache")
	m, err := Export(context.Background(), f, dir, roots, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Every image, the intermediate one too, dependencies first, in one archive; the file step is
	// not an image.
	var refs []string
	for _, a := range m.Images {
		refs = append(refs, a.Ref)
		if s := byRef[a.Ref]; s == nil || a.Key != keys[s] || a.ID != f.images[a.Ref].ID || a.File != m.Images[0].File {
			t.Errorf("manifest entry %+v does not match its step and image, or is in another archive", a)
		}
	}
	want := []string{"rehearse.local/kind-node-base:bookworm", "rehearse.local/kind-node-stage1:v1", "rehearse.local/kind-node:v1", "rehearse.local/postgres:15"}
	if !slices.Equal(refs, want) {
		t.Errorf("exported %v, want %v", refs, want)
	}
	if got := f.count("save"); got != 1 || !slices.Contains(f.calls, "save -o "+filepath.Join(dir, m.Images[0].File)+".partial "+strings.Join(want, " ")) {
		t.Errorf("%d saves: %q", got, f.calls)
	}
	onDisk, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(onDisk.Images, m.Images) {
		t.Errorf("manifest on disk %+v, returned %+v", onDisk.Images, m.Images)
	}
	files := func() []string {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	if got := files(); !slices.Equal(got, []string{m.Images[0].File, ManifestName}) {
		t.Errorf("directory holds %v", got)
	}

	// Exporting again saves nothing.
	if _, err := Export(context.Background(), f, dir, roots, nil); err != nil {
		t.Fatal(err)
	}
	if got := f.count("save"); got != 1 {
		t.Errorf("an unchanged export saved again (%d saves)", got)
	}

	// A changed node image: a new archive replaces the old one.
	roots2, all2 := imageGraph("n2")
	keys2 := buildAll(t, f, roots2)
	m2, err := Export(context.Background(), f, dir, roots2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.count("save"); got != 2 {
		t.Errorf("after a change of the node image, %d saves, want 2", got)
	}
	if m2.Images[0].File == m.Images[0].File {
		t.Error("the new archive has the old one's name")
	}
	if got := files(); !slices.Equal(got, []string{m2.Images[0].File, ManifestName}) {
		t.Errorf("directory holds %v, want the new archive and the manifest", got)
	}
	if !slices.ContainsFunc(m2.Images, func(a Archive) bool { return a.Ref == all2["node"].Ref && a.Key == keys2[all2["node"]] }) {
		t.Errorf("manifest %+v lacks the new node image", m2.Images)
	}
}

func TestExportRefusesImagesNotBuilt(t *testing.T) {
	f := newFakeDocker()
	roots, all := imageGraph("n1")
	buildAll(t, f, roots)
	delete(f.images, all["image-postgres"].Ref)
	f.images[all["node"].Ref] = fakeImage{Ref: all["node"].Ref, ID: "sha256:old", Key: "stale"}
	f.images[all["node-base"].Ref] = fakeImage{Ref: all["node-base"].Ref, ID: "sha256:unlabelled"}
	dir := filepath.Join(t.TempDir(), "cache")
	_, err := Export(context.Background(), f, dir, roots, nil)
	if err == nil {
		t.Fatal("export of images not built succeeded")
	}
	for _, want := range []string{"rehearse.local/postgres:15 (image-postgres): not built", `rehearse.local/kind-node:v1 (node): built with key "stale"`,
		`rehearse.local/kind-node-base:bookworm (node-base): built with key ""`, "rehearse images build"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if f.count("save") != 0 {
		t.Error("export saved archives before refusing")
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestName)); err == nil {
		t.Error("a refused export wrote a manifest")
	}

	// An intermediate image that is gone (its dependents are built) is left out, not an error.
	f2 := newFakeDocker()
	buildAll(t, f2, roots)
	delete(f2.images, all["node-stage1"].Ref)
	var log strings.Builder
	m, err := Export(context.Background(), f2, dir, roots, &log)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Images) != 3 || !strings.Contains(log.String(), "skip    rehearse.local/kind-node-stage1:v1 (node-stage1): not built") {
		t.Errorf("exported %+v; log:\n%s", m.Images, log.String())
	}
}

func TestImportLoadsAndVerifiesKeys(t *testing.T) {
	src := newFakeDocker()
	roots, _ := imageGraph("n1")
	keys := buildAll(t, src, roots)
	dir := t.TempDir()
	m, err := Export(context.Background(), src, dir, roots, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A fresh machine: every image is loaded and carries the key a build computes for its step, so
	// the build reuses it.
	dst := newFakeDocker()
	if _, err := Import(context.Background(), dst, dir, nil); err != nil {
		t.Fatal(err)
	}
	order, _ := Graph(roots...)
	for _, s := range order {
		if s.Ref == "" {
			continue
		}
		if im, ok := dst.images[s.Ref]; !ok || im.Key != keys[s] {
			t.Errorf("%s after import: %+v, want key %s", s.Ref, im, keys[s])
		}
	}
	if got := dst.count("load"); got != 1 {
		t.Errorf("%d loads, want 1", got)
	}
	// Again: everything is present with its key, nothing is loaded.
	if _, err := Import(context.Background(), dst, dir, nil); err != nil {
		t.Fatal(err)
	}
	if got := dst.count("load"); got != 1 {
		t.Errorf("a second import loaded the archive again")
	}
	// One image gone (or rebuilt with another key): the archive is loaded for it.
	delete(dst.images, m.Images[1].Ref)
	var log strings.Builder
	if _, err := Import(context.Background(), dst, dir, &log); err != nil {
		t.Fatal(err)
	}
	if got := dst.count("load"); got != 2 || !strings.Contains(log.String(), "loaded  "+m.Images[1].Ref) {
		t.Errorf("%d loads; log:\n%s", got, log.String())
	}
}

func TestImportRejectsWhatTheManifestDoesNotVouchFor(t *testing.T) {
	src := newFakeDocker()
	roots, _ := imageGraph("n1")
	buildAll(t, src, roots)
	dir := t.TempDir()
	m, err := Export(context.Background(), src, dir, roots, nil)
	if err != nil {
		t.Fatal(err)
	}

	// An archive whose image carries another key than the manifest says: the others still load.
	tampered := *m
	tampered.Images = slices.Clone(m.Images)
	tampered.Images[2].Key = "0123456789abcdef0123"
	if err := writeManifest(dir, &tampered); err != nil {
		t.Fatal(err)
	}
	dst := newFakeDocker()
	_, err = Import(context.Background(), dst, dir, nil)
	if err == nil || !strings.Contains(err.Error(), tampered.Images[2].Ref+": loaded from") ||
		!strings.Contains(err.Error(), `the manifest says "0123456789abcdef0123"`) {
		t.Errorf("import of a mislabelled archive: %v", err)
	}
	if _, key, _ := inspect(context.Background(), dst, tampered.Images[0].Ref); key != tampered.Images[0].Key {
		t.Errorf("the other images were not imported")
	}

	// A missing archive.
	if err := writeManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, m.Images[0].File))
	if _, err := Import(context.Background(), newFakeDocker(), dir, nil); err == nil ||
		!strings.Contains(err.Error(), m.Images[0].Ref) || !strings.Contains(err.Error(), m.Images[3].Ref) {
		t.Errorf("import with the archive missing: %v", err)
	}

	// Manifests that name files outside the directory, lack fields, or come from another version.
	for name, body := range map[string]string{
		"escape":  `{"version":1,"images":[{"ref":"a:1","key":"k","id":"i","file":"../../etc/passwd"}]}`,
		"no key":  `{"version":1,"images":[{"ref":"a:1","id":"i","file":"a.tar"}]}`,
		"version": `{"version":2,"images":[]}`,
		"unknown": `{"version":1,"images":[],"extra":true}`,
	} {
		bad := t.TempDir()
		os.WriteFile(filepath.Join(bad, ManifestName), []byte(body), 0o644)
		if _, err := Import(context.Background(), newFakeDocker(), bad, nil); err == nil {
			t.Errorf("%s: import accepted %s", name, body)
		}
	}
	if _, err := Import(context.Background(), newFakeDocker(), t.TempDir(), nil); err == nil {
		t.Error("import of a directory without a manifest succeeded")
	}
}

// Docker is the Runner Export and Import use for real.
var _ Runner = Docker{}
