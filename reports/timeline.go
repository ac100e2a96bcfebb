package reports

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/verify"
)

// The timeline of report.html is one SVG of panels sharing the time axis: requests per second by
// status (with the schedule), p50/p99 latency in ms, and each version's share of the answers; steps
// and faults are bands across all of them, labelled in lanes above. Every column (a second, or a few
// seconds on runs longer than maxColumns) has a hover target whose <title> says everything about it:
// the browser's tooltip without JavaScript, the text the report's script shows beside a cursor.

// maxColumns bounds the columns drawn (and the bytes written), whatever the run's length: about one
// per pixel of the plot. Longer runs put several seconds in a column.
const maxColumns = 900

// Geometry of the SVG, in its user units (CSS pixels at 100%).
const (
	svgWidth  = 920.0
	plotLeft  = 62.0 // room for tick labels and the rotated axis title
	plotRight = 18.0 // room for the last time tick's label
	laneH     = 14.0 // one lane of step labels
	maxLanes  = 6
	reqH      = 140.0
	latH      = 130.0
	verH      = 64.0
	panelGap  = 16.0
	minFailH  = 2.0 // a column with any failure shows at least this much red
	eventsH   = 14.0
	maxMarks  = 400 // cluster changes drawn at most (the first, most telling ones first)
)

var palette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#9c755f", "#76b7b2"}

// column is one drawn column of the timeline: the seconds [From, To) since the load started.
type column struct {
	From, To            int
	OK, Failed, NotSent int
	Scheduled           float64
	P50, P99            float64 // of the worst second in the column
	Versions            map[string]int
}

func (c column) answered() bool { return c.OK+c.Failed > c.NotSent }

type tick struct {
	Pos   float64 // x for the time axis, y for a value axis
	Label string
}

type panel struct {
	Class, Title string // Title is the axis title, drawn rotated left of the panel
	Y, H, TitleY float64
	Ticks        []tick
	X, W, Bottom float64
}

type versionArea struct {
	Name, Color, D string
	Answers        int
}

type band struct {
	Class          string // "step" or "fault"
	X, Y, W, H     float64
	LabelX, LabelY float64
	Label, Title   string
	NotOK          bool
}

// eventMark is one cluster change in the events lane below the panels.
type eventMark struct {
	X, W         float64
	Class, Title string
}

type hit struct {
	X, W  float64
	Title string
}

// timelineChart is what the template draws.
type timelineChart struct {
	Width, Height        float64
	PlotX, PlotW, PlotY  float64 // the plot area: every panel, below the step lanes
	PlotBottom           float64
	ColW                 float64
	Bucket               int // seconds per column
	Cols                 int
	Panels               []panel
	XTicks               []tick
	XAxisY, XTitleY      float64
	XTitle               string
	OK, Failed, NotSent  string // SVG path data
	Scheduled            string
	P50, P99             string
	LatencyMax           float64
	Areas                []versionArea
	Bands                []band
	Hits                 []hit
	HasNotSent, HasSched bool
	Events               []eventMark // the cluster lane: what the cluster did, below the panels
	EventsY, EventsH     float64
	EventsNote           string // how many changes were left out of the lane
}

// columns folds the per-second timeline into at most maxColumns columns of bucket seconds each.
func columns(tl []load.Second) ([]column, int) {
	n := 0
	for _, s := range tl {
		n = max(n, s.T+1)
	}
	if n == 0 {
		return nil, 1
	}
	bucket := (n + maxColumns - 1) / maxColumns
	cols := make([]column, (n+bucket-1)/bucket)
	for i := range cols {
		cols[i].From, cols[i].To = i*bucket, min((i+1)*bucket, n)
	}
	for _, s := range tl {
		if s.T < 0 {
			continue
		}
		c := &cols[s.T/bucket]
		c.OK += s.OK
		c.Failed += s.Failed
		c.NotSent += s.NotSent
		c.Scheduled += s.Scheduled
		if s.OK+s.Failed > s.NotSent {
			c.P50, c.P99 = max(c.P50, s.P50MS), max(c.P99, s.P99MS)
		}
		for v, k := range s.Versions {
			if c.Versions == nil {
				c.Versions = map[string]int{}
			}
			c.Versions[v] += k
		}
	}
	return cols, bucket
}

