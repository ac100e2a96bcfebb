package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Split among N agents, the plan is the same requests: every id exactly once, each with the target
// it has with one agent; and each share's request n is due when the whole schedule says.
func TestSharesSplitThePlanExactlyOnce(t *testing.T) {
	const n = 3000
	whole, err := Plan(Config{Targets: planTargets, Seed: 7, RunID: "r"}, n)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, p := range whole {
		want[p.ID] = p.Target
	}
	for of := 1; of <= 4; of++ {
		got := map[string]string{}
		for i := range of {
			p, err := newPlanner(Config{Targets: planTargets, Seed: 7, RunID: "r"})
			if err != nil {
				t.Fatal(err)
			}
			p.share = Share{Index: i, Of: of}
			for {
				c, id := p.next()
				if p.seq > n {
					break
				}
				if _, dup := got[id]; dup {
					t.Fatalf("%d agents: %s planned twice", of, id)
				}
				got[id] = c.Name
				if want := fmt.Sprintf("r-%d", len(got)); of == 1 && id != want {
					t.Fatalf("1 agent: request %d has id %s, want %s", len(got), id, want)
				}
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d agents planned %d requests, want %d", of, len(got), len(want))
		}
		for id, target := range want {
			if got[id] != target {
				t.Fatalf("%d agents: %s is %q, want %q (the target it has with one agent)", of, id, got[id], target)
			}
		}
	}

	whole2 := &stepPacer{base: 100, stages: []Stage{{Rate: 50, Duration: 2 * time.Second}}}
	for _, s := range []Share{{0, 3}, {1, 3}, {2, 3}} {
		p := &sharePacer{whole: whole2, share: s}
		for k := uint64(0); k < 200; k += 37 {
			g := s.Global(k)
			due := whole2.at(float64(g))
			// Just before it is due the pacer waits until it is; at it, it sends.
			if wait, _ := p.Pace(due-time.Millisecond, k); wait <= 0 || wait > time.Millisecond+2*time.Microsecond {
				t.Errorf("%s: local %d (plan %d) due at %s: 1 ms before, the pacer waits %s", s, k, g, due, wait)
			}
			if wait, _ := p.Pace(due+time.Microsecond, k); wait != 0 {
				t.Errorf("%s: local %d (plan %d) due at %s: at it, the pacer waits %s", s, k, g, due, wait)
			}
		}
	}
	if err := (Share{Index: 3, Of: 3}).Check(); err == nil {
		t.Error("share 4 of 3 accepted")
	}
}

// testAgent is a load agent on loopback, behind a cut-off switch that makes it unreachable as a
// deleted pod is behind the API server's proxy.
type testAgent struct {
	Agent
	cut   atomic.Bool
	done  chan error
	front *httptest.Server
	dir   string
}

func startTestAgent(t *testing.T, ctx context.Context, name string) *testAgent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	a := &testAgent{done: make(chan error, 1), dir: t.TempDir()}
	go func() { a.done <- ServeAgent(ctx, addr, a.dir, "t0k-"+name, t.Logf) }()
	target, _ := url.Parse("http://" + addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cut.Load() {
			http.Error(w, `{"kind":"Status","message":"pods \"`+name+`\" not found"}`, http.StatusNotFound)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	a.front = front
	a.Agent = Agent{Name: name, Node: "node-" + name, Base: front.URL, Client: front.Client(), Token: "t0k-" + name}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent never listened")
		}
	}
	return a
}

// agentRig is a run over n test agents against a loopback orders server; kill[i] stops agent i as
// SIGTERM would (cleanly, end mark and all).
type agentRig struct {
	srv    *ordersServer
	agents []*testAgent
	kill   []context.CancelFunc
	run    *Run
	dir    string
}

// startAgentRig starts n agents and a run of cfg (BaseURL, Targets and Dir filled in) over them.
func startAgentRig(t *testing.T, n int, cfg Config) *agentRig {
	t.Helper()
	rig := &agentRig{srv: &ordersServer{ids: map[string]bool{}}, dir: t.TempDir()}
	ts := httptest.NewServer(rig.srv)
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var agents []Agent
	for i := range n {
		actx, kill := context.WithCancel(ctx)
		a := startTestAgent(t, actx, fmt.Sprintf("agent-%d", i))
		rig.agents, rig.kill = append(rig.agents, a), append(rig.kill, kill)
		agents = append(agents, a.Agent)
	}
	cfg.BaseURL, cfg.Targets, cfg.Dir = ts.URL, ordersTargets, rig.dir
	run, err := StartAgents(ctx, cfg, agents)
	if err != nil {
		t.Fatal(err)
	}
	rig.run = run
	return rig
}

func decodeResults(t *testing.T, path string) []vegeta.Result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := vegeta.NewDecoder(f)
	var out []vegeta.Result
	for {
		var r vegeta.Result
		if err := dec.Decode(&r); err != nil {
			break
		}
		out = append(out, r)
	}
	return out
}

