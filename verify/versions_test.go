package verify

import (
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/load"
)

func window(by map[string]load.VersionStats, unversionedFailed int) load.VersionWindow {
	return load.VersionWindow{By: by, Unversioned: load.VersionStats{Requests: unversionedFailed, Failed: unversionedFailed}}
}

// A gate passes only on enough of the new version's own traffic; it fails on its errors, on failures
// nobody answered (a canary that refuses connections), on latency, and, after a switch, on answers
// still coming from the old version; it errs when it read too little.
func TestGate(t *testing.T) {
	g := GateSpec{MaxErrorRate: 0.01, P99: 200 * time.Millisecond, MinRequests: 20}
	for _, c := range []struct {
		name string
		w    load.VersionWindow
		spec GateSpec
		want Status
		text string
	}{
		{"healthy canary", window(map[string]load.VersionStats{"v2": {Requests: 50, P99MS: 12}, "v1": {Requests: 100}}, 0), g, Pass, "50 requests answered by v2"},
		{"canary fails a quarter", window(map[string]load.VersionStats{"v2": {Requests: 40, Failed: 10, P99MS: 12}, "v1": {Requests: 80}}, 0), g, Fail, "10 of 40 requests failed"},
		{"canary refuses connections", window(map[string]load.VersionStats{"v1": {Requests: 80}}, 30), g, Fail, "30 answered by no version"},
		{"canary gets no traffic", window(map[string]load.VersionStats{"v1": {Requests: 120}}, 0), g, Error, "only 0 requests answered by v2"},
		{"too few to judge", window(map[string]load.VersionStats{"v2": {Requests: 5}}, 0), g, Error, "at least 20 needed"},
		{"canary too slow", window(map[string]load.VersionStats{"v2": {Requests: 50, P99MS: 900}}, 0), g, Fail, "p99 of v2 900.0 ms"},
		{"budget allows one in a hundred", window(map[string]load.VersionStats{"v2": {Requests: 200, Failed: 1, P99MS: 5}}, 0), g, Pass, "1 failed"},
		{"switch did not take", window(map[string]load.VersionStats{"v2": {Requests: 50}, "v1": {Requests: 30}}, 0), GateSpec{Only: true}, Fail, "still answered by another version (v1 30)"},
		{"switch took", window(map[string]load.VersionStats{"v2": {Requests: 50}}, 0), GateSpec{Only: true}, Pass, ""},
	} {
		r := Gate("gate", c.w, "v2", c.spec, 1)
		if r.Status != c.want || !strings.Contains(r.Message, c.text) {
			t.Errorf("%s: %s %q, want %s containing %q", c.name, r.Status, r.Message, c.want, c.text)
		}
	}
}

// Before its window ends, a gate fails only on failures the whole window could not absorb, and
// judges neither latency nor the amount of traffic yet.
func TestGateEarly(t *testing.T) {
	g := GateSpec{MaxErrorRate: 0.02, P99: 100 * time.Millisecond, MinRequests: 20}
	one := window(map[string]load.VersionStats{"v2": {Requests: 10, Failed: 1, P99MS: 500}}, 0)
	if r := Gate("gate", one, "v2", g, 0.2); r.Status != Pass {
		t.Errorf("1 failure in a fifth of the window (budget 2%% of ~50): %s %s", r.Status, r.Message)
	}
	if r := Gate("gate", one, "v2", g, 1); r.Status != Fail {
		t.Errorf("the same at the end: %s %s", r.Status, r.Message)
	}
	many := window(map[string]load.VersionStats{"v2": {Requests: 10, Failed: 3}}, 0)
	if r := Gate("gate", many, "v2", g, 0.2); r.Status != Fail {
		t.Errorf("3 failures in a fifth of the window exceed 2%% of the whole: %s %s", r.Status, r.Message)
	}
	zero := GateSpec{}
	if r := Gate("gate", one, "v2", zero, 0.1); r.Status != Fail {
		t.Errorf("no failure allowed: %s %s", r.Status, r.Message)
	}
}

// versioned builds a run's per-second results from a compact description: each entry is one second's
// answers by version, and its failures.
func versioned(spec ...struct {
	v      map[string]int
	failed int
}) []load.Second {
	out := make([]load.Second, len(spec))
	for i, s := range spec {
		ok := 0
		for _, n := range s.v {
			ok += n
		}
		out[i] = load.Second{T: i, OK: ok - s.failed, Failed: s.failed, Versions: s.v}
	}
	return out
}

type sec = struct {
	v      map[string]int
	failed int
}

