package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ManifestName is the file, in an export directory, that lists its image archives.
const ManifestName = "manifest.json"

// manifestVersion changes when the manifest's meaning does; Import refuses other versions.
const manifestVersion = 1

// Manifest lists the image archives of an export directory: what `rehearse images export` writes
// and `rehearse images import` reads, so that a CI cache restores built images on a fresh machine.
type Manifest struct {
	Version int       `json:"version"`
	Images  []Archive `json:"images"`
}

// Archive is one image in a `docker save` archive.
type Archive struct {
	// Ref is the image's name, as the archive tags it.
	Ref string `json:"ref"`
	// Key is the build key the image was made with (its KeyLabel).
	Key string `json:"key"`
	// ID is the docker image ID when it was saved.
	ID string `json:"id"`
	// File is the name, in the export directory, of the archive holding the image.
	File string `json:"file"`
}

// Runner runs docker CLI commands and returns their trimmed stdout; Docker is one. Export and Import
// need nothing else, which lets tests give them a fake engine.
type Runner interface {
	Run(ctx context.Context, stdin io.Reader, args ...string) (string, error)
}

// inspectFormat prints an image's ID and its build key label, separated by a space (only the ID for
// an image without labels, where index alone would fail the template).
var inspectFormat = fmt.Sprintf("{{.Id}} {{with .Config.Labels}}{{index . %q}}{{end}}", KeyLabel)

// inspect returns ref's image ID and build key label; exists is false when there is no such image.
func inspect(ctx context.Context, d Runner, ref string) (id, key string, exists bool) {
	out, err := d.Run(ctx, nil, "image", "inspect", "--format", inspectFormat, ref)
	if err != nil {
		return "", "", false
	}
	id, key, _ = strings.Cut(strings.TrimSpace(out), " ")
	if key == "<no value>" {
		key = ""
	}
	return id, key, id != ""
}

