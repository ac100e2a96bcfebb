// Package load owns the synthetic HTTP traffic of a rehearsal: vegeta (as a library) sends weighted
// targets at a constant or stepped rate, in a sequence the seed alone plans (Plan: a replay with the
// seed sends the same targets in the same order); every result is streamed to disk in vegeta's
// binary format (`vegeta report` reads it), per-second aggregates are kept for the timeline, and a
// ledger records which writes were acknowledged (2xx) and which are indeterminate (no answer), for
// the durability check. Memory stays flat with run length: results and the ledger go to files.
package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// VersionHeader is the response header that names the serving version.
const VersionHeader = "X-App-Version"

// requestHeader carries "<target>; id=<id>" on each request; the transport copies it onto the response
// so every result is attributed to its target and id.
const requestHeader = "X-Rehearse-Request"

// jsonType is the Content-Type of a request with a body (vegeta copies a target's header values).
var jsonType = []string{"application/json"}

// Target is one kind of request, chosen with probability Weight/sum(Weights).
type Target struct {
	Name   string
	Method string
	// Path and Body are text/template strings with {{.ID}} (a unique id per request) and
	// {{.RecentID}} (an id acknowledged recently by a ledger target).
	Path, Body string
	Weight     int
	// Ledger targets are writes whose acknowledgement is recorded.
	Ledger bool
	// Expect lists the statuses that count as success; empty means any 2xx. A redirect is never
	// followed: unless expected, a 3xx is a failed request.
	Expect []int
}

// Stage holds Rate for Duration.
type Stage struct {
	Rate     float64
	Duration time.Duration
}

// Connections says how the client population uses connections. Real clients come and go, so a pod
// that becomes an endpoint gets traffic within about MaxAge; a client that kept its first connections
// for the whole run would be pinned (by kube-proxy) to the pods that existed when the load started.
type Connections struct {
	// MaxAge is the longest a connection is reused for new requests; 0 means DefaultMaxConnAge, a
	// negative value means for ever (a pinned client: only for comparison).
	MaxAge time.Duration
	// Fresh sends every request on a new connection (no keep-alive).
	Fresh bool
	// Clients is how many independent clients (each with its own connections) share the requests;
	// 0 means DefaultClients.
	Clients int
}

// DefaultMaxConnAge is how long a connection serves new requests by default.
const DefaultMaxConnAge = time.Second

// DefaultLateness is how far behind its scheduled time a request may still be sent; later, it is
// counted as a failed request that was not sent (the client was saturated).
const DefaultLateness = time.Second

// NotSent is the error of a request the client could not send within the lateness allowed.
const NotSent = "not sent: client saturated"

// Retried is the error of a request whose first attempt failed on a reused connection the server
// closed before answering, and that Go's transport silently sent again on a new connection (it does so
// for GET, HEAD, OPTIONS and TRACE without a body, and for any request with an Idempotency-Key). A
// browser's form POST, a client in another language or a payment call meets that moment as a
// failure, so it counts as one unless Config.ClientRetries says the system's clients retry.
const Retried = "connection closed by the server before the response; a retrying client would have resent it"

// retriedHeader marks, on a response, a request that needed a second attempt (ClientRetries).
const retriedHeader = "X-Rehearse-Retried"

var errRetried = errors.New(Retried)