func TestServedVersion(t *testing.T) {
	start := time.Unix(0, 0)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	// v1 for 4 s, a rollout to v2 in seconds 4-5, then v2 only.
	secs := versioned(sec{map[string]int{"v1": 50}, 0}, sec{map[string]int{"v1": 50}, 0}, sec{map[string]int{"v1": 50}, 0},
		sec{map[string]int{"v1": 50}, 0}, sec{map[string]int{"v1": 30, "v2": 20}, 0}, sec{map[string]int{"v2": 50}, 0},
		sec{map[string]int{"v2": 50}, 0}, sec{map[string]int{"v2": 50}, 0})
	good := []Served{{Step: "to-v2", Version: "v2", From: at(5), To: at(8)}}
	if r := ServedVersion(good, secs, start, 10, 2*time.Second); r.Status != Pass {
		t.Errorf("v2 alone after the rollout: %s %s", r.Status, r.Message)
	}
	// A rollout that "finished" while v1 still answered (traffic never reached the new pods).
	stale := []Served{{Step: "to-v2", Version: "v2", From: at(3), To: at(8)}}
	if r := ServedVersion(stale, secs, start, 10, 2*time.Second); r.Status != Fail || !strings.Contains(r.Message, "v1 80") {
		t.Errorf("v1 still answering: %s %s", r.Status, r.Message)
	}
	// Nothing names a version: the header is missing, so nothing was measured.
	bare := versioned(sec{map[string]int{}, 0}, sec{map[string]int{}, 0}, sec{map[string]int{}, 0})
	if r := ServedVersion([]Served{{Step: "to-v2", Version: "v2", From: at(0), To: at(3)}}, bare, start, 10, 2*time.Second); r.Status != Error {
		t.Errorf("no version header: %s %s", r.Status, r.Message)
	}
	if r := ServedVersion(nil, secs, start, 10, 2*time.Second); r.Status != Error {
		t.Errorf("no step stated a version: %s", r.Status)
	}
	// A short window before the next step is not judged; the last one always is.
	two := []Served{{Step: "a", Version: "v1", From: at(4), To: at(4.5)}, {Step: "b", Version: "v2", From: at(5), To: at(8)}}
	if r := ServedVersion(two, secs, start, 10, 2*time.Second); r.Status != Pass || strings.Contains(r.Message, "after a:") {
		t.Errorf("short window: %s %s", r.Status, r.Message)
	}
}

func TestRollbackDrill(t *testing.T) {
	start := time.Unix(0, 0)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	// v2 serves; the drill starts at 3 s; seconds 3-4 mixed with failures; v1 alone and clean from 5 s.
	secs := versioned(sec{map[string]int{"v2": 50}, 0}, sec{map[string]int{"v2": 50}, 0}, sec{map[string]int{"v2": 50}, 0},
		sec{map[string]int{"v2": 30, "v1": 20}, 2}, sec{map[string]int{"v2": 10, "v1": 40}, 0}, sec{map[string]int{"v1": 50}, 0},
		sec{map[string]int{"v1": 50}, 0}, sec{map[string]int{"v1": 50}, 0})
	d := Drill{Step: "drill", Start: at(3), Done: at(4.5), Version: "v1", Within: 5 * time.Second, Status: "ok", Until: at(8)}
	if took, ok := RestoreTime(d, secs, start); !ok || took != 2*time.Second {
		t.Errorf("restore time %s %v, want 2s (clean from second 5)", took, ok)
	}
	pass := Result{Name: "acked-writes-durable", Status: Pass}
	if r := RollbackDrill([]Drill{d}, secs, start, pass); r.Status != Pass || !strings.Contains(r.Message, "restored to v1 in 2s") {
		t.Errorf("drill: %s %s", r.Status, r.Message)
	}
	// Over its bound.
	slow := d
	slow.Within = time.Second
	if r := RollbackDrill([]Drill{slow}, secs, start, pass); r.Status != Fail || !strings.Contains(r.Message, "over the 1s bound") {
		t.Errorf("slow drill: %s %s", r.Status, r.Message)
	}
	// A "rollback" that restored nothing: v2 still answers to the end.
	nothing := versioned(sec{map[string]int{"v2": 50}, 0}, sec{map[string]int{"v2": 50}, 0}, sec{map[string]int{"v2": 50}, 0})
	if r := RollbackDrill([]Drill{{Step: "drill", Start: at(1), Done: at(2), Version: "v1", Within: time.Minute, Status: "ok", Until: at(3)}}, nothing, start); r.Status != Fail || !strings.Contains(r.Message, "never came back to v1") {
		t.Errorf("no-op rollback: %s %s", r.Status, r.Message)
	}
	// Failures that go on after the rollout completed keep service unrestored.
	failing := versioned(sec{map[string]int{"v1": 50}, 5}, sec{map[string]int{"v1": 50}, 5}, sec{map[string]int{"v1": 50}, 5})
	if r := RollbackDrill([]Drill{{Step: "drill", Start: at(0), Done: at(1), Version: "v1", Within: time.Minute, Status: "ok", Until: at(3)}}, failing, start); r.Status != Fail {
		t.Errorf("failing after rollback: %s %s", r.Status, r.Message)
	}
	// Nothing to roll back to, no version to recognise, a harness error: could not measure.
	for _, bad := range []Drill{{Step: "drill", NothingToRollBack: true, Status: "error"}, {Step: "drill", Status: "ok", Done: at(1), Until: at(3)},
		{Step: "drill", Status: "error", Error: "api down", Version: "v1"}} {
		if r := RollbackDrill([]Drill{bad}, secs, start); r.Status != Error {
			t.Errorf("%+v: %s %s", bad, r.Status, r.Message)
		}
	}
	// A drill that restored service but lost an acknowledged write fails.
	lost := Result{Name: "acked-writes-durable", Status: Fail, Message: "3 acknowledged writes missing"}
	if r := RollbackDrill([]Drill{d}, secs, start, lost); r.Status != Fail || !strings.Contains(r.Message, "3 acknowledged writes missing") {
		t.Errorf("lost writes: %s %s", r.Status, r.Message)
	}
	if r := RollbackDrill(nil, secs, start); r.Status != Error {
		t.Errorf("no drill: %s", r.Status)
	}
}
