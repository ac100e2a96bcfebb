package reports

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/verify"
)

// MaxMarkdownBytes bounds summary.md, whatever the run's length: under GitHub's 65 536 characters
// of a PR comment (a job summary may hold 1 MiB), with room for a line or two of the caller's own.
const MaxMarkdownBytes = 60 << 10

// What summary.md shows at most; the rest is in summary.json and report.html, and the file says so.
const (
	mdMaxChecks    = 60
	mdMaxSteps     = 60
	mdMaxFailures  = 10
	mdMaxScenarios = 100
	mdMaxCell      = 240 // runes of a table cell
	mdMaxNamed     = 8   // failing checks named in the verdict line
)

// Markdown renders summary.md: the verdict and the checks that did not pass first (so both are on
// the first screen of a PR comment or a job summary), then the load in one line, the checks, the
// steps and faults with what they did, the first failures with the step in flight, and where
// report.html is. It never exceeds MaxMarkdownBytes: tables are capped, long messages cut, and what
// was cut is said.
func Markdown(r *Run, htmlPath string) []byte {
	d := newMDDoc(MaxMarkdownBytes)
	scenarioMD(d, r.Summary, r.Failures, true, htmlPath, "##")
	return d.bytes()
}

// SuiteEntry is one scenario of a suite, with the directory its reports were written to.
type SuiteEntry struct {
	Summary Summary
	Dir     string // "" when the scenario could not run and wrote nothing
}

// SuiteMarkdown renders a suite's summary.md: the suite's verdict, a table with a line per scenario
// (its verdict, the checks that did not pass, requests, failed, p99, where its own summary.md is),
// then each scenario as summary.md shows it, the failures sampled in its own file only. Within
// MaxMarkdownBytes like Markdown: scenarios that no longer fit are named, not shown.
func SuiteMarkdown(entries []SuiteEntry) []byte {
	d := newMDDoc(MaxMarkdownBytes)
	notPassed := 0
	var sums []verify.Result
	for _, e := range entries {
		if e.Summary.Verdict != VerdictPass {
			notPassed++
		}
		sums = append(sums, verify.Result{Name: e.Summary.Scenario, Status: verify.Status(e.Summary.Verdict)})
	}
	verdict := Verdict(sums)
	d.head(fmt.Sprintf("# rehearse: %s — %d of %d scenarios passed", strings.ToUpper(verdict), len(entries)-notPassed, len(entries)))
	if notPassed > 0 {
		var bad []verify.Result
		for _, s := range sums {
			if s.Status != verify.Pass {
				bad = append(bad, s)
			}
		}
		d.head("**Not passing:** " + namedList(bad, "scenario", "scenarios"))
	}
	d.head("")
	rows := []string{"| scenario | verdict | checks not passing | requests | failed | p99 | details |", "| --- | --- | --- | ---: | ---: | ---: | --- |"}
	for i, e := range entries {
		if i == mdMaxScenarios {
			d.note(fmt.Sprintf("scenario table: %d of %d scenarios shown", mdMaxScenarios, len(entries)))
			break
		}
		s := e.Summary
		where := "(no reports: it could not run)"
		if e.Dir != "" {
			where = mdCode(joinPath(e.Dir, "summary.md"))
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %d | %d | %s | %s |", mdCell(s.Scenario), statusWord(s.Verdict),
			mdCell(strings.Join(checkNames(notPassing(s.Checks)), ", ")), s.Load.Requests, s.Load.Failed, latency(s.Load.LatencyMS, "p99"), where))
	}
	d.section("scenario table", rows)
	for i, e := range entries {
		if d.full() {
			var left []string
			for _, e := range entries[i:] {
				left = append(left, mdCell(e.Summary.Scenario))
			}
			d.note(fmt.Sprintf("scenarios not shown: %s", strings.Join(verify.CapList(left, 20), ", ")))
			break
		}
		html := ""
		if e.Dir != "" {
			html = joinPath(e.Dir, "report.html")
		}
		d.line("")
		scenarioMD(d, e.Summary, nil, false, html, "##")
		if e.Dir != "" && e.Summary.Load.Failed > 0 {
			d.line("")
			d.line(fmt.Sprintf("First failures: %s", mdCode(joinPath(e.Dir, "summary.md"))))
		}
	}
	return d.bytes()
}

