package reports

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/verify"
)

// mdRun is sampleRun with what summary.md must also render: a killed pod, a canary rolled back,
// the check's attribution, the per-step load.
func mdRun() *Run {
	r := sampleRun()
	t0 := r.Summary.Started
	r.Summary.ScenarioFile = "scenarios/smoke.yaml"
	r.Summary.ReplayOf = "smoke-42-abc"
	r.Summary.Checks[0].Observed = map[string]any{"attribution": map[string]int{"scale-to-zero": 12}}
	r.Summary.Steps[0].Load = &StepLoad{Requests: 150, Failed: 12, P50MS: 3, P99MS: 812.5}
	r.Summary.Steps = append(r.Summary.Steps,
		Step{Name: "kill", Kind: "fault/pod-kill", Status: "ok", Started: t0.Add(2 * time.Second), Finished: t0.Add(4 * time.Second),
			Did: map[string]any{"kills": []verify.Kill{{AtS: 2, Pods: []string{"orders-1"}, Matched: 3, Gone: true, Replaced: true, ReplacedInS: 3.2}}}},
		Step{Name: "canary", Kind: "migrate/canary", Status: "rolled-back", Started: t0.Add(9 * time.Second), Finished: t0.Add(11 * time.Second),
			Did: map[string]any{"outcome": "rolled-back", "breach": "gate 10%: 9 of 40 failed\nmore", "time_to_restore_s": 4.5, "serves": "v1"}})
	return r
}

func TestMarkdownPutsTheVerdictFirst(t *testing.T) {
	md := string(Markdown(mdRun(), "out/smoke/report.html"))
	lines := strings.Split(md, "\n")
	// The first screen: the verdict and every check that did not pass, by name.
	first := strings.Join(lines[:4], "\n")
	for _, want := range []string{"## smoke: FAIL", "**Verdict: fail.** 2 of 3 checks did not pass", "**zero-failed-requests** (fail)", "**replica-checksums** (error)"} {
		if !strings.Contains(first, want) {
			t.Errorf("first lines lack %q:\n%s", want, first)
		}
	}
	for _, want := range []string{
		"**Load:** 600 requests, 12 failed; 49.8 of 50.0 req/s achieved; p99 20.0 ms",
		"full report `out/smoke/report.html`", "scenario `scenarios/smoke.yaml`",
		"a replay of run `smoke-42-abc` · rerun it with `rehearse run --replay out/smoke`",
		// checks, those not passing first, with their first line and what was left out
		"| **FAIL** | zero-failed-requests | 12 of 600 requests failed (+1 more line) |",
		"| **ERROR** | replica-checksums | could not compute checksums: \\<exec\\> failed \\& more |",
		"| pass | load-achieved | achieved 49.8 req/s |",
		// steps: kind, start, duration, load, what they did
		"| scale-to-zero | exec | ok | +5.0s | 3.0s | 812.5 ms | 12 |",
		"| drain | fault/node-drain | ok | +8.0s | 2.0s |", "drain w1: 1 pods evicted in 1.5s, emptied, uncordoned",
		"| 2.0s |  |  | at 2.0s killed orders-1 (of 3), replaced in 3.2s",
		"| canary | migrate/canary | rolled-back | +9.0s | 2.0s |", "breach: gate 10%: 9 of 40 failed; restored in 4.5s; serves v1",
		// failures with the step in flight
		"# First failures (1 of 12)", "By step in flight: scale-to-zero: 12",
		"| +6.5s | write | 503 | scale-to-zero | no endpoints |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "Cut to stay") {
		t.Errorf("a small run was cut:\n%s", md)
	}
}

