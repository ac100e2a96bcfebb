package scenarios

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	yaml2 "go.yaml.in/yaml/v2"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/rehearse-dev/rehearse/load"
)

// Problem is one thing wrong with a scenario file, at a line, in a field.
type Problem struct {
	File  string
	Line  int
	Field string // dotted path, e.g. steps[2].fault.type
	Msg   string
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, p.Field, p.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, p.Msg)
}

// Problems is every problem found in one file.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// posErr rejects a value in a custom unmarshaler. It is a *yaml.TypeError, which the decoder collects
// while it goes on decoding, so one run reports every problem; the column picks the field on a line
// that holds several (flow style).
func posErr(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: [col %d] %s", n.Line, n.Column, fmt.Sprintf(format, args...))}}
}

var colMark = regexp.MustCompile(`^\[col (\d+)\] `)

// Loaded is a parsed, validated scenario with where it came from.
type Loaded struct {
	*Scenario
	File string
	// Warnings are legal but doubtful choices (a zero load.tail), to be shown, not refused.
	Warnings Problems
	// Hash is the sha256 of the file's bytes (reports name it so a verdict is tied to its input).
	Hash string
	// Source is the file's bytes as parsed: what ran, whatever happens to the file afterwards (a
	// run's replay bundle keeps them).
	Source []byte
	// Relocated maps a path as written in the file (a manifest, an image archive) to where it is to
	// be read instead of beside the file; nil for a file read where it was written. A replay bundle
	// runs its copy of a scenario with the files it could not keep beside it relocated.
	Relocated map[string]string
	// HostDir is where host commands run when not in the file's directory: a replay's, in the
	// original scenario's directory (the files they name are not in the bundle).
	HostDir string
	lines   map[string]int
	files   map[string]string // a step from another file (a runbook's block) → that file
}

// CommandDir is the working directory of host commands (run steps): the scenario file's.
func (l *Loaded) CommandDir() string {
	if l.HostDir != "" {
		return l.HostDir
	}
	return filepath.Dir(l.File)
}

// Problem is a problem at field (a dotted path such as steps[2].migrate.version), on the line of the
// field or of its nearest parent in the file: for checks made after parsing (the step kinds').
func (l *Loaded) Problem(field, format string, args ...any) Problem {
	v := &validator{file: l.File, lines: l.lines, files: l.files}
	return v.at(field, format, args...)
}

// LoadFile reads, parses and validates a scenario file.
func LoadFile(path string) (*Loaded, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

var typeErrLine = regexp.MustCompile(`line (\d+): (.*)`)

// Parse parses and validates data, naming file in problems. The error, when not nil, is Problems.
func Parse(file string, data []byte) (*Loaded, error) { return ParseRelocated(file, data, nil) }

// ParseRelocated is Parse for a file whose referenced files are not all beside it: relocated maps a
// path as written in the file to where it is now (see Loaded.Relocated).
func ParseRelocated(file string, data []byte, relocated map[string]string) (*Loaded, error) {
	return parse(file, data, relocated, nil)
}

// Extra is a step that comes from outside the YAML (a runbook's block), with the line of the file
// it comes from, and that file when it is not the one parsed (a runbook a scenario file names).
type Extra struct {
	Step Step
	Line int
	File string
}

// ParseWithSteps is Parse for a scenario whose YAML is embedded in another file (a runbook), or that
// names a runbook: data is the YAML, preceded by as many newlines as put its lines where they are in
// file, so problems name file's lines; extra steps follow the YAML's own and are validated with them,
// at their own lines (of their own File when they name one).
func ParseWithSteps(file string, data []byte, relocated map[string]string, extra []Extra) (*Loaded, error) {
	return parse(file, data, relocated, extra)
}

func parse(file string, data []byte, relocated map[string]string, extra []Extra) (*Loaded, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{syntaxProblem(file, data, err)}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, Problems{{File: file, Msg: "empty file: want a Scenario document"}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var sc Scenario
	var typed Problems // fields of the wrong type or unknown: the rest of the file is still checked
	if err := dec.Decode(&sc); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, decodeProblems(file, err, &root)
		}
		typed = decodeProblems(file, err, &root)
	}
	var more yaml.Node
	if err := dec.Decode(&more); err != io.EOF {
		return nil, Problems{{File: file, Line: more.Line, Msg: "more than one YAML document: a file holds one scenario"}}
	}
	idx := indexLines(&root)
	files := map[string]string{}
	for _, e := range extra {
		f := fmt.Sprintf("steps[%d]", len(sc.Steps))
		idx[f] = e.Line
		if e.File != "" {
			files[f] = e.File
		}
		sc.Steps = append(sc.Steps, e.Step)
	}
	v := &validator{file: file, lines: idx, files: files, dir: filepath.Dir(file), relocated: relocated}
	v.scenario(&sc)
	sum := sha256.Sum256(data)
	l := &Loaded{Scenario: &sc, File: file, Hash: hex.EncodeToString(sum[:]), Source: data, Relocated: relocated,
		Warnings: v.warnings, lines: idx, files: files}
	if ps := typed.Merge(v.problems); len(ps) > 0 {
		// The scenario is returned beside its problems so that callers can check more of it (the
		// step kinds' settings); it must not be run.
		return l, ps
	}
	return l, nil
}

