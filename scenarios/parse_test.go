package scenarios

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const valid = `apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: t1}
cluster: {provider: kind}
workload: {sample: orders-postgres}
load:
  rate: 3000/m
  targets:
    - {name: w, method: POST, path: /orders, ledger: true}
steps:
  - {name: warm, wait: 1m30s}
  - {name: roll, migrate: {strategy: rolling, target: deployment/orders, version: v2}}
  - {name: kill, at: roll+5s, fault: {type: pod-kill, selector: app=orders}}
verify:
  zero-failed-requests: {max: 0}
`

// Where the load reads versions: the default header, versionHeader, or load.version's header, JSON
// field or body pattern.
func TestVersionReader(t *testing.T) {
	body := []byte(`{"build":{"version":"1.4.2"}} <b>green</b>`)
	h := http.Header{"X-App-Version": {"v1"}, "X-V": {"v7"}}
	for _, c := range []struct{ add, want string }{
		{"", "v1"},
		{"\n  versionHeader: X-V", "v7"},
		{"\n  version: {header: X-V}", "v7"},
		{"\n  version: {json: build.version}", "1.4.2"},
		{"\n  version: {body: '<b>(\\w+)</b>'}", "green"},
	} {
		l, err := Parse("t.yaml", []byte(strings.Replace(valid, "  rate: 3000/m", "  rate: 3000/m"+c.add, 1)))
		if err != nil {
			t.Fatalf("%q: %v", c.add, err)
		}
		if got := l.Load.VersionReader().Read(h, body); got != c.want {
			t.Errorf("%q: read %q, want %q", c.add, got, c.want)
		}
	}
}

func TestParseValid(t *testing.T) {
	l, err := Parse("t.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if l.Load.Rate.PerSecond != 50 {
		t.Errorf("rate 3000/m = %v/s, want 50", l.Load.Rate.PerSecond)
	}
	if l.Steps[0].Wait.Seconds() != 90 {
		t.Errorf("wait = %v", l.Steps[0].Wait)
	}
	if len(l.Hash) != 64 {
		t.Errorf("hash %q", l.Hash)
	}
	// The namespace's labels and annotations, as the cluster's admission will read them.
	src := strings.Replace(valid, "workload: {sample: orders-postgres}", `workload:
  sample: orders-postgres
  namespace:
    labels: {pod-security.kubernetes.io/enforce: baseline}
    annotations: {scheduler.alpha.kubernetes.io/node-selector: "pool=faults"}`, 1)
	l, err = Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if n := l.Workload.Namespace; n == nil || n.Labels["pod-security.kubernetes.io/enforce"] != "baseline" || n.Annotations["scheduler.alpha.kubernetes.io/node-selector"] != "pool=faults" {
		t.Errorf("workload.namespace: %+v", n)
	}
}