// A run of any length stays under the limit, keeps its verdict on top, and says what it cut.
func TestMarkdownStaysUnder64KB(t *testing.T) {
	r := mdRun()
	t0 := r.Summary.Started
	long := strings.Repeat("x|<y> ", 2000)
	for i := range 500 {
		r.Summary.Checks = append(r.Summary.Checks, verify.Result{Name: fmt.Sprintf("step-s%d", i), Status: verify.Fail, Message: long + "\n" + long})
		r.Summary.Steps = append(r.Summary.Steps, Step{Name: fmt.Sprintf("s%d", i), Kind: "exec", Status: "failed",
			Started: t0, Finished: t0.Add(time.Second), Error: long})
	}
	for i := range load.MaxFailureSamples {
		r.Failures = append(r.Failures, load.Failure{Time: t0.Add(time.Duration(i) * time.Millisecond), Target: "write", Code: 500, Error: long})
	}
	r.Summary.Load.Failed = 100000
	b := Markdown(r, "out/smoke/report.html")
	if len(b) > MaxMarkdownBytes || len(b) >= 64<<10 {
		t.Fatalf("summary.md is %d bytes, over %d", len(b), MaxMarkdownBytes)
	}
	md := string(b)
	if !strings.HasPrefix(md, "## smoke: FAIL\n**Verdict: fail.** 502 of 503 checks did not pass: **zero-failed-requests** (fail), **replica-checksums** (error)") ||
		!strings.Contains(strings.SplitN(md, "\n", 3)[1], "and 494 more checks") {
		t.Errorf("verdict not on top:\n%.600s", md)
	}
	for _, want := range []string{"more characters)", "Cut to stay under 64 KB:", "smoke checks: 60 of 503 shown", "# First failures (10 of 100000)"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary.md lacks %q", want)
		}
	}
	// Every table row has its columns: a pipe in a message does not open a new one.
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "| **FAIL** | step-s") {
			if n := strings.Count(strings.ReplaceAll(l, `\|`, ""), "|"); n != 4 {
				t.Fatalf("row with %d unescaped pipes: %.200s", n, l)
			}
		}
	}
}

// A summary read back from summary.json renders the steps' evidence as the run's own did.
func TestStepEvidenceFromJSON(t *testing.T) {
	s := mdRun().Summary
	s.Checks = append(s.Checks, verify.Result{Name: "rollback-drill", Status: verify.Pass,
		Observed: map[string]any{"undo": map[string]any{"restored": true, "time_to_restore_s": 7.25}}})
	s.Steps = append(s.Steps, Step{Name: "undo", Kind: "rollback", Status: "ok", Started: s.Started, Finished: s.Finished, Did: map[string]any{"serves": "v1"}},
		Step{Name: "crash", Kind: "fault/node-loss", Status: "ok", Did: map[string]any{"loss": verify.Loss{Node: "w2", AtS: 3, Pods: []string{"a"}}}})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Summary
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for i, st := range s.Steps {
		mem, disk := StepEvidence(s, st), StepEvidence(back, back.Steps[i])
		if mem != disk {
			t.Errorf("%s: %q in memory, %q from JSON", st.Name, mem, disk)
		}
	}
	want := map[string]string{"undo": "restored in 7.2s; serves v1", "crash": "lost w2 stopped at 3.0s (1 pods on it), never NotReady, never started, never Ready"}
	for i, st := range back.Steps {
		if w, ok := want[st.Name]; ok && StepEvidence(back, back.Steps[i]) != w {
			t.Errorf("%s: %q, want %q", st.Name, StepEvidence(back, back.Steps[i]), w)
		}
	}
	if d, ok := DrainSeconds(back.Steps[1]); !ok || d != 1.5 {
		t.Errorf("drain seconds from JSON: %v %v", d, ok)
	}
	if _, ok := DrainSeconds(back.Steps[0]); ok {
		t.Error("a step without a drain has a drain time")
	}
}

