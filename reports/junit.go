package reports

import (
	"encoding/xml"
	"fmt"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/verify"
)

// The JUnit shape: what mikepenz/action-junit-report, dorny/test-reporter,
// EnricoMi/publish-unit-test-result-action, GitLab and Jenkins all read the same way. Every count
// attribute equals the count of its children; every case has a time, a file and a classname+name no
// other case has; a failure or error carries its headline as message, its check (or step-failed,
// step-error) as type, and the whole message as its body.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	File       string          `xml:"file,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// StepFailed and StepError are the JUnit types of a step the system failed and of a step the
// harness could not carry out.
const (
	StepFailed = "step-failed"
	StepError  = "step-error"
)

// StepNotRun is the status of a runbook's block that did not start because an earlier block of its
// runbook failed (a JUnit skipped case).
const StepNotRun = "not-run"

// JUnit renders summaries as JUnit XML: a testsuite per scenario with a testcase per check
// (classname the scenario) and a testcase per step and fault (classname "<scenario>.steps"), the
// scenario's properties (seed, node_image, target_rate, scenario_hash, fault.<step>), and totals on
// every suite and on the root.
func JUnit(sums []Summary) ([]byte, error) {
	out := junitSuites{Name: "rehearse"}
	var total time.Duration
	seen := map[string]int{}
	for _, s := range sums {
		suite := junitSuite{
			Name: s.Scenario, File: s.ScenarioFile, Time: seconds(s.Finished.Sub(s.Started)),
			Properties: []junitProperty{
				{"seed", fmt.Sprint(s.Seed)}, {"node_image", s.NodeImage},
				{"target_rate", fmt.Sprint(s.Load.TargetRate)}, {"scenario_hash", s.ScenarioHash},
			},
		}
		if !s.Started.IsZero() {
			suite.Timestamp = s.Started.UTC().Format(time.RFC3339)
			total += s.Finished.Sub(s.Started)
		}
		// Each fault is an event a reader can find beside the checks: when it ran and what it did.
		for _, st := range s.Steps {
			if strings.HasPrefix(st.Kind, "fault/") {
				v := fmt.Sprintf("%s %.1fs-%.1fs %s", st.Kind, st.Started.Sub(s.Started).Seconds(), st.Finished.Sub(s.Started).Seconds(), st.Status)
				if d := didText(st.Did); d != "" {
					v += ": " + strings.ReplaceAll(d, "\n", "; ")
				}
				if st.Error != "" {
					v += ": " + FirstLine(st.Error)
				}
				suite.Properties = append(suite.Properties, junitProperty{"fault." + st.Name, v})
			}
		}
		add := func(tc junitCase) {
			// Readers key cases by classname and name: a repeat (two scenarios of one name in a
			// suite) would be merged or dropped, so it gets a number.
			key := tc.Classname + "\x00" + tc.Name
			seen[key]++
			if n := seen[key]; n > 1 {
				tc.Name = fmt.Sprintf("%s (%d)", tc.Name, n)
			}
			tc.File = s.ScenarioFile
			switch {
			case tc.Failure != nil:
				suite.Failures++
			case tc.Error != nil:
				suite.Errors++
			case tc.Skipped != nil:
				suite.Skipped++
			}
			suite.Tests++
			suite.Cases = append(suite.Cases, tc)
		}
		for _, c := range s.Checks {
			tc := junitCase{Name: c.Name, Classname: s.Scenario, Time: seconds(checkWindow(s, c))}
			text := c.Message
			if len(c.Explained) > 0 {
				text += "\n\nWhat the cluster did:\n" + strings.Join(c.Explained, "\n")
			}
			msg := &junitMessage{Message: FirstLine(c.Message), Type: c.Name, Text: text}
			switch c.Status {
			case verify.Fail:
				tc.Failure = msg
			case verify.Error:
				tc.Error = msg
			default:
				tc.SystemOut = c.Message
			}
			add(tc)
		}
		for _, st := range s.Steps {
			tc := junitCase{Name: st.Name, Classname: s.Scenario + ".steps", Time: seconds(st.Finished.Sub(st.Started))}
			what := fmt.Sprintf("%s %s, +%.1fs to +%.1fs", st.Kind, st.Status, st.Started.Sub(s.Started).Seconds(), st.Finished.Sub(s.Started).Seconds())
			if d := didText(st.Did); d != "" {
				what += "\n" + d
			}
			body := what
			if st.Error != "" {
				body = st.Error + "\n\n" + what
			}
			headline := FirstLine(st.Error)
			if headline == "" {
				headline = "step " + st.Status
			}
			switch st.Status {
			case "failed":
				tc.Failure = &junitMessage{Message: headline, Type: StepFailed, Text: body}
			case "error":
				tc.Error = &junitMessage{Message: headline, Type: StepError, Text: body}
			case StepNotRun:
				tc.Skipped = &junitSkipped{Message: headline}
				tc.SystemOut = body
			default:
				tc.SystemOut = body
			}
			add(tc)
		}
		out.Tests += suite.Tests
		out.Failures += suite.Failures
		out.Errors += suite.Errors
		out.Skipped += suite.Skipped
		out.Suites = append(out.Suites, suite)
	}
	out.Time = seconds(total)
	b, err := xml.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", max(d, 0).Seconds()) }

// checkWindow is how long a check's evidence was gathered over: a step's check, the step; the
// fault check, from the first fault's start to the last one's end; the rollback drill, from the
// first drill's start to the end of the last drill's observation (the next step that changed
// something, or the end of the run); every other check reads the whole load.
func checkWindow(s Summary, c verify.Result) time.Duration {
	run := s.Finished.Sub(s.Started)
	var from, to time.Time
	span := func(a, b time.Time) {
		if from.IsZero() || a.Before(from) {
			from = a
		}
		if b.After(to) {
			to = b
		}
	}
	switch {
	case strings.HasPrefix(c.Name, "step-"):
		for _, st := range s.Steps {
			if "step-"+st.Name == c.Name {
				return st.Finished.Sub(st.Started)
			}
		}
	case c.Name == "fault-took-effect":
		for _, st := range s.Steps {
			if strings.HasPrefix(st.Kind, "fault/") {
				span(st.Started, st.Finished)
			}
		}
	case c.Name == "rollback-drill":
		for i, st := range s.Steps {
			if st.Kind != "rollback" {
				continue
			}
			until := s.Finished
			for _, next := range s.Steps[i+1:] {
				if next.Kind != "wait" && next.Started.After(st.Started) && next.Started.Before(until) {
					until = next.Started
				}
			}
			span(st.Started, until)
		}
	}
	if !from.IsZero() {
		return to.Sub(from)
	}
	return run
}
