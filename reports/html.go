package reports

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"

	"github.com/rehearse-dev/rehearse/verify"
)

type bar struct {
	X, W, OKY, OKH, FailY, FailH float64
	Title                        string
}

type band struct {
	X, W  float64
	Label string
	Fault bool
}

type chart struct {
	Width, Height, PlotH float64
	Bars                 []bar
	P50, P99             string // SVG polyline points
	Bands                []band
	MaxRate, MaxLatency  float64
	VersionStrips        []strip
	Versions             []versionKey
	Seconds              int
	XTicks               []tick
}

type strip struct {
	X, Y, W, H   float64
	Color, Title string
}
type versionKey struct{ Name, Color string }
type tick struct {
	X     float64
	Label string
}

var palette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#9c755f", "#76b7b2"}

func buildChart(r *Run) chart {
	const width, plotH, stripH, left = 900.0, 220.0, 18.0, 40.0
	c := chart{Width: width, PlotH: plotH, Height: plotH + stripH + 40, Seconds: len(r.Timeline)}
	n := len(r.Timeline)
	if n == 0 {
		return c
	}
	w := (width - left) / float64(n)
	for _, s := range r.Timeline {
		c.MaxRate = max(c.MaxRate, float64(s.OK+s.Failed))
		c.MaxLatency = max(c.MaxLatency, s.P99MS)
	}
	c.MaxRate = max(c.MaxRate, 1)
	c.MaxLatency = max(c.MaxLatency, 1)
	versions := map[string]bool{}
	for _, s := range r.Timeline {
		for v := range s.Versions {
			versions[v] = true
		}
	}
	var vnames []string
	for v := range versions {
		vnames = append(vnames, v)
	}
	sort.Strings(vnames)
	color := map[string]string{}
	for i, v := range vnames {
		color[v] = palette[i%len(palette)]
		c.Versions = append(c.Versions, versionKey{v, color[v]})
	}
	var p50, p99 []string
	for i, s := range r.Timeline {
		x := left + float64(i)*w
		okH := float64(s.OK) / c.MaxRate * plotH
		failH := float64(s.Failed) / c.MaxRate * plotH
		c.Bars = append(c.Bars, bar{X: x, W: max(w-0.5, 0.5), OKY: plotH - okH, OKH: okH, FailY: plotH - okH - failH, FailH: failH,
			Title: fmt.Sprintf("t=%ds ok=%d failed=%d p50=%.1fms p99=%.1fms", s.T, s.OK, s.Failed, s.P50MS, s.P99MS)})
		cx := x + w/2
		p50 = append(p50, fmt.Sprintf("%.1f,%.1f", cx, plotH-s.P50MS/c.MaxLatency*plotH))
		p99 = append(p99, fmt.Sprintf("%.1f,%.1f", cx, plotH-s.P99MS/c.MaxLatency*plotH))
		total := 0
		for _, k := range s.Versions {
			total += k
		}
		y := plotH + 8
		for _, v := range vnames {
			if k := s.Versions[v]; k > 0 {
				h := float64(k) / float64(total) * stripH
				c.VersionStrips = append(c.VersionStrips, strip{X: x, Y: y, W: max(w-0.5, 0.5), H: h, Color: color[v], Title: fmt.Sprintf("t=%ds %s: %d", s.T, v, k)})
				y += h
			}
		}
	}
	c.P50, c.P99 = strings.Join(p50, " "), strings.Join(p99, " ")
	start := r.Summary.Started
	for _, st := range r.Summary.Steps {
		a := st.Started.Sub(start).Seconds()
		b := st.Finished.Sub(start).Seconds()
		c.Bands = append(c.Bands, band{X: left + a*w, W: max((b-a)*w, 2), Label: st.Name, Fault: strings.HasPrefix(st.Kind, "fault/")})
	}
	step := max(n/10, 1)
	for i := 0; i < n; i += step {
		c.XTicks = append(c.XTicks, tick{X: left + float64(i)*w, Label: fmt.Sprintf("%ds", i)})
	}
	return c
}