// scenarioMD writes one scenario's part: verdict, load, report, checks, steps, failures.
// h is the scenario's heading level ("##"); its sections are one level below.
func scenarioMD(d *mdDoc, s Summary, failures []load.Failure, showFailures bool, htmlPath, h string) {
	bad := notPassing(s.Checks)
	d.head(fmt.Sprintf("%s %s: %s", h, mdCell(s.Scenario), strings.ToUpper(orNA(s.Verdict))))
	switch {
	case len(bad) > 0:
		d.head(fmt.Sprintf("**Verdict: %s.** %d of %d checks did not pass: %s.", s.Verdict, len(bad), len(s.Checks), namedList(bad, "check", "checks")))
	case len(s.Checks) == 0:
		d.head(fmt.Sprintf("**Verdict: %s.** No check ran: nothing was verified.", orNA(s.Verdict)))
	default:
		d.head(fmt.Sprintf("**Verdict: %s.** All %d checks passed.", s.Verdict, len(s.Checks)))
	}
	d.head("")
	for _, w := range s.Warnings {
		d.head("> **Warning:** " + mdCell(w))
		if s.Host != nil && w == s.Host.Warning {
			d.head("> " + mdCell(s.Host.Line()))
		}
		d.head("")
	}
	d.head(loadLine(s))
	var meta []string
	if s.ScenarioFile != "" {
		meta = append(meta, "scenario "+mdCode(s.ScenarioFile))
	}
	if htmlPath != "" {
		meta = append(meta, "full report "+mdCode(htmlPath))
	}
	if !s.Started.IsZero() {
		meta = append(meta, fmt.Sprintf("seed %d", s.Seed), "started "+s.Started.UTC().Format(time.RFC3339))
	}
	if s.ReplayOf != "" {
		meta = append(meta, "a replay of run "+mdCode(s.ReplayOf))
	}
	if s.Replay != "" && htmlPath != "" {
		meta = append(meta, "rerun it with "+mdCode("rehearse run --replay "+filepath.Dir(htmlPath)))
	}
	if len(meta) > 0 {
		d.head("")
		d.head(strings.Join(meta, " · "))
	}

	// Checks: those that did not pass first, so a cut table still shows them.
	if len(s.Checks) > 0 {
		ordered := append(append([]verify.Result{}, bad...), passing(s.Checks)...)
		rows := []string{"", h + "# Checks", "", "| status | check | message |", "| --- | --- | --- |"}
		for i, c := range ordered {
			if i == mdMaxChecks {
				d.note(fmt.Sprintf("%s checks: %d of %d shown", s.Scenario, mdMaxChecks, len(ordered)))
				break
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %s |", statusWord(string(c.Status)), mdCell(c.Name), messageCell(c.Message)))
		}
		d.section(s.Scenario+" checks", rows)
	}

	if len(s.Steps) > 0 {
		rows := []string{"", h + "# Steps and faults", "", "| step | kind | status | start | duration | p99 | failed | what it did |",
			"| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"}
		for i, st := range s.Steps {
			if i == mdMaxSteps {
				d.note(fmt.Sprintf("%s steps: %d of %d shown", s.Scenario, mdMaxSteps, len(s.Steps)))
				break
			}
			p99, failed := "", ""
			if st.Load != nil {
				p99, failed = fmt.Sprintf("%.1f ms", st.Load.P99MS), fmt.Sprint(st.Load.Failed)
				if st.Load.Retried > 0 {
					failed += fmt.Sprintf(" (%d resent)", st.Load.Retried)
				}
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | +%.1fs | %.1fs | %s | %s | %s |", mdCell(st.Name), mdCell(st.Kind), statusWord(st.Status),
				st.Started.Sub(s.Started).Seconds(), st.Finished.Sub(st.Started).Seconds(), p99, failed, mdCell(StepEvidence(s, st))))
		}
		d.section(s.Scenario+" steps", rows)
		d.section(s.Scenario+" host commands", hostCommands(s, h))
	}

	if !showFailures || s.Load.Failed == 0 {
		return
	}
	shown := min(len(failures), mdMaxFailures)
	rows := []string{"", fmt.Sprintf("%s# First failures (%d of %d)", h, shown, s.Load.Failed), ""}
	if by := attribution(s, failures); by != "" {
		rows = append(rows, "By step in flight: "+mdCell(by), "")
	}
	rows = append(rows, explanationRows(s)...)
	if shown > 0 {
		rows = append(rows, "| at | target | code | step in flight | error |", "| ---: | --- | ---: | --- | --- |")
		wins := stepWindows(s.Steps)
		for _, f := range failures[:shown] {
			during := ""
			for k := range verify.Attribute([]load.Failure{f}, wins) {
				during = k
			}
			rows = append(rows, fmt.Sprintf("| +%.1fs | %s | %d | %s | %s |", f.Time.Sub(s.Started).Seconds(), mdCell(f.Target), f.Code,
				mdCell(during), messageCell(f.Error)))
		}
	}
	d.section(s.Scenario+" failures", rows)
}