// Config configures a load run.
type Config struct {
	BaseURL string
	Targets []Target
	// Rate (per second) is the rate when there are no stages; with stages, each stage's rate holds for
	// its duration and the last one's stays. Neither: as fast as the workers go (saturation).
	Rate   float64
	Stages []Stage
	// Duration bounds the run; 0 runs until Stop.
	Duration time.Duration
	Timeout  time.Duration // per request; default 5s
	Seed     uint64
	// Dir receives results.bin and ledger.tsv.
	Dir string
	// RunID prefixes generated ids, so ids of different runs never collide.
	RunID string
	// MaxInFlight caps concurrent requests (vegeta's workers); default 256. A capped client cannot
	// keep the rate when the system slows down, which is what load-achieved is there to catch.
	MaxInFlight int
	// Lateness is how late after its scheduled time a request may still be sent (default
	// DefaultLateness); a later one fails as NotSent.
	Lateness    time.Duration
	Connections Connections
	// Version says where an answer says which version answered (default: the VersionHeader header);
	// the timeline and the migration gates split results by it.
	Version Version
	// ClientRetries says the system's clients retry idempotent requests: a request that needed a
	// second attempt (see Retried) counts as served. It is still counted as retried.
	ClientRetries bool
	// Share is the part of the plan this run sends (a load agent's, see Share); zero: all of it.
	// Results carry the whole plan's sequence numbers.
	Share Share
	// StartAt, when set, is when the schedule starts (Start returns at once; sending waits for it):
	// agents that share a plan start it together.
	StartAt time.Time
	// Flush writes results and ledger lines to their files at least this often (0: as buffers fill).
	// A load agent streams its files as they grow.
	Flush time.Duration

	// stream keeps, in each result written, what the run that merges it cannot read again: the
	// version an answer's body said (versionSeenHeader) and a failed answer's first line.
	stream bool
}

// DefaultMaxInFlight bounds vegeta's workers: unbounded, a saturating run grows workers until file
// descriptors run out.
const DefaultMaxInFlight = 256

type compiled struct {
	Target
	path, body   *template.Template
	pathF, bodyF filler // path and body, filled
	recent       bool   // path or body reads {{.RecentID}}
}

type tmplData struct{ ID, RecentID string }

// Run is a load run in progress.
type Run struct {
	cfg       Config
	base      string // cfg.BaseURL without its trailing slashes
	restoreGC func()
	targets   []compiled
	byName    map[string]*compiled
	attacker  *vegeta.Attacker
	pacer     *stepPacer // nil at saturation: no schedule
	started   time.Time
	conns     *connPool

	mu        sync.Mutex
	plan      *planner
	recentRng *rand.Rand // which recently acknowledged id a {{.RecentID}} reads
	recent    []string   // ring of recently acknowledged ids
	recentAt  int

	ledgerMu sync.Mutex
	line     []byte // a ledger line being written (under ledgerMu)
	ledger   *bufio.Writer
	ledgerF  *os.File

	agg  *Aggregator
	done chan error

	stopMu  sync.Mutex
	stopped time.Time // when Stop was called or the context ended: the schedule ends there

	links     []*agentLink // the load agents sending the plan (StartAgents); none: this process sends it
	stopLinks sync.Once
}

