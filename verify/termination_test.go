package verify

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestGracefulTermination(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// Deleted at +10.3 s; exits 0.2 s later (an abrupt pod), or 13.2 s later (a preStop and a drain).
	abrupt := Termination{Pod: "web-a", Deleted: at(10000), DeletedSeen: at(10300), Unready: at(10350),
		Exited: at(10000), ExitedSeen: at(10700), Container: "web", ExitCode: 2, Reason: "Error"}
	// The exit crosses into the next second: the API's whole seconds say up to 2 s, the recorder's
	// clock 0.5 s; the smaller bound judges.
	crossing := Termination{Pod: "web-c", Deleted: at(20000), DeletedSeen: at(20950), Exited: at(21000), ExitedSeen: at(21450)}
	graceful := Termination{Pod: "web-g", Deleted: at(30000), DeletedSeen: at(30100), Exited: at(43000), ExitedSeen: at(43400)}
	gone := Termination{Pod: "web-x", Deleted: at(40000), DeletedSeen: at(40100), Gone: at(40600)}
	still := Termination{Pod: "web-s", Deleted: at(50000), DeletedSeen: at(50100)}
	for _, c := range []struct {
		name    string
		ts      []Termination
		max     int
		asked   bool
		err     error
		status  Status
		message string
	}{
		{"an abrupt exit fails, named with its times", []Termination{graceful, abrupt}, 0, true, nil, Fail,
			"1 of 2 pods stopped serving less than 2s after their deletion began"},
		{"an exit across a second's boundary is still judged by the tighter bound", []Termination{crossing}, 0, true, nil, Fail, "web-c: deleted at +20.9s, exited within 0.5s"},
		{"a pod seen gone without an exit is bounded by its removal", []Termination{gone}, 0, true, nil, Fail, "web-x: deleted at +40.1s, was gone within 0.5s"},
		{"within the budget", []Termination{graceful, abrupt}, 1, true, nil, Pass, "1 sooner, within the budget of 1"},
		{"graceful pods pass", []Termination{graceful}, 0, true, nil, Pass, "1 pods left the Service while ready; each served at least 2s after its deletion began (shortest 13.3s)"},
		{"asked, nothing terminated: nothing to judge is an error", nil, 0, true, nil, Error, "nothing to judge"},
		{"by default, nothing terminated: a pass that says so", nil, 0, false, nil, Pass, "nothing to judge"},
		{"a watch that broke cannot judge", []Termination{graceful}, 0, false, errors.New("forbidden"), Error, "could not be watched: forbidden"},
		{"no pod seen to stop: error", []Termination{still}, 0, true, nil, Error, "none was seen to stop"},
	} {
		r := GracefulTermination(c.ts, t0, 0, c.max, c.asked, c.err)
		if r.Status != c.status || !strings.Contains(r.Message, c.message) {
			t.Errorf("%s: %s %q; want %s containing %q", c.name, r.Status, r.Message, c.status, c.message)
		}
	}
	if r := GracefulTermination([]Termination{abrupt}, t0, 0, 0, true, nil); !strings.Contains(r.Message, "web-a: deleted at +10.3s, exited (Error, code 2) within 0.4s, its endpoint seen unready at +10.3s") {
		t.Errorf("evidence: %s", r.Message)
	}
}

// A watch that stalled on the deletion (seen 2.6 s after its API second began) cannot make a pod
// that served 3 s look abrupt: the deletion is taken at its second's end at the latest.
func TestServedForCapsALateDeletion(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tr := Termination{Pod: "web", Deleted: at(10000), DeletedSeen: at(12600), Exited: at(13000), ExitedSeen: at(13300)}
	if d, _, _ := tr.ServedFor(); d != 2300*time.Millisecond {
		t.Errorf("served for %s, want 2.3s (exit seen at +13.3 s, deletion no later than +11.0 s)", d)
	}
}

// A pod killed with less grace than its own (pod-kill grace: 0s) is the fault's doing: not judged.
func TestGracefulTerminationLeavesForcedKillsOut(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	killed := Termination{Pod: "web-k", Deleted: t0, DeletedSeen: t0.Add(100 * time.Millisecond), Gone: t0.Add(200 * time.Millisecond), Forced: true}
	if r := GracefulTermination([]Termination{killed}, t0, 0, 0, false, nil); r.Status != Pass || !strings.Contains(r.Message, "nothing to judge") {
		t.Errorf("%s %q", r.Status, r.Message)
	}
	graceful := Termination{Pod: "web-g", Deleted: t0, DeletedSeen: t0.Add(100 * time.Millisecond), Exited: t0.Add(5 * time.Second), ExitedSeen: t0.Add(5500 * time.Millisecond)}
	if r := GracefulTermination([]Termination{killed, graceful}, t0, 0, 0, true, nil); r.Status != Pass || !strings.Contains(r.Message, "1 killed with less grace than their own, not judged") {
		t.Errorf("%s %q", r.Status, r.Message)
	}
}

// A pod that exits 0.15 s after its deletion, across a second's boundary, while kubelet reports the
// exit 2 s late (a loaded node): the API's whole seconds bound it by 2 s, the recorder's clock by
// 2.2 s. Neither is proof of 2 s served — the API's bound is exclusive — so it fails; a pod that
// did serve 2 s (a preStop pause of 2 s) has an API bound of 3 s and passes.
func TestGracefulTerminationAnExclusiveBoundIsNoProof(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	abrupt := Termination{Pod: "web-a", Deleted: at(10000), DeletedSeen: at(10950), Exited: at(11000), ExitedSeen: at(13150)}
	if r := GracefulTermination([]Termination{abrupt}, t0, 0, 0, true, nil); r.Status != Fail || !strings.Contains(r.Message, "web-a: deleted at +10.9s, exited in under 2s (the API's whole seconds)") {
		t.Errorf("abrupt: %s %q", r.Status, r.Message)
	}
	sound := Termination{Pod: "web-g", Deleted: at(10000), DeletedSeen: at(10950), Exited: at(12000), ExitedSeen: at(13300)}
	if r := GracefulTermination([]Termination{sound}, t0, 0, 0, true, nil); r.Status != Pass || !strings.Contains(r.Message, "shortest 2.4s") {
		t.Errorf("sound: %s %q", r.Status, r.Message)
	}
}
