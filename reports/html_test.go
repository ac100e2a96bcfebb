package reports

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/verify"
)

// longRun is a 10-minute rehearsal at 200 req/s: a canary shifts v1's traffic to v2, a pod is
// killed, a node drained, a blue-green switch moves it all to v3; 1000 failures are sampled of
// failed (more), with the errors a real client writes (URLs included).
func longRun(failed int) *Run {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	steps := []Step{
		{Name: "warm-up", Kind: "wait", Status: "ok", Started: at(0), Finished: at(30)},
		{Name: "canary-v2", Kind: "migrate/canary", Status: "promoted", Started: at(60), Finished: at(240),
			Load: &StepLoad{Requests: 36000, Failed: 0, P50MS: 3.2, P99MS: 18}},
		{Name: "kill-primary", Kind: "fault/pod-kill", Status: "ok", Started: at(300), Finished: at(305)},
		{Name: "drain-w1", Kind: "fault/node-drain", Status: "ok", Started: at(400), Finished: at(430)},
		{Name: "switch-v3", Kind: "migrate/blue-green", Status: "ok", Started: at(480), Finished: at(500)},
		{Name: "migrate-schema", Kind: "migrate/schema", Status: "failed", Started: at(490), Finished: at(540), Error: "job failed: exit 1"},
	}
	var tl []load.Second
	for i := 0; i < 600; i++ {
		s := load.Second{T: i, OK: 200, Scheduled: 200, P50MS: 3 + float64(i%7)/10, P99MS: 12 + float64(i%13), MaxMS: 40}
		switch {
		case i < 60:
			s.Versions = map[string]int{"v1": 200}
		case i < 240:
			v2 := (i - 60) * 200 / 180
			s.Versions = map[string]int{"v1": 200 - v2, "v2": v2}
		case i < 490:
			s.Versions = map[string]int{"v2": 200}
		default:
			s.Versions = map[string]int{"v3": 200}
		}
		if (i >= 300 && i < 305) || (i >= 400 && i < 430) {
			s.Failed, s.OK, s.P99MS = 40, 160, 850
			if i == 402 {
				s.NotSent = 10
			}
		}
		tl = append(tl, s)
	}
	var fs []load.Failure
	for i := 0; i < 1000; i++ {
		sec := 300 + float64(i)/200.0*5 // 200 in the pod kill
		if i >= 200 {
			sec = 400 + float64(i-200)/800*30 // 800 in the drain
		}
		fs = append(fs, load.Failure{Time: at(sec), Target: "write", Code: 0,
			Error: fmt.Sprintf(`Post "http://127.0.0.1:30001/orders": dial tcp 127.0.0.1:30001: connect: connection refused (request %d)`, i)})
	}
	checks := []verify.Result{
		{Name: "zero-failed-requests", Status: verify.Fail, Message: fmt.Sprintf("%d of 120000 requests failed", failed)},
		{Name: "served-version", Status: verify.Pass, Message: "v3 served every answer after switch-v3"},
	}
	return &Run{
		Summary: Summary{Scenario: "soak", Verdict: Verdict(checks), Started: t0, Finished: at(600), Seed: 7, ScenarioHash: "0123456789abcdef",
			Load: LoadSummary{Requests: 120000, Succeeded: 120000 - failed, Failed: failed, TargetRate: 200, AchievedRate: 199.9,
				LatencyMS: map[string]float64{"p50": 3.2, "p99": 25, "max": 900}},
			Steps: steps, Checks: checks},
		Timeline: tl, Failures: fs,
	}
}

