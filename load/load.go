// Package load owns the synthetic HTTP traffic of a rehearsal: vegeta (as a library) sends weighted
// targets at a constant or stepped rate, every result is streamed to disk in vegeta's binary format
// (`vegeta report` reads it), per-second aggregates are kept for the timeline, and a ledger records
// which writes were acknowledged (2xx) and which are indeterminate (no answer), for the durability
// check. Memory stays flat with run length: results and the ledger go to files.
package load

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"text/template"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// VersionHeader is the response header that names the serving version.
const VersionHeader = "X-App-Version"

// requestHeader carries "<target>; id=<id>" on each request; the transport copies it onto the response
// so every result is attributed to its target and id.
const requestHeader = "X-Rehearse-Request"

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
}

// Stage holds Rate for Duration.
type Stage struct {
	Rate     float64
	Duration time.Duration
}

// Config configures a load run.
type Config struct {
	BaseURL string
	Targets []Target
	// Rate (per second) is the rate when there are no stages; with stages, each stage's rate holds for
	// its duration and the last one's stays.
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
}

// DefaultMaxInFlight bounds vegeta's workers: unbounded, a saturating run grows workers until file
// descriptors run out.
const DefaultMaxInFlight = 256

type compiled struct {
	Target
	path, body *template.Template
}

type tmplData struct{ ID, RecentID string }

// Run is a load run in progress.
type Run struct {
	cfg      Config
	targets  []compiled
	ledgered map[string]bool // names of ledger targets
	total    int
	attacker *vegeta.Attacker
	started  time.Time

	mu       sync.Mutex
	rng      *rand.Rand
	seq      uint64
	recent   []string // ring of recently acknowledged ids
	recentAt int

	ledgerMu sync.Mutex
	ledger   *bufio.Writer
	ledgerF  *os.File

	agg  *Aggregator
	done chan error
}

// Start begins sending load; it runs until ctx ends, Stop is called, or Duration passes.
func Start(ctx context.Context, cfg Config) (*Run, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.RunID == "" {
		cfg.RunID = fmt.Sprintf("r%d", time.Now().UnixNano()%1e9)
	}
	if len(cfg.Targets) == 0 {
		return nil, fmt.Errorf("load: no targets")
	}
	r := &Run{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), recent: make([]string, 0, 256), done: make(chan error, 1),
		ledgered: map[string]bool{}}
	for _, t := range cfg.Targets {
		if t.Weight <= 0 {
			t.Weight = 1
		}
		c := compiled{Target: t}
		var err error
		if c.path, err = template.New(t.Name).Option("missingkey=error").Parse(t.Path); err != nil {
			return nil, fmt.Errorf("target %s path: %w", t.Name, err)
		}
		if c.body, err = template.New(t.Name).Option("missingkey=error").Parse(t.Body); err != nil {
			return nil, fmt.Errorf("target %s body: %w", t.Name, err)
		}
		r.targets = append(r.targets, c)
		r.total += t.Weight
		if t.Ledger {
			r.ledgered[t.Name] = true
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	results, err := os.Create(cfg.Dir + "/results.bin")
	if err != nil {
		return nil, err
	}
	if r.ledgerF, err = os.Create(cfg.Dir + "/ledger.tsv"); err != nil {
		results.Close()
		return nil, err
	}
	r.ledger = bufio.NewWriter(r.ledgerF)
	r.agg = NewAggregator()

	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 10000,
		IdleConnTimeout:     30 * time.Second,
	}
	client := &http.Client{Timeout: cfg.Timeout, Transport: &ledgerTransport{next: tr, run: r}}
	maxInFlight := cfg.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxInFlight
	}
	r.attacker = vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(uint64(min(8, maxInFlight))),
		vegeta.MaxWorkers(uint64(maxInFlight)), vegeta.MaxBody(4096))
	var pacer vegeta.Pacer = &stepPacer{base: cfg.Rate, stages: cfg.Stages}
	if cfg.Rate <= 0 && len(cfg.Stages) == 0 {
		pacer = vegeta.ConstantPacer{} // saturation, with vegeta's own bounded-worker loop
	}
	r.started = time.Now()
	results_ := r.attacker.Attack(r.targeter(), pacer, cfg.Duration, "rehearse")
	go func() {
		buf := bufio.NewWriterSize(results, 1<<16)
		enc := vegeta.NewEncoder(buf)
		var encErr error
		stopped := false
		for res := range results_ {
			if ctx.Err() != nil && !stopped {
				stopped = true
				r.attacker.Stop()
			}
			r.agg.Add(res, r.started)
			res.Body = nil // bodies are not kept on disk either
			if err := enc.Encode(res); err != nil && encErr == nil {
				encErr = err
			}
		}
		if err := buf.Flush(); err != nil && encErr == nil {
			encErr = err
		}
		r.ledgerMu.Lock()
		lerr := r.ledger.Flush()
		r.ledgerMu.Unlock()
		r.ledgerF.Close()
		if cerr := results.Close(); encErr == nil {
			encErr = cerr
		}
		if encErr == nil {
			encErr = lerr
		}
		r.done <- encErr
	}()
	go func() {
		<-ctx.Done()
		r.attacker.Stop()
	}()
	return r, nil
}

