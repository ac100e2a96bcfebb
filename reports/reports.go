// Package reports owns what a rehearsal leaves behind for people and CI: summary.json (stable fields,
// see DESIGN.md; it points to the run's replay bundle, which package replay writes), junit.xml (one
// testsuite per scenario, one testcase per check and per step, with the totals and attributes every
// common JUnit reader expects: see junit.go), and report.html, a single file that loads nothing
// (verdict, checks, a timeline of requests by status, p50/p99 latency in ms and each version's share
// with step and fault bands and per-second details: timeline.go; the steps; the failures grouped by
// the steps in flight: html.go). summary.md is the same verdict for a PR comment or a CI job summary,
// under 64 KB whatever the run (markdown.go). Compare reads summaries back (ReadSummaries) and finds
// what regressed between two runs (compare.go).
package reports

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/verify"
)

// Verdicts.
const (
	VerdictPass  = "pass"
	VerdictFail  = "fail"
	VerdictError = "error"
)

// LoadSummary is the load part of summary.json.
type LoadSummary struct {
	Requests  int `json:"requests"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	NotSent   int `json:"not_sent"` // failed because the client could not send them on schedule
	// Retried needed a second attempt on a new connection, the server having closed a reused one
	// before the response: failed, unless ClientRetries (load.clientRetries: allow) counts them served.
	Retried       int                `json:"retried"`
	ClientRetries bool               `json:"client_retries,omitempty"`
	Scheduled     float64            `json:"scheduled"` // requests the schedule called for
	TargetRate    float64            `json:"target_rate"`
	AchievedRate  float64            `json:"achieved_rate"`
	LatencyMS     map[string]float64 `json:"latency_ms"` // from the scheduled time; *_sent from the actual send
	// From is where the load was sent from: host (this process) or cluster (load agent pods).
	From string `json:"from,omitempty"`
	// Agents are the load agent pods that sent it from the cluster: each one's share, clock offset
	// from the run's, results, and whether it was lost.
	Agents []load.AgentReport `json:"agents,omitempty"`
}

// Step is one step or fault as it ran.
type Step struct {
	Name     string    `json:"name"`
	Kind     string    `json:"kind"`
	Status   string    `json:"status"`  // ok | failed (the system failed it) | error (the harness could not act)
	Planned  time.Time `json:"planned"` // when the timeline called for it
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Error    string    `json:"error,omitempty"`
	// Did is what the step did: revisions before and after, pods, the version restored, ...
	Did map[string]any `json:"did,omitempty"`
	// Load is the load scheduled while the step ran (nil in summaries written before it existed).
	Load *StepLoad `json:"load,omitempty"`
	// Actions are the changes the step made to the cluster (Kind "action"), for the cluster
	// timeline (cluster.jsonl), not summary.json.
	Actions []verify.Change `json:"-"`
}

// StepLoad is the load scheduled in a step's exact window (each request by its own time, the rule
// failures are attributed by): what compare reads to find a step whose latency or failures
// regressed while the run's totals hid it.
type StepLoad struct {
	Requests int `json:"requests"`
	Failed   int `json:"failed"`
	// Retried needed a second attempt on a new connection (failed unless load.clientRetries allows).
	Retried int     `json:"retried,omitempty"`
	P50MS   float64 `json:"p50_ms"`
	P99MS   float64 `json:"p99_ms"`
}

// Summary is summary.json.
type Summary struct {
	Scenario     string    `json:"scenario"`
	Verdict      string    `json:"verdict"`
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished"`
	Seed         uint64    `json:"seed"`
	ScenarioHash string    `json:"scenario_hash"`
	// ScenarioFile is the scenario's path relative to the working directory rehearse ran in (JUnit
	// readers link a test case to it).
	ScenarioFile string `json:"scenario_file,omitempty"`
	NodeImage    string `json:"node_image,omitempty"`
	// Replay is the run's replay bundle, relative to the summary's directory (replay/run.json):
	// `rehearse run --replay DIR` reruns the scenario from it. ReplayOf is the run ID of the run this
	// one replays.
	Replay   string          `json:"replay,omitempty"`
	ReplayOf string          `json:"replay_of,omitempty"`
	Load     LoadSummary     `json:"load"`
	Steps    []Step          `json:"steps"`
	Checks   []verify.Result `json:"checks"`
	// Host is the load of the machine that ran the load, sampled each second while it ran (nil in
	// summaries written before it existed).
	Host *load.HostLoad `json:"host,omitempty"`
	// Warnings are what a reviewer should know before trusting the verdict (e.g. the host was
	// saturated); they never change it.
	Warnings []string `json:"warnings,omitempty"`
	// Explanations are, for each burst of failed requests, what the cluster did in and just before
	// it (cluster.jsonl has the whole timeline); ClusterNotes say what the recorder could not watch
	// or dropped.
	Explanations []verify.Explanation `json:"explanations,omitempty"`
	ClusterNotes []string             `json:"cluster_notes,omitempty"`
}

// Verdict is fail when a check failed, error when none failed but one could not measure, else pass.
// A run without checks is an error: nothing was verified.
func Verdict(checks []verify.Result) string {
	if len(checks) == 0 {
		return VerdictError
	}
	v := VerdictPass
	for _, c := range checks {
		switch c.Status {
		case verify.Fail:
			return VerdictFail
		case verify.Error:
			v = VerdictError
		}
	}
	return v
}

// Run is everything a report shows.
type Run struct {
	Summary  Summary
	Timeline []load.Second
	Failures []load.Failure
	// Cluster is the cluster's timeline (cluster.jsonl): report.html draws it as a lane of marks.
	Cluster []verify.Change
}

// Write writes summary.json, summary.md, junit.xml and report.html into dir.
func Write(dir string, r *Run) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r.Summary, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	j, err := JUnit([]Summary{r.Summary})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "junit.xml"), j, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), Markdown(r, filepath.Join(dir, "report.html")), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "report.html"))
	if err != nil {
		return err
	}
	if err := HTML(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// FirstLine is the first line of s (a check message's headline).
func FirstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
