package migrate

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A track's probe counts what it sent and what failed in whole seconds, each request on a connection
// of its own, and stops with its context.
func TestTrackProbe(t *testing.T) {
	t.Parallel()
	var n, conns atomic.Int64
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			w.WriteHeader(503)
		}
	}))
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	p := startProbe(ctx, ts.URL+"/", 40, func(c int) bool { return c < 400 })
	time.Sleep(3200 * time.Millisecond)
	cancel()
	w := p.window(start, time.Now())
	if w.Requests < 60 || w.Requests > 130 {
		t.Errorf("%d requests in the whole seconds of 3.2 s at 40/s", w.Requests)
	}
	if w.Failed == 0 || w.Failed*5 > w.Requests*2 {
		t.Errorf("%d of %d failed; want about a quarter", w.Failed, w.Requests)
	}
	if w.P99MS <= 0 || w.P99MS > 1000 {
		t.Errorf("p99 %v ms", w.P99MS)
	}
	if c := conns.Load(); c < n.Load()-2 {
		t.Errorf("%d connections for %d requests: a probe must not reuse one", c, n.Load())
	}
	time.Sleep(300 * time.Millisecond)
	after := n.Load()
	time.Sleep(300 * time.Millisecond)
	if n.Load() != after {
		t.Errorf("the probe went on after its context ended")
	}
	if e := p.window(time.Now().Add(time.Hour), time.Now().Add(2*time.Hour)); e.Requests != 0 {
		t.Errorf("an empty window: %+v", e)
	}
}

// A probe counts from the first answer a pod gave on: the API server's refusals before it (no ready
// endpoint yet: a track with no pod so far) are not the release's; its refusals after it (the pod
// refused the API server's connection) are, and so are a pod's own failures.
func TestTrackProbeCountsFromFirstAnswer(t *testing.T) {
	t.Parallel()
	var phase atomic.Int32 // 0: no endpoint, 1: serving, 2: the pod refuses
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch phase.Load() {
		case 0:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(503)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"no endpoints available for service \"web-canary-probe\"","reason":"ServiceUnavailable","code":503}`)
		case 2:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(503)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"error trying to reach service: dial tcp 10.244.1.7:8080: connect: connection refused","reason":"ServiceUnavailable","code":503}`)
		}
	}))
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	p := startProbe(ctx, ts.URL+"/", 20, func(c int) bool { return c < 400 })
	time.Sleep(1500 * time.Millisecond)
	if w := p.window(start.Add(-time.Second), time.Now().Add(time.Second)); w.Requests != 0 {
		t.Fatalf("before any pod answered: %+v, want nothing counted", w)
	}
	phase.Store(1)
	time.Sleep(1500 * time.Millisecond)
	up := p.window(start.Add(-time.Second), time.Now().Add(time.Second))
	if up.Requests < 15 || up.Failed != 0 {
		t.Errorf("while serving: %+v, want about 30 requests, none failed", up)
	}
	phase.Store(2) // the track's pods refuse: the API server's refusals now count
	time.Sleep(1500 * time.Millisecond)
	cancel()
	all := p.window(start.Add(-time.Second), time.Now().Add(time.Second))
	if all.Failed < 15 {
		t.Errorf("after the pods refused: %+v, want the refusals counted as failures", all)
	}
}

// firstAnswer waits out a new Service's first seconds through the API server (its Endpoints not
// made yet, then none ready) and returns at the first answer that is not those: a pod's, whatever
// its status, or a pod's refusal of the API server's connection.
func TestFirstAnswer(t *testing.T) {
	t.Parallel()
	notFound := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"endpoints \"web-green-smoke\" not found","reason":"NotFound","code":404}`
	none := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no endpoints available for service \"web-green-smoke\"","reason":"ServiceUnavailable","code":503}`
	refused := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"error trying to reach service: dial tcp 10.244.1.7:8080: connect: connection refused","code":503}`
	for _, c := range []struct {
		name    string
		answers []string // code and body, "404 body"
		want    int      // requests until firstAnswer returns
	}{
		{"endpoints not made, then none ready, then a pod", []string{"404 " + notFound, "503 " + none, "200 ok"}, 3},
		{"a pod's own 404", []string{"404 404 page not found"}, 1},
		{"a pod that refuses the API server", []string{"404 " + notFound, "503 " + refused}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			var n atomic.Int32
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := min(int(n.Add(1))-1, len(c.answers)-1)
				var code int
				var body string
				fmt.Sscanf(c.answers[i], "%d", &code)
				body = c.answers[i][4:]
				w.WriteHeader(code)
				fmt.Fprint(w, body)
			}))
			defer ts.Close()
			if err := firstAnswer(context.Background(), ts.Client(), ts.URL+"/"); err != nil {
				t.Fatal(err)
			}
			if got := int(n.Load()); got != c.want {
				t.Errorf("returned after %d requests, want %d", got, c.want)
			}
		})
	}
}
