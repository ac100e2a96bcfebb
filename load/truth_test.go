package load

import (
	"bufio"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Tests for the ways a load run could make a broken system look healthy.

func runFor(t *testing.T, cfg Config) (*Aggregator, map[string][]string) {
	t.Helper()
	cfg.Dir = t.TempDir()
	run, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	agg, err := run.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return agg, readLedger(t, cfg.Dir)
}

// A maintenance or login page: every write is redirected to a page that answers 200.
func TestRedirectsAreFailedRequestsAndNeverAcknowledge(t *testing.T) {
	t.Parallel()
	var logins atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			logins.Add(1)
			w.Write([]byte("please log in"))
			return
		}
		http.Redirect(w, r, "/login", http.StatusTemporaryRedirect) // 307 would re-send the POST body
	}))
	defer ts.Close()
	agg, ledger := runFor(t, Config{BaseURL: ts.URL, Targets: ordersTargets[:1], Rate: 50, Duration: time.Second})
	tot := agg.Totals()
	if tot.Requests < 40 || tot.Failed != tot.Requests || tot.Succeeded != 0 {
		t.Errorf("%d requests, %d failed, %d succeeded: every redirected write must fail", tot.Requests, tot.Failed, tot.Succeeded)
	}
	if logins.Load() != 0 {
		t.Errorf("the redirect was followed %d times", logins.Load())
	}
	if fs := agg.Failures(); len(fs) == 0 || fs[0].Code != http.StatusTemporaryRedirect {
		t.Errorf("failure samples must carry the 307: %+v", fs[:min(1, len(fs))])
	}
	if len(ledger["acked"]) != 0 || len(ledger["indeterminate"]) != tot.Requests {
		t.Errorf("ledger: %d acked, %d indeterminate; a redirected write is never acknowledged", len(ledger["acked"]), len(ledger["indeterminate"]))
	}
}

func TestExpectNarrowsSuccess(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	defer ts.Close()
	target := ordersTargets[0]
	target.Expect = []int{201}
	agg, ledger := runFor(t, Config{BaseURL: ts.URL, Targets: []Target{target}, Rate: 50, Duration: 500 * time.Millisecond})
	if tot := agg.Totals(); tot.Failed != tot.Requests || tot.Requests == 0 || len(ledger["acked"]) != 0 {
		t.Errorf("202 where 201 is expected: %d of %d failed, %d acked", tot.Failed, tot.Requests, len(ledger["acked"]))
	}
}

// A client stuck behind a stalled system: requests it could not send on schedule are failures, the
// seconds it fell behind show in the timeline, and latency counts from the scheduled time.
func TestStalledClientCountsWhatItCouldNotSend(t *testing.T) {
	t.Parallel()
	start := time.Now()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := time.Since(start); e > 700*time.Millisecond && e < 2700*time.Millisecond {
			time.Sleep(2700*time.Millisecond - e) // a 2 s stall
		}
		w.WriteHeader(201)
	}))
	defer ts.Close()
	agg, _ := runFor(t, Config{BaseURL: ts.URL, Targets: ordersTargets[:1], Rate: 50, Duration: 4 * time.Second, MaxInFlight: 2})
	tot := agg.Totals()
	t.Logf("%+v", tot)
	if tot.NotSent < 40 || tot.Failed < tot.NotSent {
		t.Errorf("not sent %d, failed %d: a 2 s stall at 50/s with 2 in flight leaves ~50-100 requests unsent", tot.NotSent, tot.Failed)
	}
	if tot.LatencyMS["p99"] < 900 {
		t.Errorf("p99 from the schedule %.0f ms: the stall must show", tot.LatencyMS["p99"])
	}
	short := 0
	for _, s := range agg.Seconds() {
		if float64(s.OK+s.Failed-s.NotSent) < 0.9*s.Scheduled-1 {
			short++
		}
	}
	if short == 0 {
		t.Errorf("no second fell behind its schedule: %+v", agg.Seconds())
	}
}

