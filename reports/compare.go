package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rehearse-dev/rehearse/verify"
)

// Thresholds say how much worse a figure may get before Compare calls it a regression. Shares are
// fractions (0.2 is 20 %); an increase under the slack is noise whatever its share (3 ms to 4 ms is
// +33 % and means nothing).
type Thresholds struct {
	P99Increase     float64 // p99 over the run, and in each step's window
	P99SlackMS      float64
	FailedIncrease  int     // failed requests, over the run and in each step's window
	RateDrop        float64 // achieved rate (its share of the target when the targets differ)
	RestoreIncrease float64 // time to restore of a rollback drill, a canary or a blue-green rolled back
	DrainIncrease   float64 // time a node drain took to empty its node
	TimeSlackS      float64 // restore and drain times
}

// DefaultThresholds: p99 +20 % (and 5 ms), any more failed requests, achieved rate -5 %, time to
// restore +20 % and drain time +50 % (and 2 s: both are measured to about a second).
func DefaultThresholds() Thresholds {
	return Thresholds{P99Increase: 0.20, P99SlackMS: 5, FailedIncrease: 0, RateDrop: 0.05, RestoreIncrease: 0.20, DrainIncrease: 0.50, TimeSlackS: 2}
}

// ChangeKind classifies a change between two runs.
type ChangeKind string

const (
	Regression  ChangeKind = "regression"
	Improvement ChangeKind = "improvement"
	Changed     ChangeKind = "changed" // a move that is neither (fail → error), or a check only in one run
	Same        ChangeKind = "same"    // within the thresholds
)

// Change is one figure or check compared.
type Change struct {
	Scenario  string
	What      string // "check zero-failed-requests", "p99", "p99 during rollout", "failed requests", ...
	Base, New string // the values, rendered
	Delta     string // "+400% (limit +20%)", "" for checks
	Kind      ChangeKind
	Note      string // a check's message headline in the new run, when it regressed
}

func (c Change) String() string {
	s := fmt.Sprintf("%s: %s → %s", c.What, c.Base, c.New)
	if c.Delta != "" {
		s += " (" + c.Delta + ")"
	}
	return s
}

// ScenarioDiff is one scenario compared, or one found in only one of the runs.
type ScenarioDiff struct {
	Name string
	// BaseName is the base's scenario name when it differs (two single runs are compared whatever
	// their names).
	BaseName                string
	OnlyIn                  string // "base" or "new" when the other run has no such scenario
	BaseVerdict, NewVerdict string
	Changes                 []Change
}

// Comparison is two runs (single scenarios or suites) compared, scenario by scenario.
type Comparison struct {
	Thresholds Thresholds
	Scenarios  []ScenarioDiff
}

// Regressions are the changes that make compare exit 1.
func (c Comparison) Regressions() []Change { return c.of(Regression) }

// Improvements are the changes for the better.
func (c Comparison) Improvements() []Change { return c.of(Improvement) }

func (c Comparison) of(k ChangeKind) []Change {
	var out []Change
	for _, s := range c.Scenarios {
		for _, ch := range s.Changes {
			if ch.Kind == k {
				out = append(out, ch)
			}
		}
	}
	return out
}

// Compare matches the scenarios of two runs by name (two single scenarios are compared whatever
// their names) and compares each: every check's status (pass → fail or error is a regression, the
// reverse an improvement), failed requests, p99 over the run and in each step's window, the achieved
// rate, each rollback's, canary's or blue-green's time to restore, and each drain's time. A scenario
// in only one of the runs is reported, not compared.
func Compare(base, new []Summary, th Thresholds) Comparison {
	c := Comparison{Thresholds: th}
	if len(base) == 1 && len(new) == 1 {
		d := compareScenario(base[0], new[0], th)
		c.Scenarios = append(c.Scenarios, d)
		return c
	}
	byName := map[string]Summary{}
	for _, s := range new {
		byName[s.Scenario] = s
	}
	seen := map[string]bool{}
	for _, b := range base {
		seen[b.Scenario] = true
		n, ok := byName[b.Scenario]
		if !ok {
			c.Scenarios = append(c.Scenarios, ScenarioDiff{Name: b.Scenario, OnlyIn: "base", BaseVerdict: b.Verdict})
			continue
		}
		c.Scenarios = append(c.Scenarios, compareScenario(b, n, th))
	}
	for _, n := range new {
		if !seen[n.Scenario] {
			c.Scenarios = append(c.Scenarios, ScenarioDiff{Name: n.Scenario, OnlyIn: "new", NewVerdict: n.Verdict})
		}
	}
	return c
}

