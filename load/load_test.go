package load

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// ordersServer is a loopback stand-in for the orders app: POST stores the id from the body, GET
// answers 404 for ids it has not stored. failEvery>0 fails every n-th request with a 500.
type ordersServer struct {
	mu        sync.Mutex
	ids       map[string]bool
	n         atomic.Int64
	failEvery int64
	notFound  atomic.Int64
	delay     time.Duration
}

func (o *ordersServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := o.n.Add(1)
	if o.delay > 0 {
		time.Sleep(o.delay)
	}
	w.Header().Set(VersionHeader, "v1")
	if o.failEvery > 0 && n%o.failEvery == 0 {
		w.WriteHeader(500)
		return
	}
	switch r.Method {
	case "POST":
		b, _ := io.ReadAll(r.Body)
		id := strings.TrimSuffix(strings.TrimPrefix(string(b), `{"id":"`), `"}`)
		o.mu.Lock()
		o.ids[id] = true
		o.mu.Unlock()
		w.WriteHeader(201)
	case "GET":
		id := strings.TrimPrefix(r.URL.Path, "/orders/")
		o.mu.Lock()
		ok := o.ids[id]
		o.mu.Unlock()
		if !ok {
			o.notFound.Add(1)
			w.WriteHeader(404)
		}
	}
}

var ordersTargets = []Target{
	{Name: "write", Method: "POST", Path: "/orders", Body: `{"id":"{{.ID}}"}`, Weight: 3, Ledger: true},
	{Name: "read", Method: "GET", Path: "/orders/{{.RecentID}}", Weight: 1},
}

func readLedger(t *testing.T, dir string) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "ledger.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "\t")
		out[parts[0]] = append(out[parts[0]], parts[1])
	}
	return out
}