// Merge adds more problems to ps, leaving out those at, below or directly above a field ps already
// faults (a field that did not decode looks empty to later checks, and so may its parent's
// "needs one of" rule), sorted by line.
func (ps Problems) Merge(more Problems) Problems {
	out := slices.Clone(ps)
	for _, p := range more {
		covered := false
		for _, q := range ps {
			if q.Field != "" && p.Field != "" && (within(p.Field, q.Field) || within(q.Field, p.Field)) {
				covered = true
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// within says whether field is parent or below it (steps[0].wait is within steps[0]).
func within(field, parent string) bool {
	return field == parent || strings.HasPrefix(field, parent+".") || strings.HasPrefix(field, parent+"[")
}

// syntaxProblem places a YAML syntax error on the line where the parser found it. yaml.v3 names the
// line where the broken construct began, or the line before the problem (its marks count from 0 and
// are shifted only for scanner errors); yaml.v2 names the problem's own mark, which is right once a
// parser error is shifted too. An unterminated construct ends past the last line: there the start
// of the construct (yaml.v3's line) is what helps.
func syntaxProblem(file string, data []byte, err error) Problem {
	p := yamlProblem(file, err)
	var v any
	err2 := yaml2.Unmarshal(data, &v)
	if err2 == nil {
		return p
	}
	p2 := yamlProblem(file, err2)
	if p2.Line == 0 {
		return p
	}
	if strings.HasPrefix(p2.Msg, "did not find expected") {
		p2.Line++
	}
	if p2.Line > bytes.Count(bytes.TrimRight(data, "\n"), []byte("\n"))+1 {
		return p
	}
	return p2
}

func yamlProblem(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := typeErrLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: line, Msg: m[2]}
	}
	return Problem{File: file, Msg: msg}
}

var notFound = regexp.MustCompile(`field (\S+) not found in type \S+`)

func decodeProblems(file string, err error, root *yaml.Node) Problems {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var ps Problems
		for _, e := range te.Errors {
			p := yamlProblem(file, errors.New(e))
			if m := notFound.FindStringSubmatch(p.Msg); m != nil {
				p.Msg = fmt.Sprintf("unknown field %q", m[1])
			}
			if m := colMark.FindStringSubmatch(p.Msg); m != nil {
				col, _ := strconv.Atoi(m[1])
				p.Msg = p.Msg[len(m[0]):]
				p.Field = fieldOfValue(root, p.Line, col)
			} else {
				p.Field = fieldAtLine(root, p.Line)
			}
			ps = append(ps, p)
		}
		return ps
	}
	return Problems{yamlProblem(file, err)}
}

// walkFields visits every mapping entry and sequence item below root in document order, with its
// dotted path (metadata.name, steps[1].fault.type); key is nil for sequence items.
func walkFields(root *yaml.Node, visit func(path string, key, value *yaml.Node)) {
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				visit(p, k, v)
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				visit(p, nil, c)
				walk(c, p)
			}
		}
	}
	walk(root, "")
}