// Export saves the image of every image step in the graphs of steps into dir, in one `docker save`
// archive, and writes dir/manifest.json listing each image with its key, ID and archive. Each image
// must carry its build key (run the build first): a step of steps that is missing or stale is an
// error; a dependency that is only an intermediate of other images and is missing or stale is left
// out (a build does not need it while the images made from it are built). File steps are not
// exported.
//
// One archive, because the images share layers (the node image is made from its base, kube-proxy and
// flannel from the slim Debian image, PostgreSQL from its base) and docker save writes a layer once
// per archive: by the sizes docker gives rehearse's images, about 2.5 GB in one archive against
// 3.9 GB in one archive each. When dir already holds an archive of the same images (IDs and keys) it
// is kept; archives the new manifest does not list are removed, so a directory a CI cache restored
// is brought up to date.
func Export(ctx context.Context, d Runner, dir string, steps []*Step, log io.Writer) (*Manifest, error) {
	order, err := Graph(steps...)
	if err != nil {
		return nil, err
	}
	keys, err := Keys(steps...)
	if err != nil {
		return nil, err
	}
	root := map[*Step]bool{}
	for _, s := range steps {
		root[s] = true
	}
	m := &Manifest{Version: manifestVersion}
	var missing []string
	for _, s := range order {
		if s.Ref == "" {
			continue
		}
		id, key, ok := inspect(ctx, d, s.Ref)
		if ok && key == keys[s] {
			m.Images = append(m.Images, Archive{Ref: s.Ref, Key: key, ID: id})
			continue
		}
		state := "not built"
		if ok {
			state = fmt.Sprintf("built with key %q, not %s", key, keys[s])
		}
		if root[s] {
			missing = append(missing, fmt.Sprintf("%s (%s): %s", s.Ref, s.Name, state))
		} else {
			logf(log, "skip    %s (%s): %s; not needed while the images made from it are built", s.Ref, s.Name, state)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("images not built with their current keys (run `rehearse images build` first):\n  %s",
			strings.Join(missing, "\n  "))
	}
	if len(m.Images) == 0 {
		return nil, fmt.Errorf("no image to export")
	}
	file := archiveName(m.Images)
	refs := make([]string, len(m.Images))
	for i := range m.Images {
		m.Images[i].File = file
		refs[i] = m.Images[i].Ref
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, file)
	prev, _ := ReadManifest(dir)
	if st, err := os.Stat(path); err == nil && st.Size() > 0 && prev != nil && slices.Equal(prev.Images, m.Images) {
		logf(log, "kept    %s: %d images, unchanged", file, len(m.Images))
	} else {
		tmp := path + ".partial"
		if _, err := d.Run(ctx, nil, append([]string{"save", "-o", tmp}, refs...)...); err != nil {
			os.Remove(tmp)
			return nil, err
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, err
		}
		logf(log, "saved   %s: %d images%s", file, len(m.Images), sizeOf(path))
	}
	if err := writeManifest(dir, m); err != nil {
		return nil, err
	}
	// Archives of other images, and leftovers of an interrupted export, are garbage now.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if n := e.Name(); n != file && (strings.HasSuffix(n, ".tar") || strings.HasSuffix(n, ".partial")) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Import loads the archives dir/manifest.json lists with `docker load` and checks that each image
// then carries the build key the manifest records, so that a following build reuses it. When every
// image an archive holds is already present with its key, the archive is not loaded (the build would
// reuse them as they are). The error names every image that failed.
func Import(ctx context.Context, d Runner, dir string, log io.Writer) (*Manifest, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	var load []string // archives with an image not present, in manifest order
	for _, a := range m.Images {
		if _, key, ok := inspect(ctx, d, a.Ref); ok && key == a.Key {
			present[a.Ref] = true
		} else if !slices.Contains(load, a.File) {
			load = append(load, a.File)
		}
	}
	var errs []error
	failed := map[string]error{}
	for _, f := range load {
		if _, err := d.Run(ctx, nil, "load", "-i", filepath.Join(dir, f)); err != nil {
			failed[f] = err
		}
	}
	for _, a := range m.Images {
		if present[a.Ref] {
			logf(log, "present %s (key %s)", a.Ref, a.Key)
			continue
		}
		if err := failed[a.File]; err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.Ref, err))
			continue
		}
		_, key, ok := inspect(ctx, d, a.Ref)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: not present after loading %s", a.Ref, a.File))
		case key != a.Key:
			errs = append(errs, fmt.Errorf("%s: loaded from %s with %s=%q, the manifest says %q", a.Ref, a.File, KeyLabel, key, a.Key))
		default:
			logf(log, "loaded  %s (key %s)", a.Ref, a.Key)
		}
	}
	if len(errs) > 0 {
		return m, fmt.Errorf("import from %s: %w", dir, errors.Join(errs...))
	}
	return m, nil
}

// ReadManifest reads and checks dir/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestName), err)
	}
	if m.Version != manifestVersion {
		return nil, fmt.Errorf("%s: version %d, this rehearse reads %d", filepath.Join(dir, ManifestName), m.Version, manifestVersion)
	}
	for i, a := range m.Images {
		// The directory comes from a cache: its manifest must not name files elsewhere.
		if a.Ref == "" || a.Key == "" || a.File == "" || a.File != filepath.Base(a.File) || a.File == "." || a.File == ".." ||
			a.File == ManifestName {
			return nil, fmt.Errorf("%s: images[%d]: needs a ref, a key and a file name in the directory: %+v",
				filepath.Join(dir, ManifestName), i, a)
		}
	}
	return &m, nil
}

func writeManifest(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ManifestName+".partial")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, ManifestName))
}

// archiveName names the archive of images after their refs, keys and IDs, so that an archive of
// other images never overwrites one a manifest still lists.
func archiveName(images []Archive) string {
	h := sha256.New()
	for _, a := range images {
		fmt.Fprintf(h, "%s\x00%s\x00%s\n", a.Ref, a.Key, a.ID)
	}
	return "images-" + hex.EncodeToString(h.Sum(nil))[:20] + ".tar"
}

func sizeOf(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf(" (%.1f MB)", float64(st.Size())/1e6)
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}
