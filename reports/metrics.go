package reports

import (
	"context"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/verify"
)

// Metrics are the Prometheus metrics of one rehearsal: requests by target and status, latency,
// target and achieved rate, which steps are in flight, and at the end each check's status and the
// verdict, plus the process's own (RSS, goroutines). They are read from the run's aggregates when
// scraped, so the load path pays nothing for them. Serve exposes them while the run goes on;
// WriteFile leaves them as a text file (metrics.prom) for node_exporter's textfile collector or CI.
type Metrics struct {
	reg      *prometheus.Registry
	scenario string

	mu         sync.Mutex
	agg        *load.Aggregator
	targetRate float64
	steps      []Step
	active     map[string]Step
	checks     []verify.Result
	verdict    string
}

// NewMetrics returns the metrics of the named scenario.
func NewMetrics(scenario string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), scenario: scenario, active: map[string]Step{}}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), m)
	return m
}

// LoadStarted points the metrics at a load run's aggregates.
func (m *Metrics) LoadStarted(agg *load.Aggregator, targetRate float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.agg, m.targetRate = agg, targetRate
}

// StepStarted marks a step in flight.
func (m *Metrics) StepStarted(s Step) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.active[s.Name] = s
}

// Active names the steps in flight, sorted.
func (m *Metrics) Active() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.active))
	for n := range m.active {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// StepFinished records a step's outcome.
func (m *Metrics) StepFinished(s Step) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.active, s.Name)
	m.steps = append(m.steps, s)
}

// Verified records the checks and the verdict.
func (m *Metrics) Verified(checks []verify.Result, verdict string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checks, m.verdict = checks, verdict
}

var (
	descRequests = prometheus.NewDesc("rehearse_requests_total", "Requests sent by the load, by target and HTTP status (0: no response).",
		[]string{"scenario", "target", "code"}, nil)
	descLatency = prometheus.NewDesc("rehearse_request_duration_seconds", "Latency of the load's requests.",
		[]string{"scenario"}, nil)
	descTarget   = prometheus.NewDesc("rehearse_target_rate", "Requests per second the scenario asks for.", []string{"scenario"}, nil)
	descAchieved = prometheus.NewDesc("rehearse_achieved_rate", "Requests per second sent so far.", []string{"scenario"}, nil)
	descFailed   = prometheus.NewDesc("rehearse_failed_requests", "Requests that failed so far (non-2xx or no response).", []string{"scenario"}, nil)
	descActive   = prometheus.NewDesc("rehearse_step_active", "1 while a step or fault is in flight.", []string{"scenario", "step", "kind"}, nil)
	descStepDur  = prometheus.NewDesc("rehearse_step_duration_seconds", "How long a finished step took.",
		[]string{"scenario", "step", "kind", "status"}, nil)
	descCheck   = prometheus.NewDesc("rehearse_check", "1 for each check with its status (pass, fail or error).", []string{"scenario", "check", "status"}, nil)
	descVerdict = prometheus.NewDesc("rehearse_verdict", "1 with the run's verdict.", []string{"scenario", "verdict"}, nil)
)

// Describe sends nothing: the metrics are unchecked (their label sets grow with the run).
func (m *Metrics) Describe(chan<- *prometheus.Desc) {}

// Collect reads the run's state.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sc := m.scenario
	if m.agg != nil {
		c := m.agg.Counters()
		for k, n := range c.Requests {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), sc, k.Target, strconv.Itoa(int(k.Code)))
		}
		ch <- prometheus.MustNewConstHistogram(descLatency, c.LatencyCount, c.LatencySum.Seconds(), c.Buckets, sc)
		t := m.agg.Totals()
		ch <- prometheus.MustNewConstMetric(descTarget, prometheus.GaugeValue, m.targetRate, sc)
		ch <- prometheus.MustNewConstMetric(descAchieved, prometheus.GaugeValue, t.AchievedRate, sc)
		ch <- prometheus.MustNewConstMetric(descFailed, prometheus.GaugeValue, float64(t.Failed), sc)
	}
	for _, s := range m.active {
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, 1, sc, s.Name, s.Kind)
	}
	for _, s := range m.steps {
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, 0, sc, s.Name, s.Kind)
		ch <- prometheus.MustNewConstMetric(descStepDur, prometheus.GaugeValue, s.Finished.Sub(s.Started).Seconds(), sc, s.Name, s.Kind, s.Status)
	}
	for _, c := range m.checks {
		ch <- prometheus.MustNewConstMetric(descCheck, prometheus.GaugeValue, 1, sc, c.Name, string(c.Status))
	}
	if m.verdict != "" {
		ch <- prometheus.MustNewConstMetric(descVerdict, prometheus.GaugeValue, 1, sc, m.verdict)
	}
}

// Serve exposes /metrics on addr (host:port; port 0 picks one) until the returned stop is called.
// It returns the address it listens on.
func (m *Metrics) Serve(addr string) (bound string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns ErrServerClosed once stop shuts it down
	}()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// WriteFile writes the metrics in Prometheus' text format.
func (m *Metrics) WriteFile(path string) error { return prometheus.WriteToTextfile(path, m.reg) }
