package reports

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/verify"
)

func TestVerdict(t *testing.T) {
	p := verify.Result{Status: verify.Pass}
	f := verify.Result{Status: verify.Fail}
	e := verify.Result{Status: verify.Error}
	for _, c := range []struct {
		checks []verify.Result
		want   string
	}{{[]verify.Result{p, p}, "pass"}, {[]verify.Result{p, e}, "error"}, {[]verify.Result{e, f}, "fail"}, {nil, "error"}} {
		if got := Verdict(c.checks); got != c.want {
			t.Errorf("Verdict(%v) = %s, want %s", c.checks, got, c.want)
		}
	}
}

func sampleRun() *Run {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	checks := []verify.Result{
		{Name: "zero-failed-requests", Status: verify.Fail, Message: "12 of 600 requests failed\nscale-to-zero: 12"},
		{Name: "load-achieved", Status: verify.Pass, Message: "achieved 49.8 req/s"},
		{Name: "replica-checksums", Status: verify.Error, Message: "could not compute checksums: <exec> failed & more"},
	}
	var tl []load.Second
	for i := 0; i < 12; i++ {
		s := load.Second{T: i, OK: 50, P50MS: 3, P99MS: 20, Versions: map[string]int{"v1": 50}}
		if i == 6 {
			s.OK, s.Failed = 38, 12
		}
		tl = append(tl, s)
	}
	return &Run{
		Summary: Summary{
			Scenario: "smoke", Verdict: Verdict(checks), Started: t0, Finished: t0.Add(12 * time.Second), Seed: 42,
			ScenarioHash: "abcdef0123456789", NodeImage: "rehearse.local/kind-node:v1.34.4", Replay: "replay/run.json",
			Load: LoadSummary{Requests: 600, Succeeded: 588, Failed: 12, TargetRate: 50, AchievedRate: 49.8, LatencyMS: map[string]float64{"p50": 3, "p99": 20, "max": 80}},
			Steps: []Step{{Name: "scale-to-zero", Kind: "exec", Status: "ok", Started: t0.Add(5 * time.Second), Finished: t0.Add(8 * time.Second)},
				{Name: "drain", Kind: "fault/node-drain", Status: "ok", Started: t0.Add(8 * time.Second), Finished: t0.Add(10 * time.Second),
					Did: map[string]any{"drain": verify.Drain{Node: "w1", Evicted: []string{"ns/a"}, DrainS: 1.5, Emptied: true, Uncordoned: true}}}},
			Checks: checks,
		},
		Timeline: tl,
		Failures: []load.Failure{{Time: t0.Add(6500 * time.Millisecond), Target: "write", Code: 503, Error: "no endpoints"}},
	}
}

func TestWriteProducesAllThreeFiles(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, sampleRun()); err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "verdict", "started", "finished", "seed", "load", "steps", "checks", "replay"} {
		if _, ok := s[k]; !ok {
			t.Errorf("summary.json lacks %q", k)
		}
	}
	if s["verdict"] != "fail" {
		t.Errorf("verdict %v", s["verdict"])
	}
	// junit.xml's shape is TestJUnit*'s; here: it is written, and it is the scenario's.
	var j junitSuites
	b, _ = os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err := xml.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Suites) != 1 || j.Suites[0].Name != "smoke" || j.Suites[0].Failures != 1 || j.Suites[0].Errors != 1 {
		t.Fatalf("junit: %+v", j)
	}
	h, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	html := string(h)
	for _, want := range []string{`<svg id="timeline"`, "scale-to-zero", `class="verdict fail"`, "no endpoints", "&lt;exec&gt; failed &amp; more", "v1"} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	// One file: nothing it refers to is outside it (TestHTMLLoadsNothingFromOutsideTheFile).
	if bad := offFile(t, html); len(bad) > 0 {
		t.Errorf("report.html refers outside itself: %q", bad)
	}
}
