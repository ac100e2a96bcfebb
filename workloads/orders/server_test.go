package orders

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func do(t *testing.T, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestCreateIsIdempotentOnRetry(t *testing.T) {
	h := NewServer(newMemStore(), V1).Handler()
	w := do(t, h, "POST", "/orders", `{"id":"o-1","name":"Ada","amount_cents":250}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("first POST: %d %s", w.Code, w.Body)
	}
	if got := w.Header().Get(VersionHeader); got != "v1" {
		t.Errorf("%s = %q", VersionHeader, got)
	}
	w = do(t, h, "POST", "/orders", `{"id":"o-1","name":"Ada","amount_cents":250}`)
	if w.Code != http.StatusOK {
		t.Fatalf("retried POST: %d %s, want 200", w.Code, w.Body)
	}
	w = do(t, h, "POST", "/orders", `{"id":"o-1","name":"Bob","amount_cents":250}`)
	if w.Code != http.StatusConflict {
		t.Fatalf("conflicting POST: %d %s, want 409", w.Code, w.Body)
	}
	w = do(t, h, "GET", "/orders/o-1", "")
	var o Order
	if err := json.Unmarshal(w.Body.Bytes(), &o); err != nil || w.Code != 200 || o.Name != "Ada" || o.AmountCents != 250 {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
	w = do(t, h, "GET", "/orders/count", "")
	if strings.TrimSpace(w.Body.String()) != `{"count":1}` {
		t.Errorf("count: %s", w.Body)
	}
}

func TestBadInputIsA4xxWithAReason(t *testing.T) {
	h := NewServer(newMemStore(), V2).Handler()
	big := `{"id":"x","name":"` + strings.Repeat("a", DefaultMaxBody) + `"}`
	cases := map[string]struct {
		method, path, body string
		code               int
		reason             string
	}{
		"malformed JSON":     {"POST", "/orders", `{"id":`, 400, "malformed JSON"},
		"not an object":      {"POST", "/orders", `[1,2]`, 400, "malformed JSON"},
		"trailing data":      {"POST", "/orders", `{"id":"a","name":"n"} {}`, 400, "data after"},
		"unknown field":      {"POST", "/orders", `{"id":"a","name":"n","x":1}`, 400, "unknown field"},
		"missing id":         {"POST", "/orders", `{"name":"n"}`, 400, "id is required"},
		"bad id":             {"POST", "/orders", `{"id":"../etc","name":"n"}`, 400, "field id"},
		"missing name":       {"POST", "/orders", `{"id":"a"}`, 400, "name is required"},
		"negative amount":    {"POST", "/orders", `{"id":"a","name":"n","amount_cents":-1}`, 400, "negative"},
		"oversized body":     {"POST", "/orders", big, 413, "exceeds"},
		"wrong type":         {"POST", "/orders", `{"id":5,"name":"n"}`, 400, "malformed JSON"},
		"unknown order":      {"GET", "/orders/nope", "", 404, "not found"},
		"bad limit":          {"GET", "/orders?limit=0", "", 400, "limit"},
		"method not allowed": {"DELETE", "/orders/a", "", 405, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			w := do(t, h, c.method, c.path, c.body)
			if w.Code != c.code {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, w.Code, w.Body, c.code)
			}
			if !strings.Contains(w.Body.String(), c.reason) {
				t.Errorf("body %q lacks reason %q", w.Body, c.reason)
			}
		})
	}
}

// Chunked bodies carry no Content-Length; the limit must still hold.
func TestOversizedChunkedBody(t *testing.T) {
	srv := httptest.NewServer(NewServer(newMemStore(), V1).Handler())
	defer srv.Close()
	pr := strings.NewReader(`{"id":"x","name":"` + strings.Repeat("a", 2*DefaultMaxBody) + `"}`)
	req, _ := http.NewRequest("POST", srv.URL+"/orders", struct{ *strings.Reader }{pr})
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

func TestReadinessFollowsTheDatabase(t *testing.T) {
	st := newMemStore()
	h := NewServer(st, V1).Handler()
	if w := do(t, h, "GET", "/readyz", ""); w.Code != 200 {
		t.Fatalf("readyz with DB up: %d", w.Code)
	}
	st.down = errors.New("connection refused")
	if w := do(t, h, "GET", "/readyz", ""); w.Code != 503 || !strings.Contains(w.Body.String(), "database unreachable") {
		t.Fatalf("readyz with DB down: %d %s", w.Code, w.Body)
	}
	if w := do(t, h, "GET", "/healthz", ""); w.Code != 200 {
		t.Fatalf("healthz must not depend on the DB: %d", w.Code)
	}
	if w := do(t, h, "POST", "/orders", `{"id":"a","name":"n"}`); w.Code != 503 {
		t.Fatalf("write with DB down: %d, want 503", w.Code)
	}
}

func TestV2BadFailsAShareOfRequests(t *testing.T) {
	s := NewServer(newMemStore(), V2Bad)
	h := s.Handler()
	failed := 0
	const n = 40
	for i := 0; i < n; i++ {
		w := do(t, h, "POST", "/orders", `{"id":"o`+string(rune('a'+i%26))+string(rune('a'+i/26))+`","name":"n"}`)
		if w.Code >= 500 {
			failed++
		}
	}
	if failed != n/BadEvery {
		t.Fatalf("v2-bad failed %d of %d requests, want %d", failed, n, n/BadEvery)
	}
	if got := testutil.ToFloat64(s.total.WithLabelValues("POST /orders", "POST", "500")); got != float64(failed) {
		t.Errorf("metrics count %v 500s, want %d", got, failed)
	}
	// The good release never fails on its own.
	good := NewServer(newMemStore(), V2).Handler()
	for i := 0; i < n; i++ {
		if w := do(t, good, "POST", "/orders", `{"id":"g`+string(rune('a'+i%26))+string(rune('a'+i/26))+`","name":"n"}`); w.Code >= 500 {
			t.Fatalf("v2 answered %d", w.Code)
		}
	}
}

// On shutdown, readiness fails at once while requests are still served during the drain period,
// then the server stops and Serve returns nil.
func TestGracefulDrain(t *testing.T) {
	s := NewServer(newMemStore(), V1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, 400*time.Millisecond, time.Second) }()
	base := "http://" + ln.Addr().String()
	get := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("/readyz"); c != 200 {
		t.Fatalf("readyz before shutdown: %d", c)
	}
	cancel()
	time.Sleep(100 * time.Millisecond)
	if c := get("/readyz"); c != 503 {
		t.Errorf("readyz while draining: %d, want 503", c)
	}
	if c := get("/orders/count"); c != 200 {
		t.Errorf("request while draining: %d, want 200 (still served)", c)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("server did not stop after the drain period")
	}
	if c := get("/healthz"); c != -1 {
		t.Errorf("server still answering after shutdown: %d", c)
	}
}
