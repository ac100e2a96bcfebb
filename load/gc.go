package load

import (
	"os"
	"runtime/debug"
	"sync"
)

// While a load runs, the collector runs less often: garbage may grow to loadGCPercent of the live
// heap (which stays small: aggregates, the recent ids) before a cycle, instead of Go's 100. At
// saturation the collector's marking and the allocations it makes pay for took ~15 % of the load
// path's CPU (make bench-profile), CPU that sending requests needs. A soft memory limit keeps the
// trade bounded. GOGC or GOMEMLIMIT set in the environment are the user's choice and left alone.
const (
	loadGCPercent = 400
	loadMemLimit  = 1 << 30
)

var gcTune struct {
	sync.Mutex
	runs              int
	percent, memLimit int64
}

// tuneGC raises the collector's target for the duration of a run; the returned func restores it
// when the last run ends.
func tuneGC() (restore func()) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	gcTune.Lock()
	if gcTune.runs == 0 {
		gcTune.percent = int64(debug.SetGCPercent(loadGCPercent))
		gcTune.memLimit = debug.SetMemoryLimit(loadMemLimit)
	}
	gcTune.runs++
	gcTune.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			gcTune.Lock()
			defer gcTune.Unlock()
			gcTune.runs--
			if gcTune.runs == 0 {
				debug.SetGCPercent(int(gcTune.percent))
				debug.SetMemoryLimit(gcTune.memLimit)
			}
		})
	}
}