// buildTimeline lays out the chart of r's timeline (zero Cols when there is none).
func buildTimeline(r *Run) timelineChart {
	cols, bucket := columns(r.Timeline)
	c := timelineChart{Width: svgWidth, Bucket: bucket, Cols: len(cols), PlotX: plotLeft, PlotW: svgWidth - plotLeft - plotRight}
	if len(cols) == 0 {
		return c
	}
	c.ColW = c.PlotW / float64(len(cols))
	x := func(col int) float64 { return c.PlotX + float64(col)*c.ColW }
	start := r.Summary.Started
	span := func(st Step) (float64, float64) { // a step's seconds since the start
		a := st.Started.Sub(start).Seconds()
		return a, max(st.Finished.Sub(start).Seconds(), a)
	}
	secX := func(s float64) float64 { return c.PlotX + s/float64(bucket)*c.ColW }

	// Versions, in name order, each with its colour.
	answers := map[string]int{}
	for _, col := range cols {
		for v, k := range col.Versions {
			answers[v] += k
		}
	}
	var versions []string
	for v := range answers {
		versions = append(versions, v)
	}
	sort.Strings(versions)

	// Step label lanes: the first lane whose labels end before this band starts.
	bands := make([]band, 0, len(r.Summary.Steps))
	var laneEnd []float64
	lanes := 0
	for _, st := range r.Summary.Steps {
		a, b := span(st)
		label := st.Name + " (" + st.Kind + ")"
		if st.Status != "" && st.Status != "ok" {
			label += " — " + st.Status
		}
		bd := band{Class: "step", X: secX(a), W: max(secX(b)-secX(a), 2), Label: label, NotOK: st.Status == "failed" || st.Status == "error"}
		if strings.HasPrefix(st.Kind, "fault/") {
			bd.Class = "fault"
		}
		bd.X = min(max(bd.X, c.PlotX), c.PlotX+c.PlotW-2)
		bd.W = min(bd.W, c.PlotX+c.PlotW-bd.X)
		bd.Title = fmt.Sprintf("%s (%s): %s, %s → %s (%.1fs)", st.Name, st.Kind, orNA(st.Status), clock(a), clock(b), b-a)
		if st.Error != "" {
			bd.Title += "\nerror: " + FirstLine(st.Error)
		}
		// The label starts at the band, or ends at the chart's right edge when it would cross it.
		lw := textWidth(label, bd.NotOK)
		bd.LabelX = max(min(bd.X+3, svgWidth-2-lw), 2)
		from, end := min(bd.X, bd.LabelX), max(bd.X+bd.W, bd.LabelX+lw)+6
		lane := -1
		for i, e := range laneEnd {
			if e <= from {
				lane = i
				break
			}
		}
		switch {
		case lane >= 0:
		case len(laneEnd) < maxLanes:
			lane = len(laneEnd)
			laneEnd = append(laneEnd, 0)
		default: // every lane is taken: overlap in the one that frees first
			lane = 0
			for i, e := range laneEnd {
				if e < laneEnd[lane] {
					lane = i
				}
			}
		}
		laneEnd[lane] = end
		lanes = max(lanes, lane+1)
		bd.Y = float64(lane) // the lane for now; its y below, once the lanes are counted
		bands = append(bands, bd)
	}
	c.PlotY = 4 + float64(lanes)*laneH
	if lanes > 0 {
		c.PlotY += 4
	}

	// The panels, top to bottom.
	y := c.PlotY
	add := func(class, title string, h float64, top float64, ticks []float64, unit func(float64) string) panel {
		p := panel{Class: class, Title: title, X: c.PlotX, W: c.PlotW, Y: y, H: h, Bottom: y + h, TitleY: y + h/2}
		for _, v := range ticks {
			p.Ticks = append(p.Ticks, tick{Pos: y + h - v/top*h, Label: unit(v)})
		}
		c.Panels = append(c.Panels, p)
		y += h + panelGap
		return p
	}
	rate := func(n float64, col column) float64 { return n / float64(max(col.To-col.From, 1)) }
	maxRate, maxLat := 1.0, 1.0
	for _, col := range cols {
		maxRate = max(maxRate, rate(float64(col.OK+col.Failed), col), rate(col.Scheduled, col))
		if col.answered() {
			maxLat = max(maxLat, col.P99)
		}
		c.HasNotSent = c.HasNotSent || col.NotSent > 0
		c.HasSched = c.HasSched || col.Scheduled > 0
	}
	rateTop, rateTicks := niceAxis(maxRate)
	req := add("requests", "requests/s", reqH, rateTop, rateTicks, num)
	latTop, latTicks := niceAxis(maxLat)
	lat := add("latency", "latency (ms)", latH, latTop, latTicks, num)
	var ver panel
	if len(versions) > 0 {
		ver = add("versions", "version share (%)", verH, 100, []float64{0, 50, 100}, num)
	}
	c.PlotBottom = y - panelGap
	bottom := c.PlotBottom
	if marks, note := clusterMarks(r, secX, c.PlotX, c.PlotX+c.PlotW); len(marks) > 0 {
		// Below the hover columns, so that a mark's own title shows.
		c.Events, c.EventsNote = marks, note
		c.EventsY, c.EventsH = bottom+6, eventsH
		bottom = c.EventsY + eventsH
	}
	c.XAxisY, c.XTitleY = bottom+14, bottom+30
	c.Height = bottom + 36
	c.XTitle = "time since the load started (m:ss)"
	if bucket > 1 {
		c.XTitle = fmt.Sprintf("time since the load started (m:ss); a column is %d s: requests/s averaged, latency of its worst second", bucket)
	}
	n := cols[len(cols)-1].To
	for _, s := range timeTicks(n) {
		c.XTicks = append(c.XTicks, tick{Pos: secX(float64(s)), Label: clock(float64(s))})
	}

	// Requests: served as a stepped area, failed and not-sent as bars stacked on it.
	ry := func(v float64) float64 { return req.Bottom - min(v/rateTop, 1)*req.H }
	var ok, failed, notSent, sched pathBuilder
	ok.move(x(0), req.Bottom)
	prevSched, prevTop := -1.0, req.Bottom
	for i, col := range cols {
		top := ry(rate(float64(col.OK), col))
		if num(top) != num(prevTop) {
			ok.vert(top)
			prevTop = top
		}
		ok.horiz(x(i + 1))
		if col.Failed > 0 {
			h := max(req.Bottom-ry(rate(float64(col.Failed), col)), minFailH)
			sent := col.Failed - col.NotSent
			// Stacked on the served, inside the panel (at the top, the minimum height overlaps them).
			hs, y := 0.0, top
			if sent > 0 {
				hs = max(h*float64(sent)/float64(col.Failed), minFailH)
				y = max(top-hs, req.Y)
				failed.rect(x(i), y, c.ColW, hs)
			}
			if col.NotSent > 0 {
				hn := max(h-hs, minFailH)
				notSent.rect(x(i), max(y-hn, req.Y), c.ColW, hn)
			}
		}
		if c.HasSched {
			s := ry(rate(col.Scheduled, col))
			if i == 0 {
				sched.move(x(0), s)
			} else if num(s) != num(prevSched) {
				sched.vert(s)
			}
			prevSched = s
			sched.horiz(x(i + 1))
		}
	}
	ok.vert(req.Bottom)
	ok.close()
	c.OK, c.Failed, c.NotSent, c.Scheduled = ok.String(), failed.String(), notSent.String(), sched.String()

	// Latency: lines through the columns' centres, broken where nothing was answered.
	ly := func(v float64) float64 { return lat.Bottom - min(v/latTop, 1)*lat.H }
	var p50, p99 pathBuilder
	for i, col := range cols {
		if !col.answered() {
			p50.lift()
			p99.lift()
			continue
		}
		cx := x(i) + c.ColW/2
		p50.point(cx, ly(col.P50))
		p99.point(cx, ly(col.P99))
	}
	c.P50, c.P99 = p50.String(), p99.String()

	// Versions: each one's share of the versioned answers, stacked (in name order), as stepped areas;
	// columns without versioned answers are left blank.
	if len(versions) > 0 {
		vy := func(share float64) float64 { return ver.Bottom - share*ver.H }
		for vi, v := range versions {
			var p pathBuilder
			var run []int // the columns of the current stretch with versioned answers
			flush := func() {
				if len(run) == 0 {
					return
				}
				_, hi := stackedShare(cols[run[0]], versions, vi)
				p.move(x(run[0]), vy(hi))
				last := vy(hi)
				for _, i := range run { // the top edge, left to right
					_, hi := stackedShare(cols[i], versions, vi)
					if yy := vy(hi); num(yy) != num(last) {
						p.vert(yy)
						last = yy
					}
					p.horiz(x(i + 1))
				}
				for k := len(run) - 1; k >= 0; k-- { // the bottom edge, right to left
					lo2, _ := stackedShare(cols[run[k]], versions, vi)
					if yy := vy(lo2); num(yy) != num(last) {
						p.vert(yy)
						last = yy
					}
					p.horiz(x(run[k]))
				}
				p.close()
				run = run[:0]
			}
			for i, col := range cols {
				if versionTotal(col) == 0 {
					flush()
					continue
				}
				run = append(run, i)
			}
			flush()
			c.Areas = append(c.Areas, versionArea{Name: v, Color: palette[vi%len(palette)], D: p.String(), Answers: answers[v]})
		}
	}

	// Bands span every panel from their label's lane down.
	for i := range bands {
		lane := bands[i].Y
		bands[i].Y = 4 + lane*laneH
		bands[i].H = c.PlotBottom - bands[i].Y
		bands[i].LabelY = bands[i].Y + 10
	}
	c.Bands = bands

	// Hover targets: one per column, the whole plot's height.
	for i, col := range cols {
		c.Hits = append(c.Hits, hit{X: x(i), W: c.ColW, Title: columnText(r, col, versions)})
	}
	return c
}

