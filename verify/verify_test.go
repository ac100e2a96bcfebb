package verify

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	failures := []load.Failure{{Time: t0.Add(-time.Second)}, {Time: t0.Add(5 * time.Second)}, {Time: t0.Add(12 * time.Second)}, {Time: t0.Add(15 * time.Second)}, {Time: t0.Add(30 * time.Second)}}
	r := ZeroFailedRequests(load.Totals{Requests: 100, Failed: 5, LongestGap: 8 * time.Second}, failures, windows, 0, 40)
	want := map[string]int{"(before any step)": 1, "during warmup": 1, "scale-to-zero": 2, "after scale-to-zero": 1}
	if d := cmp.Diff(want, r.Observed["attribution"]); d != "" {
		t.Errorf("attribution (-want +got):\n%s", d)
	}
	if r.Status != Fail || !strings.Contains(r.Message, "scale-to-zero: 2") || !strings.Contains(r.Message, "after scale-to-zero: 1") ||
		!strings.Contains(r.Message, "longest gap between successes 8s") {
		t.Errorf("broken run: %s %s", r.Status, r.Message)
	}
	if r := ZeroFailedRequests(load.Totals{Requests: 100, Failed: 3}, failures, windows, 3, 40); r.Status != Pass {
		t.Errorf("within budget: %s %s", r.Status, r.Message)
	}
	if r := ZeroFailedRequests(load.Totals{}, nil, nil, 0, 0); r.Status != Error {
		t.Errorf("no traffic must be an error, got %s", r.Status)
	}
	// One successful request in a 60 s run proves nothing.
	if r := ZeroFailedRequests(load.Totals{Requests: 1, Succeeded: 1}, nil, nil, 0, 60); r.Status != Error || !strings.Contains(r.Message, "at least 60") {
		t.Errorf("tiny sample: %s %s", r.Status, r.Message)
	}
	r = ZeroFailedRequests(load.Totals{Requests: 100, Failed: 30, NotSent: 30}, nil, nil, 0, 40)
	if r.Status != Fail || !strings.Contains(r.Message, "30 of them never sent") {
		t.Errorf("requests not sent are failures: %s %s", r.Status, r.Message)
	}
}

func TestAttributeAfterTheLastStep(t *testing.T) {
	windows := []Window{{Name: "steady", Kind: "wait", Start: t0, End: t0.Add(10 * time.Second)}}
	got := Attribute([]load.Failure{{Time: t0.Add(12 * time.Second)}}, windows) // in the tail
	if got["after steady"] != 1 {
		t.Errorf("a failure in the tail after a wait: %v", got)
	}
	windows = append(windows, Window{Name: "rollout", Kind: "migrate/rolling", Start: t0.Add(10 * time.Second), End: t0.Add(20 * time.Second)},
		Window{Name: "kill", Kind: "fault/pod-kill", Start: t0.Add(15 * time.Second), End: t0.Add(16 * time.Second)})
	got = Attribute([]load.Failure{{Time: t0.Add(15500 * time.Millisecond)}, {Time: t0.Add(25 * time.Second)}}, windows)
	if got["rollout+kill"] != 1 || got["after rollout"] != 1 {
		t.Errorf("overlapping steps and the tail: %v", got)
	}
}

func seconds(sent ...int) []load.Second {
	var out []load.Second
	for i, n := range sent {
		out = append(out, load.Second{T: i, OK: n, Scheduled: 50})
	}
	return out
}

