package load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Agent is a load agent a run reaches over HTTP: in a cluster, through the API server's pod proxy
// (Base is the pod's proxy URL, Client carries the run's credentials).
type Agent struct {
	Name   string // the pod's name
	Node   string // the node it runs on
	Base   string
	Client *http.Client // no timeout of its own: the result streams last the run
	Token  string       // the agent's token (AgentTokenHeader)
}

// AgentLost begins the error of each request a lost agent's share had due and no result came for:
// it counts as not sent.
const AgentLost = "not sent: its load agent was lost"

// AgentReport is what the run knows of one agent: its share, how far its clock is from the run's,
// what it sent, and whether (and when) it was lost.
type AgentReport struct {
	Name  string `json:"name"`
	Node  string `json:"node,omitempty"`
	Share Share  `json:"share"`
	// OffsetMS is the agent's clock minus the run's, measured over the fastest of a few round trips
	// (RTTMS): the true offset lies within ±RTTMS/2 of it. Results are moved onto the run's clock by it.
	OffsetMS float64 `json:"clock_offset_ms"`
	RTTMS    float64 `json:"clock_rtt_ms"`
	// Results came from the agent; Unsent are the requests of its share that were due and never
	// reported (all of them failed as AgentLost).
	Results int `json:"results"`
	Unsent  int `json:"unsent,omitempty"`
	// Lost says why the run stopped hearing from it, and LostAt when (from the load's start).
	Lost   string        `json:"lost,omitempty"`
	LostAt time.Duration `json:"lost_at_ns,omitempty"`
}

// agentLink is the run's side of one agent.
type agentLink struct {
	Agent
	share    Share
	offset   time.Duration
	rtt      time.Duration
	mu       sync.Mutex
	got      []uint64 // a bit per local request the agent reported
	results  int
	lost     string
	lostAt   time.Time
	lastData time.Time
	unsent   int
	// mark is the agent's last heartbeat on the run's clock: every result it had by then has been
	// read (far ahead once it ended its share with the schedule).
	mark time.Time
}

// How long a stream may bring nothing (no heartbeat) before the run reconnects, and how long an
// agent may stay unreachable before its share is lost.
const (
	agentSilence = 3 * time.Second
	agentGone    = 10 * time.Second
)

// StartAgents runs cfg's plan on agents, agent i sending Share{i, len(agents)}, and merges what they
// report as it comes into one Run: the same results.bin, ledger.tsv, aggregates and live windows as
// Start's, on this process's clock. cfg.BaseURL is the target as the agents reach it. The schedule
// starts a moment after every agent has taken its start.
func StartAgents(ctx context.Context, cfg Config, agents []Agent) (*Run, error) {
	if len(agents) == 0 {
		return nil, errors.New("load: no load agents")
	}
	if cfg.Rate <= 0 && len(cfg.Stages) == 0 {
		return nil, errors.New("load: load agents need a rate (at saturation there is no schedule to share)")
	}
	if cfg.RunID == "" {
		cfg.RunID = NewRunID("r", cfg.Seed)
	}
	links := make([]*agentLink, len(agents))
	var lead time.Duration
	for i, ag := range agents {
		if ag.Client == nil {
			ag.Client = http.DefaultClient
		}
		l := &agentLink{Agent: ag, share: Share{Index: i, Of: len(agents)}}
		if err := l.measureClock(ctx); err != nil {
			return nil, fmt.Errorf("load agent %s: clock: %w", ag.Name, err)
		}
		links[i] = l
		lead = max(lead, 4*l.rtt)
	}
	// Every agent must have its start before the schedule begins.
	started := time.Now().Add(time.Second + lead*time.Duration(len(agents)))
	r, results, err := newRun(cfg, started)
	if err != nil {
		return nil, err
	}
	r.links = links
	r.agg.known = r.known
	for _, l := range links {
		c := r.cfg
		c.Dir, c.Share, c.StartAt = "", l.share, started.Add(l.offset)
		if err := l.post(ctx, "start", AgentStart{Config: c}); err != nil {
			for _, o := range links {
				_ = o.post(context.WithoutCancel(ctx), "stop", nil)
			}
			results.Close()
			r.ledgerF.Close()
			return nil, fmt.Errorf("load agent %s: start: %w", l.Name, err)
		}
	}
	merged := make(chan *vegeta.Result, 256)
	var streams sync.WaitGroup
	for _, l := range links {
		streams.Add(2)
		go func() {
			defer streams.Done()
			r.followResults(ctx, l, merged)
		}()
		go func() {
			defer streams.Done()
			r.followLedger(ctx, l)
		}()
	}
	go func() {
		streams.Wait()
		close(merged)
	}()
	go r.sink(ctx, results, merged, func(*vegeta.Result) {}, func(encode func(*vegeta.Result), stopAt time.Time) {
		for _, l := range links {
			r.unsent(l, stopAt, encode)
		}
	})
	go func() {
		<-ctx.Done()
		r.Stop()
	}()
	return r, nil
}

