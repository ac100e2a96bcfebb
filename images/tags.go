package images

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ArchiveTags reads the image names an image archive holds: a `docker save` archive's manifest.json
// (RepoTags), or an OCI layout's index.json (its image-name annotations). The archive is an
// uncompressed tar; its file contents are skipped, not read.
func ArchiveTags(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var tags []string
	found := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: not a tar archive of images (docker save writes one): %w", path, err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "manifest.json":
			var m []struct{ RepoTags []string }
			if err := json.NewDecoder(tr).Decode(&m); err != nil {
				return nil, fmt.Errorf("%s: manifest.json: %w", path, err)
			}
			for _, e := range m {
				tags = append(tags, e.RepoTags...)
			}
			found = true
		case "index.json":
			var idx struct {
				Manifests []struct{ Annotations map[string]string }
			}
			if err := json.NewDecoder(tr).Decode(&idx); err != nil {
				return nil, fmt.Errorf("%s: index.json: %w", path, err)
			}
			for _, m := range idx.Manifests {
				if n := m.Annotations["io.containerd.image.name"]; n != "" {
					tags = append(tags, n)
				}
			}
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("%s: no manifest.json or index.json: not an image archive", path)
	}
	return tags, nil
}

// SameRef says whether two image references name the same image, as a container runtime resolves
// them: docker.io/library/ and docker.io/ are implied, and so is the tag latest.
func SameRef(a, b string) bool { return normalRef(a) == normalRef(b) }

func normalRef(ref string) string {
	name, digest, hasDigest := strings.Cut(ref, "@")
	last := name[strings.LastIndex(name, "/")+1:]
	if !strings.Contains(last, ":") && !hasDigest {
		name += ":latest"
	}
	if first, _, ok := strings.Cut(name, "/"); !ok || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		if !ok {
			name = "library/" + name
		}
		name = "docker.io/" + name
	}
	if hasDigest {
		return name + "@" + digest
	}
	return name
}