func TestLoadAchieved(t *testing.T) {
	steady := seconds(50, 49, 51, 50)
	if r := LoadAchieved(load.Totals{Requests: 200, Scheduled: 200, AchievedRate: 50}, steady, 0, 100); r.Status != Pass {
		t.Errorf("on schedule: %s %s", r.Status, r.Message)
	}
	// The average can look fine while one second was a stall: 3 sent, then the backlog burst out.
	stalled := seconds(50, 3, 97, 50)
	r := LoadAchieved(load.Totals{Requests: 200, Scheduled: 200, AchievedRate: 50}, stalled, 0, 100)
	if r.Status != Fail || !strings.Contains(r.Message, "worst second +1s: 3 of 50") {
		t.Errorf("a stalled second: %s %s", r.Status, r.Message)
	}
	notSent := seconds(50, 50, 50, 50)
	notSent[2].Failed, notSent[2].NotSent, notSent[2].OK = 40, 40, 10
	if r := LoadAchieved(load.Totals{Requests: 200, NotSent: 40, Scheduled: 200}, notSent, 0, 100); r.Status != Fail || !strings.Contains(r.Message, "+2s: 10 of 50") {
		t.Errorf("requests not sent do not count as sent: %s %s", r.Status, r.Message)
	}
	if r := LoadAchieved(load.Totals{Requests: 10, Scheduled: 10}, seconds(10), 0, 100); r.Status != Fail {
		t.Errorf("too few requests: %s", r.Status)
	}
	if r := LoadAchieved(load.Totals{Requests: 100}, nil, 0, 0); r.Status != Error {
		t.Errorf("no schedule: %s", r.Status)
	}
}

func TestLatencySLO(t *testing.T) {
	tot := load.Totals{Requests: 10, LatencyMS: map[string]float64{"p50": 3, "p99": 700}}
	if r := LatencySLO(tot, nil, nil, 0, 500*time.Millisecond, false); r.Status != Fail || !strings.Contains(r.Message, "p99 700.0ms > 500ms") {
		t.Errorf("%s %s", r.Status, r.Message)
	}
	if r := LatencySLO(tot, nil, nil, 10*time.Millisecond, time.Second, false); r.Status != Pass {
		t.Errorf("%s %s", r.Status, r.Message)
	}
	if r := LatencySLO(load.Totals{}, nil, nil, 0, time.Second, false); r.Status != Error {
		t.Errorf("no requests: %s", r.Status)
	}
	// A spike during a short migration hides in the run's p99; per step it cannot.
	ok := load.Totals{Requests: 1000, LatencyMS: map[string]float64{"p50": 3, "p99": 20}}
	windows := []Window{{Name: "warmup", Kind: "wait", Start: t0, End: t0.Add(time.Minute)},
		{Name: "rollout", Kind: "migrate/rolling", Start: t0.Add(time.Minute), End: t0.Add(70 * time.Second)}}
	stats := func(from, to time.Time) load.WindowStats {
		if from.Equal(t0.Add(time.Minute)) {
			return load.WindowStats{Requests: 50, P50MS: 40, P99MS: 900}
		}
		return load.WindowStats{Requests: 950, P50MS: 3, P99MS: 10}
	}
	if r := LatencySLO(ok, windows, stats, 0, 500*time.Millisecond, false); r.Status != Pass || !strings.Contains(r.Message, "worst step window rollout: p99 900.0ms") {
		t.Errorf("whole run: %s %s", r.Status, r.Message)
	}
	if r := LatencySLO(ok, windows, stats, 0, 500*time.Millisecond, true); r.Status != Fail || !strings.Contains(r.Message, "during rollout: p99 900.0ms > 500ms") {
		t.Errorf("per step: %s %s", r.Status, r.Message)
	}
}