// stackedShare is where version vi's share of col's versioned answers lies in the stack: from lo to
// hi, fractions of 1.
func stackedShare(col column, versions []string, vi int) (lo, hi float64) {
	total := float64(versionTotal(col))
	if total == 0 {
		return 0, 0
	}
	below := 0
	for _, v := range versions[:vi] {
		below += col.Versions[v]
	}
	return float64(below) / total, float64(below+col.Versions[versions[vi]]) / total
}

func versionTotal(col column) int {
	n := 0
	for _, k := range col.Versions {
		n += k
	}
	return n
}

// columnText is everything about one column, a line per subject: when, requests, latency, versions,
// the steps and faults in flight.
func columnText(r *Run, col column, versions []string) string {
	var b strings.Builder
	start := r.Summary.Started
	if col.To-col.From <= 1 {
		fmt.Fprintf(&b, "+%s", clock(float64(col.From)))
	} else {
		fmt.Fprintf(&b, "+%s–%s", clock(float64(col.From)), clock(float64(col.To)))
	}
	if !start.IsZero() {
		fmt.Fprintf(&b, " (%s)", start.Add(time.Duration(col.From)*time.Second).Format("15:04:05"))
	}
	fmt.Fprintf(&b, "\nrequests %d: ok %d, failed %d", col.OK+col.Failed, col.OK, col.Failed)
	if col.NotSent > 0 {
		fmt.Fprintf(&b, " (%d not sent)", col.NotSent)
	}
	if col.Scheduled > 0 {
		fmt.Fprintf(&b, "; scheduled %s", num(col.Scheduled))
	}
	worst := ""
	if col.To-col.From > 1 {
		worst = " (worst second)"
	}
	if col.answered() {
		fmt.Fprintf(&b, "\nlatency%s p50 %s ms, p99 %s ms", worst, num(col.P50), num(col.P99))
	} else {
		b.WriteString("\nlatency: nothing answered")
	}
	if total := versionTotal(col); total > 0 {
		var parts []string
		for _, v := range versions {
			if k := col.Versions[v]; k > 0 {
				parts = append(parts, fmt.Sprintf("%s %d (%.0f%%)", v, k, 100*float64(k)/float64(total)))
			}
		}
		b.WriteString("\nversions: " + strings.Join(parts, ", "))
	}
	var in []string
	for _, st := range r.Summary.Steps {
		a := st.Started.Sub(start).Seconds()
		e := max(st.Finished.Sub(start).Seconds(), a)
		if a < float64(col.To) && e >= float64(col.From) {
			in = append(in, st.Name+" ("+st.Kind+")")
		}
	}
	if len(in) == 0 {
		b.WriteString("\nin flight: no step")
	} else {
		b.WriteString("\nin flight: " + strings.Join(in, ", "))
	}
	return b.String()
}

