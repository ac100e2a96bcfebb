package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fileStep returns a file step that writes name=content and counts its builds.
func fileStep(name, content string, builds *int, deps ...*Step) *Step {
	return &Step{
		Name:   name,
		Inputs: []string{content},
		Deps:   deps,
		Build: func(_ context.Context, _ *Builder, s *Step) error {
			*builds++
			return os.WriteFile(filepath.Join(s.Dir, "out"), []byte(content), 0o644)
		},
	}
}

func TestBuilderReusesUnchangedFileSteps(t *testing.T) {
	cache := t.TempDir()
	var baseBuilds, topBuilds int
	base := fileStep("base", "v1", &baseBuilds)
	top := fileStep("top", "t", &topBuilds, base)

	b := &Builder{CacheDir: cache}
	if err := b.Ensure(context.Background(), top); err != nil {
		t.Fatal(err)
	}
	if baseBuilds != 1 || topBuilds != 1 {
		t.Fatalf("first build: base built %d times, top %d; want 1 and 1", baseBuilds, topBuilds)
	}
	got, err := os.ReadFile(filepath.Join(top.Dir, "out"))
	if err != nil || string(got) != "t" {
		t.Fatalf("top output = %q, %v", got, err)
	}

	// A new builder (a second `rehearse images build`) with the same inputs builds nothing.
	base2 := fileStep("base", "v1", &baseBuilds)
	top2 := fileStep("top", "t", &topBuilds, base2)
	b2 := &Builder{CacheDir: cache}
	if err := b2.Ensure(context.Background(), top2); err != nil {
		t.Fatal(err)
	}
	if baseBuilds != 1 || topBuilds != 1 {
		t.Fatalf("second build rebuilt: base %d, top %d", baseBuilds, topBuilds)
	}
	for _, r := range b2.Results() {
		if !r.Cached {
			t.Errorf("step %s not reported as cached", r.Name)
		}
	}

	// Changing a dependency's input rebuilds it and everything that depends on it.
	base3 := fileStep("base", "v2", &baseBuilds)
	top3 := fileStep("top", "t", &topBuilds, base3)
	if err := (&Builder{CacheDir: cache}).Ensure(context.Background(), top3); err != nil {
		t.Fatal(err)
	}
	if baseBuilds != 2 || topBuilds != 2 {
		t.Fatalf("after input change: base built %d times, top %d; want 2 and 2", baseBuilds, topBuilds)
	}
	if top3.Key == top.Key {
		t.Error("top's key did not change when its dependency's input changed")
	}
	// The superseded output is removed.
	entries, _ := os.ReadDir(filepath.Join(cache, "steps", "base"))
	if len(entries) != 1 {
		t.Errorf("cache holds %d versions of base, want 1", len(entries))
	}
}