// StepEvidence is what a step did, in one line: its outcome, the evidence of a fault (pods killed,
// node drained or lost), the time to restore of a rollback or a rolled-back canary or blue-green,
// the breach that rolled it back, and its error. It reads Did as the runner recorded it or as
// summary.json decoded it.
func StepEvidence(s Summary, st Step) string {
	var parts []string
	if o, ok := st.Did["outcome"].(string); ok && o != st.Status {
		parts = append(parts, o)
	}
	if kills, ok := didAs[[]verify.Kill](st.Did["kills"]); ok && len(kills) > 0 {
		var ks []string
		for _, k := range kills {
			ks = append(ks, k.String())
		}
		if len(kills) == 1 {
			parts = append(parts, ks[0])
		} else {
			parts = append(parts, fmt.Sprintf("%d kill rounds: %s", len(kills), strings.Join(verify.CapList(ks, 3), "; ")))
		}
	}
	if dr, ok := didAs[verify.Drain](st.Did["drain"]); ok {
		parts = append(parts, "drain "+dr.String())
	}
	if l, ok := didAs[verify.Loss](st.Did["loss"]); ok {
		parts = append(parts, "lost "+l.String())
	}
	if b, ok := st.Did["breach"].(string); ok && b != "" {
		parts = append(parts, "breach: "+FirstLine(b))
	}
	if t, ok := TimeToRestore(s, st); ok {
		parts = append(parts, fmt.Sprintf("restored in %.1fs", t))
	}
	if v, ok := st.Did["serves"].(string); ok && v != "" {
		parts = append(parts, "serves "+v)
	}
	if src, ok := st.Did["source"].(string); ok && src != "" {
		h, _ := st.Did["heading"].(string)
		parts = append(parts, fmt.Sprintf("block %q at %s", h, src))
	}
	if c, ok := number(st.Did["exit_code"]); ok {
		parts = append(parts, fmt.Sprintf("exit %d", int(c)))
	}
	if tail, ok := st.Did["output_tail"].(string); ok && tail != "" {
		parts = append(parts, "output: …"+lastLine(tail))
	}
	if sum, ok := st.Did["summary"].(string); ok && sum != "" {
		parts = append(parts, sum)
	}
	if st.Error != "" {
		parts = append(parts, "error: "+FirstLine(st.Error))
	}
	return strings.Join(parts, "; ")
}

