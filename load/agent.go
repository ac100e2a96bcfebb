package load

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// A load agent is this package's Run in a pod of the cluster, sending its Share of a rehearsal's
// plan to the Service by its in-cluster name. The run that starts it (StartAgents) reaches it over
// HTTP through the API server's pod proxy:
//
//	GET  /healthz   200 once it listens (the pod's readiness)
//	GET  /clock     its clock, for the run to measure the offset between them
//	POST /start     an AgentStart: the plan, its share, when to start (on the agent's clock)
//	GET  /results   results.bin as it grows (vegeta's encoding), heartbeat marks every Flush, an end
//	                mark after the last result; read from the start on every connection
//	GET  /ledger    ledger.tsv as it grows, an end line after the last
//	POST /stop      ends the schedule, as Run.Stop
//
// It stops by itself when the run is gone: no /results stream open for AgentStart.Heartbeat (the API
// server ends the proxied stream when the run's process ends, Ctrl-C or crash alike), or no /start
// within AgentIdle of its launch. Then it exits, and its pod ends.

// A load agent answers only requests that carry its token (AgentTokenHeader): the run that made its
// pod set it (AgentTokenEnv), so no other client in the cluster can point its load elsewhere or
// read its results. /healthz alone is open, for the kubelet's probe.
const (
	AgentTokenEnv    = "REHEARSE_AGENT_TOKEN"
	AgentTokenHeader = "X-Rehearse-Agent-Token"
)

// AgentPort is the port a load agent listens on in its pod.
const AgentPort = 8089

// AgentIdle is how long an agent waits for its start before it exits.
const AgentIdle = 5 * time.Minute

// DefaultHeartbeat is how long an agent goes on with no run reading its results.
const DefaultHeartbeat = 10 * time.Second

// drainedGrace is how long an agent whose results were all read waits for a run to read them again
// (its connection broke at the very end) before it exits.
const drainedGrace = 2 * time.Second

// agentFlush is how often an agent writes out its results and a heartbeat mark.
const agentFlush = 200 * time.Millisecond

// Marks in an agent's result stream (Result.Attack) and ledger (a line of its own).
const (
	agentHeartbeat = "rehearse-agent-heartbeat"
	agentEnd       = "rehearse-agent-end"
)

// AgentStart starts a load agent.
type AgentStart struct {
	Config Config `json:"config"`
	// Heartbeat is how long the agent goes on with no /results stream open (default
	// DefaultHeartbeat).
	Heartbeat time.Duration `json:"heartbeat"`
}

// AgentClock is an agent's answer to GET /clock.
type AgentClock struct {
	UnixNano int64 `json:"unix_nano"`
}

// agent is the state of ServeAgent.
type agent struct {
	dir      string
	logf     func(string, ...any)
	mu       sync.Mutex
	run      *Run
	beat     time.Duration
	streams  int       // /results streams open
	seen     time.Time // when a stream last closed (or the agent started)
	drained  bool      // a /results stream has sent everything, end mark included
	finished chan struct{}
	stop     context.CancelFunc
}

// ServeAgent runs a load agent on addr, writing its files in dir, until ctx ends or it stops by
// itself (see above). Every request but /healthz must carry token.
func ServeAgent(ctx context.Context, addr, dir, token string, logf func(string, ...any)) error {
	if token == "" {
		return errors.New("load agent: no token (" + AgentTokenEnv + ")")
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := &agent{dir: dir, logf: logf, seen: time.Now(), finished: make(chan struct{}), stop: cancel}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /clock", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(AgentClock{UnixNano: time.Now().UnixNano()})
	})
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, r *http.Request) { a.start(ctx, w, r) })
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		run := a.run
		a.mu.Unlock()
		if run != nil {
			run.Stop()
		}
		io.WriteString(w, "stopping\n")
	})
	mux.HandleFunc("GET /results", func(w http.ResponseWriter, r *http.Request) { a.follow(w, r, "results.bin", true) })
	mux.HandleFunc("GET /ledger", func(w http.ResponseWriter, r *http.Request) { a.follow(w, r, "ledger.tsv", false) })
	guarded := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && subtle.ConstantTimeCompare([]byte(r.Header.Get(AgentTokenHeader)), []byte(token)) != 1 {
			http.Error(w, "not the run that started this agent", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: guarded, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	logf("load agent listening on %s", ln.Addr())

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	launched := time.Now()
	for {
		select {
		case <-ctx.Done():
			a.mu.Lock()
			run := a.run
			a.mu.Unlock()
			if run != nil {
				run.Stop()
				_, _ = run.Wait()
			}
			return nil
		case <-tick.C:
		}
		a.mu.Lock()
		run, streams, seen, beat, drained := a.run, a.streams, a.seen, a.beat, a.drained
		a.mu.Unlock()
		switch {
		case drained && streams == 0 && time.Since(seen) > drainedGrace:
			logf("the run has read all the results: exiting")
			cancel()
		case run == nil && time.Since(launched) > AgentIdle:
			logf("no run started this agent in %s: exiting", AgentIdle)
			return nil
		case run != nil && streams == 0 && time.Since(seen) > beat:
			select {
			case <-a.finished:
				logf("the run has read the results: exiting")
			default:
				logf("no run has read the results for %s: the run is gone; stopping the load", beat)
			}
			cancel()
		}
	}
}

func (a *agent) start(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	var st AgentStart
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		http.Error(w, "start: "+err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.run != nil {
		http.Error(w, "start: already started", http.StatusConflict)
		return
	}
	cfg := st.Config
	cfg.Dir, cfg.Flush, cfg.stream = a.dir, agentFlush, true
	run, err := Start(ctx, cfg)
	if err != nil {
		http.Error(w, "start: "+err.Error(), http.StatusBadRequest)
		return
	}
	a.run, a.beat, a.seen = run, st.Heartbeat, time.Now()
	if a.beat <= 0 {
		a.beat = DefaultHeartbeat
	}
	a.logf("load agent: %s of run %s at %.1f/s from %s to %s", cfg.Share, cfg.RunID, cfg.Rate, cfg.StartAt.Format(time.RFC3339Nano), cfg.BaseURL)
	go func() {
		if _, err := run.Wait(); err != nil {
			a.logf("load agent: %v", err)
		}
		close(a.finished)
	}()
	io.WriteString(w, "started\n")
}

// follow streams file from its start as it grows, until the run has finished and all of it is sent.
func (a *agent) follow(w http.ResponseWriter, r *http.Request, file string, counted bool) {
	a.mu.Lock()
	run := a.run
	if counted {
		a.streams++
	}
	a.mu.Unlock()
	if counted {
		defer func() {
			a.mu.Lock()
			a.streams--
			a.seen = time.Now()
			a.mu.Unlock()
		}()
	}
	if run == nil {
		http.Error(w, "not started", http.StatusConflict)
		return
	}
	f, err := os.Open(filepath.Join(a.dir, file))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	buf := make([]byte, 64<<10)
	for {
		done := false
		select {
		case <-a.finished:
			done = true
		default:
		}
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		switch {
		case errors.Is(err, io.EOF) && done:
			if counted {
				a.mu.Lock()
				a.drained = true
				a.mu.Unlock()
			}
			return
		case errors.Is(err, io.EOF):
			select {
			case <-r.Context().Done():
				return
			case <-a.finished:
			case <-time.After(agentFlush / 2):
			}
		case err != nil:
			panic(http.ErrAbortHandler) // the reader must see a broken stream, not an end
		}
	}
}

// String of an AgentStart, for logs.
func (s AgentStart) String() string {
	return fmt.Sprintf("%s of %s", s.Config.Share, s.Config.RunID)
}