func TestSuiteMarkdown(t *testing.T) {
	a := mdRun().Summary
	ok := Summary{Scenario: "canary-orders", Verdict: VerdictPass, Started: a.Started, Finished: a.Finished,
		Checks: []verify.Result{{Name: "zero-failed-requests", Status: verify.Pass, Message: "0 failed"}}, Load: LoadSummary{Requests: 500}}
	broken := Summary{Scenario: "own-web", Verdict: VerdictError, Checks: []verify.Result{{Name: "harness", Status: verify.Error, Message: "no cluster"}}}
	md := string(SuiteMarkdown([]SuiteEntry{{a, "out/smoke"}, {ok, "out/canary-orders"}, {broken, ""}}))
	lines := strings.Split(md, "\n")
	if lines[0] != "# rehearse: FAIL — 1 of 3 scenarios passed" || !strings.HasPrefix(lines[1], "**Not passing:** **smoke** (fail), **own-web** (error)") {
		t.Errorf("suite verdict:\n%.300s", md)
	}
	for _, want := range []string{
		"| smoke | **FAIL** | zero-failed-requests (fail), replica-checksums (error) | 600 | 12 | 20.0 ms | `out/smoke/summary.md` |",
		"| canary-orders | pass |  | 500 | 0 | n/a | `out/canary-orders/summary.md` |",
		"| own-web | **ERROR** | harness (error) | 0 | 0 | n/a | (no reports: it could not run) |",
		"## smoke: FAIL", "## canary-orders: PASS", "**Verdict: pass.** All 1 checks passed.", "## own-web: ERROR",
		"full report `out/smoke/report.html`", "|\n\nFirst failures: `out/smoke/summary.md`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("suite summary.md lacks %q:\n%s", want, md)
		}
	}

	// A suite of many long scenarios stays under the limit and names those it could not show.
	var many []SuiteEntry
	big := mdRun().Summary
	for i := range 60 {
		big.Checks = append(big.Checks, verify.Result{Name: fmt.Sprintf("c%d", i), Status: verify.Fail, Message: strings.Repeat("y", 1000)})
	}
	for i := range 150 {
		s := big
		s.Scenario = fmt.Sprintf("sc-%03d", i)
		many = append(many, SuiteEntry{s, "out/" + s.Scenario})
	}
	b := SuiteMarkdown(many)
	if len(b) > MaxMarkdownBytes {
		t.Fatalf("suite summary.md is %d bytes", len(b))
	}
	for _, want := range []string{"# rehearse: FAIL — 0 of 150 scenarios passed", "scenario table: 100 of 150 scenarios shown", "scenarios not shown: sc-0", "Cut to stay under 64 KB"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("big suite lacks %q", want)
		}
	}
}

func TestWriteWritesSummaryMD(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "smoke")
	if err := Write(dir, mdRun()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "full report `" + filepath.Join(dir, "report.html") + "`"; !strings.HasPrefix(string(b), "## smoke: FAIL") || !strings.Contains(string(b), want) {
		t.Errorf("summary.md lacks the verdict or %q:\n%s", want, b)
	}
}

// A saturated host is said before anything else is read, with its load, in summary.md and the
// report; an unsaturated one adds nothing to summary.md.
func TestHostSaturationWarning(t *testing.T) {
	r := mdRun()
	samples := make([]load.HostSample, 30)
	for i := range samples {
		samples[i] = load.HostSample{At: time.Duration(i+1) * time.Second, CPUBusy: 1, CPUPressure: 0.9, RunQueue: 60, MemAvailableMB: 900}
	}
	h := load.SummarizeHost(2, samples)
	r.Summary.Host, r.Summary.Warnings = &h, []string{h.Warning}
	md := string(Markdown(r, "out/smoke/report.html"))
	want := "> **Warning:** the machine running the load was saturated: results may reflect it"
	if !strings.Contains(md, want) || !strings.Contains(md, "run queue median 60 / p90 60 / max 60") {
		t.Errorf("summary.md lacks the warning and the host's load:\n%s", md)
	}
	if i := strings.Index(md, want); i > strings.Index(md, "**Load:**") {
		t.Errorf("the warning comes after the load line:\n%s", md)
	}
	var html strings.Builder
	if err := HTML(&html, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.String(), `<p class="warning"><strong>Warning:</strong> the machine running the load was saturated`) {
		t.Errorf("report.html lacks the warning")
	}
	calm := load.SummarizeHost(2, samples[:1])
	r.Summary.Host, r.Summary.Warnings = &calm, nil
	if md := string(Markdown(r, "")); strings.Contains(md, "Warning") {
		t.Errorf("a calm host warned:\n%s", md)
	}
}