// Start begins sending load; it runs until ctx ends, Stop is called, or Duration passes.
func Start(ctx context.Context, cfg Config) (*Run, error) {
	if err := cfg.Share.Check(); err != nil {
		return nil, err
	}
	if !cfg.Share.Whole() && cfg.Rate <= 0 && len(cfg.Stages) == 0 {
		return nil, fmt.Errorf("load: a plan shared by %d agents needs a rate (at saturation there is no schedule to share)", cfg.Share.Of)
	}
	started := time.Now()
	if !cfg.StartAt.IsZero() {
		started = cfg.StartAt
	}
	r, results, err := newRun(cfg, started)
	if err != nil {
		return nil, err
	}
	cfg = r.cfg
	r.restoreGC = tuneGC()
	r.plan.share = cfg.Share
	r.conns = newConnPool(cfg.Timeout, cfg.Connections)
	// The timeout is the transport's (a deadline on each request's context, to the end of its body),
	// not http.Client.Timeout: for a RoundTripper it does not know, the client starts a goroutine,
	// a timer and two channels per request to enforce it (a tenth of the load path's CPU at
	// saturation, make bench-profile).
	client := &http.Client{Transport: &ledgerTransport{next: r.conns, run: r, timeout: cfg.Timeout}, CheckRedirect: noRedirects}
	maxInFlight := cfg.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxInFlight
	}
	r.attacker = vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(uint64(min(8, maxInFlight))),
		vegeta.MaxWorkers(uint64(maxInFlight)), vegeta.MaxBody(MaxVersionBody))
	var pacer vegeta.Pacer = vegeta.ConstantPacer{} // saturation, with vegeta's own bounded-worker loop
	if r.pacer != nil {
		pacer = r.pacer
		if !cfg.Share.Whole() {
			pacer = &sharePacer{whole: r.pacer, share: cfg.Share}
		}
	}
	var results_ <-chan *vegeta.Result
	if time.Until(r.started) <= 0 {
		results_ = r.attacker.Attack(r.targeter(), pacer, cfg.Duration, "rehearse")
	} else {
		later := make(chan *vegeta.Result)
		results_ = later
		go func() {
			defer close(later)
			select {
			case <-time.After(time.Until(r.started)):
			case <-ctx.Done():
				return
			}
			for res := range r.attacker.Attack(r.targeter(), pacer, cfg.Duration, "rehearse") {
				later <- res
			}
		}()
	}
	var issued uint64
	go r.sink(ctx, results, results_, func(res *vegeta.Result) {
		issued = max(issued, res.Seq+1)
		res.Seq = cfg.Share.Global(res.Seq)
	}, func(encode func(*vegeta.Result), stopAt time.Time) {
		// Requests the schedule called for that a blocked client never even started (the attack loop
		// waits for a free worker): each is a request not sent, at its scheduled time.
		for local := issued; r.pacer != nil; local++ {
			seq := cfg.Share.Global(local)
			at := r.scheduledAt(seq)
			if at.After(stopAt.Add(-cfg.Lateness)) {
				break
			}
			encode(&vegeta.Result{Attack: "rehearse", Seq: seq, Timestamp: at, Latency: time.Since(at), Error: NotSent})
		}
		r.conns.close()
	})
	go func() {
		<-ctx.Done()
		r.Stop()
	}()
	return r, nil
}

// newRun sets up what a run writes and aggregates into, whoever sends its requests: cfg's defaults,
// the plan, results.bin and ledger.tsv in cfg.Dir, the schedule and the aggregator.
func newRun(cfg Config, started time.Time) (*Run, *os.File, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Lateness <= 0 {
		cfg.Lateness = DefaultLateness
	}
	if cfg.RunID == "" {
		cfg.RunID = NewRunID("r", cfg.Seed)
	}
	plan, err := newPlanner(cfg)
	if err != nil {
		return nil, nil, err
	}
	r := &Run{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), plan: plan, targets: plan.targets, recentRng: rand.New(rand.NewPCG(cfg.Seed, recentStream)),
		recent: make([]string, 0, 256), done: make(chan error, 1), byName: map[string]*compiled{}, started: started}
	for i := range r.targets {
		r.byName[r.targets[i].Name] = &r.targets[i]
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, nil, err
	}
	results, err := os.Create(cfg.Dir + "/results.bin")
	if err != nil {
		return nil, nil, err
	}
	if r.ledgerF, err = os.Create(cfg.Dir + "/ledger.tsv"); err != nil {
		results.Close()
		return nil, nil, err
	}
	r.ledger = bufio.NewWriter(r.ledgerF)
	if cfg.Rate > 0 || len(cfg.Stages) > 0 {
		r.pacer = &stepPacer{base: cfg.Rate, stages: cfg.Stages}
	}
	r.agg = newAggregator(r.started, r.scheduledAt, r.succeeded)
	if cfg.Version.Set() {
		r.agg.version = cfg.Version
	}
	if r.pacer != nil {
		r.agg.schedule = r.pacer.expected
	}
	return r, results, nil
}

