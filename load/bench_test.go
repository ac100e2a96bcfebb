package load

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// BenchmarkSaturation drives a loopback server as fast as possible, first through this package (weighted
// targets, templates, ledger, aggregates, results.bin) and then through bare vegeta in the same run,
// and reports both rates and their ratio. Run: make bench.
func BenchmarkSaturation(b *testing.B) {
	for _, mode := range versionModes {
		b.Run(mode.name, func(b *testing.B) {
			ts := httptest.NewServer(mode.handler(201))
			defer ts.Close()
			const d = 3 * time.Second
			for i := 0; i < b.N; i++ {
				run, err := Start(context.Background(), Config{BaseURL: ts.URL, Targets: ordersTargets[:1], Duration: d, Dir: b.TempDir(), Version: mode.version})
				if err != nil {
					b.Fatal(err)
				}
				agg, err := run.Wait()
				if err != nil {
					b.Fatal(err)
				}
				ours := agg.Totals()
				if v := agg.Seconds()[0].Versions["v1"]; v == 0 {
					b.Fatalf("no answer read as v1 (%s)", mode.version)
				}

				atk := vegeta.NewAttacker(vegeta.Workers(8), vegeta.MaxWorkers(256), vegeta.MaxBody(4096))
				tr := vegeta.NewStaticTargeter(vegeta.Target{Method: "POST", URL: ts.URL + "/orders", Body: []byte(`{"id":"x"}`)})
				var m vegeta.Metrics
				for res := range atk.Attack(tr, vegeta.Rate{Freq: 0}, d, "bare") {
					m.Add(res)
				}
				m.Close()
				b.ReportMetric(ours.AchievedRate, "rehearse_req/s")
				b.ReportMetric(m.Rate, "vegeta_req/s")
				b.ReportMetric(ours.AchievedRate/m.Rate, "ratio")
				if ours.Failed > 0 || m.Success < 1 {
					b.Fatalf("failures at saturation: ours %d, vegeta success %.3f", ours.Failed, m.Success)
				}
			}
		})
	}
}

// versionModes are where the benchmarks' server says its version and the load reads it: the header
// (the default), and a field of a JSON body of a realistic size (load.version: {json: ...}).
var versionModes = []versionMode{
	{"header", HeaderVersion(VersionHeader), ""},
	{"json-body", Version{JSON: []string{"build", "version"}},
		`{"id":"o-1","name":"Ada Lovelace","amount_cents":1234,"created_at":"2026-12-06T20:00:00Z","items":[{"sku":"a","n":1},{"sku":"b","n":2}],"build":{"commit":"4898bae38177","version":"v1"}}`},
}

type versionMode struct {
	name    string
	version Version
	body    string
}

func (m versionMode) handler(code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.body == "" {
			w.Header().Set(VersionHeader, "v1")
			w.WriteHeader(code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(m.body))
	})
}

// BenchmarkFidelity holds 100 and 500 req/s for 10 s each against a loopback server and reports the
// achieved rate as a share of the target, the worst whole second's share of its schedule, requests
// not sent, and p99 from the scheduled and from the actual send. Run: make bench.
func BenchmarkFidelity(b *testing.B) {
	for _, mode := range versionModes {
		for _, rate := range []float64{100, 500} {
			b.Run(fmt.Sprintf("%s/%.0f/s", mode.name, rate), func(b *testing.B) {
				ts := httptest.NewServer(mode.handler(201))
				defer ts.Close()
				for i := 0; i < b.N; i++ {
					run, err := Start(context.Background(), Config{BaseURL: ts.URL, Targets: ordersTargets[:1], Rate: rate,
						Duration: 10 * time.Second, Dir: b.TempDir(), Version: mode.version})
					if err != nil {
						b.Fatal(err)
					}
					agg, err := run.Wait()
					if err != nil {
						b.Fatal(err)
					}
					t := agg.Totals()
					b.ReportMetric(t.AchievedRate, "achieved_req/s")
					b.ReportMetric(t.AchievedRate/rate, "fidelity")
					worst := 2.0
					for _, s := range agg.Seconds() {
						if s.Scheduled >= rate*0.99 { // whole seconds
							worst = min(worst, float64(s.OK+s.Failed-s.NotSent)/s.Scheduled)
						}
					}
					b.ReportMetric(worst, "worst_second_share")
					b.ReportMetric(float64(t.NotSent), "not_sent")
					b.ReportMetric(t.LatencyMS["p99"], "p99_sched_ms")
					b.ReportMetric(t.LatencyMS["p99_sent"], "p99_sent_ms")
					if t.Failed > 0 {
						b.Fatalf("%d failed", t.Failed)
					}
				}
			})
		}
	}
}

// BenchmarkLoadPath is BenchmarkSaturation's first half alone (this package at saturation, version by
// header), for a CPU profile of the load path without bare vegeta's beside it. Run: make
// bench-profile.
func BenchmarkLoadPath(b *testing.B) {
	ts := httptest.NewServer(versionModes[0].handler(201))
	defer ts.Close()
	for i := 0; i < b.N; i++ {
		run, err := Start(context.Background(), Config{BaseURL: ts.URL, Targets: ordersTargets[:1], Duration: 5 * time.Second, Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		agg, err := run.Wait()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(agg.Totals().AchievedRate, "rehearse_req/s")
	}
}