// Three agents send one plan and the run merges it: every scheduled request once, on the run's
// clock, with the ids, ledger and versions one process would have.
func TestAgentsSendOnePlanMerged(t *testing.T) {
	t.Parallel()
	rig := startAgentRig(t, 3, Config{Rate: 150, Seed: 3, RunID: "m"})
	run, srv, dir, tas := rig.run, rig.srv, rig.dir, rig.agents
	time.Sleep(3 * time.Second) // a second's lead, then two of load
	// Live: results arrive while the load runs.
	if live := run.Aggregates().Totals().Requests; live < 100 {
		t.Errorf("after 2 s at 150/s the live aggregate has %d requests: results are not streamed", live)
	}
	run.Stop()
	agg, err := run.Wait()
	if err != nil {
		t.Fatal(err)
	}
	tot := agg.Totals()
	if tot.Failed != 0 || tot.Requests < 250 {
		t.Fatalf("totals %+v: want ≥ 250 requests, none failed", tot)
	}
	if math.Abs(float64(tot.Requests)-tot.Scheduled) > 3 {
		t.Errorf("%d requests for %.1f scheduled", tot.Requests, tot.Scheduled)
	}
	res := decodeResults(t, filepath.Join(dir, "results.bin"))
	seqs := map[uint64]bool{}
	for _, r := range res {
		if seqs[r.Seq] {
			t.Fatalf("request %d merged twice", r.Seq)
		}
		seqs[r.Seq] = true
		if r.Attack == agentHeartbeat || r.Attack == agentEnd {
			t.Fatalf("a mark in the merged results: %+v", r)
		}
	}
	for s := range uint64(len(res)) {
		if !seqs[s] {
			t.Fatalf("request %d of %d missing from the merged results", s, len(res))
		}
	}
	led := readLedger(t, dir)
	if len(led["acked"]) == 0 || len(led[agentEnd]) != 0 {
		t.Fatalf("ledger %v: want acknowledged writes and no end marks", led)
	}
	for _, id := range led["acked"] {
		if !srv.ids[id] {
			t.Fatalf("%s acknowledged but the server has no such write", id)
		}
	}
	if v := agg.Versions(run.Started(), run.Started().Add(2*time.Second)).By["v1"]; v.Requests < 200 {
		t.Errorf("versions by second: %+v, want v1 read from every answer", v)
	}
	reps := run.Agents()
	sum := 0
	for i, r := range reps {
		if r.Lost != "" || r.Share != (Share{Index: i, Of: 3}) || math.Abs(r.OffsetMS) > 50 {
			t.Errorf("agent %d: %+v", i, r)
		}
		sum += r.Results
	}
	if sum != tot.Requests {
		t.Errorf("agents reported %d results, the run counts %d", sum, tot.Requests)
	}
	// Each agent finished its share and, read to the end, exits by itself.
	for _, a := range tas {
		select {
		case err := <-a.done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(drainedGrace + 3*time.Second):
			t.Errorf("agent %s still running after its results were read", a.Name)
		}
	}
}

// An agent that becomes unreachable mid-run (its pod deleted) turns the rest of its share into
// failed requests, not sent, at their scheduled times: the denominator is still the whole schedule.
func TestLostAgentsShareFails(t *testing.T) {
	t.Parallel()
	rig := startAgentRig(t, 2, Config{Rate: 100, Seed: 3, RunID: "l"})
	run, dir, a1 := rig.run, rig.dir, rig.agents[1]
	time.Sleep(3 * time.Second)
	// Live, the run knows the load's results up to the agents' last reports (200 ms apart).
	if at, why := run.Aggregates().Known(); time.Since(at) > time.Second || why != "" {
		t.Errorf("both agents reporting: known up to %s ago (%q); want within a second", time.Since(at), why)
	}
	a1.cut.Store(true)
	a1.front.CloseClientConnections()
	cut := time.Now()
	time.Sleep(3 * time.Second)
	// A stalled agent holds what is known back where its reports stopped, until it is lost.
	if at, why := run.Aggregates().Known(); at.After(cut) || cut.Sub(at) > time.Second || why != "" {
		t.Errorf("agent-1 silent for 3 s: known up to %s before the cut (%q); want its last report, not lost yet", cut.Sub(at), why)
	}
	time.Sleep(agentGone)
	if _, why := run.Aggregates().Known(); !strings.Contains(why, "agent-1 (share 2 of 2) was lost") {
		t.Errorf("agent-1 lost: why %q; want it named", why)
	}
	run.Stop()
	agg, err := run.Wait()
	if err != nil {
		t.Fatal(err)
	}
	tot := agg.Totals()
	if math.Abs(float64(tot.Requests)-tot.Scheduled) > 3 {
		t.Errorf("%d requests for %.1f scheduled: a lost share must stay in the denominator", tot.Requests, tot.Scheduled)
	}
	// About half of the ~13 s after the cut.
	if tot.Failed < 500 || tot.NotSent != tot.Failed {
		t.Errorf("totals %+v: want the lost half of ~13 s failed, as not sent", tot)
	}
	reps := run.Agents()
	if reps[0].Lost != "" || reps[1].Lost == "" || reps[1].Unsent != tot.Failed {
		t.Fatalf("agents %+v: want agent-1 lost with all %d failures its share", reps, tot.Failed)
	}
	if at := reps[1].LostAt; at < 1500*time.Millisecond || at > 2500*time.Millisecond {
		t.Errorf("agent-1 lost at +%s, want about +2s (its last results)", at)
	}
	f := agg.Failures()
	if len(f) == 0 || !strings.HasPrefix(f[0].Error, AgentLost) || !strings.Contains(f[0].Error, "agent-1 (share 2 of 2)") {
		t.Fatalf("failure samples %+v: want the lost agent named", f[:min(len(f), 2)])
	}
	if notes := LostAgents(reps); len(notes) != 1 || !strings.Contains(notes[0], "agent-1") {
		t.Errorf("notes %q", notes)
	}
	// Its results before the cut are kept; after the cut only agent-0's share answered.
	res := decodeResults(t, filepath.Join(dir, "results.bin"))
	if !slices.ContainsFunc(res, func(r vegeta.Result) bool { return r.Seq%2 == 1 && r.Error == "" }) {
		t.Error("no result of agent-1 from before the cut")
	}
}

