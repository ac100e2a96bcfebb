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