// indexLines maps each field path to the line of its key (or, for a sequence item, of the item).
func indexLines(root *yaml.Node) map[string]int {
	idx := map[string]int{}
	walkFields(root, func(p string, k, v *yaml.Node) {
		if k != nil {
			idx[p] = k.Line
		} else {
			idx[p] = v.Line
		}
	})
	return idx
}

// fieldOfValue names the first field whose value node starts at line:col.
func fieldOfValue(root *yaml.Node, line, col int) string {
	found := ""
	walkFields(root, func(p string, _, v *yaml.Node) {
		if found == "" && v.Line == line && v.Column == col {
			found = p
		}
	})
	if found == "" {
		return fieldAtLine(root, line)
	}
	return found
}

// fieldAtLine names the field whose key or item starts on line (the deepest one).
func fieldAtLine(root *yaml.Node, line int) string {
	best := ""
	for p, l := range indexLines(root) {
		if l == line && len(p) > len(best) {
			best = p
		}
	}
	return best
}

type validator struct {
	file string
	dir  string // paths in the file are relative to it
	// relocated paths are read where it says, not relative to dir (Loaded.Relocated)
	relocated map[string]string
	lines     map[string]int
	files     map[string]string // a step from another file (Loaded.files)
	problems  Problems
	warnings  Problems
}

// addf records a problem at field, on the line of the field or of its nearest present parent.
func (v *validator) addf(field, format string, args ...any) {
	v.problems = append(v.problems, v.at(field, format, args...))
}

// warnf records a warning at field.
func (v *validator) warnf(field, format string, args ...any) {
	v.warnings = append(v.warnings, v.at(field, format, args...))
}

