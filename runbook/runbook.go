// Package runbook makes a Markdown runbook a scenario. The runbook's ```yaml rehearse block says the
// cluster, workload, load and checks (and steps of its own, which run first); then every fenced shell
// block (sh, bash, shell, console) is a host command step (scenarios.Run), in document order, named
// by its nearest heading. An HTML comment right before a block sets it:
//
//	<!-- rehearse: name=contract at=+10s timeout=2m expectExit=1 skip allow-context -->
//
// The Markdown is read with goldmark's syntax tree (headings, fenced blocks, HTML blocks and their
// byte offsets), never with patterns over the text, so a fence inside a list or a quote is what
// Markdown says it is.
package runbook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/text"
	"go.yaml.in/yaml/v3"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// Block is one fenced shell block of a runbook.
type Block struct {
	Name    string // its step's name
	Heading string // the nearest heading above it ("" when none)
	Lang    string // sh, bash, shell or console
	Line    int    // the line of its opening fence
	Command string // what runs (console: the $ lines, prompt stripped)
	Lines   []int  // the source line of each line of Command
	At      string // as annotated ("" when not)
	Skip    bool
	Step    *scenarios.Step // nil when skipped
}

// Runbook is a parsed runbook: its blocks, and the scenario they make.
type Runbook struct {
	File   string
	Blocks []Block
	*scenarios.Loaded
}

// IsRunbook says whether path names a Markdown runbook (by its extension).
func IsRunbook(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".md" || ext == ".markdown"
}

// Load reads and parses a runbook file.
func Load(path string) (*Runbook, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// shellLangs are the info strings of blocks that run.
var shellLangs = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}

type parser struct {
	file     string
	src      []byte
	starts   []int // byte offset of each line's start
	problems scenarios.Problems
}

func (p *parser) line(off int) int {
	return sort.Search(len(p.starts), func(i int) bool { return p.starts[i] > off })
}

