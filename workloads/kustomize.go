package workloads

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Kustomize builds a kustomization directory in-process (what `kubectl kustomize DIR` prints) and
// reads the objects it makes. Remote bases and plugins are not used: a rehearsal has no network and
// runs nothing it did not build.
func Kustomize(dir string) ([]Manifest, error) {
	b, err := KustomizeYAML(dir)
	if err != nil {
		return nil, err
	}
	ms, err := parseManifests("kustomize "+dir, b)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("kustomize %s: it makes no object", dir)
	}
	return ms, nil
}

// KustomizeYAML is what a kustomization directory builds, as one YAML stream.
func KustomizeYAML(dir string) ([]byte, error) {
	if !IsKustomization(dir) {
		return nil, fmt.Errorf("%s: no kustomization.yaml, kustomization.yml or Kustomization in it", dir)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	b, err := rm.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	return b, nil
}

// IsKustomization says whether dir holds a kustomization file.
func IsKustomization(dir string) bool {
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if st, err := os.Stat(filepath.Join(dir, n)); err == nil && !st.IsDir() {
			return true
		}
	}
	return false
}