func render(t *testing.T, r *Run) string {
	t.Helper()
	var b bytes.Buffer
	if err := HTML(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// node helpers over golang.org/x/net/html's tree.
func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(attr(n, "class")) {
		if c == class {
			return true
		}
	}
	return false
}

func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func byID(n *html.Node, id string) *html.Node {
	if found := findAll(n, func(n *html.Node) bool { return attr(n, "id") == id }); len(found) > 0 {
		return found[0]
	}
	return nil
}

func tagClass(tag, class string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == tag && (class == "" || hasClass(n, class)) }
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

func parse(t *testing.T, page string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestHTMLTimelineHasItsAxesBandsAndVersions(t *testing.T) {
	r := longRun(1432)
	doc := parse(t, render(t, r))
	svg := byID(doc, "timeline")
	if svg == nil || svg.Data != "svg" {
		t.Fatal("no svg#timeline")
	}
	// Latency has its own panel and axis, in ms, with ticks; requests/s theirs.
	for id, want := range map[string]string{"latency-axis-title": "latency (ms)", "requests-axis-title": "requests/s", "versions-axis-title": "version share (%)"} {
		if n := byID(svg, id); n == nil || text(n) != want {
			t.Errorf("axis title #%s: want %q", id, want)
		}
	}
	for _, axis := range []string{"latency-axis", "requests-axis"} {
		g := findAll(svg, tagClass("g", axis))
		if len(g) != 1 {
			t.Fatalf("%d g.%s", len(g), axis)
		}
		var labels []string
		for _, tx := range findAll(g[0], tagClass("text", "")) {
			if attr(tx, "class") == "" {
				labels = append(labels, text(tx))
			}
		}
		if len(labels) < 3 || labels[0] != "0" {
			t.Errorf("%s ticks %q: want 0 and at least two more", axis, labels)
		}
		if axis == "latency-axis" && labels[len(labels)-1] != "1000" { // the p99 of 850 ms, on a round top
			t.Errorf("latency ticks %q: want a top of 1000", labels)
		}
	}
	// The time axis: m:ss every 2 minutes over ten minutes, and its title.
	var xt []string
	for _, tx := range findAll(findAll(svg, tagClass("g", "x-axis"))[0], tagClass("text", "")) {
		xt = append(xt, text(tx))
	}
	if strings.Join(xt, " ") != "0:00 2:00 4:00 6:00 8:00 10:00 time since the load started (m:ss)" {
		t.Errorf("time ticks %q", xt)
	}
	// p50 and p99 are lines; served, failed and not sent are drawn.
	for _, class := range []string{"p50", "p99", "served", "failures", "not-sent", "scheduled"} {
		if p := findAll(svg, tagClass("path", class)); len(p) != 1 || attr(p[0], "d") == "" {
			t.Errorf("path.%s missing or empty", class)
		}
	}
	// One band per step, labelled with its name and kind; faults hatched.
	bands := findAll(svg, tagClass("g", "band"))
	if len(bands) != len(r.Summary.Steps) {
		t.Fatalf("%d bands for %d steps", len(bands), len(r.Summary.Steps))
	}
	for i, st := range r.Summary.Steps {
		label := text(findAll(bands[i], tagClass("text", ""))[0])
		if !strings.HasPrefix(label, st.Name+" ("+st.Kind+")") {
			t.Errorf("band %d label %q, want %s (%s)", i, label, st.Name, st.Kind)
		}
		fault := strings.HasPrefix(st.Kind, "fault/")
		if hasClass(bands[i], "fault") != fault || hasClass(bands[i], "step") == fault {
			t.Errorf("band %s: class %q", st.Name, attr(bands[i], "class"))
		}
	}
	if !strings.Contains(text(bands[5]), "— failed") {
		t.Errorf("a failed step's band does not say so: %q", text(bands[5]))
	}
	// Overlapping steps get their own label lanes.
	if attr(findAll(bands[4], tagClass("rect", ""))[0], "y") == attr(findAll(bands[5], tagClass("rect", ""))[0], "y") {
		t.Error("switch-v3 and migrate-schema overlap but share a label lane")
	}
	// Each version's share, and the legend naming them.
	areas := findAll(svg, tagClass("path", "version"))
	legend := byID(doc, "versions-legend")
	if len(areas) != 3 || legend == nil {
		t.Fatalf("%d version areas, legend %v", len(areas), legend)
	}
	for i, v := range []string{"v1", "v2", "v3"} {
		if text(areas[i]) != v || !strings.Contains(text(legend), v+" (") {
			t.Errorf("version %s: area %q, legend %q", v, text(areas[i]), text(legend))
		}
	}
	// A hover target per second, telling everything about it.
	hits := findAll(findAll(svg, tagClass("g", "hits"))[0], tagClass("rect", ""))
	if len(hits) != 600 {
		t.Fatalf("%d hover targets, want 600", len(hits))
	}
	got := text(hits[402])
	for _, want := range []string{"+6:42 (12:06:42)", "requests 200: ok 160, failed 40 (10 not sent); scheduled 200", "p50 3.3 ms, p99 850 ms",
		"versions: v2 200 (100%)", "in flight: drain-w1 (fault/node-drain)"} {
		if !strings.Contains(got, want) {
			t.Errorf("second 402's details lack %q:\n%s", want, got)
		}
	}
	if got := text(hits[150]); !strings.Contains(got, "versions: v1 100 (50%), v2 100 (50%)") || !strings.Contains(got, "in flight: canary-v2 (migrate/canary)") {
		t.Errorf("second 150's details:\n%s", got)
	}
	if got := text(hits[495]); !strings.Contains(got, "in flight: switch-v3 (migrate/blue-green), migrate-schema (migrate/schema)") {
		t.Errorf("second 495's details:\n%s", got)
	}
}

func TestHTMLGroupsFailuresByStepInFlight(t *testing.T) {
	r := longRun(1432)
	doc := parse(t, render(t, r))
	var groups []string
	for _, g := range findAll(doc, tagClass("tr", "group")) {
		groups = append(groups, text(g))
	}
	want := []string{
		fmt.Sprintf("kill-primary: 200 failed — first %d shown, %d left out", MaxFailureRowsPerGroup, 200-MaxFailureRowsPerGroup),
		fmt.Sprintf("drain-w1: 800 failed — first %d shown, %d left out", MaxFailureRowsPerGroup, 800-MaxFailureRowsPerGroup),
	}
	if strings.Join(groups, "\n") != strings.Join(want, "\n") {
		t.Errorf("groups:\n%s\nwant:\n%s", strings.Join(groups, "\n"), strings.Join(want, "\n"))
	}
	// The same attribution as zero-failed-requests.
	by := verify.Attribute(r.Failures, stepWindows(r.Summary.Steps))
	if by["kill-primary"] != 200 || by["drain-w1"] != 800 {
		t.Errorf("verify.Attribute: %v", by)
	}
	bodies := findAll(findAll(doc, tagClass("table", "failures"))[0], tagClass("tbody", ""))
	rows := findAll(bodies[0], func(n *html.Node) bool { return n.Data == "tr" && attr(n, "class") == "" })
	if len(rows) != MaxFailureRowsPerGroup || !strings.HasPrefix(text(rows[0]), "+300.0swrite0Post \"http://127.0.0.1:30001/orders\"") {
		t.Errorf("%d rows in the first group; first %q", len(rows), text(rows[0]))
	}
	if a := findAll(rows[0], tagClass("a", "")); len(a) != 1 || attr(a[0], "href") != "#t=300" {
		t.Error("a failure's time does not link to its second on the timeline")
	}
	intro := text(findAll(doc, func(n *html.Node) bool { return attr(n, "id") == "failures" })[0].NextSibling.NextSibling)
	if !strings.Contains(intro, "1432 requests failed; the first 1000 were sampled") || !strings.Contains(intro, "2 groups, 40 rows shown") {
		t.Errorf("failures intro: %q", intro)
	}

	// Failures after a step, before any step, and the overall cap.
	r = sampleRun()
	t0 := r.Summary.Started
	r.Failures = append([]load.Failure{{Time: t0.Add(time.Second), Target: "read", Code: 502}}, r.Failures...)
	for i := 0; i < MaxFailureRows+50; i++ {
		r.Failures = append(r.Failures, load.Failure{Time: t0.Add(11 * time.Second), Target: "read", Code: 503})
	}
	groups = nil
	for _, g := range findAll(parse(t, render(t, r)), tagClass("tr", "group")) {
		groups = append(groups, text(g))
	}
	want = []string{"(before any step): 1 failed", "scale-to-zero: 1 failed",
		fmt.Sprintf("after drain: %d failed — first %d shown, %d left out", MaxFailureRows+50, MaxFailureRowsPerGroup, MaxFailureRows+50-MaxFailureRowsPerGroup)}
	if strings.Join(groups, "\n") != strings.Join(want, "\n") {
		t.Errorf("groups:\n%s\nwant:\n%s", strings.Join(groups, "\n"), strings.Join(want, "\n"))
	}
}

// A long run's report stays small: 600 seconds, 3 versions, 6 steps, 1000 failures.
func TestHTMLSizeOfATenMinuteRun(t *testing.T) {
	page := render(t, longRun(1432))
	t.Logf("report.html of 600 s, 3 versions, 1000 failures: %d bytes", len(page))
	if len(page) > 1<<20 {
		t.Errorf("report.html is %d bytes, want under 1 MiB", len(page))
	}
	// An hour-long run is folded into columns of several seconds: no bigger.
	r := longRun(1432)
	for i := 600; i < 3600; i++ {
		s := r.Timeline[i%600]
		s.T = i
		r.Timeline = append(r.Timeline, s)
	}
	hour := render(t, r)
	t.Logf("report.html of 3600 s: %d bytes", len(hour))
	if len(hour) > 1<<20 || !strings.Contains(hour, `data-bucket="4"`) {
		t.Errorf("an hour's report.html is %d bytes (bucket: %v)", len(hour), regexp.MustCompile(`data-bucket="\d+"`).FindString(hour))
	}
}

// offFile lists what in page could load anything from outside the file: every URL-valued
// attribute not a '#' anchor or a data: URI, any url() in CSS that is not, @import, and elements
// that embed or navigate (base, link, iframe, object, embed, meta refresh).
func offFile(t *testing.T, page string) []string {
	t.Helper()
	var bad []string
	local := func(v string) bool {
		v = strings.TrimSpace(strings.Trim(strings.TrimSpace(v), `"'`))
		return strings.HasPrefix(v, "#") || strings.HasPrefix(strings.ToLower(v), "data:")
	}
	cssURL := regexp.MustCompile(`(?i)url\(\s*([^)]*)\)`)
	css := func(where, s string) {
		for _, m := range cssURL.FindAllStringSubmatch(s, -1) {
			if !local(m[1]) {
				bad = append(bad, where+": "+m[0])
			}
		}
		if strings.Contains(strings.ToLower(s), "@import") {
			bad = append(bad, where+": @import")
		}
	}
	urlAttrs := map[string]bool{"src": true, "href": true, "xlink:href": true, "action": true, "formaction": true, "poster": true,
		"srcset": true, "data": true, "background": true, "manifest": true, "ping": true, "cite": true, "longdesc": true, "codebase": true}
	z := html.NewTokenizer(strings.NewReader(page))
	inStyle := false
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if z.Err() != io.EOF {
				t.Fatal(z.Err())
			}
			return bad
		case html.TextToken:
			if inStyle {
				css("<style>", string(z.Text()))
			}
		case html.EndTagToken:
			inStyle = false
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			inStyle = tok.Data == "style" && tt == html.StartTagToken
			switch tok.Data {
			case "base", "link", "iframe", "frame", "object", "embed", "applet", "portal":
				bad = append(bad, "<"+tok.Data+">")
			}
			for _, a := range tok.Attr {
				k := strings.ToLower(a.Key)
				if a.Namespace != "" {
					k = a.Namespace + ":" + k
				}
				switch {
				case urlAttrs[k] && !local(a.Val):
					bad = append(bad, fmt.Sprintf("<%s %s=%q>", tok.Data, k, a.Val))
				case k == "style":
					css("style attribute", a.Val)
				case k == "http-equiv" && strings.EqualFold(a.Val, "refresh"):
					bad = append(bad, "meta refresh")
				case strings.HasPrefix(k, "on"):
					bad = append(bad, "inline handler "+k) // the one script is the only active content
				}
			}
		}
	}
}