func compareScenario(b, n Summary, th Thresholds) ScenarioDiff {
	d := ScenarioDiff{Name: n.Scenario, BaseVerdict: b.Verdict, NewVerdict: n.Verdict}
	if b.Scenario != n.Scenario {
		d.BaseName = b.Scenario
	}
	add := func(ch Change) {
		ch.Scenario = d.Name
		d.Changes = append(d.Changes, ch)
	}

	// Checks, in the new run's order, then those only the base ran.
	baseChecks := map[string]verify.Result{}
	for _, c := range b.Checks {
		baseChecks[c.Name] = c
	}
	newChecks := map[string]bool{}
	for _, c := range n.Checks {
		newChecks[c.Name] = true
		was, ok := baseChecks[c.Name]
		ch := Change{What: "check " + c.Name, Base: "absent", New: string(c.Status)}
		switch {
		case !ok && c.Status == verify.Pass:
			ch.Kind = Changed
		case !ok:
			ch.Kind, ch.Note = Regression, FirstLine(c.Message) // a step-NAME check appears when a step fails
		case was.Status == c.Status:
			ch.Base, ch.Kind = string(was.Status), Same
		case was.Status == verify.Pass:
			ch.Base, ch.Kind, ch.Note = string(was.Status), Regression, FirstLine(c.Message)
		case c.Status == verify.Pass:
			ch.Base, ch.Kind = string(was.Status), Improvement
		default:
			ch.Base, ch.Kind, ch.Note = string(was.Status), Changed, FirstLine(c.Message)
		}
		add(ch)
	}
	for _, c := range b.Checks {
		if !newChecks[c.Name] {
			ch := Change{What: "check " + c.Name, Base: string(c.Status), New: "absent", Kind: Changed}
			if c.Status != verify.Pass {
				ch.Kind = Improvement // a step-NAME check gone: the step no longer fails
			}
			add(ch)
		}
	}

	// The load over the run.
	add(countChange("failed requests", b.Load.Failed, n.Load.Failed, th.FailedIncrease))
	if bp, ok := b.Load.LatencyMS["p99"]; ok {
		if np, ok := n.Load.LatencyMS["p99"]; ok {
			add(growth("p99", bp, np, th.P99Increase, th.P99SlackMS, "%.1f ms"))
		}
	}
	add(rateChange(b.Load, n.Load, th.RateDrop))

	// Step by step (matched by name): their share of the load, restores and drains.
	baseSteps := map[string]Step{}
	for _, st := range b.Steps {
		baseSteps[st.Name] = st
	}
	for _, st := range n.Steps {
		was, ok := baseSteps[st.Name]
		if !ok {
			continue
		}
		if was.Load != nil && st.Load != nil && was.Load.Requests > 0 && st.Load.Requests > 0 {
			add(growth("p99 during "+st.Name, was.Load.P99MS, st.Load.P99MS, th.P99Increase, th.P99SlackMS, "%.1f ms"))
			add(countChange("failed during "+st.Name, was.Load.Failed, st.Load.Failed, th.FailedIncrease))
		}
		bt, bok := TimeToRestore(b, was)
		nt, nok := TimeToRestore(n, st)
		switch {
		case bok && nok:
			add(growth("time to restore ("+st.Name+")", bt, nt, th.RestoreIncrease, th.TimeSlackS, "%.1f s"))
		case bok && restoredFlag(n, st) == "no":
			add(Change{What: "time to restore (" + st.Name + ")", Base: fmt.Sprintf("%.1f s", bt), New: "never restored", Kind: Regression})
		}
		if bd, ok := DrainSeconds(was); ok {
			if nd, ok := DrainSeconds(st); ok {
				add(growth("drain time ("+st.Name+")", bd, nd, th.DrainIncrease, th.TimeSlackS, "%.1f s"))
			}
		}
	}
	return d
}

// restoredFlag is what the rollback-drill check said of a drill: "yes", "no", or "" (not judged).
func restoredFlag(s Summary, st Step) string {
	for _, c := range s.Checks {
		if c.Name != "rollback-drill" {
			continue
		}
		if m, ok := didAs[map[string]any](c.Observed[st.Name]); ok {
			if r, ok := m["restored"].(bool); ok {
				if r {
					return "yes"
				}
				return "no"
			}
		}
	}
	return ""
}