// Agents reports the run's load agents (nil for a run that sends its own load).
func (r *Run) Agents() []AgentReport {
	var out []AgentReport
	for _, l := range r.links {
		l.mu.Lock()
		rep := AgentReport{Name: l.Name, Node: l.Node, Share: l.share, OffsetMS: ms(l.offset), RTTMS: ms(l.rtt),
			Results: l.results, Unsent: l.unsent, Lost: l.lost}
		if l.lost != "" {
			rep.LostAt = l.lostAt.Sub(r.started)
		}
		l.mu.Unlock()
		out = append(out, rep)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// measureClock takes the offset of the agent's clock from the fastest of five round trips.
func (l *agentLink) measureClock(ctx context.Context) error {
	best := time.Duration(-1)
	for range 5 {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		req, err := http.NewRequestWithContext(cctx, http.MethodGet, l.url("clock"), nil)
		if err != nil {
			cancel()
			return err
		}
		req.Header.Set(AgentTokenHeader, l.Token)
		sent := time.Now()
		resp, err := l.Client.Do(req)
		if err != nil {
			cancel()
			return err
		}
		var c AgentClock
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<10)).Decode(&c)
		resp.Body.Close()
		cancel()
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /clock: %s: %v", resp.Status, err)
		}
		rtt := time.Since(sent)
		if best < 0 || rtt < best {
			best = rtt
			l.rtt = rtt
			l.offset = time.Unix(0, c.UnixNano).Sub(sent.Add(rtt / 2))
		}
	}
	return nil
}

func (l *agentLink) url(p string) string { return strings.TrimRight(l.Base, "/") + "/" + p }

func (l *agentLink) post(ctx context.Context, p string, body any) error {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url(p), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(AgentTokenHeader, l.Token)
	resp, err := l.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// open GETs one of the agent's streams, ended by ctx or by silence: a stream that brings nothing for
// agentSilence is closed (the agent writes a heartbeat mark every agentFlush).
func (l *agentLink) open(ctx context.Context, p string) (io.ReadCloser, error) {
	sctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, l.url(p), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set(AgentTokenHeader, l.Token)
	resp, err := l.Client.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET /%s: %s: %s", p, resp.Status, strings.TrimSpace(string(msg)))
	}
	// A watchdog ends a stream that has gone silent (a frozen agent, a stalled proxy): the reader
	// reconnects, and an agent that stays unreachable is lost.
	alive := make(chan struct{}, 1)
	go func() {
		t := time.NewTimer(agentSilence)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-alive:
				t.Reset(agentSilence)
			case <-t.C:
				cancel()
				return
			}
		}
	}()
	body := readCloser{Reader: resp.Body, close: func() error { cancel(); return resp.Body.Close() }, alive: alive}
	return body, nil
}

type readCloser struct {
	io.Reader
	close func() error
	alive chan struct{}
}

