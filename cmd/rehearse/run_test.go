package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/verify"
)

// run names the directory and exactly the report files that are there.
func TestReportsLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "smoke")
	if got := reportsLine(dir); !strings.HasPrefix(got, "reports: none written in ") {
		t.Errorf("no directory: %q", got)
	}
	os.MkdirAll(dir, 0o755)
	for _, f := range []string{"report.html", "summary.json", "summary.md", "junit.xml", "stray.txt"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
	}
	want := "reports in " + dir + "/: summary.md summary.json junit.xml report.html"
	if got := reportsLine(dir); got != want {
		t.Errorf("reportsLine = %q, want %q", got, want)
	}
}

func TestWriteSuite(t *testing.T) {
	out := t.TempDir()
	sums := []reports.Summary{
		{Scenario: "smoke", Verdict: reports.VerdictPass, Checks: []verify.Result{{Name: "zero-failed-requests", Status: verify.Pass}}},
		{Scenario: "own-web", Verdict: reports.VerdictError, ScenarioFile: "scenarios/own-web/web.yaml",
			Checks: []verify.Result{{Name: "harness", Status: verify.Error, Message: "no cluster"}}},
	}
	entries := []reports.SuiteEntry{{Summary: sums[0], Dir: filepath.Join(out, "smoke")}, {Summary: sums[1]}}
	if err := writeSuite(out, sums, entries); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(out, "summary.md"))
	if !strings.HasPrefix(string(md), "# rehearse: ERROR — 1 of 2 scenarios passed") || !strings.Contains(string(md), "own-web") {
		t.Errorf("suite summary.md:\n%s", md)
	}
	j, _ := os.ReadFile(filepath.Join(out, "junit.xml"))
	for _, want := range []string{`<testsuite name="smoke"`, `<testsuite name="own-web"`, `file="scenarios/own-web/web.yaml"`, `<error message="no cluster" type="harness">`} {
		if !strings.Contains(string(j), want) {
			t.Errorf("suite junit.xml lacks %q:\n%s", want, j)
		}
	}
	if got := reportsLine(out); got != "reports in "+out+"/: summary.md junit.xml" {
		t.Errorf("suite line %q", got)
	}
}