// Stop ends the run; Wait returns once every result is on disk.
func (r *Run) Stop() { r.attacker.Stop() }

// Wait blocks until the run ends and returns its aggregates.
func (r *Run) Wait() (*Aggregator, error) {
	err := <-r.done
	r.done <- err
	return r.agg, err
}

// Aggregates gives the live aggregates (for progress lines).
func (r *Run) Aggregates() *Aggregator { return r.agg }

func (r *Run) targeter() vegeta.Targeter {
	return func(tgt *vegeta.Target) error {
		r.mu.Lock()
		c := r.pick()
		r.seq++
		id := fmt.Sprintf("%s-%d", r.cfg.RunID, r.seq)
		recent := ""
		if n := len(r.recent); n > 0 {
			recent = r.recent[r.rng.IntN(n)]
		}
		r.mu.Unlock()
		if recent == "" && strings.Contains(c.Path+c.Body, "RecentID") {
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
		if err := c.path.Execute(&path, data); err != nil {
			return err
		}
		if err := c.body.Execute(&body, data); err != nil {
			return err
		}
		tgt.Method = c.Method
		tgt.URL = strings.TrimRight(r.cfg.BaseURL, "/") + path.String()
		tgt.Body = []byte(body.String())
		tgt.Header = http.Header{requestHeader: []string{c.Name + "; id=" + id}}
		if len(tgt.Body) > 0 {
			tgt.Header.Set("Content-Type", "application/json")
		}
		return nil
	}
}

func (r *Run) pick() compiled {
	n := r.rng.IntN(r.total)
	for _, c := range r.targets {
		if n < c.Weight {
			return c
		}
		n -= c.Weight
	}
	return r.targets[len(r.targets)-1]
}

// record writes one ledger line: "acked|indeterminate|rejected <tab> id <tab> target".
func (r *Run) record(state, id, target string) {
	r.ledgerMu.Lock()
	fmt.Fprintf(r.ledger, "%s\t%s\t%s\n", state, id, target)
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

// ledgerTransport attributes each response to its target and id, and records ledger outcomes: a 2xx
// to a ledger target is acknowledged; no answer at all is indeterminate (the write may have landed).
type ledgerTransport struct {
	next http.RoundTripper
	run  *Run
}

func (t *ledgerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tag := req.Header.Get(requestHeader)
	target, id, _ := strings.Cut(tag, "; id=")
	resp, err := t.next.RoundTrip(req)
	if !t.run.ledgered[target] {
		if resp != nil {
			resp.Header.Set(requestHeader, tag)
		}
		return resp, err
	}
	switch {
	case err != nil:
		t.run.record("indeterminate", id, target)
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		t.run.record("acked", id, target)
	default:
		t.run.record("rejected", id, target)
	}
	if resp != nil {
		resp.Header.Set(requestHeader, tag)
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
	// Time until the integral reaches hits+1 at the current rate.
	wait := time.Duration((float64(hits) + 1 - expected) / rate * float64(time.Second))
	return wait, false
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