func (v *validator) at(field, format string, args ...any) Problem {
	line, file := 0, v.file
	for p := field; p != ""; {
		if f, ok := v.files[p]; ok {
			file = f
		}
		if l, ok := v.lines[p]; ok && line == 0 {
			line = l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return Problem{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

var (
	dnsName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

func (v *validator) scenario(s *Scenario) {
	if s.APIVersion != APIVersion {
		v.addf("apiVersion", "is %q, want %q", s.APIVersion, APIVersion)
	}
	if s.Kind != Kind {
		v.addf("kind", "is %q, want %q", s.Kind, Kind)
	}
	if !dnsName.MatchString(s.Metadata.Name) {
		v.addf("metadata.name", "%q must be 1-63 lower-case letters, digits and dashes", s.Metadata.Name)
	}
	v.cluster(&s.Cluster)
	v.workload(&s.Workload, &s.Cluster)
	v.load(&s.Load, &s.Workload)
	v.steps(s.Steps, &s.Workload)
	if s.Runbook != "" {
		if ext := strings.ToLower(filepath.Ext(s.Runbook)); ext != ".md" && ext != ".markdown" {
			v.addf("runbook", "%s: want a Markdown runbook (FILE.md)", s.Runbook)
		} else {
			v.path("runbook", s.Runbook, false)
		}
	}
	// The checks' names and options are the check table's to judge (verify.Table, called by
	// runner.Check), as the step kinds judge their steps.
}

// template checks a request template: only {{.ID}} and {{.RecentID}} exist.
func (v *validator) template(field, text string) {
	if _, err := load.ParseTemplate(field, text); err != nil {
		v.addf(field, "%v", err)
	}
}

// statuses checks HTTP status codes.
func (v *validator) statuses(field string, codes []int) {
	for _, c := range codes {
		if c < 100 || c > 599 {
			v.addf(field, "%d is not an HTTP status", c)
		}
	}
}

// path checks that a file or directory named in the scenario exists (relative to the file).
// path checks that a path the file names is there (relative to the file), and says whether it is.
func (v *validator) path(field, p string, wantDir bool) bool {
	if p == "" {
		v.addf(field, "is empty")
		return false
	}
	at := v.resolve(p)
	st, err := os.Stat(at)
	switch {
	case err != nil && at != filepath.Clean(p):
		v.addf(field, "%s does not exist: looked for %s (paths are relative to the scenario file)", p, at)
	case err != nil:
		v.addf(field, "%s does not exist", p)
	case !wantDir && st.IsDir():
		v.addf(field, "%s is a directory, want a file", p)
	default:
		return true
	}
	return false
}

// resolve is where a path the file names is read.
func (v *validator) resolve(p string) string { return ResolvePath(v.relocated, v.dir, p) }

// ResolvePath is where a path a scenario names is read: where relocated says (a replay bundle's
// copy), else relative to dir (the scenario file's), unless absolute.
func ResolvePath(relocated map[string]string, dir, p string) string {
	if r, ok := relocated[p]; ok {
		return r
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// subdirs warns of manifests in a manifests directory's subdirectories: a directory contributes its
// own files only (as kubectl apply -f DIR does), so a manifest kept aside in a subdirectory (a green
// release's) is not deployed at the start.
func (v *validator) subdirs(field, p string) {
	entries, err := os.ReadDir(v.resolve(p))
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sub := filepath.Join(v.resolve(p), e.Name())
		n := 0
		_ = filepath.WalkDir(sub, func(f string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && ManifestFile(f) {
				n++
			}
			return nil
		})
		if n > 0 {
			v.warnf(field, "%s holds %d manifest files that are not deployed: a directory contributes its own *.yaml, *.yml and *.json files, not its subdirectories' (name %s to deploy them)",
				filepath.Join(p, e.Name()), n, filepath.Join(p, e.Name()))
		}
	}
}

// kustomization checks that a directory the file names holds a kustomization.
func (v *validator) kustomization(field, p string) {
	if !v.path(field, p, true) {
		return
	}
	dir := v.resolve(p)
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		v.addf(field, "%s is a file: want a kustomization directory", p)
		return
	}
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return
		}
	}
	v.addf(field, "%s holds no kustomization.yaml (or kustomization.yml, Kustomization)", p)
}

// ManifestFile says whether a file in a manifests directory is one that is deployed.
func ManifestFile(name string) bool {
	switch filepath.Ext(name) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func (v *validator) cluster(c *Cluster) {
	switch c.Provider {
	case "kind":
		if c.Name != "" && !dnsName.MatchString(c.Name) {
			v.addf("cluster.name", "%q must be lower-case letters, digits and dashes", c.Name)
		}
		if c.Workers < 0 || c.Workers > 10 {
			v.addf("cluster.workers", "%d is outside 0-10", c.Workers)
		}
	case "existing":
		if c.Context == "" {
			v.addf("cluster.context", "an existing cluster needs its kubeconfig context")
		}
	default:
		v.addf("cluster.provider", "is %q, want kind or existing", c.Provider)
	}
}

// namespaceMeta: keys and label values as the API server would take them (it refuses the
// namespace otherwise, mid-run); rehearse's own label is not given away.
func (v *validator) namespaceMeta(n *NamespaceMeta) {
	for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
		f := "workload.namespace.labels." + k
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			v.addf(f, "%q is not a label key: %s", k, strings.Join(errs, "; "))
		} else if errs := validation.IsValidLabelValue(n.Labels[k]); len(errs) > 0 {
			v.addf(f, "%q is not a label value: %s", n.Labels[k], strings.Join(errs, "; "))
		} else if k == "app.kubernetes.io/part-of" {
			v.addf(f, "is rehearse's own label on the namespace (value rehearse); choose another")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(n.Annotations)) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			v.addf("workload.namespace.annotations."+k, "%q is not an annotation key: %s", k, strings.Join(errs, "; "))
		}
	}
}

func (v *validator) workload(w *Workload, c *Cluster) {
	switch {
	case w.Sample == "" && len(w.Manifests) == 0 && w.Kustomize == "" && w.Helm == nil:
		v.addf("workload", "needs sample, manifests, kustomize or helm")
	case w.Sample != "" && (len(w.Manifests) > 0 || w.Kustomize != "" || w.Helm != nil):
		v.addf("workload", "give sample, or manifests, kustomize or helm of your own, not both")
	case w.Sample != "" && w.Sample != "orders-postgres":
		v.addf("workload.sample", "unknown sample %q; known: orders-postgres", w.Sample)
	}
	switch {
	case w.Version != "" && w.Own():
		v.addf("workload.version", "picks the sample's version; your own manifests say their images (a migrate step moves them)")
	case w.Version != "" && !slices.Contains([]string{"v1", "v2", "v3", "v2-bad"}, w.Version):
		v.addf("workload.version", "unknown version %q", w.Version)
	}
	switch {
	case w.Replication != "" && w.Sample == "":
		v.addf("workload.replication", "sets the sample's replication; your own manifests configure theirs")
	case w.Replication != "" && w.Replication != "async" && w.Replication != "sync":
		v.addf("workload.replication", "%q: want async or sync", w.Replication)
	}
	if r := w.Replicas; r != nil {
		switch {
		case w.Sample == "":
			v.addf("workload.replicas", "sizes the sample; your own manifests say their replicas")
		case r.App < 0 || r.App > 20:
			v.addf("workload.replicas.app", "%d: want 1 to 20", r.App)
		case r.DB < 0 || r.DB == 1 || r.DB > 5:
			v.addf("workload.replicas.db", "%d: want 2 to 5 (a primary and at least one streaming replica)", r.DB)
		}
	}
	if n := w.Namespace; n != nil {
		v.namespaceMeta(n)
	}
	if w.Kustomize != "" {
		v.kustomization("workload.kustomize", w.Kustomize)
	}
	if h := w.Helm; h != nil {
		v.path("workload.helm.chart", h.Chart, true)
		for i, f := range h.Values {
			v.path(fmt.Sprintf("workload.helm.values[%d]", i), f, false)
		}
		if h.Release != "" && !dnsName.MatchString(h.Release) {
			v.addf("workload.helm.release", "%q must be 1-53 lower-case letters, digits and dashes", h.Release)
		}
	}
	for i, m := range w.Manifests {
		f := fmt.Sprintf("workload.manifests[%d]", i)
		if v.path(f, m, true) {
			v.subdirs(f, m)
		}
	}
	for i, m := range w.Images {
		v.path(fmt.Sprintf("workload.images[%d]", i), m, false)
		if c.Provider == "existing" {
			v.addf(fmt.Sprintf("workload.images[%d]", i), "image archives are loaded into kind nodes; an existing cluster pulls its images")
		}
	}
	for i, ref := range w.LocalImages {
		f := fmt.Sprintf("workload.localImages[%d]", i)
		switch {
		case !strings.Contains(ref, ":") || strings.ContainsAny(ref, " \t"):
			v.addf(f, "%q: want an image reference with its tag, e.g. rehearse.local/orders:dev", ref)
		case c.Provider == "existing":
			v.addf(f, "local images are loaded into kind nodes; an existing cluster pulls its images")
		}
	}
	if w.Checksum != nil {
		if w.Sample != "" {
			v.addf("workload.checksum", "the sample has its own checksums; checksum is for your own manifests")
		}
		v.exec("workload.checksum", w.Checksum.Exec())
		if r := w.Checksum.Replicas; r != nil && *r < 1 {
			v.addf("workload.checksum.replicas", "must be at least 1")
		}
		if w.Checksum.Barrier != nil && len(w.Checksum.Barrier) == 0 {
			v.addf("workload.checksum.barrier", "is empty")
		}
	}
}

func (v *validator) exec(f string, e *Exec) {
	if len(e.Command) == 0 {
		v.addf(f+".command", "is empty")
	}
	if e.Selector == "" {
		v.addf(f+".selector", "is required: the label selector of the pods to run in")
	} else if _, err := labels.Parse(e.Selector); err != nil {
		v.addf(f+".selector", "%q: %v", e.Selector, err)
	}
}

func (v *validator) load(l *Load, w *Workload) {
	if l.Rate.PerSecond == 0 {
		v.addf("load.rate", "is required, e.g. 50/s")
	}
	for i, st := range l.Stages {
		if st.Duration.Duration <= 0 {
			v.addf(fmt.Sprintf("load.stages[%d].duration", i), "is required and must be positive")
		}
		if st.Rate.PerSecond == 0 {
			v.addf(fmt.Sprintf("load.stages[%d].rate", i), "is required")
		}
	}
	switch l.From {
	case "", "host", "cluster":
	default:
		v.addf("load.from", "is %q, want host or cluster", l.From)
	}
	if l.Generators < 0 {
		v.addf("load.generators", "must not be negative")
	} else if l.Generators > 0 && l.From != "cluster" {
		v.addf("load.generators", "are pods in the cluster: give load.from: cluster with them")
	}
	if l.From == "cluster" {
		if l.BaseURL != "" {
			v.addf("load.baseURL", "is a loopback URL for load from the host; with from: cluster the load goes to the Service (the sample's, or load.service) by its in-cluster name")
		}
		if w.Sample == "" && l.Service == "" {
			v.addf("load.service", "is required with from: cluster: the Service of your workload the generator pods send the load to")
		}
	}
	if l.BaseURL != "" {
		u, err := url.Parse(l.BaseURL)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" {
			v.addf("load.baseURL", "%q is not an http(s) URL", l.BaseURL)
		} else if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
			v.addf("load.baseURL", "host %q: load targets loopback only (127.0.0.1 through the cluster's port mapping)", h)
		}
		if l.Service != "" {
			v.addf("load.service", "give baseURL or service, not both")
		}
	} else if w.Sample == "" && l.Service == "" {
		v.addf("load.baseURL", "is required for a workload of your own manifests (or name its NodePort Service in load.service)")
	}
	if l.Service != "" && w.Sample != "" {
		v.addf("load.service", "the sample's load goes to its own Service; service is for your own manifests")
	}
	if len(l.Targets) == 0 {
		v.addf("load.targets", "needs at least one target")
	}
	if vs := l.Version; vs != nil {
		n := 0
		for _, f := range []string{vs.Header, vs.JSON, vs.Body} {
			if f != "" {
				n++
			}
		}
		switch {
		case n != 1:
			v.addf("load.version", "says %d of header, json and body: want exactly one (where the answer says its version)", n)
		case l.VersionHeader != "":
			v.addf("load.versionHeader", "is short for version: {header: %s}; give one of versionHeader and version", l.VersionHeader)
		case vs.JSON != "":
			if _, err := load.ParseJSONPath(vs.JSON); err != nil {
				v.addf("load.version.json", "%v", err)
			}
		case vs.Body != "":
			if _, err := load.CompileBodyPattern(vs.Body); err != nil {
				v.addf("load.version.body", "%v", err)
			}
		}
	}
	if l.ClientRetries != "" && l.ClientRetries != "fail" && l.ClientRetries != "allow" {
		v.addf("load.clientRetries", "is %q, want fail or allow", l.ClientRetries)
	}
	if l.Connections.Clients < 0 {
		v.addf("load.connections.clients", "must not be negative")
	}
	if l.MaxInFlight < 0 {
		v.addf("load.maxInFlight", "must not be negative")
	}
	if l.Tail != nil && l.Tail.Duration == 0 {
		v.warnf("load.tail", "0: nothing is observed after the last step; a release that breaks seconds after its rollout would pass")
	}
	seen := map[string]bool{}
	for i, t := range l.Targets {
		f := fmt.Sprintf("load.targets[%d]", i)
		if t.Name == "" {
			v.addf(f+".name", "is required")
		} else if seen[t.Name] {
			v.addf(f+".name", "%q is used twice", t.Name)
		}
		seen[t.Name] = true
		if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}, t.Method) {
			v.addf(f+".method", "%q is not an HTTP method this tool sends", t.Method)
		}
		if !strings.HasPrefix(t.Path, "/") {
			v.addf(f+".path", "%q must start with /", t.Path)
		}
		if t.Weight < 0 {
			v.addf(f+".weight", "must not be negative")
		}
		v.template(f+".path", t.Path)
		v.template(f+".body", t.Body)
		v.statuses(f+".expect", t.Expect)
	}
}

