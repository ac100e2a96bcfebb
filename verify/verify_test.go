package verify

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/workloads"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestZeroFailedRequests(t *testing.T) {
	windows := []Window{
		{Name: "warmup", Kind: "wait", Start: t0, End: t0.Add(10 * time.Second)},
		{Name: "scale-to-zero", Kind: "scale", Start: t0.Add(10 * time.Second), End: t0.Add(20 * time.Second)},
		{Name: "hold", Kind: "wait", Start: t0.Add(20 * time.Second), End: t0.Add(40 * time.Second)},
	}
	failures := []load.Failure{{Time: t0.Add(5 * time.Second)}, {Time: t0.Add(12 * time.Second)}, {Time: t0.Add(15 * time.Second)}, {Time: t0.Add(30 * time.Second)}}
	r := ZeroFailedRequests(load.Totals{Requests: 100, Failed: 4, LongestGap: 8 * time.Second}, failures, windows, 0)
	want := map[string]int{"(before any step)": 1, "scale-to-zero": 2, "after scale-to-zero": 1}
	if d := cmp.Diff(want, r.Observed["attribution"]); d != "" {
		t.Errorf("attribution (-want +got):\n%s", d)
	}
	if r.Status != Fail || !strings.Contains(r.Message, "scale-to-zero: 2") || !strings.Contains(r.Message, "after scale-to-zero: 1") ||
		!strings.Contains(r.Message, "longest gap between successes 8s") {
		t.Errorf("broken run: %s %s", r.Status, r.Message)
	}
	if r := ZeroFailedRequests(load.Totals{Requests: 100, Failed: 3}, failures, windows, 3); r.Status != Pass {
		t.Errorf("within budget: %s %s", r.Status, r.Message)
	}
	if r := ZeroFailedRequests(load.Totals{}, nil, nil, 0); r.Status != Error {
		t.Errorf("no traffic must be an error, got %s", r.Status)
	}
}

func TestLoadAchieved(t *testing.T) {
	if r := LoadAchieved(load.Totals{Requests: 3000, AchievedRate: 49.9}, 50, 0, 100); r.Status != Pass {
		t.Errorf("49.9 of 50: %s %s", r.Status, r.Message)
	}
	if r := LoadAchieved(load.Totals{Requests: 3000, AchievedRate: 40}, 50, 0, 100); r.Status != Fail || !strings.Contains(r.Message, "80%") {
		t.Errorf("40 of 50: %s %s", r.Status, r.Message)
	}
	if r := LoadAchieved(load.Totals{Requests: 10, AchievedRate: 50}, 50, 0, 100); r.Status != Fail {
		t.Errorf("too few requests: %s", r.Status)
	}
	if r := LoadAchieved(load.Totals{}, 50, 0, 0); r.Status != Fail {
		t.Errorf("no requests at all: %s", r.Status)
	}
}

func TestLatencySLO(t *testing.T) {
	tot := load.Totals{Requests: 10, LatencyMS: map[string]float64{"p50": 3, "p99": 700}}
	if r := LatencySLO(tot, 0, 500*time.Millisecond); r.Status != Fail || !strings.Contains(r.Message, "p99 700.0ms > 500ms") {
		t.Errorf("%s %s", r.Status, r.Message)
	}
	if r := LatencySLO(tot, 10*time.Millisecond, time.Second); r.Status != Pass {
		t.Errorf("%s %s", r.Status, r.Message)
	}
	if r := LatencySLO(load.Totals{}, 0, time.Second); r.Status != Error {
		t.Errorf("no requests: %s", r.Status)
	}
}

func TestAckedWritesDurable(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ledger.tsv")
	os.WriteFile(p, []byte("acked\ta\tw\nacked\tb\tw\nindeterminate\tc\tw\nrejected\td\tw\n"), 0o644)
	l, err := ReadLedger(p)
	if err != nil || len(l.Acked) != 2 || len(l.Indeterminate) != 1 || len(l.Rejected) != 1 {
		t.Fatalf("ledger %+v %v", l, err)
	}
	if r := AckedWritesDurable(l, func(ids []string) ([]string, error) { return nil, nil }); r.Status != Pass {
		t.Errorf("all present: %s %s", r.Status, r.Message)
	}
	if r := AckedWritesDurable(l, func(ids []string) ([]string, error) { return []string{"b"}, nil }); r.Status != Fail || !strings.Contains(r.Message, "1 of 2") {
		t.Errorf("one lost: %s %s", r.Status, r.Message)
	}
	if r := AckedWritesDurable(l, func(ids []string) ([]string, error) { return nil, errors.New("db down") }); r.Status != Error {
		t.Errorf("could not read back: %s", r.Status)
	}
	if r := AckedWritesDurable(&Ledger{Indeterminate: []string{"x"}}, nil); r.Status != Error {
		t.Errorf("nothing acked: %s", r.Status)
	}
}

func TestReplicaChecksums(t *testing.T) {
	sum := func(pod string, rows int64, md5 string, caught bool) workloads.ReplicaChecksum {
		return workloads.ReplicaChecksum{Pod: pod, CaughtUp: caught, Tables: map[string]workloads.TableSum{"orders": {Rows: rows, MD5: md5}}}
	}
	same := []workloads.ReplicaChecksum{sum("db-0", 5, "aa", true), sum("db-1", 5, "aa", true), sum("db-2", 5, "aa", true)}
	if r := ReplicaChecksums(same, nil); r.Status != Pass {
		t.Errorf("equal: %s %s", r.Status, r.Message)
	}
	diff := []workloads.ReplicaChecksum{sum("db-0", 5, "aa", true), sum("db-1", 5, "aa", true), sum("db-2", 4, "bb", false)}
	r := ReplicaChecksums(diff, nil)
	if r.Status != Fail || !strings.Contains(r.Message, "db-2 differs") || !strings.Contains(r.Message, "had not replayed") {
		t.Errorf("differing: %s %s", r.Status, r.Message)
	}
	if r := ReplicaChecksums(same[:1], nil); r.Status != Error {
		t.Errorf("one member: %s", r.Status)
	}
	if r := ReplicaChecksums(nil, errors.New("exec failed")); r.Status != Error {
		t.Errorf("error: %s", r.Status)
	}
}

func TestReplicaOutputs(t *testing.T) {
	out := func(pod, stdout, err string) workloads.ExecResult {
		return workloads.ExecResult{Pod: pod, Stdout: stdout, Err: err}
	}
	if r := ReplicaOutputs([]workloads.ExecResult{out("web-0", "abc  /data\n", ""), out("web-1", "abc  /data\n", "")}, nil); r.Status != Pass {
		t.Errorf("equal: %s %s", r.Status, r.Message)
	}
	r := ReplicaOutputs([]workloads.ExecResult{out("web-0", "abc\n", ""), out("web-1", "abd\n", "")}, nil)
	if r.Status != Fail || !strings.Contains(r.Message, "web-1 differs from web-0") || !strings.Contains(r.Message, "abd") {
		t.Errorf("differing: %s %s", r.Status, r.Message)
	}
	if r := ReplicaOutputs([]workloads.ExecResult{out("web-0", "abc", ""), out("web-1", "", "command terminated with exit code 1")}, nil); r.Status != Error {
		t.Errorf("a failed command must not count as a checksum: %s", r.Status)
	}
	if r := ReplicaOutputs([]workloads.ExecResult{out("web-0", "abc", "")}, nil); r.Status != Error {
		t.Errorf("one replica: %s", r.Status)
	}
	if r := ReplicaOutputs(nil, errors.New("no running pod")); r.Status != Error {
		t.Errorf("no pods: %s", r.Status)
	}
}
