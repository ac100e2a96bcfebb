// Package replay owns a run's replay bundle, OUT/<scenario>/replay/: what reproduces the run.
// scenario.yaml is the scenario file exactly as run (its bytes, whatever happened to the file
// since), with the manifests it names copied beside it (image archives are big: their path and
// sha256 are recorded, not their bytes); run.json is the seed, the run ID, rehearse's build, the node
// image and the workload's images (docker image IDs, on a local kind cluster), the command line and
// working directory, and the scenario's hash. Write makes a bundle, Open reads one back for
// `rehearse run --replay`, and Differences says what a replay could not hold equal.
package replay

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workloads"
)

// Names in a run's directory.
const (
	Dir          = "replay"        // the bundle, in the run's directory
	RunFile      = "run.json"      // in the bundle
	ScenarioFile = "scenario.yaml" // in the bundle
	RunbookFile  = "runbook.md"    // in the bundle, instead of scenario.yaml, when a runbook was run
	filesDir     = "files"         // in the bundle: files the scenario names outside its own directory
)

// Format is the version of run.json's layout this rehearse writes and reads.
const Format = 1

// Run is run.json.
type Run struct {
	Format   int    `json:"format"`
	Scenario string `json:"scenario"`
	// ScenarioFile is the scenario's path as run, relative to WorkingDir.
	ScenarioFile string    `json:"scenario_file"`
	ScenarioHash string    `json:"scenario_hash"` // sha256 of scenario.yaml
	Seed         uint64    `json:"seed"`
	RunID        string    `json:"run_id"` // the prefix of the run's request ids
	Started      time.Time `json:"started"`
	Rehearse     Build     `json:"rehearse"`
	// Command is Args quoted for a POSIX shell: paste it in WorkingDir.
	Command    string   `json:"command"`
	Args       []string `json:"args"`
	WorkingDir string   `json:"working_dir"`
	Options    Options  `json:"options"`
	Cluster    *Cluster `json:"cluster,omitempty"`
	// NodeImage and Images are known on a local kind cluster only: the node containers' image, and
	// the local images loaded into the nodes (the sample's, or workload.localImages).
	NodeImage *Image  `json:"node_image,omitempty"`
	Images    []Image `json:"images,omitempty"`
	Files     []File  `json:"files,omitempty"`
	// ReplayOf is the run this one replays.
	ReplayOf *Origin `json:"replay_of,omitempty"`
}

// Build is the rehearse binary that made a run, from its build information.
type Build struct {
	Module   string `json:"module,omitempty"`
	Version  string `json:"version,omitempty"` // the main module's version ("(devel)" without one)
	Go       string `json:"go,omitempty"`
	Revision string `json:"vcs_revision,omitempty"`
	Time     string `json:"vcs_time,omitempty"`
	// Modified says the binary was built from a working tree with uncommitted changes.
	Modified *bool `json:"vcs_modified,omitempty"`
}

// Options are the run's command-line settings that are not in the scenario file. A replay reuses
// none of them silently: the seed is the bundle's own field, and the cluster flags are printed for
// the user to give again.
type Options struct {
	Out           string   `json:"out,omitempty"`
	KeepCluster   bool     `json:"keep_cluster,omitempty"`
	Kubeconfig    string   `json:"kubeconfig,omitempty"`
	Context       string   `json:"context,omitempty"`
	AllowContexts []string `json:"allow_contexts,omitempty"`
	MetricsAddr   string   `json:"metrics_addr,omitempty"`
}

// Cluster is where the run ran.
type Cluster struct {
	Kind    string `json:"kind,omitempty"`    // the local kind cluster's name
	Created bool   `json:"created,omitempty"` // the run created it (else it existed)
	Context string `json:"context,omitempty"` // the kubeconfig context, when the run was given one
}

// Image is an image reference and the docker image ID it named.
type Image struct {
	Ref string `json:"ref"`
	ID  string `json:"id,omitempty"` // "" when the local engine had no such image
}