func TestRunRateLedgerAndResultsFile(t *testing.T) {
	t.Parallel()
	srv := &ordersServer{ids: map[string]bool{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	run, err := Start(context.Background(), Config{BaseURL: ts.URL, Targets: ordersTargets, Rate: 200, Duration: 2 * time.Second, Dir: dir, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	agg, err := run.Wait()
	if err != nil {
		t.Fatal(err)
	}
	tot := agg.Totals()
	if tot.Requests < 390 || tot.Requests > 410 {
		t.Errorf("sent %d requests in 2 s at 200/s", tot.Requests)
	}
	if tot.Failed != 0 || srv.notFound.Load() != 0 {
		t.Errorf("failed %d (404s %d): reads must only ask for acknowledged ids", tot.Failed, srv.notFound.Load())
	}
	ledger := readLedger(t, dir)
	srv.mu.Lock()
	stored := len(srv.ids)
	for _, id := range ledger["acked"] {
		if !srv.ids[id] {
			t.Errorf("ledger acked %s, which the server never stored", id)
		}
	}
	srv.mu.Unlock()
	if len(ledger["acked"]) != stored || stored < 250 {
		t.Errorf("ledger acked %d writes, server stored %d", len(ledger["acked"]), stored)
	}
	// results.bin is vegeta's own format.
	f, _ := os.Open(filepath.Join(dir, "results.bin"))
	defer f.Close()
	dec := vegeta.NewDecoder(f)
	n := 0
	for {
		var r vegeta.Result
		if err := dec.Decode(&r); err != nil {
			break
		}
		n++
	}
	if n != tot.Requests {
		t.Errorf("results.bin holds %d results, want %d", n, tot.Requests)
	}
	var versions int
	for _, s := range agg.Seconds() {
		versions += s.Versions["v1"]
	}
	if versions != tot.Requests {
		t.Errorf("version header recorded on %d of %d responses", versions, tot.Requests)
	}
}

func TestFailuresAreCountedAttributedAndNotAcked(t *testing.T) {
	t.Parallel()
	srv := &ordersServer{ids: map[string]bool{}, failEvery: 4}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	run, err := Start(context.Background(), Config{BaseURL: ts.URL, Targets: ordersTargets[:1], Rate: 100, Duration: time.Second, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	agg, _ := run.Wait()
	tot := agg.Totals()
	if tot.Failed != tot.Requests/4 {
		t.Errorf("%d of %d failed, want a quarter", tot.Failed, tot.Requests)
	}
	fs := agg.Failures()
	if len(fs) != tot.Failed || fs[0].Target != "write" || fs[0].Code != 500 {
		t.Errorf("failure samples: %d, first %+v", len(fs), fs[0])
	}
	ledger := readLedger(t, dir)
	// A 500 may come after the write landed: indeterminate, not rejected.
	if len(ledger["indeterminate"]) != tot.Failed || len(ledger["acked"]) != tot.Succeeded {
		t.Errorf("ledger: %d acked, %d indeterminate; want %d and %d", len(ledger["acked"]), len(ledger["indeterminate"]), tot.Succeeded, tot.Failed)
	}
}

func TestTimeoutsAreIndeterminate(t *testing.T) {
	t.Parallel()
	srv := &ordersServer{ids: map[string]bool{}, delay: 300 * time.Millisecond}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	run, err := Start(context.Background(), Config{BaseURL: ts.URL, Targets: ordersTargets[:1], Rate: 20, Duration: 500 * time.Millisecond,
		Timeout: 100 * time.Millisecond, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	agg, _ := run.Wait()
	tot := agg.Totals()
	ledger := readLedger(t, dir)
	if tot.Succeeded != 0 || len(ledger["indeterminate"]) != tot.Requests || tot.Requests == 0 {
		t.Errorf("requests %d, succeeded %d, indeterminate %d", tot.Requests, tot.Succeeded, len(ledger["indeterminate"]))
	}
}

// The timeout covers the whole exchange: an answer whose headers came in time but whose body stalls
// fails at the timeout, as a user's client gives up on it; it is not a success.
func TestTimeoutCoversTheBody(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		w.Write([]byte(`{"id":`))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	defer close(release)
	start := time.Now()
	run, err := Start(context.Background(), Config{BaseURL: ts.URL, Targets: ordersTargets[:1], Rate: 10, Duration: 300 * time.Millisecond,
		Timeout: 200 * time.Millisecond, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	agg, _ := run.Wait()
	tot := agg.Totals()
	if tot.Requests == 0 || tot.Succeeded != 0 || tot.Failed != tot.Requests {
		t.Errorf("requests %d, succeeded %d, failed %d: a stalled body must fail", tot.Requests, tot.Succeeded, tot.Failed)
	}
	if fs := agg.Failures(); len(fs) == 0 || !strings.Contains(fs[0].Error, "deadline exceeded") {
		t.Errorf("failures %+v: want the deadline named", fs)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the run took %s: the timeout did not end the stalled answers", d)
	}
}

func TestStepPacerFollowsStages(t *testing.T) {
	p := &stepPacer{stages: []Stage{{Rate: 10, Duration: 2 * time.Second}, {Rate: 100, Duration: time.Second}}}
	for _, c := range []struct {
		at   time.Duration
		want float64
	}{{time.Second, 10}, {2 * time.Second, 20}, {3 * time.Second, 120}, {4 * time.Second, 220}} {
		if got := p.expected(c.at); got != c.want {
			t.Errorf("hits expected by %s = %v, want %v", c.at, got, c.want)
		}
	}
	if p.Rate(2500*time.Millisecond) != 100 || p.Rate(10*time.Second) != 100 {
		t.Error("rate does not follow the stages")
	}
}

func TestStopEndsTheRun(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(&ordersServer{ids: map[string]bool{}})
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	run, err := Start(ctx, Config{BaseURL: ts.URL, Targets: ordersTargets[:1], Rate: 50, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	done := make(chan struct{})
	go func() { run.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not end after its context was cancelled")
	}
}

func TestNeverServedIsOneLongGap(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer ts.Close()
	run, err := Start(context.Background(), Config{BaseURL: ts.URL, Targets: ordersTargets[:1], Rate: 50, Duration: time.Second, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	agg, _ := run.Wait()
	if tot := agg.Totals(); tot.Succeeded != 0 || tot.LongestGap < 900*time.Millisecond {
		t.Errorf("nothing served, yet longest gap %s", tot.LongestGap)
	}
}