// growth compares a figure where more is worse (latency, times): a regression when it grew by more
// than share and by more than slack, an improvement when it shrank as much.
func growth(what string, b, n, share, slack float64, format string) Change {
	ch := Change{What: what, Base: fmt.Sprintf(format, b), New: fmt.Sprintf(format, n), Kind: Same,
		Delta: fmt.Sprintf("%s, limit +%s and +"+format, pct(b, n), pctOf(share), slack)}
	switch {
	case n > b*(1+share) && n-b > slack:
		ch.Kind = Regression
	case b > n*(1+share) && b-n > slack:
		ch.Kind = Improvement
	}
	return ch
}

// countChange compares a count where more is worse (failed requests): a regression when it grew by
// more than allowed, an improvement when it fell.
func countChange(what string, b, n, allowed int) Change {
	ch := Change{What: what, Base: fmt.Sprint(b), New: fmt.Sprint(n), Kind: Same, Delta: fmt.Sprintf("%+d, limit +%d", n-b, allowed)}
	switch {
	case n-b > allowed:
		ch.Kind = Regression
	case n < b:
		ch.Kind = Improvement
	}
	return ch
}

// rateChange compares the achieved rates; when the targets differ, their shares of the target.
func rateChange(b, n LoadSummary, drop float64) Change {
	ch := Change{What: "achieved rate", Base: fmt.Sprintf("%.1f req/s", b.AchievedRate), New: fmt.Sprintf("%.1f req/s", n.AchievedRate), Kind: Same}
	bv, nv := b.AchievedRate, n.AchievedRate
	if b.TargetRate > 0 && n.TargetRate > 0 && b.TargetRate != n.TargetRate {
		bv, nv = b.AchievedRate/b.TargetRate, n.AchievedRate/n.TargetRate
		ch.What = "achieved share of the target rate"
		ch.Base = fmt.Sprintf("%.1f%% of %.1f req/s", 100*bv, b.TargetRate)
		ch.New = fmt.Sprintf("%.1f%% of %.1f req/s", 100*nv, n.TargetRate)
	}
	ch.Delta = fmt.Sprintf("%s, limit -%s", pct(bv, nv), pctOf(drop))
	switch {
	case nv < bv*(1-drop):
		ch.Kind = Regression
	case bv < nv*(1-drop):
		ch.Kind = Improvement
	}
	return ch
}

func pct(b, n float64) string {
	if b == 0 {
		if n == 0 {
			return "+0.0%"
		}
		return "from 0"
	}
	d := 100 * (n - b) / b
	if math.Abs(d) < 10 {
		return fmt.Sprintf("%+.1f%%", d)
	}
	return fmt.Sprintf("%+.0f%%", d)
}

func pctOf(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", 100*f), "0"), ".") + "%"
}