// File kinds.
const (
	Manifest = "manifest" // copied into the bundle
	Archive  = "archive"  // an image archive: path and sha256 only
	// Kustomization is a kustomization directory, read where it is (its bases may lie anywhere):
	// path and the sha256 of what it builds.
	Kustomization = "kustomization"
	// Chart is a Helm chart (a directory or a .tgz), read where it is: path and the sha256 of its
	// files (templates and helpers are not manifests the bundle would copy).
	Chart = "chart"
)

// File is a file or directory the scenario names.
type File struct {
	Field  string `json:"field"`  // where the scenario names it, e.g. workload.manifests[0]
	Path   string `json:"path"`   // as written in the scenario
	Source string `json:"source"` // the absolute path it was read from
	Kind   string `json:"kind"`
	// Bundled is where the bundle keeps it, relative to the bundle (slash-separated): the path as
	// written when that stays in the scenario's directory (so the bundled scenario.yaml finds it
	// beside itself), else files/N/<name>. Empty for archives.
	Bundled string `json:"bundled,omitempty"`
	// SHA256 is the file's, or for a directory the sha256 of its listing: a line "<sha256>  <path>"
	// per file the run read in it (*.yaml, *.yml, *.json), sorted by path, as sha256sum prints.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size,omitempty"` // archives
}

// Origin is the run a replay replays.
type Origin struct {
	RunID  string `json:"run_id"`
	Bundle string `json:"bundle"` // the bundle's directory, as given
	// Differences are what the replay could not hold equal (rehearse's build, the node image, the
	// workload's images), as warned when it ran.
	Differences []string `json:"differences,omitempty"`
}

// CurrentBuild is this binary's build: the main module's path and version, the Go version, and the
// VCS revision, time and modified flag when the build recorded them (go build in a checkout does;
// go test and go run do not).
func CurrentBuild() Build {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Build{}
	}
	b := Build{Module: bi.Main.Path, Version: bi.Main.Version, Go: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			m := s.Value == "true"
			b.Modified = &m
		}
	}
	return b
}

// ident is what identifies the build's code: its VCS revision, or a released module version; ""
// when it has neither (a build without VCS stamping, as go test and builds in a linked git worktree
// are: Go recognises only a .git directory).
func (b Build) ident() string {
	if b.Revision != "" {
		return b.Revision
	}
	if b.Version != "" && b.Version != "(devel)" {
		return b.Version
	}
	return ""
}

func (b Build) String() string {
	s := b.Version
	if s == "" {
		s = "(unknown version)"
	}
	if b.Revision != "" {
		s += " at " + b.Revision
	}
	if b.Modified != nil && *b.Modified {
		s += " with uncommitted changes"
	}
	return s
}

