//go:build e2e

package e2e

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/reports"
)

// The recap: every rehearsal whose test failed, told again in a few lines after the whole suite ran,
// so that a CI log read from its end (or cut to a part) still says which rehearsal failed and how.
// Parallel subtests interleave their output; the recap does not. The failed rehearsal's reports are
// kept under out/e2e-failed/ (the test's own directory goes with it).
var recap struct {
	sync.Mutex
	blocks []string
	// hosts is one line per rehearsal, passed or failed: the host's load while its load ran. With
	// the suite's own line (printRecap) it is the measurement behind how many rehearsals run at once.
	hosts []string
	// walls is each rehearsal's wall time (deploy, load, verdict) and its load's: where the suite's
	// time goes, printed longest first.
	walls []wall
}

type wall struct {
	name string
	phases
}

// phases is where a rehearsal's wall time went: up to its load (the cluster checked, the workload
// deployed), the load, then judging (checks, logs, reports) and the teardown (its namespace deleted
// and gone).
type phases struct {
	total, before, run, judge, teardown time.Duration
}

func phasesOf(began time.Time, took time.Duration, sum *reports.Summary, teardownAt time.Time) phases {
	p := phases{total: took}
	if sum == nil || sum.Started.IsZero() {
		return p
	}
	p.before, p.run = sum.Started.Sub(began), sum.Finished.Sub(sum.Started)
	end := began.Add(took)
	if !teardownAt.IsZero() && teardownAt.After(sum.Finished) {
		p.judge, p.teardown = teardownAt.Sub(sum.Finished), end.Sub(teardownAt)
	} else {
		p.judge = end.Sub(sum.Finished)
	}
	return p
}

// lineTime is a progress writer that keeps when a line with prefix was first written, and calls
// then (if set) at that moment.
type lineTime struct {
	prefix string
	then   func()
	mu     sync.Mutex
	when   time.Time
}

func (l *lineTime) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.when.IsZero() && strings.Contains(string(b), l.prefix) {
		l.when = time.Now()
		if l.then != nil {
			l.then()
		}
	}
	return len(b), nil
}

func (l *lineTime) at() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.when
}

// recapOnFailure registers, for a test that ran a rehearsal, a recap block written if the test fails.
func recapOnFailure(t *testing.T, sum *reports.Summary, code int, dir string, p phases) {
	recap.Lock()
	recap.walls = append(recap.walls, wall{t.Name(), p})
	recap.Unlock()
	t.Cleanup(func() {
		if sum.Host != nil {
			recap.Lock()
			recap.hosts = append(recap.hosts, fmt.Sprintf("%s (exit %d, %d requests, %d failed, %d resent by the transport): %s",
				t.Name(), code, sum.Load.Requests, sum.Load.Failed, sum.Load.Retried, sum.Host.Line()))
			recap.Unlock()
		}
		if !t.Failed() {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s: scenario %s, exit %d, verdict %s\n", t.Name(), sum.Scenario, code, sum.Verdict)
		// The host's load while the load ran: a reviewer tells a sick system from a sick runner.
		if sum.Host != nil {
			fmt.Fprintf(&b, "  %s\n", sum.Host.Line())
		}
		for _, w := range sum.Warnings {
			fmt.Fprintf(&b, "  warning: %s\n", w)
		}
		for _, c := range sum.Checks {
			fmt.Fprintf(&b, "  check %-22s %-5s %s\n", c.Name, c.Status, reports.FirstLine(c.Message))
		}
		for _, s := range sum.Steps {
			fmt.Fprintf(&b, "  step  %-22s %-11s +%5.1fs %5.1fs %s\n", s.Name, s.Status, s.Started.Sub(sum.Started).Seconds(),
				s.Finished.Sub(s.Started).Seconds(), reports.FirstLine(s.Error))
		}
		// What the first failures were: the cause of a red sound rehearsal is read here when the
		// kept reports are on a machine one cannot reach.
		for _, l := range firstFailures(dir) {
			fmt.Fprintf(&b, "  %s\n", l)
		}
		for _, l := range logHighlights(filepath.Join(dir, "pods"), 40) {
			fmt.Fprintf(&b, "  %s\n", l)
		}
		if kept, err := keepReports(t, dir); err == nil {
			fmt.Fprintf(&b, "  reports kept in %s\n", kept)
		}
		recap.Lock()
		recap.blocks = append(recap.blocks, b.String())
		recap.Unlock()
	})
}

// firstFailures is the "First failures" section of the run's summary.md (its heading, attribution
// and table rows), or nothing.
func firstFailures(dir string) []string {
	b, err := os.ReadFile(filepath.Join(dir, "summary.md"))
	if err != nil {
		return nil
	}
	var out []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.Contains(l, "# First failures"):
			in = true
		case in && strings.HasPrefix(l, "#"):
			return out
		}
		if in && strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// logHighlights are the lines of a failed rehearsal's kept container logs that say something went
// wrong or was slow (errors, fatals, PostgreSQL's slow statements, lock waits and checkpoints),
// prefixed with their file, at most max in all.
func logHighlights(dir string, max int) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, "ERROR") && !strings.Contains(l, "FATAL") && !strings.Contains(l, "PANIC") &&
				!strings.Contains(l, "duration:") && !strings.Contains(l, "lock") && !strings.Contains(l, "checkpoint") &&
				!strings.Contains(l, "panic:") {
				continue
			}
			if len(out) == max {
				return append(out, "(more in the kept reports' pods/)")
			}
			out = append(out, fmt.Sprintf("log %s: %s", strings.TrimSuffix(filepath.Base(f), ".log"), reports.FirstLine(l)))
		}
	}
	return out
}