func TestHTMLLoadsNothingFromOutsideTheFile(t *testing.T) {
	r := longRun(1432)
	// Names and errors that would be references if they were not escaped.
	r.Summary.Steps[1].Name = `"><img src="https://evil.example/x.png">`
	r.Summary.Steps[2].Error = `<script src="http://evil.example/x.js"></script>`
	r.Timeline[10].Versions = map[string]int{`v1" style="background:url(https://evil.example/)`: 200}
	r.Failures[0].Error = `<link rel="stylesheet" href="//evil.example/a.css">`
	page := render(t, r)
	if bad := offFile(t, page); len(bad) > 0 {
		t.Errorf("report.html refers outside itself: %q", bad)
	}
	// The page's policy forbids every fetch to the browser, and allows exactly its own script.
	doc := parse(t, page)
	metas := findAll(doc, func(n *html.Node) bool { return n.Data == "meta" && attr(n, "http-equiv") == "Content-Security-Policy" })
	if len(metas) != 1 || !strings.HasPrefix(attr(metas[0], "content"), "default-src 'none';") || !strings.Contains(attr(metas[0], "content"), "script-src 'sha256-") {
		t.Errorf("Content-Security-Policy: %v", metas)
	}
	scripts := findAll(doc, tagClass("script", ""))
	if len(scripts) != 1 || text(scripts[0]) != pageJS {
		t.Errorf("%d scripts; want exactly the report's own, byte for byte (its hash is in the policy)", len(scripts))
	}
	// The scanner does catch what it looks for.
	if bad := offFile(t, `<img src="https://x/y.png"><a href="#ok"></a><div style="background:url(http://x)"></div><style>@import "x.css";</style><svg><use xlink:href="http://x#a"/></svg>`); len(bad) != 4 {
		t.Errorf("offFile found %q, want 4 references", bad)
	}
}