// An agent whose run is gone (nothing reads its results) stops its load and exits by itself.
func TestAgentStopsWithoutItsRun(t *testing.T) {
	t.Parallel()
	srv := &ordersServer{ids: map[string]bool{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	a := startTestAgent(t, context.Background(), "orphan")
	body, _ := json.Marshal(AgentStart{Config: Config{BaseURL: ts.URL, Targets: ordersTargets, Rate: 50, Seed: 1, RunID: "o",
		Share: Share{Index: 0, Of: 2}}, Heartbeat: time.Second})
	// Without its token (another client in the cluster) the agent refuses to start.
	resp, err := a.Client.Post(a.Base+"/start", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("start without the token: %s, want 403", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodPost, a.Base+"/start", strings.NewReader(string(body)))
	req.Header.Set(AgentTokenHeader, a.Token)
	resp, err = a.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("start: %s", resp.Status)
	}
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the agent went on without a run reading its results")
	}
	n := srv.n.Load()
	time.Sleep(500 * time.Millisecond)
	if srv.n.Load() != n {
		t.Error("the agent exited but its load goes on")
	}
	if n == 0 {
		t.Error("the agent never sent its load")
	}
}

// The clock offset is measured, and results are moved onto the run's clock by it.
func TestAgentClockOffset(t *testing.T) {
	ahead := 5 * time.Second
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(AgentClock{UnixNano: time.Now().Add(ahead).UnixNano()})
	}))
	defer ts.Close()
	l := &agentLink{Agent: Agent{Name: "a", Base: ts.URL, Client: ts.Client()}}
	if err := l.measureClock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := l.offset - ahead; d < -l.rtt || d > l.rtt {
		t.Fatalf("offset %s (rtt %s), want %s", l.offset, l.rtt, ahead)
	}
}

// An agent that ends its share early (its pod deleted: SIGTERM stops it cleanly, with an end mark)
// is lost all the same: the rest of its share fails, never a smaller denominator.
func TestAgentEndingEarlyIsLost(t *testing.T) {
	t.Parallel()
	rig := startAgentRig(t, 2, Config{Rate: 100, Seed: 3, RunID: "e"})
	run, sigterm := rig.run, rig.kill[1]
	time.Sleep(2 * time.Second)
	sigterm()
	time.Sleep(3 * time.Second)
	run.Stop()
	agg, err := run.Wait()
	if err != nil {
		t.Fatal(err)
	}
	tot := agg.Totals()
	reps := run.Agents()
	// It says so with its end mark; or, when its server closed before the mark went out, it falls
	// silent: lost either way.
	if reps[1].Lost == "" || reps[1].Unsent < 100 {
		t.Fatalf("agents %+v: want agent-1 lost, ~150 unsent", reps)
	}
	if math.Abs(float64(tot.Requests)-tot.Scheduled) > 3 || tot.Failed != reps[1].Unsent {
		t.Errorf("totals %+v: want the whole schedule, agent-1's rest failed", tot)
	}
}

// Agents that end their share when the run's Duration is over are not lost: that is the schedule's
// end, not theirs.
func TestAgentsEndingWithTheDurationAreNotLost(t *testing.T) {
	t.Parallel()
	run := startAgentRig(t, 2, Config{Rate: 100, Duration: 2 * time.Second, Seed: 3, RunID: "d"}).run
	agg, err := run.Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range run.Agents() {
		if a.Lost != "" || a.Unsent != 0 {
			t.Errorf("agent %+v", a)
		}
	}
	if tot := agg.Totals(); tot.Failed != 0 || tot.Requests < 195 {
		t.Errorf("totals %+v", tot)
	}
}