type failureRow struct {
	Offset, Target, Code, Error, During string
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"lower": strings.ToLower,
	"did":   didText,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rehearse: {{.S.Scenario}} — {{.S.Verdict}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:980px}
h1{font-size:22px;margin:0 0 4px} .meta{color:#666;margin-bottom:16px}
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:600}
.pass{background:#2e7d32}.fail{background:#c62828}.error{background:#ef6c00}
table{border-collapse:collapse;width:100%;margin:8px 0 20px}td,th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
td.msg{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px}
.key span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
svg text{font-size:10px;fill:#444}
</style></head><body>
<h1>{{.S.Scenario}} <span class="verdict {{.S.Verdict}}">{{.S.Verdict}}</span></h1>
<div class="meta">{{.S.Started.Format "2006-01-02 15:04:05 MST"}} → {{.S.Finished.Format "15:04:05"}} · seed {{.S.Seed}} · scenario sha256 {{printf "%.12s" .S.ScenarioHash}}{{if .S.NodeImage}} · node image {{.S.NodeImage}}{{end}}<br>
{{.S.Load.Requests}} requests, {{.S.Load.Failed}} failed{{if .S.Load.NotSent}} ({{.S.Load.NotSent}} not sent: client saturated){{end}} · {{printf "%.1f" .S.Load.AchievedRate}} of {{printf "%.1f" .S.Load.TargetRate}} req/s · latency from the scheduled send p50 {{index .S.Load.LatencyMS "p50"}} ms, p99 {{index .S.Load.LatencyMS "p99"}} ms, max {{index .S.Load.LatencyMS "max"}} ms (from the actual send p99 {{index .S.Load.LatencyMS "p99_sent"}} ms)</div>
<h2>Checks</h2>
<table><tr><th>check</th><th>status</th><th>message</th></tr>
{{range .S.Checks}}<tr><td>{{.Name}}</td><td><span class="verdict {{.Status}}">{{.Status}}</span></td><td class="msg">{{.Message}}</td></tr>{{end}}
</table>
<h2>Timeline</h2>
<div class="key">requests/s<span style="background:#8bc34a"></span>ok<span style="background:#e53935"></span>failed<span style="background:#1565c0;height:2px"></span>p50<span style="background:#ff9800;height:2px"></span>p99 (max {{printf "%.0f" .C.MaxLatency}} ms)<span style="background:rgba(120,120,200,.25)"></span>step<span style="background:rgba(230,80,80,.25)"></span>fault
{{range .C.Versions}}<span style="background:{{.Color}}"></span>{{.Name}}{{end}}</div>
<svg id="timeline" width="{{.C.Width}}" height="{{.C.Height}}" viewBox="0 0 {{.C.Width}} {{.C.Height}}" role="img" aria-label="requests per second by status, latency and serving version over time">
<text x="0" y="10">{{printf "%.0f" .C.MaxRate}}/s</text><text x="0" y="{{.C.PlotH}}">0</text>
{{range .C.Bars}}<g><title>{{.Title}}</title><rect x="{{.X}}" y="{{.OKY}}" width="{{.W}}" height="{{.OKH}}" fill="#8bc34a"/><rect x="{{.X}}" y="{{.FailY}}" width="{{.W}}" height="{{.FailH}}" fill="#e53935"/></g>{{end}}
<polyline points="{{.C.P50}}" fill="none" stroke="#1565c0" stroke-width="1.5"/>
<polyline points="{{.C.P99}}" fill="none" stroke="#ff9800" stroke-width="1.5"/>
{{range .C.Bands}}<rect x="{{.X}}" y="0" width="{{.W}}" height="{{$.C.PlotH}}" fill="{{if .Fault}}rgba(230,80,80,.30){{else}}rgba(90,90,200,.30){{end}}" stroke="#555" stroke-dasharray="3 2"><title>{{.Label}}</title></rect><text x="{{.X}}" y="12">{{.Label}}</text>{{end}}
{{range .C.VersionStrips}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Color}}"><title>{{.Title}}</title></rect>{{end}}
{{range .C.XTicks}}<text x="{{.X}}" y="{{$.C.Height}}">{{.Label}}</text>{{end}}
</svg>
<h2>Steps and faults</h2>
<table><tr><th>step</th><th>kind</th><th>status</th><th>from</th><th>to</th><th>what it did</th><th>error</th></tr>
{{range .S.Steps}}<tr><td>{{.Name}}</td><td>{{.Kind}}</td><td>{{.Status}}</td><td>{{.Started.Format "15:04:05.000"}}</td><td>{{.Finished.Format "15:04:05.000"}}</td><td class="msg">{{did .Did}}</td><td class="msg">{{.Error}}</td></tr>{{end}}
</table>
<h2>Failures{{if .More}} (first {{len .Failures}} of {{.S.Load.Failed}}){{end}}</h2>
{{if .Failures}}<table><tr><th>at</th><th>target</th><th>code</th><th>during</th><th>error</th></tr>
{{range .Failures}}<tr><td>{{.Offset}}</td><td>{{.Target}}</td><td>{{.Code}}</td><td>{{.During}}</td><td>{{.Error}}</td></tr>{{end}}</table>{{else}}<p>none</p>{{end}}
</body></html>
`))

// MaxFailureRows bounds the failures listed in the HTML report.
const MaxFailureRows = 200

// HTML renders the single-file report.
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
	return page.Execute(w, map[string]any{
		"S": r.Summary, "C": buildChart(r), "Failures": rows, "More": r.Summary.Load.Failed > len(rows),
	})
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
