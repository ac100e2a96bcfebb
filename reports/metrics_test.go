package reports

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/verify"
)

func TestMetricsLiveAndTextFile(t *testing.T) {
	start := time.Now()
	agg := load.NewAggregator(start)
	res := func(target string, code uint16, lat time.Duration) *vegeta.Result {
		return &vegeta.Result{Code: code, Timestamp: start, Latency: lat,
			Headers: http.Header{"X-Rehearse-Request": []string{target + "; id=x"}}}
	}
	agg.Add(res("write", 201, 3*time.Millisecond))
	agg.Add(res("write", 201, 4*time.Millisecond))
	agg.Add(res("read", 503, 2*time.Second))

	m := NewMetrics("smoke")
	m.LoadStarted(agg, 50)
	m.StepStarted(Step{Name: "scale-to-zero", Kind: "scale"})
	if got := m.Active(); len(got) != 1 || got[0] != "scale-to-zero" {
		t.Errorf("active steps %v", got)
	}
	addr, stop, err := m.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`rehearse_requests_total{code="201",scenario="smoke",target="write"} 2`,
		`rehearse_requests_total{code="503",scenario="smoke",target="read"} 1`,
		`rehearse_request_duration_seconds_count{scenario="smoke"} 3`,
		`rehearse_request_duration_seconds_bucket{scenario="smoke",le="+Inf"} 3`,
		`rehearse_failed_requests{scenario="smoke"} 1`,
		`rehearse_target_rate{scenario="smoke"} 50`,
		`rehearse_step_active{kind="scale",scenario="smoke",step="scale-to-zero"} 1`,
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("live /metrics lacks %s", want)
		}
	}
	// Two of three requests took at most 5 ms.
	if !strings.Contains(string(body), `rehearse_request_duration_seconds_bucket{scenario="smoke",le="0.005"} 2`) {
		t.Errorf("latency buckets wrong:\n%s", grep(string(body), "duration_seconds_bucket"))
	}

	m.StepFinished(Step{Name: "scale-to-zero", Kind: "scale", Status: "ok", Started: start, Finished: start.Add(12 * time.Second)})
	if got := m.Active(); len(got) != 0 {
		t.Errorf("active steps after the step finished: %v", got)
	}
	m.Verified([]verify.Result{{Name: "zero-failed-requests", Status: verify.Fail}}, VerdictFail)
	path := filepath.Join(t.TempDir(), "metrics.prom")
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	for _, want := range []string{
		`rehearse_step_active{kind="scale",scenario="smoke",step="scale-to-zero"} 0`,
		`rehearse_step_duration_seconds{kind="scale",scenario="smoke",status="ok",step="scale-to-zero"} 12`,
		`rehearse_check{check="zero-failed-requests",scenario="smoke",status="fail"} 1`,
		`rehearse_verdict{scenario="smoke",verdict="fail"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics.prom lacks %s", want)
		}
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