// TimeToRestore is how long a step took to restore service, in seconds: a canary or blue-green
// that rolled back records it (Did["time_to_restore_s"]); a rollback drill's is measured by the
// rollback-drill check (its observed time_to_restore_s for that step).
func TimeToRestore(s Summary, st Step) (float64, bool) {
	if t, ok := number(st.Did["time_to_restore_s"]); ok {
		return t, true
	}
	for _, c := range s.Checks {
		if c.Name != "rollback-drill" {
			continue
		}
		if m, ok := didAs[map[string]any](c.Observed[st.Name]); ok {
			return number(m["time_to_restore_s"])
		}
	}
	return 0, false
}

// DrainSeconds is how long a node-drain step took to empty its node.
func DrainSeconds(st Step) (float64, bool) {
	d, ok := didAs[verify.Drain](st.Did["drain"])
	return d.DrainS, ok
}

// didAs reads a value of Did as T: as recorded in memory, or as JSON decoded it (maps and slices of
// any), through a JSON round trip.
func didAs[T any](v any) (T, bool) {
	var t T
	switch x := v.(type) {
	case nil:
		return t, false
	case T:
		return x, true
	case *T:
		if x == nil {
			return t, false
		}
		return *x, true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return t, false
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, false
	}
	return t, true
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// attribution is the failures by step in flight: what zero-failed-requests attributed (over every
// failure it saw), else the sampled failures attributed the same way.
func attribution(s Summary, failures []load.Failure) string {
	var by map[string]int
	for _, c := range s.Checks {
		if c.Name == "zero-failed-requests" {
			by, _ = didAs[map[string]int](c.Observed["attribution"])
		}
	}
	suffix := ""
	if len(by) == 0 && len(failures) > 0 {
		by = verify.Attribute(failures, stepWindows(s.Steps))
		if len(failures) < s.Load.Failed {
			suffix = fmt.Sprintf(" (of the first %d)", len(failures))
		}
	}
	var parts []string
	for k, n := range by {
		parts = append(parts, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ") + suffix
}

func stepWindows(steps []Step) []verify.Window {
	var out []verify.Window
	for _, st := range steps {
		out = append(out, verify.Window{Name: st.Name, Kind: st.Kind, Start: st.Started, End: st.Finished})
	}
	return out
}

// RetriedNote says how many requests the client had to resend, and how they were counted ("" for
// none).
func RetriedNote(l LoadSummary) string {
	switch {
	case l.Retried == 0:
		return ""
	case l.ClientRetries:
		return fmt.Sprintf("; %d resent after the server closed a reused connection before the response (counted as served: load.clientRetries allow)", l.Retried)
	}
	return fmt.Sprintf("; %d of the failed met a connection the server closed before the response (a retrying client would have resent them)", l.Retried)
}

func loadLine(s Summary) string {
	l := s.Load
	notSent := ""
	if l.NotSent > 0 {
		why := "client saturated"
		if lost := lostAgents(l.Agents); lost > 0 {
			why = "client saturated, or its load agent lost"
		}
		notSent = fmt.Sprintf(" (%d not sent: %s)", l.NotSent, why)
	}
	notSent += RetriedNote(l)
	took := ""
	if !s.Started.IsZero() {
		took = fmt.Sprintf(" over %.1fs", s.Finished.Sub(s.Started).Seconds())
	}
	return fmt.Sprintf("**Load:** %d requests, %d failed%s; %.1f of %.1f req/s achieved; p99 %s (p50 %s, max %s, from the scheduled send)%s%s",
		l.Requests, l.Failed, notSent, l.AchievedRate, l.TargetRate, latency(l.LatencyMS, "p99"), latency(l.LatencyMS, "p50"), latency(l.LatencyMS, "max"), took, AgentsNote(l))
}

func lostAgents(as []load.AgentReport) int {
	n := 0
	for _, a := range as {
		if a.Lost != "" {
			n++
		}
	}
	return n
}

// AgentsNote says where load from the cluster came from: how many load agents on how many nodes,
// how far their clocks were from the run's (at most, with the uncertainty of the measure), and how
// many were lost; "" for load from the host.
func AgentsNote(l LoadSummary) string {
	if len(l.Agents) == 0 {
		return ""
	}
	nodes := map[string]bool{}
	var off, unc float64
	for _, a := range l.Agents {
		nodes[a.Node] = true
		off = max(off, math.Abs(a.OffsetMS))
		unc = max(unc, a.RTTMS/2)
	}
	note := fmt.Sprintf("; sent from the cluster by %d load agents on %d nodes (clocks within %.1f ms ± %.1f ms of the run's)", len(l.Agents), len(nodes), off, unc)
	if n := lostAgents(l.Agents); n > 0 {
		note += fmt.Sprintf(", %d lost", n)
	}
	return note
}

func latency(m map[string]float64, k string) string {
	v, ok := m[k]
	if !ok || math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f ms", v)
}

func notPassing(cs []verify.Result) []verify.Result {
	var out []verify.Result
	for _, c := range cs {
		if c.Status != verify.Pass {
			out = append(out, c)
		}
	}
	return out
}

func passing(cs []verify.Result) []verify.Result {
	var out []verify.Result
	for _, c := range cs {
		if c.Status == verify.Pass {
			out = append(out, c)
		}
	}
	return out
}

func checkNames(cs []verify.Result) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s (%s)", c.Name, c.Status))
	}
	return verify.CapList(out, mdMaxNamed)
}

// namedList names results in bold with their status, up to mdMaxNamed.
func namedList(rs []verify.Result, one, many string) string {
	var out []string
	for i, r := range rs {
		if i == mdMaxNamed {
			what := many
			if len(rs)-i == 1 {
				what = one
			}
			out = append(out, fmt.Sprintf("and %d more %s", len(rs)-i, what))
			break
		}
		out = append(out, fmt.Sprintf("**%s** (%s)", mdCell(r.Name), r.Status))
	}
	return strings.Join(out, ", ")
}

func statusWord(s string) string {
	switch s {
	case "pass", "ok", "promoted", "rolled-back":
		return s
	case "":
		return "n/a"
	}
	return "**" + strings.ToUpper(s) + "**"
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

// messageCell is a message's first line for a table cell, saying how much of it was left out.
func messageCell(m string) string {
	first := FirstLine(m)
	more := ""
	switch rest := strings.Count(strings.TrimRight(m, "\n"), "\n"); rest {
	case 0:
	case 1:
		more = " (+1 more line)"
	default:
		more = fmt.Sprintf(" (+%d more lines)", rest)
	}
	return mdCell(first) + more
}

// mdCell makes text safe for a table cell: one line, markdown and HTML inert, at most mdMaxCell
// runes (how many more were cut is said).
func mdCell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	cut := ""
	if n := utf8.RuneCountInString(s); n > mdMaxCell {
		r := []rune(s)
		s = string(r[:mdMaxCell])
		cut = fmt.Sprintf("… (%d more characters)", n-mdMaxCell)
	}
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune("\\`*_[]<>|~#&!", c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String() + cut
}

// mdCode is a path as inline code (backticks in it cannot end the span early).
func mdCode(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}

func joinPath(dir, file string) string {
	return strings.TrimSuffix(dir, "/") + "/" + file
}

// mdDoc is a markdown document with a byte budget. Lines are written while they fit, keeping room
// for the closing note that says what was cut.
type mdDoc struct {
	b     strings.Builder
	limit int
	cut   []string
}

// mdReserve is kept free for the closing note.
const mdReserve = 3 << 10

func newMDDoc(limit int) *mdDoc { return &mdDoc{limit: limit} }

func (d *mdDoc) fits(s string) bool { return d.b.Len()+len(s)+1 <= d.limit-mdReserve }

func (d *mdDoc) full() bool { return !d.fits(strings.Repeat(" ", 512)) }

// head writes a line that must be there (verdicts, the load line); cut only at the hard limit.
func (d *mdDoc) head(s string) {
	if d.b.Len()+len(s)+1 > d.limit-mdReserve/2 {
		d.cut = append(d.cut, "a heading line")
		return
	}
	d.b.WriteString(s)
	d.b.WriteByte('\n')
}

func (d *mdDoc) line(s string) bool {
	if !d.fits(s) {
		return false
	}
	d.b.WriteString(s)
	d.b.WriteByte('\n')
	return true
}

// section writes lines while they fit and notes how many did not.
func (d *mdDoc) section(name string, lines []string) {
	for i, l := range lines {
		if !d.line(l) {
			d.cut = append(d.cut, fmt.Sprintf("%s: %d of %d lines left out", name, len(lines)-i, len(lines)))
			return
		}
	}
}

func (d *mdDoc) note(s string) { d.cut = append(d.cut, s) }

func (d *mdDoc) bytes() []byte {
	if len(d.cut) > 0 {
		note := "\n---\n*Cut to stay under 64 KB: " + strings.Join(verify.CapList(d.cut, 12), "; ") +
			". Everything is in summary.json and report.html.*\n"
		if len(note) > mdReserve {
			note = truncateBytes(note, mdReserve-8) + "…*\n"
		}
		d.b.WriteString(note)
	}
	return []byte(d.b.String())
}

// truncateBytes cuts s to at most n bytes on a rune boundary.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// lastLine is the last line of s.
func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// hostCommands shows each host command (a run step, a runbook block) that did not end ok: its
// heading and source line, the command, its exit and duration, and its output's tail, fenced.
func hostCommands(s Summary, h string) []string {
	var rows []string
	for _, st := range s.Steps {
		cmd, ok := st.Did["command"].(string)
		if !ok || st.Status == "ok" {
			continue
		}
		if rows == nil {
			rows = []string{"", h + "# Host commands that did not succeed"}
		}
		title := st.Name
		if src, _ := st.Did["source"].(string); src != "" {
			hd, _ := st.Did["heading"].(string)
			title = fmt.Sprintf("%s — %q at %s", st.Name, hd, src)
		}
		exit := "no exit"
		if c, ok := number(st.Did["exit_code"]); ok {
			exit = fmt.Sprintf("exit %d", int(c))
		}
		rows = append(rows, "", fmt.Sprintf("**%s**: %s, %s after %.1fs", mdCell(title), statusWord(st.Status), exit, st.Finished.Sub(st.Started).Seconds()), "", "```sh")
		rows = append(rows, fenced(verify.CapList(strings.Split(strings.TrimRight(cmd, "\n"), "\n"), 12))...)
		rows = append(rows, "```")
		if tail, _ := st.Did["output_tail"].(string); tail != "" {
			rows = append(rows, "", "Last lines of output:", "", "```")
			rows = append(rows, fenced(strings.Split(tail, "\n"))...)
			rows = append(rows, "```")
		}
	}
	return rows
}

// fenced keeps lines from closing the fence they are shown in.
func fenced(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.ReplaceAll(l, "```", "`\u200b``")
	}
	return out
}

// explanationRows are, for each burst of failed requests, what the cluster did in and just before it
// (a list under the burst), and what the recorder could not watch.
func explanationRows(s Summary) []string {
	var rows []string
	if len(s.Explanations) > 0 {
		rows = append(rows, "What the cluster did (cluster.jsonl has the whole timeline):", "")
	}
	for _, e := range s.Explanations {
		rows = append(rows, "- "+mdCell(e.Burst.String())+":")
		for _, l := range e.Lines {
			rows = append(rows, "  - "+mdCell(l))
		}
	}
	if n := len(s.Explanations); n > 0 && n == verify.MaxExplained {
		rows = append(rows, fmt.Sprintf("- (the first %d bursts are explained; summary.json has them, cluster.jsonl every change)", n))
	}
	for _, n := range s.ClusterNotes {
		rows = append(rows, "- "+mdCell(n))
	}
	if len(rows) > 0 {
		rows = append(rows, "")
	}
	return rows
}
