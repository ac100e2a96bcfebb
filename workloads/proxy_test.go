package workloads

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/rehearse-dev/rehearse/load"
)

// ServiceProxy sends each request, path, query, method and body, to the API server's proxy of the
// named Service and port, and gives back the pod's answer as it came: status, headers, body.
func TestServiceProxy(t *testing.T) {
	var got []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+string(body))
		const prefix = "/api/v1/namespaces/shop/services/web-green-smoke:80/proxy"
		if !strings.HasPrefix(r.URL.Path, prefix) {
			http.Error(w, "not the service proxy: "+r.URL.Path, 404)
			return
		}
		switch strings.TrimPrefix(r.URL.Path, prefix) {
		case "/refused":
			http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no endpoints available for service \"web\"","code":503}`, 503)
			return
		case "/pod-404":
			http.Error(w, "no such order", 404)
			return
		}
		w.Header().Set("X-App-Version", "v2")
		w.WriteHeader(201)
		_, _ = io.WriteString(w, "made "+strings.TrimPrefix(r.URL.Path, prefix))
	}))
	defer api.Close()
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, stop, err := (&Ops{cs: cs}).ServiceProxy(ctx, "shop", "web-green-smoke", 80)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("base %q is not on loopback", base)
	}
	resp, err := http.Post(base+"/items/7?w=1", "application/json", strings.NewReader(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("X-App-Version") != "v2" || string(body) != "made /items/7" {
		t.Errorf("answer %d %q %q; want 201, v2, the pod's body", resp.StatusCode, resp.Header.Get("X-App-Version"), body)
	}
	if want := `POST /api/v1/namespaces/shop/services/web-green-smoke:80/proxy/items/7?w=1 {"n":1}`; len(got) != 1 || got[0] != want {
		t.Errorf("the API server saw %q; want %q", got, want)
	}
	// The API server's own refusal is marked, with its body intact; a pod's 404 is not.
	for path, want := range map[string]string{"/refused": "the API server", "/pod-404": ""} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get(load.ProxyRefusalHeader); got != want || len(body) == 0 {
			t.Errorf("%s: marked %q with body %q; want %q", path, got, body, want)
		}
	}
	stop()
	if _, err := http.Get(base + "/"); err == nil {
		t.Errorf("the proxy still serves after stop")
	}
}

// With no API server to reach (a fake clientset), ServiceProxy says so rather than serve nothing.
func TestServiceProxyNeedsAnAPIServer(t *testing.T) {
	if _, _, err := (&Ops{cs: fake.NewClientset()}).ServiceProxy(context.Background(), "ns", "s", 80); err == nil {
		t.Fatal("a proxy over a fake clientset: want an error")
	}
}

// The API server's own refusals are told from a pod's answers: a pod's 503 is the pod's.
func TestAPIServerRefusal(t *testing.T) {
	for _, c := range []struct {
		code int
		body string
		want bool
	}{
		{503, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no endpoints available for service \"s\"","code":503}`, true},
		{503, "{\n  \"kind\": \"Status\",\n  \"message\": \"error trying to reach service: dial tcp 10.244.1.7:8080: connect: connection refused\"\n}", true},
		{502, "rehearse: the API server's service proxy could not be reached: EOF\n", true},
		{503, "upstream busy", false},
		{200, `{"kind":"Status"}`, false},
		{404, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"endpoints \"s\" not found","reason":"NotFound","code":404}`, true},
		{404, "404 page not found\n", false},
	} {
		if got := APIServerRefusal(c.code, []byte(c.body)); got != c.want {
			t.Errorf("APIServerRefusal(%d, %q) = %v, want %v", c.code, c.body, got, c.want)
		}
	}
}

// Only the refusals of a Service with no endpoint yet are waited out; a pod that refuses the API
// server's connection, or a pod's own 404 or 503, is an answer.
func TestNotYetServed(t *testing.T) {
	for _, c := range []struct {
		code int
		body string
		want bool
	}{
		{404, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"endpoints \"web-canary-smoke\" not found","reason":"NotFound","code":404}`, true},
		{503, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no endpoints available for service \"web-canary-smoke\"","reason":"ServiceUnavailable","code":503}`, true},
		{503, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"error trying to reach service: dial tcp 10.244.1.7:8080: connect: connection refused","code":503}`, false},
		{404, "404 page not found\n", false},
		{503, "no endpoints available, says the app", false},
		{200, "ok", false},
	} {
		if got := NotYetServed(c.code, []byte(c.body)); got != c.want {
			t.Errorf("NotYetServed(%d, %q) = %v, want %v", c.code, c.body, got, c.want)
		}
	}
}