// niceAxis is an axis from 0 to at least v in 3 to 5 round steps (1, 2 or 5 times a power of ten),
// and its ticks.
func niceAxis(v float64) (top float64, ticks []float64) {
	if !(v > 0) || math.IsInf(v, 0) {
		v = 1
	}
	raw := v / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	top = math.Ceil(v/step-1e-9) * step
	for t := 0.0; t <= top+step/2; t += step {
		ticks = append(ticks, math.Round(t/step)*step)
	}
	return top, ticks
}

// timeTicks are round offsets (in seconds) for a time axis of n seconds: about eight.
func timeTicks(n int) []int {
	step := 1
	for _, s := range []int{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400} {
		step = s
		if n/s <= 8 {
			break
		}
	}
	var out []int
	for t := 0; t <= n; t += step {
		out = append(out, t)
	}
	return out
}

// clock is s seconds as m:ss, or h:mm:ss from an hour.
func clock(s float64) string {
	neg := ""
	if s < 0 {
		neg, s = "-", -s
	}
	t := int(math.Floor(s + 1e-9))
	if t >= 3600 {
		return fmt.Sprintf("%s%d:%02d:%02d", neg, t/3600, t/60%60, t%60)
	}
	return fmt.Sprintf("%s%d:%02d", neg, t/60, t%60)
}