// sink folds every result into the aggregates and streams it to results.bin until in closes: first
// through each (which may renumber it), then, once the schedule has ended, after may encode what was
// due and never came. A load agent's files end with agentEnd marks. Wait returns what went wrong.
func (r *Run) sink(ctx context.Context, results *os.File, in <-chan *vegeta.Result, each func(*vegeta.Result), after func(encode func(*vegeta.Result), stopAt time.Time)) {
	cfg := r.cfg
	buf := bufio.NewWriterSize(results, 1<<16)
	enc := vegeta.NewEncoder(buf)
	var encErr error
	var bufMu sync.Mutex
	write := func(res *vegeta.Result) {
		bufMu.Lock()
		if err := enc.Encode(res); err != nil && encErr == nil {
			encErr = err
		}
		bufMu.Unlock()
	}
	encode := func(res *vegeta.Result) {
		r.agg.Add(res)
		if cfg.stream {
			keepForMerge(res, r.agg)
		} else {
			res.Body = nil // bodies are not kept on disk either
		}
		write(res)
	}
	stopFlush := r.flushEvery(cfg.Flush, func() {
		if cfg.stream {
			// A mark that the agent is alive, for the run reading the stream to tell silence apart.
			write(&vegeta.Result{Attack: agentHeartbeat, Timestamp: time.Now()})
		}
		bufMu.Lock()
		if err := buf.Flush(); err != nil && encErr == nil {
			encErr = err
		}
		bufMu.Unlock()
	})
	stopped := false
	for res := range in {
		if ctx.Err() != nil && !stopped {
			stopped = true
			r.Stop()
		}
		each(res)
		encode(res)
	}
	stopAt := r.scheduleEnd()
	after(encode, stopAt)
	stopFlush()
	r.agg.finish(stopAt)
	r.ledgerMu.Lock()
	if cfg.stream {
		fmt.Fprintf(r.ledger, "%s\n", agentEnd)
	}
	lerr := r.ledger.Flush()
	r.ledgerMu.Unlock()
	r.ledgerF.Close()
	if cfg.stream {
		write(&vegeta.Result{Attack: agentEnd, Timestamp: time.Now()})
	}
	bufMu.Lock()
	if err := buf.Flush(); err != nil && encErr == nil {
		encErr = err
	}
	bufMu.Unlock()
	if cerr := results.Close(); encErr == nil {
		encErr = cerr
	}
	if encErr == nil {
		encErr = lerr
	}
	if r.restoreGC != nil {
		r.restoreGC()
	}
	r.done <- encErr
}

// scheduleEnd is when the schedule ended: at Stop, at the end of Duration, or now, the earliest.
func (r *Run) scheduleEnd() time.Time {
	end := time.Now()
	if r.cfg.Duration > 0 {
		end = minTime(end, r.started.Add(r.cfg.Duration))
	}
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	if !r.stopped.IsZero() {
		end = minTime(end, r.stopped)
	}
	return end
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// ParseTemplate parses a path, body or read-back template; a field other than .ID and .RecentID is
// refused here rather than when the first request is built.
func ParseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	if err := t.Execute(io.Discard, tmplData{ID: "x", RecentID: "x"}); err != nil {
		return nil, err
	}
	return t, nil
}

// NewRunID is the prefix of a run's ids: reproducible from the seed, and unique to the run (a nonce
// from the clock), so a store kept between runs never answers for a write this run did not make.
func NewRunID(prefix string, seed uint64) string {
	return fmt.Sprintf("%s-%d-%s", prefix, seed%1000000, strconv.FormatInt(time.Now().UnixNano()%(1<<42), 36))
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Stop ends the run (and its schedule); Wait returns once every result is on disk.
func (r *Run) Stop() {
	r.stopMu.Lock()
	if r.stopped.IsZero() {
		r.stopped = time.Now()
	}
	r.stopMu.Unlock()
	if r.attacker != nil {
		r.attacker.Stop()
	} else {
		go r.stopLinks.Do(r.stopAgents)
	}
}

// Wait blocks until the run ends and returns its aggregates.
func (r *Run) Wait() (*Aggregator, error) {
	err := <-r.done
	r.done <- err
	return r.agg, err
}

// Aggregates gives the live aggregates (for progress lines).
func (r *Run) Aggregates() *Aggregator { return r.agg }

// Started is when the load started: second 0 of its per-second results.
func (r *Run) Started() time.Time { return r.started }

// RunID is the prefix of this run's ids.
func (r *Run) RunID() string { return r.cfg.RunID }

// flushEvery calls flush every d (and flushes the ledger) until the returned stop is called; d ≤ 0
// does nothing.
func (r *Run) flushEvery(d time.Duration, flush func()) (stop func()) {
	if d <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				flush()
				r.ledgerMu.Lock()
				_ = r.ledger.Flush()
				r.ledgerMu.Unlock()
			}
		}
	}()
	return func() { close(done); <-ended }
}

