package load

import (
	"runtime/debug"
	"testing"
)

// The collector's target is raised while runs are under way, from the first to the last, and put
// back after; GOGC set by the user is left alone.
func TestTuneGCWhileRunsAreUnderWay(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetGCPercent(77)
	defer debug.SetGCPercent(before)
	a := tuneGC()
	b := tuneGC()
	if got := debug.SetGCPercent(loadGCPercent); got != loadGCPercent {
		t.Errorf("during two runs: GC percent %d, want %d", got, loadGCPercent)
	}
	a()
	a() // restoring twice is restoring once
	if got := debug.SetGCPercent(loadGCPercent); got != loadGCPercent {
		t.Errorf("one run still under way: GC percent %d, want %d", got, loadGCPercent)
	}
	b()
	if got := debug.SetGCPercent(77); got != 77 {
		t.Errorf("after the last run: GC percent %d, want 77 back", got)
	}
	t.Setenv("GOGC", "150")
	c := tuneGC()
	if got := debug.SetGCPercent(77); got != 77 {
		t.Errorf("GOGC set by the user: GC percent changed to %d", got)
	}
	c()
}
