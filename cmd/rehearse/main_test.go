package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func execute(args ...string) (string, error) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestValidate(t *testing.T) {
	// Every shipped scenario validates as run would check it (the step kinds included).
	shipped, _ := filepath.Glob("../../scenarios/*.yaml")
	own, _ := filepath.Glob("../../scenarios/*/*.yaml")
	if len(shipped) < 7 || len(own) < 2 {
		t.Fatalf("shipped scenarios missing: %v %v", shipped, own)
	}
	if out, err := execute(append([]string{"validate"}, append(shipped, own...)...)...); err != nil {
		t.Fatalf("shipped scenarios: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	src, _ := os.ReadFile("../../scenarios/smoke.yaml")
	os.WriteFile(bad, []byte(strings.Replace(string(src), "wait: 20s", "wait: 20", 1)+"bogus: 1\n"), 0o644)
	out, err := execute("validate", bad)
	if err == nil {
		t.Fatal("a broken scenario validated")
	}
	for _, want := range []string{bad + ":", `steps[0].wait: bad duration "20"`, `bogus: unknown field "bogus"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A check given an option it does not take would ignore it: validate refuses it at its line.
	ignored := filepath.Join(t.TempDir(), "ignored.yaml")
	os.WriteFile(ignored, []byte(strings.Replace(string(src), "latency-slo: {p99: 500ms}", "latency-slo: {p99: 500ms, max: 3}", 1)), 0o644)
	out, err = execute("validate", ignored)
	line := 1 + strings.Count(string(src[:strings.Index(string(src), "latency-slo:")]), "\n")
	if want := fmt.Sprintf("%s:%d: verify.latency-slo.max: latency-slo takes only p50, p99, per: max would be ignored", ignored, line); err == nil || !strings.Contains(out, want) {
		t.Errorf("validate: %v\n%s\nwant %q", err, out, want)
	}
	// run refuses the same file before touching any cluster, with the harness's exit code.
	_, err = execute("run", "--out", t.TempDir(), bad)
	var ec exitCode
	if !errors.As(err, &ec) || ec.code != 2 {
		t.Errorf("run on a broken scenario: %v, want exit 2", err)
	}
}

// version and --version print this build and the node image it expects; --json is run.json's
// rehearse block with the node image.
func TestVersion(t *testing.T) {
	text, err := execute("version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rehearse ", "module      github.com/rehearse-dev/rehearse", "node image  rehearse.local/kind-node:v"} {
		if !strings.Contains(text, want) {
			t.Errorf("version lacks %q:\n%s", want, text)
		}
	}
	if flag, err := execute("--version"); err != nil || flag != text {
		t.Errorf("--version %q (%v), want what version prints:\n%s", flag, err, text)
	}
	js, err := execute("version", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		t.Fatalf("%v:\n%s", err, js)
	}
	if v["module"] != "github.com/rehearse-dev/rehearse" || !strings.HasPrefix(fmt.Sprint(v["node_image"]), "rehearse.local/kind-node:v") {
		t.Errorf("version --json: %v", v)
	}
}