// shellSafe are arguments a POSIX shell takes as they are.
var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// ShellQuote joins args into one line a POSIX shell splits back into exactly args: arguments with
// anything but letters, digits and _@%+=:,./- are single-quoted (a single quote inside closes the
// quoting, is escaped with a backslash, and reopens it); so is a first argument with a =.
func ShellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if shellSafe.MatchString(a) && (i > 0 || !strings.Contains(a, "=")) { // X=1 first is an assignment
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

// Refs are the files and directories sc names, in the order of the file: workload.manifests,
// workload.images (archives), and each step's migrate.manifest. Source is filled in; SHA256 and
// Bundled are Write's.
func Refs(sc *scenarios.Loaded) ([]File, error) {
	var out []File
	add := func(field, p, kind string) error {
		src, err := filepath.Abs(sc.Path(p))
		if err != nil {
			return err
		}
		out = append(out, File{Field: field, Path: p, Source: src, Kind: kind})
		return nil
	}
	for i, m := range sc.Workload.Manifests {
		if err := add(fmt.Sprintf("workload.manifests[%d]", i), m, Manifest); err != nil {
			return nil, err
		}
	}
	for i, a := range sc.Workload.Images {
		if err := add(fmt.Sprintf("workload.images[%d]", i), a, Archive); err != nil {
			return nil, err
		}
	}
	if sc.Runbook != "" {
		if err := add("runbook", sc.Runbook, Manifest); err != nil {
			return nil, err
		}
	}
	if h := sc.Workload.Helm; h != nil {
		if err := add("workload.helm.chart", h.Chart, Chart); err != nil {
			return nil, err
		}
		for i, v := range h.Values {
			if err := add(fmt.Sprintf("workload.helm.values[%d]", i), v, Manifest); err != nil {
				return nil, err
			}
		}
	}
	if k := sc.Workload.Kustomize; k != "" {
		if err := add("workload.kustomize", k, Kustomization); err != nil {
			return nil, err
		}
	}
	for i, st := range sc.Steps {
		if h := st.Migrate; h != nil && h.Helm != nil {
			if h.Helm.Chart != "" {
				if err := add(fmt.Sprintf("steps[%d].migrate.helm.chart", i), h.Helm.Chart, Chart); err != nil {
					return nil, err
				}
			}
			for j, v := range h.Helm.Values {
				if err := add(fmt.Sprintf("steps[%d].migrate.helm.values[%d]", i, j), v, Manifest); err != nil {
					return nil, err
				}
			}
		}
		if st.Migrate != nil && st.Migrate.Kustomize != "" {
			if err := add(fmt.Sprintf("steps[%d].migrate.kustomize", i), st.Migrate.Kustomize, Kustomization); err != nil {
				return nil, err
			}
		}
		if st.Migrate != nil && st.Migrate.Manifest != "" {
			if err := add(fmt.Sprintf("steps[%d].migrate.manifest", i), st.Migrate.Manifest, Manifest); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Write makes runDir/replay: scenario.yaml (sc's bytes), the manifests sc names and run.json, with
// run.Files filled in (their sha256, where the bundle keeps them). A bundle already there (a run
// directory written over) is replaced.
func Write(runDir string, sc *scenarios.Loaded, run *Run) error {
	dir := filepath.Join(runDir, Dir)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, bundledScenario(sc.File)), sc.Source, 0o644); err != nil {
		return err
	}
	refs, err := Refs(sc)
	if err != nil {
		return err
	}
	// A directory named as a manifest may hold the run's own directory (manifests: [.] beside an
	// --out inside it): that is not copied into itself.
	skip, err := filepath.Abs(runDir)
	if err != nil {
		return err
	}
	bundled := map[string]string{} // path as written → where it went
	for i := range refs {
		f := &refs[i]
		if f.Kind == Archive {
			if f.SHA256, f.Size, err = hashFile(f.Source); err != nil {
				return fmt.Errorf("%s: %w", f.Field, err)
			}
			continue
		}
		if f.Kind == Chart {
			if f.SHA256, err = hashTree(f.Source); err != nil {
				return fmt.Errorf("%s: %w", f.Field, err)
			}
			continue
		}
		if f.Kind == Kustomization {
			built, err := workloads.KustomizeYAML(f.Source)
			if err != nil {
				return fmt.Errorf("%s: %w", f.Field, err)
			}
			sum := sha256.Sum256(built)
			f.SHA256 = hex.EncodeToString(sum[:])
			continue
		}
		if b, ok := bundled[f.Path]; ok {
			f.Bundled = b
		} else {
			f.Bundled = bundlePath(f.Path, i, filepath.Base(f.Source))
			bundled[f.Path] = f.Bundled
		}
		if f.SHA256, err = copyManifests(f.Source, filepath.Join(dir, filepath.FromSlash(f.Bundled)), skip); err != nil {
			return fmt.Errorf("%s: %w", f.Field, err)
		}
	}
	run.Files = refs
	return writeRun(dir, run)
}

// Update rewrites run.json in runDir's bundle: what became known after Write (the cluster, its node
// image, the workload's images, a replay's differences).
func Update(runDir string, run *Run) error { return writeRun(filepath.Join(runDir, Dir), run) }

func writeRun(dir string, run *Run) error {
	b, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, RunFile), append(b, '\n'), 0o644)
}

// bundledScenario is the bundle's name for the scenario run from file: a Markdown runbook is kept as
// one (it is parsed by what it is).
func bundledScenario(file string) string {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".md", ".markdown":
		return RunbookFile
	}
	return ScenarioFile
}

