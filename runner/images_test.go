package runner

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A container that is never pulled warns before any cluster is made, naming the file and line of the
// scenario's field and the manifest's object, unless the scenario loads an image of that name
// (localImages, or an archive of images that holds it); an image pulled as usual never warns.
func TestLoadWarnsOfImagesNeverPulledAndNotLoaded(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("web.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: web, image: team/web:2, imagePullPolicy: Never}
        - {name: sidecar, image: envoy:1.30}
`)
	// A docker save archive that holds team/web:2 (as docker.io/team/web:2 would be the same image).
	f, err := os.Create(filepath.Join(dir, "web.tar"))
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	m := `[{"RepoTags":["docker.io/team/web:2"]}]`
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: int64(len(m))})
	tw.Write([]byte(m))
	tw.Close()
	f.Close()

	scenario := func(extra string) string {
		return `apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: own}
cluster: {provider: kind, name: rehearse}
workload:
  manifests: [web.yaml]
` + extra + `load:
  rate: 10/s
  baseURL: http://127.0.0.1:31002
  targets: [{name: get, method: GET, path: /}]
steps:
  - {name: steady, wait: 5s}
verify:
  zero-failed-requests: {max: 0}
`
	}
	for _, c := range []struct {
		name, extra string
		warn        bool
	}{
		{"nothing loaded", "", true},
		{"another image loaded", "  localImages: [team/web:1]\n", true},
		{"loaded from this machine's Docker", "  localImages: [team/web:2]\n", false},
		{"in an archive", "  images: [web.tar]\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yaml")
			write(filepath.Base(p), scenario(c.extra))
			l, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			var msgs []string
			for _, w := range l.Warnings {
				msgs = append(msgs, w.String())
			}
			all := strings.Join(msgs, "\n")
			hit := strings.Contains(all, "team/web:2 is never pulled")
			if hit != c.warn {
				t.Fatalf("warned %v, want %v:\n%s", hit, c.warn, all)
			}
			if c.warn {
				for _, want := range []string{filepath.Base(p) + ":6", "workload.manifests", "deployment/web", "web.yaml:1", "container web", "workload.localImages"} {
					if !strings.Contains(all, want) {
						t.Errorf("warning lacks %q:\n%s", want, all)
					}
				}
			}
			if strings.Contains(all, "envoy") {
				t.Errorf("an image pulled as usual warned:\n%s", all)
			}
		})
	}
}
