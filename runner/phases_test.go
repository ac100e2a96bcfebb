package runner

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/verify"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A long phase says what it does, that it is still at it with what it waits for, and how long it took.
func TestPhaseSaysWhatItWaitsFor(t *testing.T) {
	old := phaseEvery
	phaseEvery = 20 * time.Millisecond
	defer func() { phaseEvery = old }()
	var out syncBuffer
	done := phase(&out, "Creating kind cluster x", func() string { return "Joining worker nodes" })
	time.Sleep(70 * time.Millisecond)
	done(nil)
	got := out.String()
	for _, want := range []string{"rehearse: Creating kind cluster x\n", "still creating kind cluster x (0s): Joining worker nodes", "done in"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress lacks %q:\n%s", want, got)
		}
	}
	n := strings.Count(got, "\n")
	time.Sleep(50 * time.Millisecond)
	if strings.Count(out.String(), "\n") != n {
		t.Errorf("the phase kept printing after it was done")
	}
}

// The cluster timeline holds, beside the recorder's changes, each step's start and end and what the
// step marked it did to the system, on the run's clock.
func TestClusterTimelineHoldsStepActions(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	ran := []reports.Step{{Name: "switch", Kind: "switchover", Status: "ok", Started: t0.Add(5 * time.Second), Finished: t0.Add(7 * time.Second),
		Actions: []verify.Change{{At: t0.Add(6 * time.Second), Kind: verify.KindAction, Object: "pod/db-1", What: "promoted", Detail: "step switch: db-1 promoted"}}}}
	changes, notes := clusterTimeline(nil, ran, t0)
	if len(notes) != 0 || len(changes) != 3 {
		t.Fatalf("%d changes %v, notes %v", len(changes), changes, notes)
	}
	if c := changes[1]; c.Kind != verify.KindAction || c.T != 6 || c.What != "promoted" {
		t.Errorf("the action: %+v", c)
	}
}