// Requests the client had to resend are named in the load line and the steps table of summary.md and
// report.html, failed by default and served with load.clientRetries allow.
func TestRetriedRequestsAreReported(t *testing.T) {
	r := mdRun()
	r.Summary.Load.Retried = 3
	if len(r.Summary.Steps) == 0 {
		t.Fatal("mdRun has no steps")
	}
	r.Summary.Steps[0].Load = &StepLoad{Requests: 100, Failed: 3, Retried: 3}
	md := string(Markdown(r, ""))
	for _, want := range []string{"3 of the failed met a connection the server closed before the response", "3 (3 resent)"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
	var html strings.Builder
	if err := HTML(&html, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.String(), "3 of the failed met a connection") || !strings.Contains(html.String(), "3 failed, p99 0 ms, 3 resent") {
		t.Errorf("report.html lacks the resent requests")
	}
	r.Summary.Load.ClientRetries = true
	if md := string(Markdown(r, "")); !strings.Contains(md, "3 resent after the server closed a reused connection before the response (counted as served: load.clientRetries allow)") {
		t.Errorf("allowed retries not reported as served:\n%s", md)
	}
}

// A failed run's bursts come with what the cluster did, under its first failures; the JUnit failure
// of zero-failed-requests carries the same lines; a note of what was not watched is said.
func TestExplanationsAreReported(t *testing.T) {
	r := mdRun()
	line := "pod/web-a received SIGTERM at +6.0s (its deletion began) and its container web exited at +6.1s (exit 2, Error)"
	r.Summary.Explanations = []verify.Explanation{
		{Burst: verify.Burst{From: 6, To: 8, Failed: 12, Requests: 100}, Lines: []string{line}, Explained: true},
		{Burst: verify.Burst{From: 20, To: 21, Failed: 1, Requests: 50}, Lines: []string{verify.Unexplained}},
	}
	r.Summary.ClusterNotes = []string{"nodes not watched: forbidden"}
	r.Summary.Checks[0].Explained = verify.ExplanationLines(r.Summary.Explanations)
	md := string(Markdown(r, "out/smoke/report.html"))
	for _, want := range []string{
		"What the cluster did (cluster.jsonl has the whole timeline):",
		"- 12 of 100 requests failed from +6s to +8s:", "  - pod/web-a received SIGTERM at +6.0s",
		"- 1 of 50 requests failed from +20s to +21s:", "  - no cluster change explains this burst",
		"- nodes not watched: forbidden",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
	x, err := JUnit([]Summary{r.Summary})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(x), "What the cluster did:&#xA;12 of 100 requests failed from +6s to +8s: "+line) {
		t.Errorf("JUnit lacks the explanation:\n%s", x)
	}
	// A run without failures says nothing of the cluster.
	if md := string(Markdown(sampleRun(), "r.html")); strings.Contains(md, "What the cluster did") {
		t.Errorf("a run without explanations explains:\n%s", md)
	}
}

// Load from the cluster says where it came from, in summary.md and report.html: how many agents
// on how many nodes, their clocks, and a lost agent among the not-sent.
func TestReportsSayTheLoadCameFromTheCluster(t *testing.T) {
	r := mdRun()
	r.Summary.Load.From, r.Summary.Load.NotSent = "cluster", 40
	r.Summary.Load.Agents = []load.AgentReport{
		{Name: "rehearse-load-0", Node: "w1", Share: load.Share{Index: 0, Of: 2}, OffsetMS: -0.4, RTTMS: 1.2, Results: 300},
		{Name: "rehearse-load-1", Node: "w2", Share: load.Share{Index: 1, Of: 2}, OffsetMS: 0.3, RTTMS: 1.8, Results: 260, Unsent: 40, Lost: "gone", LostAt: 3 * time.Second},
	}
	want := "sent from the cluster by 2 load agents on 2 nodes (clocks within 0.4 ms ± 0.9 ms of the run's), 1 lost"
	md := string(Markdown(r, ""))
	if !strings.Contains(md, want) || !strings.Contains(md, "40 not sent: client saturated, or its load agent lost") {
		t.Errorf("summary.md lacks the agents:\n%s", md)
	}
	var html strings.Builder
	if err := HTML(&html, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.String(), "sent from the cluster by 2 load agents on 2 nodes (clocks within 0.4 ms ± 0.9 ms") || !strings.Contains(html.String(), "its load agent lost") {
		t.Errorf("report.html lacks the agents")
	}
}