func (p *parser) addf(line int, format string, args ...any) {
	p.problems = append(p.problems, scenarios.Problem{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// Parse parses a runbook's bytes, naming file in problems. The error, when not nil, is
// scenarios.Problems; the Runbook is returned beside it when the scenario could be made (for more
// checks), and must not be run.
func Parse(file string, src []byte) (*Runbook, error) { return ParseRelocated(file, src, nil) }

// ParseRelocated is Parse for a runbook whose referenced files are not all beside it (a replay
// bundle's copy; see scenarios.Loaded.Relocated).
func ParseRelocated(file string, src []byte, relocated map[string]string) (*Runbook, error) {
	sc := scan(file, src)
	p := sc.p
	rb := &Runbook{File: file}
	if sc.config == nil {
		p.addf(1, "no ```yaml rehearse block: a runbook needs one to say the cluster, the workload, the load and the checks (or name this runbook in a scenario file: runbook: %s)", filepath.Base(file))
		return rb, p.problems
	}
	first := p.fenceLine(sc.config) + 1
	var yml bytes.Buffer
	yml.WriteString(strings.Repeat("\n", first-1)) // problems in the YAML name the runbook's lines
	for i := 0; i < sc.config.Lines().Len(); i++ {
		seg := sc.config.Lines().At(i)
		yml.Write(seg.Value(src))
	}
	// The YAML's own steps' names, so that generated names do not collide with them.
	var own struct {
		Steps []struct{ Name string } `yaml:"steps"`
	}
	_ = yamlUnmarshal(yml.Bytes(), &own)
	names := make([]string, len(own.Steps))
	for i, s := range own.Steps {
		names[i] = s.Name
	}
	extra := sc.steps(names, "", "")
	rb.Blocks = sc.blocks
	l, err := scenarios.ParseWithSteps(file, yml.Bytes(), relocated, extra)
	var ps scenarios.Problems
	if err != nil {
		var ok bool
		if ps, ok = err.(scenarios.Problems); !ok {
			return nil, err
		}
	}
	all := p.problems.Merge(ps)
	if l != nil {
		sum := sha256.Sum256(src)
		l.Source, l.Hash = src, hex.EncodeToString(sum[:])
		rb.Loaded = l
	}
	if len(all) > 0 {
		return rb, all
	}
	return rb, nil
}

// Attach runs the runbook a scenario file names (its runbook: field): the runbook's shell blocks
// become steps after the file's own, run in the runbook's directory; the scenario file says the
// cluster, workload, load and checks, so a ```yaml rehearse block in the runbook is not used (a
// warning says so). The scenario file's own problems must have been reported already.
func Attach(l *scenarios.Loaded) (*Runbook, error) {
	path := l.Path(l.Runbook)
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, scenarios.Problems{l.Problem("runbook", "%v", err)}
	}
	sc := scan(path, src)
	p := sc.p
	names := make([]string, len(l.Steps))
	for i, st := range l.Steps {
		names[i] = st.Name
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	extra := sc.steps(names, "", dir)
	if len(extra) == 0 {
		p.addf(1, "no fenced shell block to run (```sh, bash, shell or console, not skipped): %s names a runbook with nothing in it to rehearse", l.File)
	}
	n, err := scenarios.ParseWithSteps(l.File, l.Source, l.Relocated, extra)
	var ps scenarios.Problems
	if err != nil {
		var ok bool
		if ps, ok = err.(scenarios.Problems); !ok {
			return nil, err
		}
	}
	rb := &Runbook{File: path, Blocks: sc.blocks, Loaded: n}
	if all := p.problems.Merge(ps); len(all) > 0 {
		return rb, all
	}
	if sc.config != nil {
		n.Warnings = append(n.Warnings, scenarios.Problem{File: path, Line: p.fenceLine(sc.config),
			Msg: fmt.Sprintf("this runbook's ```yaml rehearse block is not used: %s says the cluster, workload, load and checks", l.File)})
	}
	return rb, nil
}

// scanned is a runbook's Markdown read: its shell blocks, its yaml rehearse block and annotations.
type scanned struct {
	p      *parser
	config *ast.FencedCodeBlock
	blocks []Block
	byLine map[int]*annot // annotations, by the line of the block they set
}

func scan(file string, src []byte) *scanned {
	p := &parser{file: file, src: src, starts: []int{0}}
	for i, c := range src {
		if c == '\n' {
			p.starts = append(p.starts, i+1)
		}
	}
	doc := goldmark.New().Parser().Parse(text.NewReader(src))
	var (
		heading    string
		config     *ast.FencedCodeBlock
		blocks     []Block
		annotation = map[ast.Node]*annot{}
	)
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Heading:
			heading = strings.TrimSpace(inlineText(n, src))
			return ast.WalkSkipChildren, nil
		case *ast.HTMLBlock:
			a := p.annotation(n)
			if a == nil {
				return ast.WalkSkipChildren, nil
			}
			next, ok := n.NextSibling().(*ast.FencedCodeBlock)
			if !ok || !shellLangs[lang(next, src)] {
				p.addf(a.line, "a rehearse annotation must come right before the fenced shell block (sh, bash, shell, console) it sets")
				return ast.WalkSkipChildren, nil
			}
			annotation[next] = a
		case *ast.FencedCodeBlock:
			words := infoWords(n, src)
			switch {
			case len(words) >= 2 && words[0] == "yaml" && contains(words[1:], "rehearse"):
				if config != nil {
					p.addf(p.fenceLine(n), "a second ```yaml rehearse block: a runbook has one (the first is at line %d)", p.fenceLine(config))
				} else {
					config = n
				}
			case len(words) > 0 && shellLangs[words[0]]:
				blocks = append(blocks, p.block(n, words[0], heading))
			}
			return ast.WalkSkipChildren, nil
		}
		return ast.WalkContinue, nil
	})
	// Annotations apply to the block after them (the walk met them first).
	byLine := map[int]*annot{}
	for n, a := range annotation {
		byLine[p.fenceLine(n.(*ast.FencedCodeBlock))] = a
	}
	return &scanned{p: p, config: config, blocks: blocks, byLine: byLine}
}