// Text renders the comparison for a terminal: a headline with the counts, then per scenario its
// verdicts, every regression, improvement and change, the figures that stayed within their
// thresholds, and how many checks did not change.
func (c Comparison) Text(w io.Writer, baseLabel, newLabel string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "rehearse compare %s → %s: %s\n", baseLabel, newLabel, c.headline())
	for _, s := range c.Scenarios {
		b.WriteString("\n")
		switch s.OnlyIn {
		case "base":
			fmt.Fprintf(&b, "%s: only in %s (verdict %s), not compared\n", s.Name, baseLabel, s.BaseVerdict)
			continue
		case "new":
			fmt.Fprintf(&b, "%s: only in %s (verdict %s), not compared\n", s.Name, newLabel, s.NewVerdict)
			continue
		}
		name := s.Name
		if s.BaseName != "" {
			name = s.BaseName + " → " + s.Name
		}
		fmt.Fprintf(&b, "%s: verdict %s → %s\n", name, s.BaseVerdict, s.NewVerdict)
		same := 0
		for _, k := range []ChangeKind{Regression, Improvement, Changed, Same} {
			for _, ch := range s.Changes {
				if ch.Kind != k {
					continue
				}
				if k == Same && strings.HasPrefix(ch.What, "check ") {
					same++
					continue
				}
				label := string(k)
				if k == Regression {
					label = "REGRESSION"
				}
				fmt.Fprintf(&b, "  %-12s %s\n", label, ch)
				if ch.Note != "" {
					fmt.Fprintf(&b, "  %-12s   %s\n", "", ch.Note)
				}
			}
		}
		if same > 0 {
			fmt.Fprintf(&b, "  %-12s %d checks unchanged\n", "same", same)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (c Comparison) headline() string {
	reg, imp := len(c.Regressions()), len(c.Improvements())
	s := fmt.Sprintf("%s, %s", plural(reg, "regression"), plural(imp, "improvement"))
	compared, only := 0, 0
	for _, sc := range c.Scenarios {
		if sc.OnlyIn != "" {
			only++
		} else {
			compared++
		}
	}
	s += fmt.Sprintf(" in %s compared", plural(compared, "scenario"))
	if only > 0 {
		s += fmt.Sprintf(" (%d in only one run)", only)
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Markdown renders the comparison for a PR comment: the regressions named on the first lines, then
// a table of everything that moved and the figures compared, under MaxMarkdownBytes.
func (c Comparison) Markdown(baseLabel, newLabel string) []byte {
	d := newMDDoc(MaxMarkdownBytes)
	verdict := "no regression"
	if n := len(c.Regressions()); n > 0 {
		verdict = strings.ToUpper(plural(n, "regression"))
	}
	d.head(fmt.Sprintf("## rehearse compare: %s", verdict))
	d.head(fmt.Sprintf("%s → %s: %s.", mdCode(baseLabel), mdCode(newLabel), c.headline()))
	if regs := c.Regressions(); len(regs) > 0 {
		var named []string
		for _, r := range regs {
			named = append(named, "**"+mdCell(r.Scenario)+"**: "+mdCell(r.String()))
		}
		d.head("")
		d.head("**Regressions:** " + strings.Join(verify.CapList(named, mdMaxNamed), "; "))
	}
	var only []string
	for _, s := range c.Scenarios {
		switch s.OnlyIn {
		case "base":
			only = append(only, fmt.Sprintf("%s (only in base)", mdCell(s.Name)))
		case "new":
			only = append(only, fmt.Sprintf("%s (only in new)", mdCell(s.Name)))
		}
	}
	if len(only) > 0 {
		d.head("")
		d.head("Not compared: " + strings.Join(verify.CapList(only, 20), ", "))
	}
	rows := []string{"", "| scenario | what | base | new | change | |", "| --- | --- | --- | --- | --- | --- |"}
	for _, k := range []ChangeKind{Regression, Improvement, Changed, Same} {
		for _, s := range c.Scenarios {
			for _, ch := range s.Changes {
				if ch.Kind != k || (k == Same && strings.HasPrefix(ch.What, "check ")) {
					continue
				}
				what := mdCell(ch.What)
				if ch.Note != "" {
					what += ": " + mdCell(ch.Note)
				}
				rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s |", mdCell(s.Name), what, mdCell(ch.Base), mdCell(ch.New), mdCell(ch.Delta), kindWord(k)))
			}
		}
	}
	d.section("comparison table", rows)
	return d.bytes()
}

// kindWord shows a regression in bold capitals, the rest plainly.
func kindWord(k ChangeKind) string {
	if k == Regression {
		return "**REGRESSION**"
	}
	return string(k)
}

// ReadSummaries reads what compare is given: a summary.json file, a scenario's report directory
// (holding summary.json), or a suite's (holding a directory per scenario). Two summaries of one
// scenario in a suite are refused: they cannot be matched.
func ReadSummaries(path string) ([]Summary, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		s, err := readSummary(path)
		if err != nil {
			return nil, err
		}
		return []Summary{s}, nil
	}
	if one := filepath.Join(path, "summary.json"); fileExists(one) {
		s, err := readSummary(one)
		if err != nil {
			return nil, err
		}
		return []Summary{s}, nil
	}
	files, err := filepath.Glob(filepath.Join(path, "*", "summary.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no summary.json in it or in a directory under it", path)
	}
	sort.Strings(files)
	var out []Summary
	where := map[string]string{}
	var errs []error
	for _, f := range files {
		s, err := readSummary(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, ok := where[s.Scenario]; ok {
			errs = append(errs, fmt.Errorf("%s and %s are both scenario %q", prev, f, s.Scenario))
			continue
		}
		where[s.Scenario] = f
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

func readSummary(file string) (Summary, error) {
	var s Summary
	b, err := os.ReadFile(file)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %v", file, err)
	}
	if s.Scenario == "" {
		return s, fmt.Errorf("%s: not a rehearse summary (no scenario)", file)
	}
	return s, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