func TestAckedWritesDurable(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ledger.tsv")
	var b strings.Builder
	for i := range 12 {
		fmt.Fprintf(&b, "acked\ta%d\tw\n", i)
	}
	b.WriteString("indeterminate\tc\tw\nindeterminate\te\tw\nrejected\td\tw\n")
	os.WriteFile(p, []byte(b.String()), 0o644)
	l, err := ReadLedger(p)
	if err != nil || len(l.Acked) != 12 || len(l.Indeterminate) != 2 || len(l.Rejected) != 1 {
		t.Fatalf("ledger %+v %v", l, err)
	}
	controls := []string{"never-0", "never-1"}
	// store is a system that has every acked id, c of the indeterminate, and nothing else.
	store := func(lost ...string) func([]string) ([]string, error) {
		return func(ids []string) ([]string, error) {
			var missing []string
			for _, id := range ids {
				if strings.HasPrefix(id, "never") || id == "e" || slices.Contains(lost, id) {
					missing = append(missing, id)
				}
			}
			return missing, nil
		}
	}
	r := AckedWritesDurable(Durability{Ledger: l, Missing: store(), Controls: controls})
	if r.Status != Pass || !strings.Contains(r.Message, "indeterminate: 1 recovered, 1 absent") {
		t.Errorf("all present: %s %s", r.Status, r.Message)
	}
	if r := AckedWritesDurable(Durability{Ledger: l, Missing: store("a3"), Controls: controls}); r.Status != Fail || !strings.Contains(r.Message, "1 of 12") {
		t.Errorf("one lost: %s %s", r.Status, r.Message)
	}
	if r := AckedWritesDurable(Durability{Ledger: l, Missing: func([]string) ([]string, error) { return nil, errors.New("db down") }, Controls: controls}); r.Status != Error {
		t.Errorf("could not read back: %s", r.Status)
	}
	// A service that answers "stored" for anything: the controls give it away.
	if r := AckedWritesDurable(Durability{Ledger: l, Missing: func([]string) ([]string, error) { return nil, nil }, Controls: controls}); r.Status != Error ||
		!strings.Contains(r.Message, "cannot tell stored from missing") {
		t.Errorf("200 for anything: %s %s", r.Status, r.Message)
	}
	if r := AckedWritesDurable(Durability{Ledger: l, Missing: store(), Controls: controls, MinAcked: 50}); r.Status != Error || !strings.Contains(r.Message, "at least 50") {
		t.Errorf("too few acked: %s %s", r.Status, r.Message)
	}
	few := &Ledger{Acked: l.Acked, Indeterminate: make([]string, 13)}
	if r := AckedWritesDurable(Durability{Ledger: few, Missing: store(), Controls: controls}); r.Status != Error || !strings.Contains(r.Message, "more than the 12 acknowledged") {
		t.Errorf("mostly indeterminate: %s %s", r.Status, r.Message)
	}
	if r := AckedWritesDurable(Durability{Ledger: &Ledger{Indeterminate: []string{"x"}}}); r.Status != Error {
		t.Errorf("nothing acked: %s", r.Status)
	}
	if r := AckedWritesDurable(Durability{Ledger: l, Missing: store()}); r.Status != Error {
		t.Errorf("no controls: %s", r.Status)
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
	running := func(names ...string) []workloads.PodState {
		var ps []workloads.PodState
		for _, n := range names {
			ps = append(ps, workloads.PodState{Name: n, Phase: "Running", Ready: true})
		}
		return ps
	}
	two := running("web-0", "web-1")
	if r := ReplicaOutputs(2, two, []workloads.ExecResult{out("web-0", "abc  /data\n", ""), out("web-1", "abc  /data\n", "")}, nil); r.Status != Pass {
		t.Errorf("equal: %s %s", r.Status, r.Message)
	}
	r := ReplicaOutputs(2, two, []workloads.ExecResult{out("web-0", "abc\n", ""), out("web-1", "abd\n", "")}, nil)
	if r.Status != Fail || !strings.Contains(r.Message, "web-1 differs from web-0") || !strings.Contains(r.Message, "abd") {
		t.Errorf("differing: %s %s", r.Status, r.Message)
	}
	if r := ReplicaOutputs(2, two, []workloads.ExecResult{out("web-0", "abc", ""), out("web-1", "", "command terminated with exit code 1")}, nil); r.Status != Error {
		t.Errorf("a failed command must not count as a checksum: %s", r.Status)
	}
	if r := ReplicaOutputs(1, two[:1], []workloads.ExecResult{out("web-0", "abc", "")}, nil); r.Status != Error {
		t.Errorf("one replica: %s", r.Status)
	}
	if r := ReplicaOutputs(2, nil, nil, errors.New("no running pod")); r.Status != Error {
		t.Errorf("no pods: %s", r.Status)
	}
	// Two of three equal is not three equal: the third is named.
	three := append(running("web-0", "web-1"), workloads.PodState{Name: "web-2", Phase: "Pending"})
	r = ReplicaOutputs(3, three, []workloads.ExecResult{out("web-0", "abc", ""), out("web-1", "abc", "")}, nil)
	if r.Status != Fail || !strings.Contains(r.Message, "2 of 3 expected") || !strings.Contains(r.Message, "web-2 pending") {
		t.Errorf("a pending replica: %s %s", r.Status, r.Message)
	}
	r = ReplicaOutputs(3, running("web-0", "web-1"), []workloads.ExecResult{out("web-0", "abc", ""), out("web-1", "abc", "")}, nil)
	if r.Status != Fail || !strings.Contains(r.Message, "2 of 3 expected") {
		t.Errorf("a missing replica: %s %s", r.Status, r.Message)
	}
	gone := append(running("web-0", "web-1"), workloads.PodState{Name: "web-2", Phase: "Running", Ready: true, Terminating: true})
	if r := ReplicaOutputs(2, gone, []workloads.ExecResult{out("web-0", "abc", ""), out("web-1", "abc", "")}, nil); r.Status != Fail || !strings.Contains(r.Message, "web-2 terminating") {
		t.Errorf("a terminating replica: %s %s", r.Status, r.Message)
	}
	if r := ReplicaOutputs(0, two, nil, nil); r.Status != Error {
		t.Errorf("nothing to expect: %s", r.Status)
	}
}

// A lost write is named with when it was acknowledged: the ledger's fourth column (the answer's time
// on the run's clock) gives the range of the lost ones; a ledger without it still judges.
func TestLostWritesNameWhenTheyWereAcknowledged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.tsv")
	lines := "acked\ta-1\twrite\t1.000\nacked\ta-2\twrite\t2.500\nacked\ta-3\twrite\t4.250\nindeterminate\ta-4\twrite\t5.000\n"
	for i := 5; i < 20; i++ {
		lines += fmt.Sprintf("acked\ta-%d\twrite\t%d.000\n", i, i)
	}
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := ReadLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	lost := map[string]bool{"a-2": true, "a-3": true}
	missing := func(ids []string) ([]string, error) {
		var out []string
		for _, id := range ids {
			if lost[id] || strings.HasPrefix(id, "control") {
				out = append(out, id)
			}
		}
		return out, nil
	}
	r := AckedWritesDurable(Durability{Ledger: l, Missing: missing, Controls: []string{"control-1"}})
	if r.Status != Fail || !strings.Contains(r.Message, "2 of 18 acknowledged writes are missing (lost), acknowledged from +2.5s to +4.2s") {
		t.Fatalf("%s %q", r.Status, r.Message)
	}
	// The sound twin: nothing lost passes.
	lost = nil
	if r := AckedWritesDurable(Durability{Ledger: l, Missing: missing, Controls: []string{"control-1"}}); r.Status != Pass {
		t.Fatalf("%s %q", r.Status, r.Message)
	}
	// An old ledger (three columns) judges the same, without the times.
	var old []string
	for _, line := range strings.Split(strings.TrimSpace(lines), "\n") {
		f := strings.Split(line, "\t")
		old = append(old, strings.Join(f[:3], "\t"))
	}
	if err := os.WriteFile(path, []byte(strings.Join(old, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if l, err = ReadLedger(path); err != nil {
		t.Fatal(err)
	}
	lost = map[string]bool{"a-2": true}
	if r := AckedWritesDurable(Durability{Ledger: l, Missing: missing, Controls: []string{"control-1"}}); r.Status != Fail || !strings.Contains(r.Message, "1 of 18 acknowledged writes are missing (lost), e.g. a-2") {
		t.Fatalf("%s %q", r.Status, r.Message)
	}
}
