package load

import (
	"net/http"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Versions splits a window by the version that answered: failures a version answered count against
// it, and requests nobody answered (refused, timed out, not sent) stand apart, so a canary that
// never answers cannot look like a canary without errors.
func TestVersionsSplitsAWindow(t *testing.T) {
	start := time.Unix(1000, 0)
	a := NewAggregator(start)
	add := func(sec float64, code uint16, version, errMsg string) {
		h := http.Header{}
		if version != "" {
			h.Set(VersionHeader, version)
		}
		a.Add(&vegeta.Result{Timestamp: start.Add(time.Duration(sec * float64(time.Second))), Code: code,
			Latency: 10 * time.Millisecond, Headers: h, Error: errMsg})
	}
	for s := range 4 {
		add(float64(s)+0.1, 200, "v1", "")
		add(float64(s)+0.2, 200, "v1", "")
		add(float64(s)+0.3, 500, "v2", "")
		add(float64(s)+0.4, 200, "v2", "")
		add(float64(s)+0.5, 0, "", "connection refused")
	}
	// Seconds 1 and 2 lie wholly within [0.5 s, 3.2 s]; 0 and 3 do not.
	w := a.Versions(start.Add(500*time.Millisecond), start.Add(3200*time.Millisecond))
	if got := w.By["v1"]; got.Requests != 4 || got.Failed != 0 {
		t.Errorf("v1: %+v", got)
	}
	if got := w.By["v2"]; got.Requests != 4 || got.Failed != 2 || got.ErrorRate() != 0.5 || got.P99MS == 0 {
		t.Errorf("v2: %+v", got)
	}
	if w.Unversioned.Requests != 2 || w.Unversioned.Failed != 2 {
		t.Errorf("unversioned: %+v", w.Unversioned)
	}
	if w := a.Versions(start.Add(2500*time.Millisecond), start.Add(3400*time.Millisecond)); len(w.By) != 0 || w.Unversioned.Requests != 0 {
		t.Errorf("no whole second in the window, yet %+v", w)
	}
	secs := a.Seconds()
	if secs[0].VersionFailed["v2"] != 1 || secs[0].Versions["v2"] != 2 {
		t.Errorf("second 0: %+v", secs[0])
	}
}
