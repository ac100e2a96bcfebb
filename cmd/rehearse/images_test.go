package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/images"
)

// The CI cache key follows every image but the ones made from the rehearse executable, which change
// with every commit.
func TestCacheKeyLeavesOutPerBinaryImages(t *testing.T) {
	set := func(baseInput, ordersInput string) (steps, perBinary []*images.Step) {
		base := &images.Step{Name: "node-base", Ref: "rehearse.local/kind-node-base:bookworm", Inputs: []string{baseInput}}
		node := &images.Step{Name: "node", Ref: "rehearse.local/kind-node:v1", Deps: []*images.Step{base}}
		orders := &images.Step{Name: "image-orders", Ref: "rehearse.local/orders:dev", Inputs: []string{ordersInput}}
		return []*images.Step{base, node, orders}, []*images.Step{orders}
	}
	key := func(baseInput, ordersInput string) string {
		k, err := cacheKey(set(baseInput, ordersInput))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[0-9a-f]{20}$`).MatchString(k) {
			t.Fatalf("key %q is not 20 hex digits", k)
		}
		return k
	}
	k := key("debian", "rehearse sha256:1")
	if key("debian", "rehearse sha256:1") != k {
		t.Error("the key is not deterministic")
	}
	if key("debian", "rehearse sha256:2") != k {
		t.Error("a new rehearse binary changed the cache key")
	}
	if key("debian 2", "rehearse sha256:1") == k {
		t.Error("a changed base image left the cache key as it was")
	}
	steps, perBinary := set("debian", "x")
	if _, err := cacheKey(steps, perBinary); err != nil || len(steps) != 3 {
		t.Errorf("cacheKey changed its argument: %d steps, %v", len(steps), err)
	}
}

func TestImagesExportImportNeedADirectory(t *testing.T) {
	for _, args := range [][]string{{"images", "export"}, {"images", "import"}, {"images", "import", "a", "b"}} {
		if _, err := execute(args...); err == nil || !strings.Contains(err.Error(), "arg") {
			t.Errorf("%v: %v, want an arguments error", args, err)
		}
	}
	// A directory without a manifest is refused before docker is asked anything.
	if _, err := execute("images", "import", t.TempDir()); err == nil || !strings.Contains(err.Error(), images.ManifestName) {
		t.Errorf("import of an empty directory: %v", err)
	}
}