func TestHTMLWithoutTimelineOrFailures(t *testing.T) {
	r := sampleRun()
	r.Timeline, r.Failures = nil, nil
	r.Summary.Load.Failed = 0
	page := render(t, r)
	for _, want := range []string{"No load timeline was recorded.", "None: every request succeeded.", "scale-to-zero"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(page, `<svg id="timeline"`) {
		t.Error("a chart without a timeline")
	}
}

func TestNiceAxis(t *testing.T) {
	for _, c := range []struct {
		v    float64
		top  float64
		step float64
	}{{850, 1000, 200}, {1, 1, 0.2}, {200, 200, 50}, {212, 250, 50}, {23.5, 25, 5}, {0, 1, 0.2}, {3, 3, 1}, {7, 8, 2}} {
		top, ticks := niceAxis(c.v)
		if top != c.top || len(ticks) < 2 || ticks[1] != c.step || ticks[len(ticks)-1] != top {
			t.Errorf("niceAxis(%v) = %v %v, want top %v step %v", c.v, top, ticks, c.top, c.step)
		}
	}
}

// writeReport writes r's report.html for a look in a browser (REHEARSE_HTML_OUT=path).
func TestMain(m *testing.M) {
	if out := os.Getenv("REHEARSE_HTML_OUT"); out != "" {
		f, err := os.Create(out)
		if err == nil {
			err = HTML(f, longRun(1432))
			f.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}

// A single failed request among 200 still shows: at least 2 px of red.
func TestHTMLShowsASingleFailure(t *testing.T) {
	r := longRun(1)
	r.Timeline[100].OK, r.Timeline[100].Failed = 199, 1
	for i := range r.Timeline[300:430] {
		r.Timeline[300+i].OK, r.Timeline[300+i].Failed, r.Timeline[300+i].NotSent = 200, 0, 0
	}
	p := findAll(parse(t, render(t, r)), tagClass("path", "failures"))
	if len(p) != 1 {
		t.Fatal("no failures drawn")
	}
	if d := attr(p[0], "d"); strings.Count(d, "M") != 1 || !strings.Contains(d, "v2h") {
		t.Errorf("failures path %q: want one bar 2 px tall", d)
	}
}

// report.html draws the cluster's changes in a lane below the panels, each with its own title, and
// lists each burst's explanation under the failures.
func TestReportHasTheClusterLane(t *testing.T) {
	r := sampleRun()
	two := 2
	code := int32(2)
	r.Cluster = []verify.Change{
		{T: -3, Kind: "pod", Object: "pod/before", What: verify.PodCreated},
		{T: 6.0, Kind: "pod", Object: "pod/web-a", What: verify.PodDeleting, Detail: "grace 30s"},
		{T: 6.1, Kind: "pod", Object: "pod/web-a", What: verify.PodExited, Container: "web", ExitCode: &code, Reason: "Error"},
		{T: 6.4, Kind: "endpoint", Object: "pod/web-a", What: verify.EndpointRemoved, ReadyEndpoints: &two},
		{T: 7, Kind: "step", Object: "step/scale", What: "start"},
		{T: 7.5, Kind: verify.KindAction, Object: "pod/db-1", What: "promoted", Detail: "step switch: db-1 promoted"},
	}
	r.Summary.Explanations = []verify.Explanation{{Burst: verify.Burst{From: 6, To: 7, Failed: 12, Requests: 50},
		Lines: []string{"pod/web-a received SIGTERM at +6.0s"}, Explained: true}}
	var b strings.Builder
	if err := HTML(&b, r); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{`id="cluster-lane"`, `<title>&#43;6.1s pod pod/web-a exited (container web, exit 2, Error)</title>`,
		`<title>&#43;6.4s endpoint pod/web-a removed; 2 ready endpoints</title>`, `What the cluster did`,
		`12 of 50 requests failed from &#43;6s to &#43;7s</a><ul><li>pod/web-a received SIGTERM at &#43;6.0s</li>`,
		`class="ev-action"`, `<title>&#43;7.5s action pod/db-1 promoted: step switch: db-1 promoted</title>`} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if n := strings.Count(html, `class="ev-`); n != 4 {
		t.Errorf("%d marks, want 4 (before the load and steps are not drawn; a step's action is)", n)
	}
}
