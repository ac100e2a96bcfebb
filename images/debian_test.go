package images

import (
	"strings"
	"testing"
)

func TestParseMirrorOneLineFormat(t *testing.T) {
	list := `# comment
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://sec.example/debian-security bookworm-security main
deb http://mirror.example/debian bookworm contrib
deb [ signed-by=/k.gpg ] http://good.example/debian bookworm main contrib
`
	if got := parseMirror(strings.NewReader(list), false, "bookworm"); got != "http://good.example/debian" {
		t.Errorf("got %q", got)
	}
	if got := parseMirror(strings.NewReader(list), false, "trixie"); got != "" {
		t.Errorf("found %q for a suite no line serves", got)
	}
}

func TestParseMirrorDeb822(t *testing.T) {
	sources := `Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
# a comment inside a stanza
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg`
	if got := parseMirror(strings.NewReader(sources), true, "bookworm"); got != "http://mirror.example/debian" {
		t.Errorf("got %q", got)
	}
	if got := parseMirror(strings.NewReader(sources), true, "bullseye"); got != "" {
		t.Errorf("found %q for a suite no stanza serves", got)
	}
}

func TestDebianMirrorOverride(t *testing.T) {
	t.Setenv("REHEARSE_DEBIAN_MIRROR", "http://override.example/debian")
	got, err := DebianMirror("bookworm")
	if err != nil || got != "http://override.example/debian" {
		t.Errorf("DebianMirror = %q, %v", got, err)
	}
}

// A Debian image made from another is keyed by it: a new base rebuilds it, and it waits for it.
func TestDebianImageFromAnotherIsKeyedByIt(t *testing.T) {
	base := DebianImage("base", "example/base:1", Debian{Suite: "bookworm", Variant: "minbase"})
	other := DebianImage("base", "example/base:1", Debian{Suite: "bookworm", Variant: "minbase", Packages: []string{"less"}})
	derived := func(b *Step) *Step {
		return DebianImage("derived", "example/derived:1", Debian{Suite: "bookworm", From: b, Packages: []string{"curl"}})
	}
	d := derived(base)
	if len(d.Deps) != 1 || d.Deps[0] != base || d.Lock != "debootstrap" {
		t.Fatalf("deps %v, lock %q", d.Deps, d.Lock)
	}
	k1, err := Keys(d)
	if err != nil {
		t.Fatal(err)
	}
	d2 := derived(other)
	k2, err := Keys(d2)
	if err != nil {
		t.Fatal(err)
	}
	if k1[d] == k2[d2] {
		t.Error("a derived image keeps its key when its base changes")
	}
	if own := DebianImage("derived", "example/derived:1", Debian{Suite: "bookworm", Variant: "minbase", Packages: []string{"curl"}}); len(own.Deps) != 0 {
		t.Errorf("a debootstrapped image depends on %v", own.Deps)
	}
}