func (v *validator) steps(steps []Step, w *Workload) {
	names := map[string]bool{}
	for i, s := range steps {
		f := fmt.Sprintf("steps[%d]", i)
		if !dnsName.MatchString(s.Name) {
			v.addf(f+".name", "%q must be lower-case letters, digits and dashes", s.Name)
		} else if names[s.Name] {
			v.addf(f+".name", "%q is used twice", s.Name)
		}
		actions := 0
		if s.Wait.Duration > 0 {
			actions++
		}
		for _, set := range []bool{s.Migrate != nil, s.Fault != nil, s.Rollback != nil, s.Exec != nil, s.Scale != nil, s.Run != nil, s.Switchover != nil, s.Failover != nil} {
			if set {
				actions++
			}
		}
		if actions != 1 {
			v.addf(f, "needs exactly one of wait, migrate, fault, rollback, exec, scale, run, switchover or failover (has %d)", actions)
		}
		if s.At.Step != "" && !names[s.At.Step] {
			v.addf(f+".at", "refers to %q, which is not an earlier step", s.At.Step)
		}
		if s.Migrate != nil {
			if !slices.Contains([]string{"rolling", "blue-green", "canary", "schema"}, s.Migrate.Strategy) {
				v.addf(f+".migrate.strategy", "unknown strategy %q; known: rolling, blue-green, canary, schema", s.Migrate.Strategy)
			}
			// The strategy's own settings are its step kind's to check (migrate/).
		}
		if s.Fault != nil && !slices.Contains([]string{"pod-kill", "node-drain", "node-loss"}, s.Fault.Type) {
			v.addf(f+".fault.type", "unknown fault %q; known: pod-kill, node-drain, node-loss", s.Fault.Type)
			// The fault's own settings are its step kind's to check (faults/).
		}
		if s.Rollback != nil && s.Rollback.Within.Duration <= 0 {
			v.addf(f+".rollback.within", "is required: the time allowed to restore service")
		}
		if s.Exec != nil {
			v.exec(f+".exec", s.Exec)
		}
		if s.Run != nil {
			v.run(f+".run", s.Run)
		}
		if s.Scale != nil {
			kind, name, _ := strings.Cut(s.Scale.Target, "/")
			if (kind != "deployment" && kind != "statefulset") || !dnsName.MatchString(name) {
				v.addf(f+".scale.target", "%q: want deployment/NAME or statefulset/NAME", s.Scale.Target)
			}
			if s.Scale.Replicas == nil {
				v.addf(f+".scale.replicas", "is required (0 takes the workload down)")
			} else if *s.Scale.Replicas < 0 || *s.Scale.Replicas > 100 {
				v.addf(f+".scale.replicas", "%d is outside 0-100", *s.Scale.Replicas)
			}
		}
		names[s.Name] = true
	}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// run checks a host command: something to run, a sane timeout and exit code, and nothing that points
// kubectl or helm at another cluster unless the step allows it.
func (v *validator) run(f string, r *Run) {
	optOut := "set allowContext: true if this is safe"
	if r.Source != "" {
		optOut = "annotate the block <!-- rehearse: allow-context --> if this is safe"
	}
	if strings.TrimSpace(r.Command) == "" {
		v.addf(f+".command", "is empty: nothing to run")
	} else if line, what, bad := ReachesElsewhere(r.Command); bad && !r.AllowContext {
		p := v.at(f+".command", "%s: %s; %s", what, ContextRule, optOut)
		if line < len(r.Lines) {
			p.Line = r.Lines[line]
		}
		v.problems = append(v.problems, p)
	}
	if t := r.Timeout.Duration; t != 0 && t < time.Second {
		v.addf(f+".timeout", "%s is too short to run anything: want at least 1s (default %s)", t, DefaultRunTimeout)
	}
	if e := r.ExpectExit; e != nil && (*e < 0 || *e > 255) {
		v.addf(f+".expectExit", "%d: an exit code is 0-255", *e)
	}
	for k := range r.Env {
		switch {
		case !envName.MatchString(k):
			v.addf(f+".env."+k, "%q is not an environment variable name", k)
		case k == "KUBECONFIG" && !r.AllowContext:
			v.addf(f+".env."+k, "sets KUBECONFIG: %s; %s", ContextRule, optOut)
		case k == "REHEARSE_NAMESPACE" || k == "REHEARSE_RUN_ID":
			v.addf(f+".env."+k, "is set by rehearse")
		}
	}
}

// Path resolves a path written in the scenario file: relative to the file's directory, unless it is
// relocated.
func (l *Loaded) Path(p string) string { return ResolvePath(l.Relocated, filepath.Dir(l.File), p) }