// scheduledAt is when request seq (the whole plan's number, from 0) was due: the pacer releases hit
// n once the rate's integral passes n. At saturation there is no schedule (zero time).
func (r *Run) scheduledAt(seq uint64) time.Time {
	if r.pacer == nil {
		return time.Time{}
	}
	return r.started.Add(r.pacer.at(float64(seq)))
}

// succeeded says whether a response with code counts as success for target.
func (r *Run) succeeded(target string, code uint16) bool {
	if c := r.byName[target]; c != nil && len(c.Expect) > 0 {
		return slices.Contains(c.Expect, int(code))
	}
	return code >= 200 && code < 300
}

func (r *Run) targeter() vegeta.Targeter {
	return func(tgt *vegeta.Target) error {
		r.mu.Lock()
		c, id := r.plan.next()
		recent := ""
		if n := len(r.recent); n > 0 && c.recent {
			recent = r.recent[r.recentRng.IntN(n)]
		}
		r.mu.Unlock()
		if recent == "" && c.recent {
			// Nothing acknowledged yet to read back: send a write in its place.
			for _, w := range r.targets {
				if w.Ledger {
					c = w
					break
				}
			}
		}
		data := tmplData{ID: id, RecentID: recent}
		var path, body strings.Builder
		if err := c.pathF.fill(&path, data); err != nil {
			return err
		}
		if err := c.bodyF.fill(&body, data); err != nil {
			return err
		}
		tgt.Method = c.Method
		tgt.URL = r.base + path.String()
		tgt.Body = []byte(body.String())
		tag := []string{c.Name + "; id=" + id}
		if len(tgt.Body) > 0 {
			tgt.Header = http.Header{requestHeader: tag, "Content-Type": jsonType}
		} else {
			tgt.Header = http.Header{requestHeader: tag}
		}
		return nil
	}
}

// record writes one ledger line: "acked|indeterminate|rejected <tab> id <tab> target <tab> at", at
// being when the answer came, in seconds from the load's start (what a lost write's report names).
func (r *Run) record(state, id, target string) {
	at := time.Since(r.started).Seconds()
	r.ledgerMu.Lock()
	// As fmt's "%s\t%s\t%s\t%.3f\n", without its reflection on the load path.
	b := append(r.line[:0], state...)
	b = append(append(b, '\t'), id...)
	b = append(append(b, '\t'), target...)
	b = append(strconv.AppendFloat(append(b, '\t'), at, 'f', 3, 64), '\n')
	r.line = b
	r.ledger.Write(r.line)
	r.ledgerMu.Unlock()
	if state == "acked" {
		r.mu.Lock()
		if len(r.recent) < cap(r.recent) {
			r.recent = append(r.recent, id)
		} else {
			r.recent[r.recentAt] = id
			r.recentAt = (r.recentAt + 1) % cap(r.recent)
		}
		r.mu.Unlock()
	}
}

var errNotSent = errors.New(NotSent)

// ledgerTransport refuses to send a request that is already later than the lateness allowed (it
// fails as NotSent, at its scheduled time), attributes each response to its target and id, and
// records ledger outcomes: only an expected answer (2xx by default) acknowledges a write; a 4xx or a
// refused connection rejects it; no answer, a redirect or a 5xx leaves it indeterminate (it may have
// landed).
type ledgerTransport struct {
	next    http.RoundTripper
	run     *Run
	timeout time.Duration // for the whole exchange, the response's body read included; 0: none
}