// steps names the blocks (their annotated name, or their heading's, not one of names: the steps
// before them) and makes the steps of those that run; prev is the step before the first block ("" =
// the last of names), and dir, when not "", where the blocks run.
func (sc *scanned) steps(names []string, prev, dir string) []scenarios.Extra {
	p := sc.p
	used := map[string]bool{}
	for _, n := range names {
		used[n] = true
	}
	if prev == "" && len(names) > 0 {
		prev = names[len(names)-1]
	}
	extraFile := ""
	if dir != "" {
		extraFile = p.file
	}
	var extra []scenarios.Extra
	perHeading := map[string]int{}
	for i := range sc.blocks {
		b := &sc.blocks[i]
		a := sc.byLine[b.Line]
		if a == nil {
			a = &annot{}
		}
		b.Skip = a.skip
		name := a.name
		if name == "" {
			base := slug(b.Heading)
			perHeading[base]++
			name = base
			if n := perHeading[base]; n > 1 {
				name = fmt.Sprintf("%s-%d", base, n)
			}
			for n := perHeading[base] + 1; used[name]; n++ {
				name = fmt.Sprintf("%s-%d", base, n)
			}
		}
		b.Name = name
		if b.Skip {
			continue
		}
		used[name] = true
		st := scenarios.Step{Name: name, Chain: p.file, Run: &scenarios.Run{Command: b.Command, Lines: b.Lines, Heading: b.Heading,
			Source: fmt.Sprintf("%s:%d", filepath.Base(p.file), b.Line), AllowContext: a.allowContext, ExpectExit: a.expectExit, Dir: dir,
			Timeout: scenarios.Duration{Duration: a.timeout}}}
		if a.at != "" {
			at, _ := parseAt(a.at, prev) // a bad at was refused where the annotation was read
			st.At, b.At = at, a.at
		}
		b.Step = &st
		prev = name
		extra = append(extra, scenarios.Extra{Step: st, Line: b.Line, File: extraFile})
	}
	return extra
}

// fenceLine is the line of a fenced block's opening fence.
func (p *parser) fenceLine(n *ast.FencedCodeBlock) int {
	if n.Info != nil {
		return p.line(n.Info.Segment.Start)
	}
	if n.Lines().Len() > 0 {
		return p.line(n.Lines().At(0).Start) - 1
	}
	return 0
}

// block reads a shell block: its command, and the source line of each command line.
func (p *parser) block(n *ast.FencedCodeBlock, lang, heading string) Block {
	b := Block{Heading: heading, Lang: lang, Line: p.fenceLine(n)}
	var cmd []string
	cont := false // console: the $ line before ends with a backslash
	for i := 0; i < n.Lines().Len(); i++ {
		seg := n.Lines().At(i)
		l := strings.TrimRight(string(seg.Value(p.src)), "\r\n")
		line := p.line(seg.Start)
		if lang == "console" {
			switch {
			case cont:
			case strings.HasPrefix(l, "$ "):
				l = l[2:]
			default:
				continue // output shown in the runbook, not a command
			}
			cont = strings.HasSuffix(l, "\\")
		}
		cmd = append(cmd, l)
		b.Lines = append(b.Lines, line)
	}
	b.Command = strings.Join(cmd, "\n")
	if strings.TrimSpace(b.Command) == "" {
		what := "is empty"
		if lang == "console" {
			what = "has no command (no line starting with \"$ \")"
		}
		p.addf(b.Line, "the ```%s block under %q %s: nothing to run (annotate it skip, or remove it)", lang, heading, what)
	}
	return b
}

// annot is a block's settings from the HTML comment before it.
type annot struct {
	line         int
	name, at     string
	timeout      time.Duration
	expectExit   *int
	skip         bool
	allowContext bool
}

// annotation reads <!-- rehearse: ... --> (nil for any other HTML), refusing what it does not know.
func (p *parser) annotation(n *ast.HTMLBlock) *annot {
	var b strings.Builder
	for i := 0; i < n.Lines().Len(); i++ {
		seg := n.Lines().At(i)
		b.Write(seg.Value(p.src))
	}
	if n.HasClosure() {
		cl := n.ClosureLine
		b.Write(cl.Value(p.src))
	}
	s := strings.TrimSpace(b.String())
	body, ok := strings.CutPrefix(s, "<!--")
	if !ok {
		return nil
	}
	body, ok = strings.CutSuffix(body, "-->")
	if !ok {
		return nil
	}
	body, ok = strings.CutPrefix(strings.TrimSpace(body), "rehearse:")
	if !ok {
		return nil
	}
	a := &annot{line: p.line(n.Lines().At(0).Start)}
	for _, f := range strings.Fields(body) {
		k, v, hasValue := strings.Cut(f, "=")
		bad := func(format string, args ...any) {
			p.addf(a.line, "rehearse annotation %s: %s", f, fmt.Sprintf(format, args...))
		}
		switch {
		case k == "skip" && !hasValue:
			a.skip = true
		case k == "allow-context" && !hasValue:
			a.allowContext = true
		case !hasValue && (k == "name" || k == "at" || k == "timeout" || k == "expectExit"):
			bad("needs a value (%s=...)", k)
		case k == "name":
			if !validName(v) {
				bad("%q must be 1-63 lower-case letters, digits and dashes", v)
			}
			a.name = v
		case k == "at":
			if _, err := parseAt(v, "previous"); err != nil {
				bad("%v", err)
			}
			a.at = v
		case k == "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second {
				bad("want a duration of at least 1s, such as 90s or 2m")
			}
			a.timeout = d
		case k == "expectExit":
			c, err := strconv.Atoi(v)
			if err != nil || c < 0 || c > 255 {
				bad("want an exit code, 0-255")
			}
			a.expectExit = &c
		default:
			bad("unknown setting; known: name=, at=, timeout=, expectExit=, skip, allow-context")
		}
	}
	return a
}

