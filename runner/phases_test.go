package runner

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
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
