package workloads

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"

	"github.com/rehearse-dev/rehearse/load"
)

// TrackService creates Service name (ClusterIP) with selector, to the target port of Service like
// (its first port), and returns its port: the Service a smoke test or a track's probe reaches through
// ServiceProxy. It takes no node port: the published range stays for the workload's own Services.
func (p *Ops) TrackService(ctx context.Context, namespace, name, like string, selector map[string]string) (int32, error) {
	ref, err := p.cs.CoreV1().Services(namespace).Get(ctx, like, metav1.GetOptions{})
	if err != nil {
		return 0, err
	}
	if len(ref.Spec.Ports) == 0 {
		return 0, fmt.Errorf("Service %s has no port", like)
	}
	port := ref.Spec.Ports[0]
	target := port.TargetPort
	if target == (intstr.IntOrString{}) {
		target = intstr.FromInt32(port.Port)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{TrackLabel: "smoke"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: selector,
			Ports: []corev1.ServicePort{{Name: "http", Port: port.Port, TargetPort: target, Protocol: corev1.ProtocolTCP}}}}
	_ = p.cs.CoreV1().Services(namespace).Delete(ctx, name, metav1.DeleteOptions{})
	made, err := p.cs.CoreV1().Services(namespace).Create(ctx, svc, metav1.CreateOptions{FieldManager: "rehearse"})
	if err != nil {
		return 0, err
	}
	return made.Spec.Ports[0].Port, nil
}

// ServiceProxy serves Service name's port on 127.0.0.1 through the API server's service proxy, until
// ctx ends or stop is called; base is "http://127.0.0.1:PORT". Each request goes to a ready endpoint
// of that Service, chosen by the API server from the Service's own endpoints.
//
// Not a node port, because a node port can lie for a moment: one that another Service has just
// freed still routes to that Service's pods until every kube-proxy has synced, and the API server
// hands it out again at once. A smoke test or a probe there could judge another app's pods (on a
// shared cluster, with rehearsals side by side, it did). The proxy also needs no published port, so
// it works on any cluster the kubeconfig reaches.
//
// Answers pass through as the pod gave them (status, headers, body); the API server rewrites links
// only in text/html bodies. When no pod could be reached (no ready endpoint, a refused connection),
// the API server answers 503 with a Status: APIServerRefusal tells those apart.
func (p *Ops) ServiceProxy(ctx context.Context, namespace, name string, port int32) (base string, stop func(), err error) {
	rc, ok := p.cs.CoreV1().RESTClient().(*rest.RESTClient)
	if !ok || rc == nil || rc.Client == nil {
		return "", nil, errors.New("no API server to proxy through")
	}
	target := rc.Get().AbsPath("/api/v1/namespaces", namespace, "services", name+":"+strconv.Itoa(int(port)), "proxy").URL()
	transport := rc.Client.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	return serveProxy(ctx, target, transport)
}

// serveProxy is ServiceProxy's listener: every request's path and query are appended to target.
func serveProxy(ctx context.Context, target *url.URL, transport http.RoundTripper) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			u := *target
			u.Path = target.Path + r.In.URL.Path
			u.RawPath = ""
			u.RawQuery = r.In.URL.RawQuery
			r.Out.URL = &u
			r.Out.Host = ""
		},
		Transport: transport,
		// The API server's own refusals are marked, for a reader that cannot tell them from a pod's
		// answer by itself (a read-back, where a 404 means a lost write).
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode < 400 {
				return nil
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			if APIServerRefusal(resp.StatusCode, body) {
				resp.Header.Set(load.ProxyRefusalHeader, "the API server")
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set(load.ProxyRefusalHeader, "rehearse's proxy")
			http.Error(w, "rehearse: the API server's service proxy could not be reached: "+err.Error(), http.StatusBadGateway)
		},
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	pctx, cancel := context.WithCancel(ctx)
	go func() {
		<-pctx.Done()
		_ = srv.Close()
	}()
	// stop has closed the listener when it returns (the goroutine above may not have run yet).
	stop := func() { cancel(); _ = srv.Close() }
	return "http://" + ln.Addr().String(), stop, nil
}

// APIServerRefusal says whether an answer through ServiceProxy is the API server's own, not a pod's:
// an error status whose body is a Kubernetes Status (the Service's endpoints not made yet, no ready
// endpoint, a connection a pod refused or dropped), or this proxy's own 502. No pod of the Service
// answered it: a pod's answers pass through the API server as they were.
func APIServerRefusal(code int, body []byte) bool {
	if code < 400 {
		return false
	}
	return statusKind.Match(body) || bytes.HasPrefix(body, []byte("rehearse: the API server's service proxy"))
}

// NotYetServed says whether an API server refusal means the Service has no endpoint to send to
// yet: its Endpoints not made yet (404) or none of them ready (503 "no endpoints available"). A new
// track Service's first seconds; after that, a pod that refuses is the release's failure.
func NotYetServed(code int, body []byte) bool {
	if !APIServerRefusal(code, body) {
		return false
	}
	return code == http.StatusNotFound && bytes.Contains(body, []byte("not found")) ||
		bytes.Contains(body, []byte("no endpoints available"))
}

// statusKind is a Kubernetes Status object's kind, compact or pretty-printed.
var statusKind = regexp.MustCompile(`"kind":\s*"Status"`)
