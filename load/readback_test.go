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
	missing, err := ReadBack(context.Background(), srv.URL, "/items/{{.ID}}", []string{"a", "b", "c", "d"}, 2)
	slices.Sort(missing)
	if err != nil || !slices.Equal(missing, []string{"b", "d"}) {
		t.Errorf("missing %v, err %v; want [b d]", missing, err)
	}
	// A status that is neither "stored" nor "missing" means the check could not measure.
	if _, err := ReadBack(context.Background(), srv.URL, "/items/{{.ID}}", []string{"a", "boom"}, 2); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a 503 must be an error, got %v", err)
	}
	if _, err := ReadBack(context.Background(), srv.URL, "/items/{{.Nope}}", []string{"a"}, 1); err == nil {
		t.Errorf("a template naming an unknown field must be an error")
	}
}

func TestWaitAnswering(t *testing.T) {
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