// num is v rounded to a tenth, without a trailing ".0".
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// textWidth estimates, generously, the width of a label in the chart's 10px font (bold for a step
// that did not succeed: 10% wider).
func textWidth(s string, bold bool) float64 {
	w := 6.2 * float64(len([]rune(s)))
	if bold {
		w *= 1.1
	}
	return w
}

// pathBuilder writes compact SVG path data: absolute commands, a tenth of a unit; horizontal moves
// in a row are written as one.
type pathBuilder struct {
	b        strings.Builder
	drawing  bool    // a subpath is open (point continues it)
	pendingH float64 // a horizontal move not written yet
	hasH     bool
}

func (p *pathBuilder) flushH() {
	if p.hasH {
		p.b.WriteString("H" + num(p.pendingH))
		p.hasH = false
	}
}

func (p *pathBuilder) move(x, y float64) {
	p.flushH()
	fmt.Fprintf(&p.b, "M%s %s", num(x), num(y))
	p.drawing = true
}

func (p *pathBuilder) vert(y float64) {
	p.flushH()
	p.b.WriteString("V" + num(y))
}

func (p *pathBuilder) horiz(x float64) { p.pendingH, p.hasH = x, true }

func (p *pathBuilder) close() {
	p.flushH()
	p.b.WriteString("Z")
	p.drawing = false
}

// point continues the line to (x, y), or starts one after lift.
func (p *pathBuilder) point(x, y float64) {
	if !p.drawing {
		p.move(x, y)
		return
	}
	fmt.Fprintf(&p.b, " %s %s", num(x), num(y)) // after M, pairs of numbers are lines
}

// lift ends the line: the next point starts a new one.
func (p *pathBuilder) lift() { p.drawing = false }