// keepReports copies a failed rehearsal's report directory to out/e2e-failed/<test>.
func keepReports(t *testing.T, dir string) (string, error) {
	dst, err := filepath.Abs(filepath.Join("..", "out", "e2e-failed", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())))
	if err != nil {
		return "", err
	}
	if err := os.RemoveAll(dst); err != nil { // os.CopyFS does not overwrite
		return "", err
	}
	return dst, os.CopyFS(dst, os.DirFS(dir))
}

func printRecap(w io.Writer, suite load.HostLoad) {
	recap.Lock()
	defer recap.Unlock()
	fmt.Fprintf(w, "\n=== e2e host load, whole suite: %s\n", suite.Line())
	for _, h := range recap.hosts {
		fmt.Fprintf(w, "  %s\n", h)
	}
	ws := slices.SortedFunc(slices.Values(recap.walls), func(a, b wall) int { return cmp.Compare(b.total, a.total) })
	var sum phases
	for _, r := range ws {
		sum.total, sum.before, sum.run, sum.judge, sum.teardown = sum.total+r.total, sum.before+r.before, sum.run+r.run, sum.judge+r.judge, sum.teardown+r.teardown
	}
	fmt.Fprintf(w, "\n=== e2e rehearsals by wall time: %d, %s in all: %s up to the load (deploys), %s under load, %s judging, %s tearing down\n",
		len(ws), sum.total.Round(time.Second), sum.before.Round(time.Second), sum.run.Round(time.Second), sum.judge.Round(time.Second), sum.teardown.Round(time.Second))
	for _, r := range ws {
		fmt.Fprintf(w, "  %6.1fs  before %5.1fs  load %5.1fs  judge %4.1fs  teardown %4.1fs  %s\n",
			r.total.Seconds(), r.before.Seconds(), r.run.Seconds(), r.judge.Seconds(), r.teardown.Seconds(), r.name)
	}
	printOccupancy(w)
	if len(recap.blocks) == 0 {
		return
	}
	fmt.Fprintf(w, "\n=== e2e recap: %d rehearsal(s) whose test failed\n", len(recap.blocks))
	for _, b := range recap.blocks {
		fmt.Fprint(w, b)
	}
}

// printOccupancy says, second by second from the first test to the last, how many of the pool's
// slots were taken, and when the fault lane was done: the seconds with a slot idle are what a
// better order of the tests could win.
func printOccupancy(w io.Writer) {
	slots.Lock()
	defer slots.Unlock()
	if slots.start.IsZero() || len(slots.busy["pool"]) == 0 {
		return
	}
	end := slots.start
	for _, iv := range slices.Concat(slots.busy["pool"], slots.busy["lane"]) {
		if iv[1].After(end) {
			end = iv[1]
		}
	}
	n := int(end.Sub(slots.start)/time.Second) + 1
	taken := make([]float64, n)
	for _, iv := range slots.busy["pool"] {
		for s := range n {
			lo := slots.start.Add(time.Duration(s) * time.Second)
			hi := lo.Add(time.Second)
			if a, b := later(lo, iv[0]), earlier(hi, iv[1]); b.After(a) {
				taken[s] += b.Sub(a).Seconds()
			}
		}
	}
	bySlots := make([]int, poolSize()+1)
	for _, x := range taken {
		bySlots[min(int(x+0.5), poolSize())]++
	}
	var parts []string
	for k, c := range bySlots {
		parts = append(parts, fmt.Sprintf("%d taken %d s", k, c))
	}
	fmt.Fprintf(w, "\n=== e2e occupancy: %d s from the first test to the last; pool of %d: %s", n, poolSize(), strings.Join(parts, ", "))
	if lane := slots.busy["lane"]; len(lane) > 0 {
		fmt.Fprintf(w, "; the fault lane done at +%.0fs", lane[len(lane)-1][1].Sub(slots.start).Seconds())
	}
	fmt.Fprintln(w)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