// cancelBody ends its request's context when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func (t *ledgerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tag := req.Header.Get(requestHeader)
	target, id, _ := strings.Cut(tag, "; id=")
	c := t.run.byName[target]
	ledgered := c != nil && c.Ledger
	if seq, err := strconv.ParseUint(req.Header.Get("X-Vegeta-Seq"), 10, 64); err == nil && t.run.pacer != nil {
		if time.Since(t.run.scheduledAt(t.run.cfg.Share.Global(seq))) > t.run.cfg.Lateness {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, errNotSent // never reached the system: not a ledger entry
		}
	}
	// Every attempt is seen: the transport resends a replayable request on a new connection when a
	// reused one was closed before the response began, and a second GotConn is that resend.
	var attempts atomic.Int32
	ctx := httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { attempts.Add(1) },
	})
	cancel := context.CancelFunc(func() {})
	if t.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, t.timeout)
	}
	req = req.WithContext(ctx)
	resp, err := t.next.RoundTrip(req)
	if resp != nil {
		resp.Body = &cancelBody{resp.Body, cancel}
	} else {
		cancel()
	}
	retried := attempts.Load() > 1
	if ledgered {
		var dial *net.OpError
		switch {
		case errors.As(err, &dial) && dial.Op == "dial":
			t.run.record("rejected", id, target) // never connected: it cannot have landed
		case err != nil:
			t.run.record("indeterminate", id, target)
		case t.run.succeeded(target, uint16(resp.StatusCode)):
			t.run.record("acked", id, target)
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			t.run.record("rejected", id, target)
		default:
			t.run.record("indeterminate", id, target)
		}
	}
	if resp != nil {
		resp.Header[requestHeader] = []string{tag} // the canonical key already
	}
	if retried && err == nil {
		if !t.run.cfg.ClientRetries {
			// What the ledger recorded stands (the resend's answer is what the system did); the
			// request itself failed for a client that does not resend.
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			return nil, errRetried
		}
		resp.Header.Set(retriedHeader, "1")
	}
	return resp, err
}

// stepPacer is vegeta's constant pacing, with the rate changing at stage boundaries.
type stepPacer struct {
	base   float64
	stages []Stage
}

func (p *stepPacer) Rate(elapsed time.Duration) float64 {
	at := time.Duration(0)
	for _, s := range p.stages {
		if elapsed < at+s.Duration {
			return s.Rate
		}
		at += s.Duration
	}
	if len(p.stages) > 0 {
		return p.stages[len(p.stages)-1].Rate
	}
	return p.base
}

// Pace waits so that hits so far match the integral of the rate over elapsed time.
func (p *stepPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	expected := p.expected(elapsed)
	if float64(hits) < expected {
		return 0, false
	}
	rate := p.Rate(elapsed)
	if rate <= 0 {
		return time.Second, false
	}
	// Hit n is due when the integral passes n: wait until it does at the current rate (rounded up,
	// so the next call finds it due).
	wait := time.Duration(math.Ceil((float64(hits) - expected) / rate * float64(time.Second)))
	return wait + time.Microsecond, false
}

// at is the inverse of expected: when the rate's integral reaches n.
func (p *stepPacer) at(n float64) time.Duration {
	total, at := 0.0, time.Duration(0)
	for _, s := range p.stages {
		if seg := s.Rate * s.Duration.Seconds(); n <= total+seg {
			return at + time.Duration((n-total)/s.Rate*float64(time.Second))
		}
		total += s.Rate * s.Duration.Seconds()
		at += s.Duration
	}
	rate := p.base
	if len(p.stages) > 0 {
		rate = p.stages[len(p.stages)-1].Rate
	}
	return at + time.Duration((n-total)/rate*float64(time.Second))
}

func (p *stepPacer) expected(elapsed time.Duration) float64 {
	total, at := 0.0, time.Duration(0)
	for _, s := range p.stages {
		if elapsed <= at+s.Duration {
			return total + s.Rate*(elapsed-at).Seconds()
		}
		total += s.Rate * s.Duration.Seconds()
		at += s.Duration
	}
	rate := p.base
	if len(p.stages) > 0 {
		rate = p.stages[len(p.stages)-1].Rate
	}
	return total + rate*(elapsed-at).Seconds()
}