// OriginalDir is the directory of the scenario file as run, where its host commands ran.
func (b *Bundle) OriginalDir() string {
	d := filepath.Dir(filepath.FromSlash(b.Run.ScenarioFile))
	if filepath.IsAbs(d) {
		return d
	}
	return filepath.Join(b.Run.WorkingDir, d)
}

// bundlePath is where the bundle keeps the manifest written as p (the i-th file named): at p itself
// when p stays within the scenario's directory and clashes with nothing of the bundle's own, so
// that the bundled scenario.yaml finds it as the original did; else files/i/<name>.
func bundlePath(p string, i int, name string) string {
	c := filepath.ToSlash(filepath.Clean(p))
	first, _, _ := strings.Cut(c, "/")
	if filepath.IsLocal(p) && c != "." && first != ScenarioFile && first != RunbookFile && first != RunFile && first != filesDir {
		return c
	}
	return fmt.Sprintf("%s/%d/%s", filesDir, i, name)
}

// manifestFile says whether a file in a directory named as a manifest is one the run reads (as
// workloads.ReadManifests does).
func manifestFile(name string) bool {
	switch filepath.Ext(name) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// copyManifests copies the manifest file src to dst, or the manifest files of the directory src
// (recursively, leaving out skip) under dst, and returns the sha256 of the file or of the listing.
func copyManifests(src, dst, skip string) (string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return copyFile(src, dst)
	}
	var listing []string
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == skip {
				return filepath.SkipDir
			}
			return nil
		}
		if !manifestFile(p) {
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		sum, err := copyFile(p, filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		listing = append(listing, sum+"  "+filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return "", err
	}
	return listingHash(listing), nil
}

// listingHash is the sha256 of a directory's listing: lines "<sha256>  <path>", sorted by path.
func listingHash(lines []string) string {
	path := func(l string) string { return l[2*sha256.Size+2:] }
	sort.Slice(lines, func(i, j int) bool { return path(lines[i]) < path(lines[j]) })
	h := sha256.New()
	for _, l := range lines {
		io.WriteString(h, l+"\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}

func copyFile(src, dst string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// hashTree is the sha256 of a file, or of every regular file under a directory (their paths and
// contents).
func hashTree(path string) (string, error) {
	return hashFiles(path, func(p string, d fs.DirEntry) bool { return d.Type().IsRegular() })
}

// hashFiles is the sha256 of a file, or of the files under a directory that keep picks.
func hashFiles(path string, keep func(p string, d fs.DirEntry) bool) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		sum, _, err := hashFile(path)
		return sum, err
	}
	var listing []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !keep(p, d) {
			return err
		}
		sum, _, err := hashFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(path, p)
		if err != nil {
			return err
		}
		listing = append(listing, sum+"  "+filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return "", err
	}
	return listingHash(listing), nil
}

// hashFile is a file's sha256 and size, read as a stream (archives are big).
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// hashManifests is the sha256 Write recorded for a bundled manifest file or directory.
func hashManifests(path string) (string, error) {
	return hashFiles(path, func(p string, _ fs.DirEntry) bool { return manifestFile(p) })
}

// Bundle is a replay bundle read back.
type Bundle struct {
	Dir      string // the bundle's directory (a run's replay/)
	Run      Run
	Scenario string // its scenario.yaml
	// Relocated maps each file the scenario names to where the replay reads it: a bundled manifest
	// in the bundle, an image archive where the run read it.
	Relocated map[string]string
}

// RunDir is the directory of the run the bundle belongs to.
func (b *Bundle) RunDir() string { return filepath.Dir(b.Dir) }

// ErrNoBundle is Open's error when the directory holds no bundle.
var ErrNoBundle = errors.New("no replay bundle")

// Open reads the bundle in dir — a run's directory (OUT/<scenario>) or its replay/ — and checks it
// is whole: run.json parses and names a seed, a run ID and a scenario hash; scenario.yaml has that
// hash; every bundled manifest is there with the sha256 recorded; every image archive is still where
// the run read it (whether it changed is for Differences, once the replay has hashed it again). A
// bundle edited since the run is refused: a replay runs what ran.
func Open(dir string) (*Bundle, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoBundle, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory (give a run's directory, OUT/<scenario>, or its %s/)", ErrNoBundle, dir, Dir)
	}
	bdir := filepath.Join(dir, Dir)
	if _, err := os.Stat(filepath.Join(bdir, RunFile)); err != nil {
		if _, err := os.Stat(filepath.Join(dir, RunFile)); err != nil {
			return nil, fmt.Errorf("%w in %s: want %s (given a run's directory) or %s (given its %s/); runs made before replay bundles existed have none",
				ErrNoBundle, dir, filepath.Join(dir, Dir, RunFile), filepath.Join(dir, RunFile), Dir)
		}
		bdir = dir
	}
	b := &Bundle{Dir: bdir, Scenario: filepath.Join(bdir, ScenarioFile), Relocated: map[string]string{}}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("replay bundle %s is malformed: %s", bdir, fmt.Sprintf(format, args...))
	}
	data, err := os.ReadFile(filepath.Join(bdir, RunFile))
	if err != nil {
		return nil, bad("%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&b.Run); err != nil {
		return nil, bad("%s: %v", RunFile, err)
	}
	r := &b.Run
	b.Scenario = filepath.Join(bdir, bundledScenario(r.ScenarioFile))
	switch {
	case r.Format == 0:
		return nil, bad("%s: no format", RunFile)
	case r.Format > Format:
		return nil, bad("%s: format %d is newer than this rehearse reads (%d): replay it with the rehearse that made it (%s)", RunFile, r.Format, Format, r.Rehearse)
	case r.Seed == 0:
		return nil, bad("%s: no seed", RunFile)
	case r.RunID == "":
		return nil, bad("%s: no run_id", RunFile)
	case r.Scenario == "":
		return nil, bad("%s: no scenario", RunFile)
	case !sha256Hex.MatchString(r.ScenarioHash):
		return nil, bad("%s: scenario_hash %q is not a sha256", RunFile, r.ScenarioHash)
	}
	src, err := os.ReadFile(b.Scenario)
	if err != nil {
		return nil, bad("%v", err)
	}
	if sum := sha256.Sum256(src); hex.EncodeToString(sum[:]) != r.ScenarioHash {
		return nil, bad("%s has sha256 %.12s, the run's scenario %.12s: it was edited since the run (to run an edited scenario with the run's seed: rehearse run FILE --seed %d)",
			ScenarioFile, hex.EncodeToString(sum[:]), r.ScenarioHash, r.Seed)
	}
	for _, f := range r.Files {
		switch f.Kind {
		case Manifest:
			if f.Bundled == "" || !filepath.IsLocal(filepath.FromSlash(f.Bundled)) {
				return nil, bad("%s: %s: bundled path %q is not inside the bundle", RunFile, f.Field, f.Bundled)
			}
			at := filepath.Join(bdir, filepath.FromSlash(f.Bundled))
			sum, err := hashManifests(at)
			if err != nil {
				return nil, bad("%s (%s): %v", f.Path, f.Field, err)
			}
			if sum != f.SHA256 {
				return nil, bad("%s (%s, bundled as %s) is not what the run read: sha256 %.12s, recorded %.12s", f.Path, f.Field, f.Bundled, sum, f.SHA256)
			}
			b.Relocated[f.Path] = at
		case Archive:
			if _, err := os.Stat(f.Source); err != nil {
				return nil, fmt.Errorf("replay bundle %s: image archive %s (%s, sha256 %.12s) is not kept in the bundle and is gone from %s, where the run read it: put it back to replay",
					bdir, f.Path, f.Field, f.SHA256, f.Source)
			}
			b.Relocated[f.Path] = f.Source
		case Chart:
			if _, err := os.Stat(f.Source); err != nil {
				return nil, fmt.Errorf("replay bundle %s: chart %s (%s) is not kept in the bundle and is gone from %s, where the run read it: put it back to replay",
					bdir, f.Path, f.Field, f.Source)
			}
			b.Relocated[f.Path] = f.Source
		case Kustomization:
			if _, err := os.Stat(f.Source); err != nil {
				return nil, fmt.Errorf("replay bundle %s: kustomization %s (%s) is not kept in the bundle and is gone from %s, where the run built it: put it back to replay",
					bdir, f.Path, f.Field, f.Source)
			}
			b.Relocated[f.Path] = f.Source
		default:
			return nil, bad("%s: %s: unknown kind %q", RunFile, f.Field, f.Kind)
		}
	}
	return b, nil
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Differences are what a replay (now) could not hold equal to the run it replays (orig): rehearse's
// build, the node image, the workload's images and image archives. Each is a sentence for a
// warning; none stops a replay.
func Differences(orig, now *Run) []string {
	var out []string
	o, n := orig.Rehearse, now.Rehearse
	switch {
	case o.ident() == "" || n.ident() == "":
		out = append(out, fmt.Sprintf("rehearse: the run was made by %s, this is %s: without a revision or a released version on both, whether the code differs cannot be told", o, n))
	case o.Version != n.Version || o.Revision != n.Revision:
		out = append(out, fmt.Sprintf("rehearse differs: the run was made by %s, this is %s", o, n))
	case (o.Modified != nil && *o.Modified) || (n.Modified != nil && *n.Modified):
		out = append(out, fmt.Sprintf("rehearse %s: built with uncommitted changes, so the code may differ even at one revision", n))
	}
	switch o, n := orig.NodeImage, now.NodeImage; {
	case o == nil:
	case n == nil:
		out = append(out, fmt.Sprintf("node image: the run's was %s (%s); this cluster's is not known (not a local kind cluster)", o.Ref, orDash(o.ID)))
	case o.ID != n.ID || (o.ID == "" && o.Ref != n.Ref):
		out = append(out, fmt.Sprintf("node image differs: the run's was %s (%s), this one is %s (%s)", o.Ref, orDash(o.ID), n.Ref, orDash(n.ID)))
	}
	nowImages := map[string]string{}
	for _, im := range now.Images {
		nowImages[im.Ref] = im.ID
	}
	for _, im := range orig.Images {
		id, ok := nowImages[im.Ref]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("image %s: the run's was %s; this run did not load it (not a local kind cluster)", im.Ref, orDash(im.ID)))
		case id != im.ID:
			out = append(out, fmt.Sprintf("image %s differs: the run's was %s, now %s", im.Ref, orDash(im.ID), orDash(id)))
		}
	}
	nowFiles := map[string]File{}
	for _, f := range now.Files {
		nowFiles[f.Field] = f
	}
	for _, f := range orig.Files {
		if g, ok := nowFiles[f.Field]; ok && f.Kind == Archive && g.SHA256 != f.SHA256 {
			out = append(out, fmt.Sprintf("image archive %s (%s) changed: sha256 %.12s at the run, %.12s now", f.Path, f.Source, f.SHA256, g.SHA256))
		}
		if g, ok := nowFiles[f.Field]; ok && f.Kind == Chart && g.SHA256 != f.SHA256 {
			out = append(out, fmt.Sprintf("chart %s (%s) changed: sha256 %.12s at the run, %.12s now", f.Path, f.Source, f.SHA256, g.SHA256))
		}
		if g, ok := nowFiles[f.Field]; ok && f.Kind == Kustomization && g.SHA256 != f.SHA256 {
			out = append(out, fmt.Sprintf("kustomization %s (%s) builds other objects now: sha256 %.12s at the run, %.12s now", f.Path, f.Source, f.SHA256, g.SHA256))
		}
	}
	return out
}

func orDash(id string) string {
	if id == "" {
		return "no image ID"
	}
	return id
}