// A client that never gets a worker back until the run ends: the requests the schedule called for
// and that were never even started count too.
func TestNeverStartedRequestsCount(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.WriteHeader(201)
	}))
	defer ts.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	run, err := Start(ctx, Config{BaseURL: ts.URL, Targets: ordersTargets[:1], Rate: 20, MaxInFlight: 1, Timeout: 3 * time.Second, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	cancel()
	agg, _ := run.Wait()
	tot := agg.Totals()
	// 2.5 s at 20/s is 50 due; those due more than the lateness (1 s) before the end were not sent.
	if tot.NotSent < 25 || tot.Scheduled < 45 || tot.Scheduled > 55 {
		t.Errorf("not sent %d of %.0f scheduled", tot.NotSent, tot.Scheduled)
	}
}

func TestStagesSetEachSecondsSchedule(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(201) }))
	defer ts.Close()
	agg, _ := runFor(t, Config{BaseURL: ts.URL, Targets: ordersTargets[:1], Stages: []Stage{{Rate: 10, Duration: time.Second}, {Rate: 60, Duration: time.Second}},
		Duration: 2 * time.Second})
	secs := agg.Seconds()
	if len(secs) < 2 || secs[0].Scheduled != 10 || secs[1].Scheduled != 60 {
		t.Fatalf("scheduled per second: %+v", secs)
	}
	for _, s := range secs[:2] {
		if n := float64(s.OK + s.Failed); n < s.Scheduled-1 || n > s.Scheduled+1 {
			t.Errorf("second %d: %v requests, %v scheduled", s.T, n, s.Scheduled)
		}
	}
}

func TestPacerInverse(t *testing.T) {
	p := &stepPacer{stages: []Stage{{Rate: 10, Duration: 2 * time.Second}, {Rate: 100, Duration: time.Second}}}
	for _, n := range []float64{1, 10, 20, 21, 120, 220} {
		if got := p.expected(p.at(n)); got < n-1e-6 || got > n+1e-6 {
			t.Errorf("expected(at(%v)) = %v", n, got)
		}
	}
}

func TestRunIDsDifferBetweenRunsWithOneSeed(t *testing.T) {
	a := NewRunID("smoke", 42)
	time.Sleep(time.Millisecond)
	if b := NewRunID("smoke", 42); a == b || !strings.HasPrefix(a, "smoke-42-") {
		t.Errorf("run ids %q and %q: the same seed must not give the same ids", a, b)
	}
}

// kubeProxy stands in for a Service: each new connection goes to an endpoint picked at random (as
// kube-proxy's iptables rules do), and stays there, as conntrack pins an established connection to
// one pod.
type kubeProxy struct {
	ln        net.Listener
	mu        sync.Mutex
	endpoints []string
	rng       *rand.Rand
}

func newKubeProxy(t *testing.T, endpoints ...string) *kubeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &kubeProxy{ln: ln, endpoints: endpoints, rng: rand.New(rand.NewPCG(1, 2))}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			ep := p.endpoints[p.rng.IntN(len(p.endpoints))]
			p.mu.Unlock()
			go func() {
				defer c.Close()
				b, err := net.Dial("tcp", ep)
				if err != nil {
					return // the pod refuses: the client's connection is closed
				}
				defer b.Close()
				go io.Copy(b, c)
				io.Copy(c, b)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *kubeProxy) add(ep string) {
	p.mu.Lock()
	p.endpoints = append(p.endpoints, ep)
	p.mu.Unlock()
}

// A pod that becomes an endpoint before it listens (no readiness probe) must receive traffic, and so
// fail it: a client pinned to its first connections would never notice.
func TestRecycledConnectionsReachNewEndpoints(t *testing.T) {
	t.Parallel()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(201) }))
	defer ok.Close()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there: connection refused

	for _, c := range []struct {
		name      string
		conns     Connections
		wantFails bool
	}{{"pinned", Connections{MaxAge: -1}, false}, {"default", Connections{}, true}, {"fresh", Connections{Fresh: true}, true}} {
		t.Run(c.name, func(t *testing.T) {
			p := newKubeProxy(t, strings.TrimPrefix(ok.URL, "http://"))
			time.AfterFunc(500*time.Millisecond, func() { p.add(deadAddr) })
			agg, _ := runFor(t, Config{BaseURL: "http://" + p.ln.Addr().String(), Targets: ordersTargets[:1], Rate: 50,
				Duration: 4 * time.Second, Connections: c.conns})
			tot := agg.Totals()
			if got := tot.Failed > 0; got != c.wantFails {
				t.Errorf("%d of %d failed; want failures: %v", tot.Failed, tot.Requests, c.wantFails)
			}
			if c.wantFails {
				// From about a second after it joined, the new endpoint gets traffic every second.
				for _, s := range agg.Seconds()[2:4] {
					if s.Failed == 0 {
						t.Errorf("second %d: nothing failed of %d; the new endpoint got no traffic", s.T, s.OK+s.Failed)
					}
				}
			}
		})
	}
}