func TestBuilderFailedStepLeavesNoCompleteOutput(t *testing.T) {
	cache := t.TempDir()
	fail := true
	s := &Step{Name: "flaky", Inputs: []string{"x"}, Build: func(_ context.Context, _ *Builder, s *Step) error {
		if fail {
			return io.ErrUnexpectedEOF
		}
		return nil
	}}
	if err := (&Builder{CacheDir: cache}).Ensure(context.Background(), s); err == nil {
		t.Fatal("failing step reported success")
	}
	fail = false
	b := &Builder{CacheDir: cache}
	if err := b.Ensure(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if b.Results()[0].Cached {
		t.Error("a step whose earlier build failed was taken from the cache")
	}
}

func TestWriteTarAddsParentsAndLinks(t *testing.T) {
	var buf bytes.Buffer
	err := writeTar(&buf, []File{
		{Path: "/usr/local/bin/tool", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
		{Path: "/bin/sh", Symlink: "busybox"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		desc := h.Name
		switch h.Typeflag {
		case tar.TypeSymlink:
			desc += " -> " + h.Linkname
		case tar.TypeReg:
			b, _ := io.ReadAll(tr)
			desc += " " + strings.TrimSpace(string(b))
		}
		got = append(got, desc)
	}
	want := []string{"bin/", "bin/sh -> busybox", "usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/tool #!/bin/sh"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tar entries (-want +got):\n%s", diff)
	}
}

func TestBinaryName(t *testing.T) {
	for pkg, want := range map[string]string{
		"k8s.io/kubernetes/cmd/kubelet": "kubelet",
		"go.etcd.io/etcd/server/v3":     "server",
		"github.com/coredns/coredns":    "coredns",
		"example.com/v":                 "v",
	} {
		if got := binaryName(pkg); got != want {
			t.Errorf("binaryName(%q) = %q, want %q", pkg, got, want)
		}
	}
}

// gauge counts the builds running at once and the most seen.
type gauge struct {
	mu       sync.Mutex
	now, max int
}

func (g *gauge) step(name, lock string, hold time.Duration, builds *atomic.Int32, deps ...*Step) *Step {
	return &Step{Name: name, Inputs: []string{name}, Lock: lock, Deps: deps,
		Build: func(ctx context.Context, _ *Builder, s *Step) error {
			builds.Add(1)
			g.mu.Lock()
			g.now++
			g.max = max(g.max, g.now)
			g.mu.Unlock()
			defer func() { g.mu.Lock(); g.now--; g.mu.Unlock() }()
			select {
			case <-time.After(hold):
			case <-ctx.Done():
				return ctx.Err()
			}
			return os.WriteFile(filepath.Join(s.Dir, "out"), []byte(name), 0o644)
		}}
}

// Independent steps build at once, up to Jobs; a dependency shared by several builds once, before
// them; steps sharing a Lock take turns.
func TestBuilderRunsIndependentStepsConcurrently(t *testing.T) {
	for _, c := range []struct {
		jobs    int
		lock    string
		wantMax int
	}{{2, "", 2}, {1, "", 1}, {4, "debootstrap", 1}} {
		var g gauge
		var builds, baseBuilds atomic.Int32
		base := g.step("base", "", 10*time.Millisecond, &baseBuilds)
		var tops []*Step
		for _, n := range []string{"a", "b", "c"} {
			tops = append(tops, g.step(n, c.lock, 150*time.Millisecond, &builds, base))
		}
		b := &Builder{CacheDir: t.TempDir(), Jobs: c.jobs}
		if err := b.Ensure(context.Background(), tops...); err != nil {
			t.Fatal(err)
		}
		if baseBuilds.Load() != 1 || builds.Load() != 3 || len(b.Results()) != 4 {
			t.Errorf("jobs %d: base built %d times, tops %d, results %d", c.jobs, baseBuilds.Load(), builds.Load(), len(b.Results()))
		}
		if b.Results()[0].Name != "base" {
			t.Errorf("jobs %d: %s finished before its dependency", c.jobs, b.Results()[0].Name)
		}
		if g.max != c.wantMax {
			t.Errorf("jobs %d lock %q: %d builds at once, want %d", c.jobs, c.lock, g.max, c.wantMax)
		}
	}
}

// A failing step stops the others and is the error reported.
func TestBuilderFirstFailureCancelsTheRest(t *testing.T) {
	var g gauge
	var builds atomic.Int32
	slow := g.step("slow", "", time.Minute, &builds)
	bad := &Step{Name: "bad", Inputs: []string{"x"}, Build: func(context.Context, *Builder, *Step) error {
		time.Sleep(50 * time.Millisecond)
		return errors.New("mirror unreachable")
	}}
	start := time.Now()
	err := (&Builder{CacheDir: t.TempDir(), Jobs: 2}).Ensure(context.Background(), slow, bad)
	if err == nil || !strings.Contains(err.Error(), "build bad: mirror unreachable") {
		t.Errorf("error %v, want bad's", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the slow step was not cancelled")
	}
}

// A step already built needs none of its dependencies: on a machine that has the images (imported
// from a CI cache) but not the intermediate files they were made from, nothing is rebuilt. Whatever
// has to be built still gets its dependencies first.
func TestBuilderSkipsDependenciesOfBuiltSteps(t *testing.T) {
	cache := t.TempDir()
	var baseBuilds, topBuilds, otherBuilds int
	base := fileStep("base", "v1", &baseBuilds)
	top := fileStep("top", "t", &topBuilds, base)
	if err := (&Builder{CacheDir: cache}).Ensure(context.Background(), top); err != nil {
		t.Fatal(err)
	}
	// The dependency's output is gone (a fresh machine), the dependent's is there.
	if err := os.RemoveAll(filepath.Join(cache, "steps", "base")); err != nil {
		t.Fatal(err)
	}
	base2 := fileStep("base", "v1", &baseBuilds)
	top2 := fileStep("top", "t", &topBuilds, base2)
	b := &Builder{CacheDir: cache}
	if err := b.Ensure(context.Background(), top2); err != nil {
		t.Fatal(err)
	}
	if baseBuilds != 1 || topBuilds != 1 {
		t.Errorf("base built %d times, top %d; want 1 and 1 (top was built, base not needed)", baseBuilds, topBuilds)
	}
	if len(b.Results()) != 1 || !b.Results()[0].Cached || top2.Dir == "" || top2.Key != top.Key {
		t.Errorf("results %+v, top dir %q key %q", b.Results(), top2.Dir, top2.Key)
	}

	// A new step on the same dependency needs it: the dependency is built first.
	other := fileStep("other", "o", &otherBuilds, base2)
	if err := b.Ensure(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	if baseBuilds != 2 || otherBuilds != 1 {
		t.Errorf("base built %d times, other %d; want 2 and 1", baseBuilds, otherBuilds)
	}

	// --force rebuilds everything, dependencies included.
	if err := (&Builder{CacheDir: cache, Force: true}).Ensure(context.Background(), top2); err != nil {
		t.Fatal(err)
	}
	if baseBuilds != 3 || topBuilds != 2 {
		t.Errorf("forced: base built %d times, top %d; want 3 and 2", baseBuilds, topBuilds)
	}
}