// parseAt reads a block's at: +10s (after the previous step started), or what a scenario's at is
// (30s, STEP+5s, STEP.end+5s).
func parseAt(v, prev string) (scenarios.At, error) {
	if rest, ok := strings.CutPrefix(v, "+"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return scenarios.At{}, fmt.Errorf("want +DURATION (after the previous block started), such as +10s")
		}
		return scenarios.At{Step: prev, Offset: d, Set: true}, nil
	}
	var at scenarios.At
	if err := yamlUnmarshal([]byte(strconv.Quote(v)), &at); err != nil {
		return at, fmt.Errorf("want +10s (after the previous block started), 30s (from the load's start), STEP+5s or STEP.end+5s")
	}
	return at, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if c != '-' && (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// slug makes a step name of a heading: lower-case letters and digits, dashes between words.
func slug(h string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(h) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(c)
			dash = false
		} else {
			dash = true
		}
	}
	s := b.String()
	if len(s) > 50 {
		s = strings.TrimRight(s[:50], "-")
	}
	if s == "" {
		return "block"
	}
	return s
}

// inlineText is the text of a heading's inline content, markup removed.
func inlineText(n ast.Node, src []byte) string {
	var b strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *ast.Text:
			b.Write(c.Segment.Value(src))
			if c.SoftLineBreak() {
				b.WriteByte(' ')
			}
		case *ast.String:
			b.Write(c.Value)
		default:
			b.WriteString(inlineText(c, src))
		}
	}
	return b.String()
}

func infoWords(n *ast.FencedCodeBlock, src []byte) []string {
	if n.Info == nil {
		return nil
	}
	return strings.Fields(string(n.Info.Segment.Value(src)))
}

func lang(n *ast.FencedCodeBlock, src []byte) string {
	if w := infoWords(n, src); len(w) > 0 {
		return w[0]
	}
	return ""
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// WritePlan prints what a run of the runbook does: each block, its step, when it starts, its source
// line and what it runs.
func (rb *Runbook) WritePlan(w io.Writer) {
	fmt.Fprintf(w, "%s: runbook plan (scenario %s)\n", rb.File, rb.Metadata.Name)
	ownSteps := "the ```yaml rehearse block's"
	if rb.Loaded.File != rb.File {
		ownSteps = rb.Loaded.File + "'s"
	}
	n := 0
	for _, st := range rb.Steps {
		if st.Run == nil || st.Run.Source == "" {
			n++
		}
	}
	if n > 0 {
		steps := "steps"
		if n == 1 {
			steps = "step"
		}
		fmt.Fprintf(w, "  first, %s %d %s\n", ownSteps, n, steps)
	}
	for _, b := range rb.Blocks {
		if b.Skip {
			fmt.Fprintf(w, "  line %d: %q: skipped\n", b.Line, b.Heading)
			continue
		}
		when := "after every earlier step"
		if b.Step.At.Set {
			when = "at " + b.Step.At.String()
		}
		r := b.Step.Run
		fmt.Fprintf(w, "  line %d: step %s (%q), %s, timeout %s", b.Line, b.Name, b.Heading, when, r.TimeoutOr())
		if r.ExpectExit != nil {
			fmt.Fprintf(w, ", expects exit %d", *r.ExpectExit)
		}
		if r.AllowContext {
			fmt.Fprint(w, ", allowed to name other contexts")
		}
		fmt.Fprintln(w)
		for _, l := range strings.Split(r.Command, "\n") {
			fmt.Fprintf(w, "      %s\n", l)
		}
	}
}

func yamlUnmarshal(b []byte, v any) error { return yaml.Unmarshal(b, v) }