// A pod that joins the Service gets its fair share of the traffic within about a second, every
// second: a canary gate judges that share, so it must not hang on which pod one or two long-lived
// connections happened to reach.
func TestNewEndpointsGetAFairShare(t *testing.T) {
	t.Parallel()
	server := func(v string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(VersionHeader, v)
			w.WriteHeader(201)
		}))
		t.Cleanup(s.Close)
		return strings.TrimPrefix(s.URL, "http://")
	}
	p := newKubeProxy(t, server("v1"), server("v1"))
	canary := server("v2")
	time.AfterFunc(500*time.Millisecond, func() { p.add(canary) })
	agg, _ := runFor(t, Config{BaseURL: "http://" + p.ln.Addr().String(), Targets: ordersTargets[:1], Rate: 50, Duration: 5 * time.Second})
	start := agg.start
	w := agg.Versions(start.Add(2*time.Second), start.Add(5*time.Second))
	share := float64(w.By["v2"].Requests) / float64(w.By["v1"].Requests+w.By["v2"].Requests)
	if share < 0.2 || share > 0.47 {
		t.Errorf("the canary (one pod of three) answered %.0f%% of seconds 2-5 (%+v); want about a third", 100*share, w.By)
	}
}

// closeAfterFirst is a server that answers the first request on each connection and then, on a
// kept-alive connection, reads the next request and closes without answering: the moment a pod that
// is shutting down drops its connections. Go's transport resends such a GET on a new connection.
func closeAfterFirst(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var dropped atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-App-Version: v1\r\n\r\nok")
				if _, err := http.ReadRequest(br); err == nil {
					dropped.Add(1)
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), &dropped
}

// A request that met a connection closed before its response is a failed request with its own
// error, although the transport's silent resend got a 200; with clientRetries allowed it is served,
// and still counted as retried.
func TestSilentRetriesAreFailuresUnlessClientsRetry(t *testing.T) {
	t.Parallel()
	get := []Target{{Name: "read", Method: "GET", Path: "/", Weight: 1}}
	conns := Connections{MaxAge: -1, Clients: 1}
	for _, allow := range []bool{false, true} {
		url, dropped := closeAfterFirst(t)
		agg, _ := runFor(t, Config{BaseURL: url, Targets: get, Rate: 50, Duration: time.Second, Connections: conns, ClientRetries: allow})
		tot := agg.Totals()
		if dropped.Load() == 0 || tot.Retried == 0 {
			t.Fatalf("allow=%v: %d connections dropped, %d retried: the probe did not work", allow, dropped.Load(), tot.Retried)
		}
		// A resend may land on another reused connection and be dropped again: one request, two drops.
		if int64(tot.Retried) > dropped.Load() || tot.Retried < tot.Requests/2 {
			t.Errorf("allow=%v: %d of %d requests retried; the server dropped %d (%+v)", allow, tot.Retried, tot.Requests, dropped.Load(), tot)
		}
		secs, retried := agg.Seconds(), 0
		for _, s := range secs {
			retried += s.Retried
		}
		if retried != tot.Retried {
			t.Errorf("allow=%v: seconds count %d retried, totals %d", allow, retried, tot.Retried)
		}
		if w := agg.Window(agg.start, agg.start.Add(time.Hour)); w.Retried != tot.Retried {
			t.Errorf("allow=%v: window counts %d retried, totals %d", allow, w.Retried, tot.Retried)
		}
		switch {
		case !allow && tot.Failed != tot.Retried:
			t.Errorf("%d failed, %d retried: every silently resent request is a failure", tot.Failed, tot.Retried)
		case !allow && !strings.Contains(agg.Failures()[0].Error, Retried):
			t.Errorf("failure error %q, want %q", agg.Failures()[0].Error, Retried)
		case allow && tot.Failed != 0:
			t.Errorf("clientRetries allowed: %d failed, want 0 (%+v)", tot.Failed, agg.Failures()[:1])
		}
	}
}

// A server that keeps its connections gives the transport nothing to resend: nothing is retried.
func TestKeptConnectionsAreNotRetried(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ts.Close()
	agg, _ := runFor(t, Config{BaseURL: ts.URL, Targets: []Target{{Name: "read", Method: "GET", Path: "/", Weight: 1}}, Rate: 50, Duration: time.Second})
	if tot := agg.Totals(); tot.Retried != 0 || tot.Failed != 0 {
		t.Errorf("%d retried, %d failed against a server that keeps its connections", tot.Retried, tot.Failed)
	}
}

// A failed answer's sample says what the body said: a 503 from load shedding, a lost database or a
// shutdown are different failures.
func TestFailureSamplesCarryTheBodysFirstLine(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "\n  database busy: no connection free within 2s  \nsecond line\n")
	}))
	defer ts.Close()
	agg, _ := runFor(t, Config{BaseURL: ts.URL, Targets: []Target{{Name: "read", Method: "GET", Path: "/", Weight: 1}}, Rate: 20, Duration: 500 * time.Millisecond})
	fs := agg.Failures()
	if len(fs) == 0 || fs[0].Error != "503 Service Unavailable: database busy: no connection free within 2s" {
		t.Errorf("failure samples: %+v", fs[:min(1, len(fs))])
	}
}
