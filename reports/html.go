package reports

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"

	"github.com/rehearse-dev/rehearse/verify"
)

// report.html is html/report.tmpl with its stylesheet inlined: one file that loads nothing. Its
// Content-Security-Policy says so to the browser too: no source at all but inline styles and data:
// images, and no script.

//go:embed html/report.tmpl
var pageTmpl string

//go:embed html/report.css
var pageCSS string

const pageCSP = "default-src 'none'; base-uri 'none'; form-action 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'none'"

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"did":  didText,
	"num":  num,
	"add":  func(a, b float64) float64 { return a + b },
	"neg":  func(a float64) float64 { return -a },
	"half": func(a float64) float64 { return a / 2 },
}).Parse(pageTmpl))

type failureRow struct {
	Offset, Target, Code, Error, During string
}

// MaxFailureRows bounds the failures listed in the HTML report.
const MaxFailureRows = 200

// HTML renders the single-file report: the verdict, the checks, the timeline (requests by status,
// latency, versions' shares, step and fault bands, details per second), the steps with what they
// did, and the failures.
func HTML(w io.Writer, r *Run) error {
	var rows []failureRow
	for i, f := range r.Failures {
		if i == MaxFailureRows {
			break
		}
		var during []string
		for _, st := range r.Summary.Steps {
			if !f.Time.Before(st.Started) && !f.Time.After(st.Finished) {
				during = append(during, st.Name)
			}
		}
		rows = append(rows, failureRow{
			Offset: fmt.Sprintf("+%.1fs", f.Time.Sub(r.Summary.Started).Seconds()), Target: f.Target,
			Code: fmt.Sprint(f.Code), Error: f.Error, During: strings.Join(during, ", "),
		})
	}
	steps, loads := stepRows(r.Summary)
	return page.Execute(w, map[string]any{
		"S": r.Summary, "T": buildTimeline(r), "Steps": steps, "StepLoads": loads, "Failures": rows, "More": r.Summary.Load.Failed > len(rows),
		"CSS": template.CSS(pageCSS), "CSP": pageCSP,
	})
}

type stepRow struct {
	Step
	Offset, Took, Window, StatusClass string
	Second                            int
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
		}
		rows = append(rows, row)
	}
	return rows, loads
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