func (r readCloser) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	if n > 0 {
		select {
		case r.alive <- struct{}{}:
		default:
		}
	}
	return n, err
}

func (r readCloser) Close() error { return r.close() }

// followResults reads the agent's results into merged, reconnecting (and skipping what it has)
// until the end mark, or until the agent stays unreachable for agentGone: then it is lost.
func (r *Run) followResults(ctx context.Context, l *agentLink, merged chan<- *vegeta.Result) {
	have := 0 // records read so far, marks included: each connection streams from the start
	var failing time.Time
	var last error
	for {
		if ctx.Err() != nil {
			return // interrupted: nothing is judged
		}
		body, err := l.open(ctx, "results")
		if err == nil {
			dec := vegeta.NewDecoder(bufio.NewReaderSize(body, 64<<10))
			n := 0
			for {
				var res vegeta.Result
				if err = dec.Decode(&res); err != nil {
					break
				}
				n++
				if n <= have {
					continue
				}
				have = n
				failing = time.Time{}
				l.mu.Lock()
				l.lastData = time.Now()
				if res.Attack == agentHeartbeat {
					l.mark = res.Timestamp.Add(-l.offset)
				}
				l.mu.Unlock()
				switch res.Attack {
				case agentHeartbeat:
					if r.stoppedLongAgo() {
						body.Close()
						l.lose("it did not finish its share after the run stopped it", time.Now())
						return
					}
					continue
				case agentEnd:
					body.Close()
					if !r.scheduleOver() {
						// Its pod was deleted (SIGTERM ends an agent cleanly) or it stopped by
						// itself: the rest of its share was never sent.
						l.lose("it ended its share before the run stopped it", time.Now())
					} else {
						l.mu.Lock()
						l.mark = farAhead
						l.mu.Unlock()
					}
					return
				}
				res.Timestamp = res.Timestamp.Add(-l.offset)
				if r.pastStop(res.Seq) {
					continue // the agent heard of the stop later than the run stopped: not the run's
				}
				l.received(res.Seq)
				merged <- &res
			}
			body.Close()
			if err == nil || errors.Is(err, io.EOF) {
				err = errors.New("the stream ended before its end mark")
			}
		}
		last = err
		if failing.IsZero() {
			failing = time.Now()
		}
		if time.Since(failing) > agentGone {
			l.mu.Lock()
			at := l.lastData
			l.mu.Unlock()
			if at.IsZero() {
				at = r.started
			}
			l.lose(fmt.Sprintf("no results for %s: %v", agentGone, last), at)
			return
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// farAhead is the mark of an agent that ended its share with the schedule: nothing more is to come.
var farAhead = time.Unix(1<<40, 0)

// known is the aggregator's Known for load from agents: the earliest of the agents' last heartbeats
// (the schedule's start before the first), and the first lost agent's name and why.
func (r *Run) known() (time.Time, string) {
	at, why := time.Now(), ""
	for _, l := range r.links {
		l.mu.Lock()
		mark, lost := l.mark, l.lost
		l.mu.Unlock()
		if mark.IsZero() {
			mark = r.started
		}
		if mark.Before(at) {
			at = mark
		}
		if lost != "" && why == "" {
			why = fmt.Sprintf("load agent %s (share %d of %d) was lost: %s", l.Name, l.share.Index+1, l.share.Of, lost)
		}
	}
	return at, why
}

// scheduleOver says whether the schedule has ended: the run was stopped, or its Duration is over.
func (r *Run) scheduleOver() bool {
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	return !r.stopped.IsZero() || (r.cfg.Duration > 0 && !time.Now().Before(r.started.Add(r.cfg.Duration)))
}

// pastStop says whether request seq was due after the run stopped.
func (r *Run) pastStop(seq uint64) bool {
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	return !r.stopped.IsZero() && r.scheduledAt(seq).After(r.stopped)
}

// stoppedLongAgo says whether the run was stopped long enough ago that an agent still streaming is
// not coming back: the timeout of its last requests and agentGone more.
func (r *Run) stoppedLongAgo() bool {
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	return !r.stopped.IsZero() && time.Since(r.stopped) > r.cfg.Timeout+agentGone
}

// followLedger appends the agent's ledger lines to the run's, reconnecting as followResults does;
// its lines stop where the agent was lost.
func (r *Run) followLedger(ctx context.Context, l *agentLink) {
	have := 0
	var failing time.Time
	for {
		if l.isLost() || ctx.Err() != nil {
			return
		}
		body, err := l.open(ctx, "ledger")
		if err == nil {
			sc := bufio.NewScanner(body)
			n := 0
			for sc.Scan() {
				n++
				if n <= have {
					continue
				}
				have = n
				failing = time.Time{}
				line := sc.Text()
				if line == agentEnd {
					body.Close()
					return
				}
				r.ledgerMu.Lock()
				fmt.Fprintf(r.ledger, "%s\n", line)
				r.ledgerMu.Unlock()
			}
			body.Close()
		}
		if failing.IsZero() {
			failing = time.Now()
		}
		if time.Since(failing) > agentGone+time.Second || l.isLost() {
			return
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

func (l *agentLink) received(global uint64) {
	k, ok := l.share.Local(global)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for uint64(len(l.got))*64 <= k {
		l.got = append(l.got, 0)
	}
	l.got[k/64] |= 1 << (k % 64)
	l.results++
}

func (l *agentLink) lose(why string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == "" {
		l.lost, l.lostAt = why, at
	}
}

func (l *agentLink) isLost() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost != ""
}

// unsent fails, at its scheduled time, every request of an agent's share that was due and never
// reported: the denominator stays the whole schedule's. A lost agent's share counts up to the end of
// the schedule (it sent none of its last requests); an agent that finished reports even the requests
// it could not send (NotSent) up to its lateness before the end, so only a result missing before
// that counts against it.
func (r *Run) unsent(l *agentLink, stopAt time.Time, encode func(*vegeta.Result)) {
	l.mu.Lock()
	lost, lostAt, got := l.lost, l.lostAt, slices.Clone(l.got)
	l.mu.Unlock()
	why, until := fmt.Sprintf("%s: %s (%s) reported no result for it", AgentLost, l.Name, l.share), stopAt.Add(-r.cfg.Lateness)
	if lost != "" {
		why = fmt.Sprintf("%s: %s (%s) stopped reporting at +%.1fs (%s)", AgentLost, l.Name, l.share, lostAt.Sub(r.started).Seconds(), lost)
		until = stopAt
	}
	n := 0
	for k := uint64(0); ; k++ {
		seq := l.share.Global(k)
		at := r.scheduledAt(seq)
		if at.After(until) {
			break
		}
		if k/64 < uint64(len(got)) && got[k/64]&(1<<(k%64)) != 0 {
			continue
		}
		n++
		encode(&vegeta.Result{Attack: "rehearse", Seq: seq, Timestamp: at, Latency: r.cfg.Timeout, Error: why})
	}
	l.mu.Lock()
	l.unsent = n
	l.mu.Unlock()
}

// stopAgents ends every agent's schedule (an agent that is gone is not waited for).
func (r *Run) stopAgents() {
	var wg sync.WaitGroup
	for _, l := range r.links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = l.post(ctx, "stop", nil)
		}()
	}
	wg.Wait()
}

// LostAgents names the agents that were lost, in order, with when and why: for a report's note.
func LostAgents(reps []AgentReport) []string {
	var out []string
	for _, a := range reps {
		if a.Lost != "" {
			out = append(out, fmt.Sprintf("load agent %s (%s, on %s) stopped reporting at +%.1fs: %d requests of its share were never reported and count as failed, not sent (%s)",
				a.Name, a.Share, a.Node, a.LostAt.Seconds(), a.Unsent, a.Lost))
		}
	}
	sort.Strings(out)
	return out
}
