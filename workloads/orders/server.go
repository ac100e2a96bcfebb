package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// VersionHeader carries the serving version on every response.
const VersionHeader = "X-App-Version"

// DefaultMaxBody bounds a request body.
const DefaultMaxBody = 16 << 10

// DefaultMaxInFlight bounds the API requests one process serves at once; more are answered 503 at
// once. With the database's own bounds (AcquireTimeout, QueryTimeout) it keeps the process's memory
// bounded whatever the database and the clients do. Probes and metrics are not counted.
const DefaultMaxInFlight = 256

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// Server is the orders HTTP API.
type Server struct {
	store       Store
	version     Version
	maxBody     int64
	maxInFlight int64
	apiInFlight atomic.Int64

	draining atomic.Bool
	requests atomic.Uint64

	reg      *prometheus.Registry
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
	ready    prometheus.Gauge
	written  prometheus.Counter
}

// NewServer serves store as version v.
func NewServer(store Store, v Version) *Server {
	s := &Server{store: store, version: v, maxBody: DefaultMaxBody, maxInFlight: DefaultMaxInFlight, reg: prometheus.NewRegistry()}
	labels := prometheus.Labels{"version": string(v)}
	s.total = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orders_http_requests_total", Help: "HTTP requests by route, method and status code.", ConstLabels: labels,
	}, []string{"route", "method", "code"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "orders_http_request_duration_seconds", Help: "HTTP request latency by route.", ConstLabels: labels,
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method"})
	s.inflight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "orders_inflight_requests", Help: "Requests being served.", ConstLabels: labels})
	s.ready = prometheus.NewGauge(prometheus.GaugeOpts{Name: "orders_ready", Help: "1 while /readyz answers 200.", ConstLabels: labels})
	s.written = prometheus.NewCounter(prometheus.CounterOpts{Name: "orders_created_total", Help: "Orders created (not retries).", ConstLabels: labels})
	s.reg.MustRegister(s.total, s.duration, s.inflight, s.ready, s.written,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return s
}

// Registry exposes the server's metrics (for tests and embedding).
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Handler routes the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", s.bounded(s.create))
	mux.HandleFunc("GET /orders", s.bounded(s.list))
	mux.HandleFunc("GET /orders/count", s.bounded(s.count))
	mux.HandleFunc("GET /orders/{id}", s.bounded(s.get))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return s.instrument(mux)
}

// bounded sheds an API request beyond maxInFlight with a 503.
func (s *Server) bounded(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer s.apiInFlight.Add(-1)
		if n := s.apiInFlight.Add(1); n > s.maxInFlight {
			fail(w, http.StatusServiceUnavailable, "overloaded: %d requests in flight (limit %d)", n-1, s.maxInFlight)
			return
		}
		h(w, r)
	}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) instrument(next *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set(VersionHeader, string(s.version))
		s.inflight.Inc()
		defer s.inflight.Dec()
		sw := &statusWriter{ResponseWriter: w}
		_, route := next.Handler(r)
		if route == "" {
			route = "unmatched"
		}
		next.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		s.total.WithLabelValues(route, r.Method, strconv.Itoa(sw.code)).Inc()
		s.duration.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
	})
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, errorBody{Error: fmt.Sprintf(format, args...)})
}

// badRequest reports whether this request is one v2-bad fails on purpose.
func (s *Server) badRequest() bool {
	return s.version == V2Bad && s.requests.Add(1)%BadEvery == 0
}

type createRequest struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	AmountCents int64  `json:"amount_cents"`
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	if s.badRequest() {
		fail(w, http.StatusInternalServerError, "v2-bad: injected failure")
		return
	}
	if r.ContentLength > s.maxBody {
		fail(w, http.StatusRequestEntityTooLarge, "body of %d bytes exceeds the limit of %d", r.ContentLength, s.maxBody)
		return
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.maxBody))
	dec.DisallowUnknownFields()
	var req createRequest
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(w, http.StatusRequestEntityTooLarge, "body exceeds the limit of %d bytes", s.maxBody)
			return
		}
		fail(w, http.StatusBadRequest, "malformed JSON: %v", err)
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		fail(w, http.StatusBadRequest, "malformed JSON: data after the order object")
		return
	}
	switch {
	case req.ID == "":
		fail(w, http.StatusBadRequest, "field id is required")
		return
	case !idPattern.MatchString(req.ID):
		fail(w, http.StatusBadRequest, "field id must be 1-128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit")
		return
	case req.Name == "":
		fail(w, http.StatusBadRequest, "field name is required")
		return
	case len(req.Name) > 256:
		fail(w, http.StatusBadRequest, "field name is longer than 256 bytes")
		return
	case req.AmountCents < 0:
		fail(w, http.StatusBadRequest, "field amount_cents must not be negative")
		return
	}
	o, created, err := s.store.Put(r.Context(), Order{ID: req.ID, Name: req.Name, AmountCents: req.AmountCents})
	switch {
	case errors.Is(err, ErrConflict):
		fail(w, http.StatusConflict, "order %s exists with different content", req.ID)
	case err != nil:
		fail(w, http.StatusServiceUnavailable, "database: %v", err)
	case created:
		s.written.Inc()
		writeJSON(w, http.StatusCreated, o)
	default:
		writeJSON(w, http.StatusOK, o)
	}
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	if s.badRequest() {
		fail(w, http.StatusInternalServerError, "v2-bad: injected failure")
		return
	}
	id := r.PathValue("id")
	if !idPattern.MatchString(id) {
		fail(w, http.StatusBadRequest, "invalid order id")
		return
	}
	o, err := s.store.Get(r.Context(), id)
	switch {
	case errors.Is(err, ErrNotFound):
		fail(w, http.StatusNotFound, "order %s not found", id)
	case err != nil:
		fail(w, http.StatusServiceUnavailable, "database: %v", err)
	default:
		writeJSON(w, http.StatusOK, o)
	}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fail(w, http.StatusBadRequest, "limit must be 1-1000")
			return
		}
		limit = n
	}
	after := r.URL.Query().Get("after")
	orders, err := s.store.List(r.Context(), after, limit)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, "database: %v", err)
		return
	}
	if orders == nil {
		orders = []Order{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"orders": orders})
}

func (s *Server) count(w http.ResponseWriter, r *http.Request) {
	n, err := s.store.Count(r.Context())
	if err != nil {
		fail(w, http.StatusServiceUnavailable, "database: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"count": n})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		s.ready.Set(0)
		fail(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.ready.Set(0)
		fail(w, http.StatusServiceUnavailable, "database unreachable: %v", err)
		return
	}
	s.ready.Set(1)
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "version": string(s.version)})
}

// Serve serves on ln until ctx is done (SIGTERM), then drains: readiness fails at once while requests
// keep being served for drain (so endpoints controllers and load balancers stop sending), then the
// server shuts down gracefully, waiting up to grace for requests in flight, and the store is closed.
func (s *Server) Serve(ctx context.Context, ln net.Listener, drain, grace time.Duration) error {
	// Idle keep-alive connections are closed after a minute: a client population that comes and goes
	// must not leave one goroutine and its buffers behind per connection it abandoned.
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		s.store.Close()
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.ready.Set(0)
	time.Sleep(drain)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	s.store.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
