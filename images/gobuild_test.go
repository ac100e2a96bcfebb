package images

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Sets build in one wrapper module, each with its own cgo setting, tags and names; packages of the
// build's own (Files) are built as ./dir and kept out of tools.go.
func TestGoBinariesBuildsEverySet(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain")
	}
	main := func(word string) string {
		return "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"" + word + "\") }\n"
	}
	step := GoBinaries("t", GoBuild{
		Files: map[string]string{"hello/main.go": main("hello"), "world/main.go": main("world"), "tagged/main.go": "//go:build netgo\n\n" + main("tagged")},
		Sets: []GoSet{
			{Packages: []string{"./hello", "./world"}, Rename: map[string]string{"./world": "planet"}},
			{Packages: []string{"./tagged"}, CGO: true, Tags: []string{"netgo"}},
		},
	})
	b := &Builder{CacheDir: t.TempDir()}
	if err := b.Ensure(context.Background(), step); err != nil {
		t.Fatal(err)
	}
	for bin, want := range map[string]string{"hello": "hello", "planet": "world", "tagged": "tagged"} {
		out, err := exec.Command(filepath.Join(step.Dir, bin)).Output()
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("%s printed %q, %v; want %q", bin, out, err, want)
		}
	}
}

// A changed file of the build's own is a changed key: the binaries are rebuilt.
func TestGoBinariesKeyHasItsFiles(t *testing.T) {
	key := func(src string) string {
		s := GoBinaries("t", GoBuild{Files: map[string]string{"x/main.go": src}, Sets: []GoSet{{Packages: []string{"./x"}}}})
		keys := map[*Step]string{}
		if err := computeKeys(keys, s); err != nil {
			t.Fatal(err)
		}
		return keys[s]
	}
	if key("package main\nfunc main() {}\n") == key("package main\nfunc main() { println() }\n") {
		t.Error("two different main.go files give one key")
	}
}
