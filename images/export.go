package images

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
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

// Archive is one image saved with `docker save`.
type Archive struct {
	// Ref is the image's name, as the archive tags it.
	Ref string `json:"ref"`
	// Key is the build key the image was made with (its KeyLabel).
	Key string `json:"key"`
	// ID is the docker image ID when it was saved.
	ID string `json:"id"`
	// File is the archive's name in the export directory.
	File string `json:"file"`
}

// Runner runs docker CLI commands and returns their trimmed stdout; Docker is one. Export and Import
// need nothing else, which lets tests give them a fake engine.
type Runner interface {
	Run(ctx context.Context, stdin io.Reader, args ...string) (string, error)
}

// inspectFormat prints an image's ID and its build key label, separated by a space.
var inspectFormat = fmt.Sprintf("{{.Id}} {{index .Config.Labels %q}}", KeyLabel)

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

// Export saves the image of every image step in the graphs of steps into dir, one `docker save`
// archive each, and writes dir/manifest.json listing them with their keys and IDs. Each image must
// carry its build key (run the build first): a step of steps that is missing or stale is an error;
// a dependency that is only an intermediate of other images and is missing or stale is left out
// (a build does not need it while the images made from it are built). File steps are not exported.
//
// An archive dir already holds for the same image ID and key is kept rather than saved again, and
// archives the new manifest does not list are removed, so that a directory a CI cache restored is
// brought up to date cheaply.
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
			m.Images = append(m.Images, Archive{Ref: s.Ref, Key: key, ID: id, File: archiveName(s.Name, key)})
			continue
		}
		state := "not built"
		if ok {
			state = fmt.Sprintf("built with key %q, not %s", key, keys[s])
		}
		if root[s] {
			missing = append(missing, fmt.Sprintf("%s (%s): %s", s.Ref, s.Name, state))
		} else {
			logf(log, "skip    %-28s %s: %s; not needed while the images made from it are built", s.Name, s.Ref, state)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("images not built with their current keys (run `rehearse images build` first):\n  %s",
			strings.Join(missing, "\n  "))
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	old := map[string]Archive{}
	if prev, err := ReadManifest(dir); err == nil {
		for _, a := range prev.Images {
			old[a.File] = a
		}
	}
	for _, a := range m.Images {
		path := filepath.Join(dir, a.File)
		if o, ok := old[a.File]; ok && o == a {
			if st, err := os.Stat(path); err == nil && st.Size() > 0 {
				logf(log, "kept    %s (%s)", a.Ref, a.File)
				continue
			}
		}
		tmp := path + ".partial"
		if _, err := d.Run(ctx, nil, "save", "-o", tmp, a.Ref); err != nil {
			os.Remove(tmp)
			return nil, err
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, err
		}
		logf(log, "saved   %s -> %s%s", a.Ref, a.File, sizeOf(path))
	}
	if err := writeManifest(dir, m); err != nil {
		return nil, err
	}
	// Archives of earlier keys, and leftovers of an interrupted export, are garbage now.
	listed := map[string]bool{ManifestName: true}
	for _, a := range m.Images {
		listed[a.File] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if n := e.Name(); !listed[n] && (strings.HasSuffix(n, ".tar") || strings.HasSuffix(n, ".partial")) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Import loads every archive dir/manifest.json lists with `docker load` and checks that each image
// then carries the build key the manifest records, so that a following build reuses it. An image
// already present with that key is not loaded again (the build would reuse it as it is). Every archive is tried; the error
// names each that failed.
func Import(ctx context.Context, d Runner, dir string, log io.Writer) (*Manifest, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, a := range m.Images {
		if _, key, ok := inspect(ctx, d, a.Ref); ok && key == a.Key {
			logf(log, "present %s (key %s)", a.Ref, a.Key)
			continue
		}
		if _, err := d.Run(ctx, nil, "load", "-i", filepath.Join(dir, a.File)); err != nil {
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

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// archiveName is the file an image step's archive is saved as: its name and key, so that archives of
// other keys never overwrite one a manifest still lists.
func archiveName(step, key string) string {
	return unsafeName.ReplaceAllString(step, "_") + "-" + key + ".tar"
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
