package reports

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/verify"
)

// report.html is html/report.tmpl with its stylesheet and script inlined: one file that loads
// nothing. Its Content-Security-Policy says so to the browser too: no source at all but inline
// styles, data: images and the one script, by its hash.

//go:embed html/report.tmpl
var pageTmpl string

//go:embed html/report.css
var pageCSS string

//go:embed html/report.js
var pageJS string

// pageCSP allows the page nothing from anywhere: its inline style, data: images, and its own script.
var pageCSP = func() string {
	sum := sha256.Sum256([]byte(pageJS))
	return "default-src 'none'; base-uri 'none'; form-action 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-" +
		base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"did":        didText,
	"retried":    RetriedNote,
	"agents":     AgentsNote,
	"lostAgents": lostAgents,
	"num":        num,
	"add":        func(a, b float64) float64 { return a + b },
	"neg":        func(a float64) float64 { return -a },
	"half":       func(a float64) float64 { return a / 2 },
}).Parse(pageTmpl))

// What the failures table of report.html lists at most: the first rows of each group (the steps in
// flight), and rows in all. Each group says how many it left out.
const (
	MaxFailureRowsPerGroup = 20
	MaxFailureRows         = 400
	maxErrorRunes          = 300
)

type failureRow struct {
	At                  string // offset from the start, "6.5s"
	Second              int    // for #t=
	Target, Code, Error string
}

// failureGroup is the failures attributed to one step in flight (or "after S", ...).
type failureGroup struct {
	ID, Name string
	Count    int
	Rows     []failureRow
	LeftOut  int
}

type failuresView struct {
	Intro  string
	Groups []failureGroup
}

type stepRow struct {
	Step
	Offset, Took, Window, StatusClass string
	Second                            int
}

// HTML renders the single-file report: the verdict, the checks, the timeline (requests by status,
// latency, versions' shares, step and fault bands, hover details), the steps with what they did, and
// the failures grouped by the steps in flight.
func HTML(w io.Writer, r *Run) error {
	steps, loads := stepRows(r.Summary)
	return page.Execute(w, map[string]any{
		"S": r.Summary, "T": buildTimeline(r), "Steps": steps, "StepLoads": loads, "F": groupFailures(r), "Runbook": runbookBlocks(steps),
		"CSS": template.CSS(pageCSS), "JS": template.JS(pageJS), "CSP": pageCSP,
	})
}

func stepRows(s Summary) ([]stepRow, bool) {
	var rows []stepRow
	loads := false
	for _, st := range s.Steps {
		off := st.Started.Sub(s.Started).Seconds()
		row := stepRow{Step: st, Offset: fmt.Sprintf("%.1fs", off), Took: fmt.Sprintf("%.1fs", st.Finished.Sub(st.Started).Seconds()),
			Second: max(int(off), 0), StatusClass: "other"}
		switch st.Status {
		case "ok", "promoted":
			row.StatusClass = "pass"
		case "failed":
			row.StatusClass = "fail"
		case "error":
			row.StatusClass = "error"
		}
		if l := st.Load; l != nil {
			loads = true
			row.Window = fmt.Sprintf("%d requests, %d failed, p99 %s ms", l.Requests, l.Failed, num(l.P99MS))
			if l.Retried > 0 {
				row.Window += fmt.Sprintf(", %d resent", l.Retried)
			}
		}
		rows = append(rows, row)
	}
	return rows, loads
}

// runbookBlock is a runbook's block as report.html shows it: under its heading, with its command, how
// it ended and what the load saw while it ran.
type runbookBlock struct {
	stepRow
	Heading, Source, Command, Exit, Tail, Log string
	Open                                      bool // its output is shown unfolded (it did not succeed)
}

// runbookBlocks are the steps that are a runbook's blocks (they say their source), in order.
func runbookBlocks(rows []stepRow) []runbookBlock {
	var out []runbookBlock
	for _, r := range rows {
		src, _ := r.Did["source"].(string)
		if src == "" {
			continue
		}
		b := runbookBlock{stepRow: r, Source: src, Open: r.Status != "ok"}
		b.Heading, _ = r.Did["heading"].(string)
		b.Command, _ = r.Did["command"].(string)
		b.Tail, _ = r.Did["output_tail"].(string)
		b.Log, _ = r.Did["log"].(string)
		if c, ok := number(r.Did["exit_code"]); ok {
			b.Exit = fmt.Sprintf("exit %d", int(c))
		}
		if b.Heading == "" {
			b.Heading = "(no heading)"
		}
		out = append(out, b)
	}
	return out
}

// groupFailures groups the sampled failures by the steps in flight, as zero-failed-requests
// attributes them (verify.Attribute over the same windows), in the order each group first failed.
func groupFailures(r *Run) failuresView {
	s := r.Summary
	v := failuresView{}
	switch {
	case len(r.Failures) == 0 && s.Load.Failed == 0:
		v.Intro = "None: every request succeeded."
		return v
	case len(r.Failures) == 0:
		v.Intro = fmt.Sprintf("%d requests failed; none was sampled (results.bin has every request).", s.Load.Failed)
		return v
	}
	wins := stepWindows(s.Steps)
	index := map[string]int{}
	keys := make([]string, len(r.Failures))
	for i, f := range r.Failures {
		for k := range verify.Attribute([]load.Failure{f}, wins) {
			keys[i] = k
		}
		if _, ok := index[keys[i]]; !ok {
			index[keys[i]] = len(v.Groups)
			v.Groups = append(v.Groups, failureGroup{ID: fmt.Sprintf("failures-%d", len(v.Groups)+1), Name: keys[i]})
		}
		v.Groups[index[keys[i]]].Count++
	}
	shown := 0
	for i, f := range r.Failures {
		g := &v.Groups[index[keys[i]]]
		if len(g.Rows) >= MaxFailureRowsPerGroup || shown >= MaxFailureRows {
			g.LeftOut++
			continue
		}
		shown++
		off := f.Time.Sub(s.Started).Seconds()
		g.Rows = append(g.Rows, failureRow{At: fmt.Sprintf("%.1fs", off), Second: max(int(off), 0), Target: f.Target,
			Code: fmt.Sprint(f.Code), Error: cut(f.Error, maxErrorRunes)})
	}
	total := max(s.Load.Failed, len(r.Failures))
	sampled := ""
	if len(r.Failures) < total {
		sampled = fmt.Sprintf("; the first %d were sampled (results.bin has every request)", len(r.Failures))
	}
	v.Intro = fmt.Sprintf("%d requests failed%s. By the steps in flight when each was scheduled, as zero-failed-requests attributes them: %d groups, %d rows shown.",
		total, sampled, len(v.Groups), shown)
	return v
}

// cut shortens s to n runes, saying how many it left out.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + fmt.Sprintf("… (%d more characters)", len(r)-n)
}

// didText renders what a step did as "key: value" lines, gates by their messages.
func didText(did map[string]any) string {
	keys := make([]string, 0, len(did))
	for k := range did {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v := did[k]
		if gates, ok := v.([]verify.Result); ok {
			for _, g := range gates {
				fmt.Fprintf(&b, "%s: %s\n", g.Status, g.Message)
			}
			continue
		}
		fmt.Fprintf(&b, "%s: %v\n", k, v)
	}
	return strings.TrimSpace(b.String())
}
