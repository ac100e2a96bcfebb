package images

import (
	"archive/tar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeImageTar(t *testing.T, files map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	// A layer first, as docker save writes them, so that the reader has to skip content.
	names := []string{"blobs/sha256/aa"}
	files["blobs/sha256/aa"] = strings.Repeat("x", 5000)
	for n := range files {
		if n != "blobs/sha256/aa" {
			names = append(names, n)
		}
	}
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func TestArchiveTags(t *testing.T) {
	docker := writeImageTar(t, map[string]string{"manifest.json": `[{"Config":"c.json","RepoTags":["example.com/web:1.2","web:dev"],"Layers":[]}]`})
	got, err := ArchiveTags(docker)
	if err != nil || !slices.Equal(got, []string{"example.com/web:1.2", "web:dev"}) {
		t.Errorf("docker save archive: %v, %v", got, err)
	}
	oci := writeImageTar(t, map[string]string{"index.json": `{"manifests":[{"annotations":{"io.containerd.image.name":"docker.io/library/api:v3","org.opencontainers.image.ref.name":"v3"}}]}`})
	if got, err := ArchiveTags(oci); err != nil || !slices.Equal(got, []string{"docker.io/library/api:v3"}) {
		t.Errorf("OCI layout: %v, %v", got, err)
	}
	// Not an image archive, and not a tar: errors that say so.
	if _, err := ArchiveTags(writeImageTar(t, map[string]string{"etc/passwd": "root"})); err == nil || !strings.Contains(err.Error(), "not an image archive") {
		t.Errorf("tar without a manifest: %v", err)
	}
	gz := filepath.Join(t.TempDir(), "img.tar.gz")
	os.WriteFile(gz, []byte("\x1f\x8b\x08\x00 not a tar at all, but long enough to fill a tar header block? no: "+strings.Repeat("z", 600)), 0o644)
	if _, err := ArchiveTags(gz); err == nil {
		t.Errorf("a gzip file read as an archive of images")
	}
}

func TestSameRef(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"web", "docker.io/library/web:latest", true},
		{"web:dev", "docker.io/library/web:dev", true},
		{"team/web:1", "docker.io/team/web:1", true},
		{"rehearse.local/orders:dev", "rehearse.local/orders:dev", true},
		{"localhost:5000/web", "localhost:5000/web:latest", true},
		{"web:dev", "web:v2", false},
		{"example.com/web:1", "web:1", false},
		{"web@sha256:ab", "docker.io/library/web@sha256:ab", true},
	} {
		if got := SameRef(c.a, c.b); got != c.same {
			t.Errorf("SameRef(%q, %q) = %v, want %v", c.a, c.b, got, c.same)
		}
	}
}