func (p *pathBuilder) rect(x, y, w, h float64) {
	p.flushH()
	fmt.Fprintf(&p.b, "M%s %sh%sv%sh-%sZ", num(x), num(y), num(w), num(h), num(w))
}

func (p *pathBuilder) String() string {
	p.flushH()
	return p.b.String()
}

// clusterMarks are the cluster's changes during the load as marks on the events lane, each with
// its time and what it was as its title. Pods stopping or restarting, endpoints leaving, nodes
// NotReady and Warning events come first; at most maxMarks are drawn, and the note says how many
// were left out.
func clusterMarks(r *Run, secX func(float64) float64, left, right float64) ([]eventMark, string) {
	type ranked struct {
		c    verify.Change
		rank int
	}
	var cs []ranked
	end := r.Summary.Finished.Sub(r.Summary.Started).Seconds()
	for _, c := range r.Cluster {
		if c.Kind == "step" || c.Kind == "note" || c.T < 0 || (end > 0 && c.T > end) {
			continue
		}
		cls, rank := markClass(c)
		if cls == "" {
			continue
		}
		cs = append(cs, ranked{c, rank})
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].rank < cs[j].rank })
	note := ""
	if len(cs) > maxMarks {
		note = fmt.Sprintf("%d of %d cluster changes drawn (cluster.jsonl has all)", maxMarks, len(cs))
		cs = cs[:maxMarks]
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].c.T < cs[j].c.T })
	var out []eventMark
	for _, rc := range cs {
		c := rc.c
		cls, _ := markClass(c)
		x := min(max(secX(c.T)-1, left), right-3)
		out = append(out, eventMark{X: x, W: 3, Class: cls, Title: ChangeText(c)})
	}
	return out, note
}

// markClass is a change's class in the lane, and its rank (lower: kept first).
func markClass(c verify.Change) (string, int) {
	switch {
	case c.Kind == "node" && c.What == verify.NodeNotReady:
		return "ev-node", 0
	case c.Kind == verify.KindAction:
		return "ev-action", 0
	case c.Kind == "pod" && (c.What == verify.PodExited || c.What == verify.PodRestarted):
		return "ev-stop", 0
	case c.Kind == "endpoint" && (c.What == verify.EndpointNotReady || c.What == verify.EndpointRemoved):
		return "ev-out", 1
	case c.Kind == "pod" && (c.What == verify.PodDeleting || c.What == verify.PodGone):
		return "ev-stop", 1
	case c.Kind == "event" && c.Warning:
		return "ev-warn", 1
	case c.Kind == "endpoint" && c.What == verify.EndpointReady:
		return "ev-in", 2
	case c.Kind == "node":
		return "ev-node-ok", 2
	case c.Kind == "pod" || c.Kind == "event":
		return "ev-other", 3
	}
	return "", 0
}

// ChangeText is a change in one line: its time on the run's clock, what and where.
func ChangeText(c verify.Change) string {
	var b strings.Builder
	fmt.Fprintf(&b, "+%.1fs %s %s %s", c.T, c.Kind, c.Object, c.What)
	if c.Container != "" {
		fmt.Fprintf(&b, " (container %s", c.Container)
		if c.ExitCode != nil {
			fmt.Fprintf(&b, ", exit %d", *c.ExitCode)
		}
		if c.Reason != "" {
			fmt.Fprintf(&b, ", %s", c.Reason)
		}
		b.WriteString(")")
	}
	if c.ReadyEndpoints != nil {
		fmt.Fprintf(&b, "; %d ready endpoints", *c.ReadyEndpoints)
		if c.ServingEndpoints != nil && *c.ServingEndpoints != *c.ReadyEndpoints {
			fmt.Fprintf(&b, ", %d serving", *c.ServingEndpoints)
		}
	}
	if c.Node != "" && c.Kind != "node" {
		fmt.Fprintf(&b, " on %s", c.Node)
	}
	if c.Detail != "" {
		fmt.Fprintf(&b, ": %s", c.Detail)
	}
	return b.String()
}
