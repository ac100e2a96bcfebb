package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestReadBack(t *testing.T) {
	t.Parallel()
	stored := map[string]bool{"a": true, "c": true}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/items/")
		switch {
		case id == "boom":
			http.Error(w, "down", http.StatusServiceUnavailable)
		case stored[id]:
			w.Write([]byte("{}"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	missing, err := ReadBack(context.Background(), srv.URL, "/items/{{.ID}}", Found{}, []string{"a", "b", "c", "d"}, 2)
	slices.Sort(missing)
	if err != nil || !slices.Equal(missing, []string{"b", "d"}) {
		t.Errorf("missing %v, err %v; want [b d]", missing, err)
	}
	// A status that is neither "stored" nor "missing" means the check could not measure.
	if _, err := ReadBack(context.Background(), srv.URL, "/items/{{.ID}}", Found{}, []string{"a", "boom"}, 2); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a 503 must be an error, got %v", err)
	}
	if _, err := ReadBack(context.Background(), srv.URL, "/items/{{.Nope}}", Found{}, []string{"a"}, 1); err == nil {
		t.Errorf("a template naming an unknown field must be an error")
	}
}

// A service that answers 200 with a "not found" page, and one that redirects reads: found says
// what a stored answer looks like, and a redirect is never taken for an answer.
func TestReadBackFoundAndRedirects(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/items/")
		switch {
		case strings.HasPrefix(r.URL.Path, "/moved/"):
			http.Redirect(w, r, "/items/a", http.StatusFound)
		case id == "a":
			w.Write([]byte(`{"id":"a"}`))
		default:
			w.Write([]byte(`<h1>Sorry, nothing here</h1>`))
		}
	}))
	defer srv.Close()
	missing, err := ReadBack(context.Background(), srv.URL, "/items/{{.ID}}", Found{BodyHasID: true}, []string{"a", "b"}, 2)
	if err != nil || !slices.Equal(missing, []string{"b"}) {
		t.Errorf("bodyHasID: missing %v, err %v; want [b]", missing, err)
	}
	if missing, err := ReadBack(context.Background(), srv.URL, "/items/{{.ID}}", Found{}, []string{"a", "b"}, 2); err != nil || len(missing) != 0 {
		t.Errorf("without bodyHasID any 200 reads as stored: missing %v, err %v", missing, err)
	}
	if _, err := ReadBack(context.Background(), srv.URL, "/moved/{{.ID}}", Found{}, []string{"a"}, 1); err == nil || !strings.Contains(err.Error(), "302") {
		t.Errorf("a redirect must not be followed to a stored answer: %v", err)
	}
}

func TestWaitAnswering(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler()) // any answer will do, even 404
	defer srv.Close()
	if err := WaitAnswering(context.Background(), srv.URL, time.Second); err != nil {
		t.Errorf("answering server: %v", err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	start := time.Now()
	if err := WaitAnswering(context.Background(), url, 700*time.Millisecond); err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("closed port: %v", err)
	}
	if time.Since(start) < 700*time.Millisecond {
		t.Errorf("gave up before the timeout")
	}
}

// Through rehearse's proxy to a Service, a 404 from the API server (no such Service, no endpoint)
// is no pod's answer: the read-back errors rather than count the write as lost.
func TestReadBackRefusesTheProxysOwnAnswers(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/b") {
			w.Header().Set(ProxyRefusalHeader, "the API server")
			http.Error(w, `{"kind":"Status","message":"services \"orders\" not found"}`, http.StatusNotFound)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	missing, err := ReadBack(context.Background(), srv.URL, "/items/{{.ID}}", Found{}, []string{"a", "b"}, 1)
	if err == nil || !strings.Contains(err.Error(), "not the system") || slices.Contains(missing, "b") {
		t.Errorf("missing %v, err %v: want an error naming the proxy, and b not counted missing", missing, err)
	}
}