// Each broken variant must be rejected with the file, the line and the field named.
func TestParseRejects(t *testing.T) {
	cases := []struct {
		name, from, to string
		want           string
	}{
		{"unknown field", "  rate: 3000/m", "  rate: 3000/m\n  burst: 5", `t.yaml:8: load.burst: unknown field "burst"`},
		{"bad duration", "wait: 1m30s", "wait: 90", `t.yaml:11: steps[0].wait: bad duration "90"`},
		{"bad rate", "rate: 3000/m", "rate: fast", `t.yaml:7: load.rate: bad rate "fast"`},
		{"zero rate", "rate: 3000/m", "rate: 0/s", `t.yaml:7: load.rate: rate "0/s" must be above 0`},
		{"two actions", "{name: warm, wait: 1m30s}", "{name: warm, wait: 1m30s, exec: {command: [true]}}", "t.yaml:11: steps[0]: needs exactly one"},
		{"at unknown step", "at: roll+5s", "at: nope+5s", `t.yaml:13: steps[2].at: refers to "nope"`},
		{"at a later step", "{name: warm, wait: 1m30s}", "{name: warm, at: kill.end+1s, wait: 1m30s}", `t.yaml:11: steps[0].at: refers to "kill", which is not an earlier step`},
		{"at without a unit", "at: roll+5s", "at: roll.end+5", `t.yaml:13: steps[2].at: bad offset "5" in "roll.end+5"`},
		{"at of another shape", "at: roll+5s", "at: roll-5s", `t.yaml:13: steps[2].at: "roll-5s": want an offset`},
		{"bad fault", "type: pod-kill", "type: pod-kil", `t.yaml:13: steps[2].fault.type: unknown fault "pod-kil"`},
		{"non-loopback URL", "  targets:", "  baseURL: http://10.0.0.1:8080\n  targets:", `t.yaml:8: load.baseURL: host "10.0.0.1"`},
		{"wrong api", "rehearse/v1alpha1", "rehearse/v9", "t.yaml:1: apiVersion"},
		{"duplicate step", "{name: roll, migrate", "{name: warm, migrate", `steps[1].name: "warm" is used twice`},
		{"exec without selector", "{name: warm, wait: 1m30s}", "{name: warm, exec: {command: [true]}}", "t.yaml:11: steps[0].exec.selector: is required"},
		{"scale without replicas", "{name: warm, wait: 1m30s}", "{name: warm, scale: {target: deployment/orders}}", "t.yaml:11: steps[0].scale.replicas: is required"},
		{"scale of a service", "{name: warm, wait: 1m30s}", "{name: warm, scale: {target: service/orders, replicas: 0}}", `t.yaml:11: steps[0].scale.target: "service/orders"`},
		{"negative in-flight cap", "  rate: 3000/m", "  rate: 3000/m\n  maxInFlight: -1", "t.yaml:8: load.maxInFlight: must not be negative"},
		{"client retries misspelt", "  rate: 3000/m", "  rate: 3000/m\n  clientRetries: allowed", "t.yaml:8: load.clientRetries: is \"allowed\", want fail or allow"},
		{"version from two places", "  rate: 3000/m", "  rate: 3000/m\n  version: {header: X-V, json: version}", "t.yaml:8: load.version: says 2 of header, json and body"},
		{"version from nowhere", "  rate: 3000/m", "  rate: 3000/m\n  version: {}", "t.yaml:8: load.version: says 0 of header, json and body"},
		{"version and versionHeader", "  rate: 3000/m", "  rate: 3000/m\n  versionHeader: X-V\n  version: {json: version}", "load.versionHeader: is short for version: {header: X-V}"},
		{"version json path with a hole", "  rate: 3000/m", "  rate: 3000/m\n  version: {json: build..version}", `t.yaml:8: load.version.json: "build..version" has an empty part`},
		{"version body pattern without a group", "  rate: 3000/m", "  rate: 3000/m\n  version: {body: 'v\\d+'}", `load.version.body: "v\\d+" has no group`},
		{"version body pattern broken", "  rate: 3000/m", "  rate: 3000/m\n  version: {body: '(v'}", `load.version.body: error parsing regexp`},
		{"manifests that do not exist", "workload: {sample: orders-postgres}", "workload: {manifests: [nowhere/]}", "t.yaml:5: workload.manifests[0]: nowhere/ does not exist"},
		{"image archive on an existing cluster", "cluster: {provider: kind}\nworkload: {sample: orders-postgres}", "cluster: {provider: existing, context: prod}\nworkload: {sample: orders-postgres, images: [parse.go]}", "t.yaml:5: workload.images[0]: image archives are loaded into kind nodes"},
		{"checksum on the sample", "workload: {sample: orders-postgres}", "workload: {sample: orders-postgres, checksum: {command: [md5sum], selector: app=x}}", "t.yaml:5: workload.checksum: the sample has its own"},
		{"template field that does not exist", "path: /orders,", "path: /orders, body: '{{.Nope}}',", `t.yaml:9: load.targets[0].body: template: load.targets[0].body:1:2: executing "load.targets[0].body" at <.Nope>`},
		{"expect a non-status", "ledger: true}", "ledger: true, expect: [2000]}", "t.yaml:9: load.targets[0].expect: 2000 is not an HTTP status"},
		{"namespace label key", "workload: {sample: orders-postgres}", "workload:\n  sample: orders-postgres\n  namespace:\n    labels: {'team/a/b': x}", `t.yaml:8: workload.namespace.labels.team/a/b: "team/a/b" is not a label key`},
		{"namespace label value", "workload: {sample: orders-postgres}", "workload:\n  sample: orders-postgres\n  namespace:\n    labels:\n      pod-security.kubernetes.io/enforce: 'not ok'", `t.yaml:9: workload.namespace.labels.pod-security.kubernetes.io/enforce: "not ok" is not a label value`},
		{"namespace label of rehearse's", "workload: {sample: orders-postgres}", "workload: {sample: orders-postgres, namespace: {labels: {app.kubernetes.io/part-of: mine}}}", "t.yaml:5: workload.namespace.labels.app.kubernetes.io/part-of: is rehearse's own label"},
		{"namespace annotation key", "workload: {sample: orders-postgres}", "workload: {sample: orders-postgres, namespace: {annotations: {'a b': x}}}", `workload.namespace.annotations.a b: "a b" is not an annotation key`},
		{"load from elsewhere", "  rate: 3000/m", "  rate: 3000/m\n  from: browser", `t.yaml:8: load.from: is "browser", want host or cluster`},
		{"generators from the host", "  rate: 3000/m", "  rate: 3000/m\n  generators: 3", "t.yaml:8: load.generators: are pods in the cluster: give load.from: cluster with them"},
		{"negative generators", "  rate: 3000/m", "  rate: 3000/m\n  from: cluster\n  generators: -1", "load.generators: must not be negative"},
		{"cluster load to a loopback URL", "  targets:", "  from: cluster\n  baseURL: http://127.0.0.1:30080\n  targets:", "load.baseURL: is a loopback URL for load from the host"},
		{"cluster load without a service", "workload: {sample: orders-postgres}\nload:\n  rate: 3000/m", "workload: {manifests: [parse.go]}\nload:\n  rate: 3000/m\n  from: cluster", "load.service: is required with from: cluster"},
		{"wrong type", "workers", "workers", ""},
	}
	for _, c := range cases {
		if c.want == "" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(valid, c.from, c.to, 1)
			if src == valid {
				t.Fatalf("test case did not change the scenario")
			}
			_, err := Parse("t.yaml", []byte(src))
			if err == nil {
				t.Fatalf("accepted:\n%s", src)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

// A workload of one's own: manifests and archives relative to the scenario file, a checksum command,
// and a read path for durability.
func TestParseOwnWorkload(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"manifests/10-app.yaml", "images/web.tar"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := `apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: own}
cluster: {provider: kind}
workload:
  manifests: [manifests]
  images: [images/web.tar]
  checksum: {command: [md5sum, /data/db], selector: app=web}
load:
  rate: 10/s
  baseURL: http://127.0.0.1:30080
  targets: [{name: get, method: GET, path: /}]
steps:
  - {name: down, scale: {target: deployment/web, replicas: 0}}
verify:
  replica-checksums: {}
  acked-writes-durable: {readPath: "/items/{{.ID}}"}
`
	file := filepath.Join(dir, "own.yaml")
	l, err := Parse(file, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Path(l.Workload.Images[0]); got != filepath.Join(dir, "images/web.tar") {
		t.Errorf("image path %s", got)
	}
	if *l.Steps[0].Scale.Replicas != 0 {
		t.Errorf("replicas %d", *l.Steps[0].Scale.Replicas)
	}
	// A manifest kept in a subdirectory is not deployed, and validate says so.
	if err := os.MkdirAll(filepath.Join(dir, "manifests/green"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifests/green/web.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err = Parse(file, []byte(src))
	if err != nil || len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0].String(), "own.yaml:6: workload.manifests[0]: manifests/green holds 1 manifest files that are not deployed") {
		t.Errorf("warnings %v (%v): want manifests/green named", l.Warnings, err)
	}
	// workload.version picks the sample's version: for one's own manifests it would be ignored.
	_, err = Parse(file, []byte(strings.Replace(src, "  images: [images/web.tar]\n", "  images: [images/web.tar]\n  version: v2\n", 1)))
	if err == nil || !strings.Contains(err.Error(), "own.yaml:8: workload.version: picks the sample's version") {
		t.Errorf("workload.version on own manifests: %v", err)
	}
	// A path that is not there is named as written, and where it was looked for.
	_, err = Parse(file, []byte(strings.Replace(src, "images: [images/web.tar]", "images: [images/gone.tar]", 1)))
	if want := "workload.images[0]: images/gone.tar does not exist: looked for " + filepath.Join(dir, "images/gone.tar"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
	// What the checks need of one's own workload is the check table's (runner: TestChecksTable).
}

// A scenario run from a copy (a replay bundle) reads the files it names where Relocated says; the
// rest beside the copy; and keeps the bytes it was parsed from.
func TestParseRelocated(t *testing.T) {
	orig, bundle := t.TempDir(), t.TempDir()
	for _, f := range []string{filepath.Join(orig, "images/web.tar"), filepath.Join(bundle, "manifests/10-app.yaml")} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := []byte(`apiVersion: rehearse/v1alpha1
kind: Scenario
metadata: {name: own}
cluster: {provider: kind}
workload:
  manifests: [manifests]
  images: [images/web.tar]
  checksum: {command: [md5sum], selector: app=web}
load:
  rate: 10/s
  baseURL: http://127.0.0.1:30080
  targets: [{name: get, method: GET, path: /}]
verify:
  replica-checksums: {}
`)
	file := filepath.Join(bundle, "scenario.yaml")
	if _, err := Parse(file, src); err == nil || !strings.Contains(err.Error(), "workload.images[0]") {
		t.Fatalf("the archive is not beside the copy: %v", err)
	}
	moved := map[string]string{"images/web.tar": filepath.Join(orig, "images/web.tar")}
	l, err := ParseRelocated(file, src, moved)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Path("images/web.tar"); got != moved["images/web.tar"] {
		t.Errorf("relocated archive read from %s", got)
	}
	if got := l.Path("manifests"); got != filepath.Join(bundle, "manifests") {
		t.Errorf("manifests read from %s", got)
	}
	if string(l.Source) != string(src) {
		t.Error("Source is not the bytes parsed")
	}
}

// readPath must name the id it reads: "/healthz" would read every write as stored.
func TestAtIsTyped(t *testing.T) {
	l, err := Parse("t.yaml", []byte(strings.Replace(valid, "at: roll+5s", "at: roll.end+1m", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if a := l.Steps[2].At; !a.Set || a.Step != "roll" || !a.End || a.Offset != time.Minute || a.String() != "roll.end+1m0s" {
		t.Errorf("at %+v", a)
	}
	if a := l.Steps[0].At; a.Set {
		t.Errorf("no at: %+v", a)
	}
}

// load.tail 0 is allowed, with a warning naming the line; left out, it is the default.
func TestTailZeroWarns(t *testing.T) {
	l, err := Parse("t.yaml", []byte(strings.Replace(valid, "  rate: 3000/m", "  rate: 3000/m\n  tail: 0s", 1)))
	if err != nil || len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0].String(), "t.yaml:8: load.tail: 0: nothing is observed after the last step") {
		t.Fatalf("err %v, warnings %v", err, l.Warnings)
	}
	if l, err := Parse("t.yaml", []byte(valid)); err != nil || len(l.Warnings) != 0 || l.Load.Tail != nil {
		t.Fatalf("no tail given: err %v, warnings %v", err, l.Warnings)
	}
}

func TestParseRejectsWrongTypeWithLine(t *testing.T) {
	src := strings.Replace(valid, "cluster: {provider: kind}", "cluster: {provider: kind, workers: many}", 1)
	_, err := Parse("t.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "t.yaml:4:") {
		t.Fatalf("error %v does not name line 4", err)
	}
}

func TestShippedScenariosValidate(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped scenarios: %v", err)
	}
	for _, f := range files {
		if _, err := LoadFile(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	for _, name := range []string{"smoke.yaml", "rolling-orders.yaml"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a: [\n"))
	f.Add([]byte("steps: [{at: '+'}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse("f.yaml", data)
		if err == nil && l == nil {
			t.Fatal("no scenario and no error")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}

func TestParseReportsEveryProblemAtOnce(t *testing.T) {
	src := strings.Replace(valid, "  rate: 3000/m", "  rate: 3000/m\n  burst: 5", 1)
	src = strings.Replace(src, "wait: 1m30s", "wait: 90", 1)
	_, err := Parse("t.yaml", []byte(src))
	ps, ok := err.(Problems)
	if !ok || len(ps) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
	if ps[0].Field != "load.burst" || ps[1].Field != "steps[0].wait" || ps[1].Line != 12 {
		t.Errorf("problems: %+v", ps)
	}
}

// A YAML syntax error names the line where the problem is, not the line before it or the line
// where the broken construct began; an unterminated quote names where it began.
func TestSyntaxErrorLines(t *testing.T) {
	for src, line := range map[string]int{
		"a: 1\nload:\n  targets: [\n    - {name: w\nsteps: []\n": 4,
		"a: 1\nload:\n  rate: 5/s\n   bad: x\n":                  4,
		"a: 1\nb: [1, 2\nc: 3\n":                                 3,
		"a: 1\nb: x\n\tc: 3\n":                                   3,
		"a: 1\nb: \"unterminated\nc: 3\n":                        2,
	} {
		_, err := Parse("t.yaml", []byte(src))
		ps, ok := err.(Problems)
		if !ok || len(ps) != 1 || ps[0].Line != line {
			t.Errorf("%q: %v, want one problem on line %d", src, err, line)
		}
	}
}

// A field of the wrong type does not hide the file's other problems, and the scenario comes back
// beside them (for the step kinds' checks); a problem it causes above itself is not repeated.
func TestTypeErrorsHideNothing(t *testing.T) {
	src := strings.Replace(valid, "  rate: 3000/m", "  rate: -5/s", 1)
	src = strings.Replace(src, "wait: 1m30s", "wait: 1m30s, at: nowhere+5s", 1)
	l, err := Parse("t.yaml", []byte(src))
	ps, ok := err.(Problems)
	if !ok || l == nil || len(ps) != 2 || ps[0].Field != "load.rate" || !strings.HasPrefix(ps[1].Field, "steps[0].at") {
		t.Fatalf("got %v (scenario returned: %v), want the rate and the at problems", err, l != nil)
	}
}
