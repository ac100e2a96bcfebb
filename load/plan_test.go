package load

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var planTargets = []Target{
	{Name: "write", Method: "POST", Path: "/orders", Body: `{"id":"{{.ID}}"}`, Weight: 3, Ledger: true},
	{Name: "read", Method: "GET", Path: "/orders/{{.RecentID}}", Weight: 1},
	{Name: "count", Method: "GET", Path: "/orders/count?probe={{.ID}}", Weight: 1},
}

// targetsOf is the plan without its ids: what a replay with a fresh run ID must repeat.
func targetsOf(p []Planned) []string {
	out := make([]string, len(p))
	for i, r := range p {
		out[i] = strconv.FormatUint(r.Seq, 10) + " " + r.Target + " " + r.Method
	}
	return out
}

// The seed plans the requests: the same seed and run ID (a replay bundle's) the same requests, ids
// and bodies included; another seed other targets; the same seed with a fresh run ID (what a replay
// uses) the same targets in the same order, with only the ids' prefix changed.
func TestPlanIsTheSeeds(t *testing.T) {
	const n = 2000
	plan := func(seed uint64, runID string) []Planned {
		t.Helper()
		p, err := Plan(Config{Targets: planTargets, Seed: seed, RunID: runID}, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != n {
			t.Fatalf("%d requests planned, want %d", len(p), n)
		}
		return p
	}
	a, b := plan(42, "smoke-42-aaa"), plan(42, "smoke-42-aaa")
	if !slices.Equal(a, b) {
		t.Fatal("the same seed and run ID planned different requests")
	}
	if a[0].Seq != 1 || a[0].ID != "smoke-42-aaa-1" || a[n-1].ID != "smoke-42-aaa-2000" {
		t.Errorf("ids: first %q (seq %d), last %q", a[0].ID, a[0].Seq, a[n-1].ID)
	}
	for _, r := range a {
		switch r.Target {
		case "write":
			if r.Body != `{"id":"`+r.ID+`"}` || r.Path != "/orders" || r.Method != "POST" {
				t.Fatalf("write planned as %+v", r)
			}
		case "read":
			if r.Path != "/orders/{{.RecentID}}" {
				t.Fatalf("a recent read's id is chosen when it is sent, planned %+v", r)
			}
		}
	}

	fresh := plan(42, "smoke-42-bbb")
	if !slices.Equal(targetsOf(a), targetsOf(fresh)) {
		t.Error("a fresh run ID changed the sequence of targets")
	}
	for i := range fresh {
		if want := "smoke-42-bbb-" + strconv.Itoa(i+1); fresh[i].ID != want {
			t.Fatalf("request %d: id %q, want %q", i+1, fresh[i].ID, want)
		}
	}

	other := plan(43, "smoke-42-aaa")
	same := 0
	for i := range a {
		if a[i].Target == other[i].Target {
			same++
		}
	}
	if slices.Equal(targetsOf(a), targetsOf(other)) || same > n*3/4 {
		t.Errorf("seed 43 planned %d of %d targets as seed 42 did", same, n)
	}

	if _, err := Plan(Config{Seed: 42}, 1); err == nil {
		t.Error("a plan without targets")
	}
}

// A run sends what Plan planned, whatever the system answers and however fast: each request's
// target is the plan's for its id (a recent read planned before any write was acknowledged goes
// out as a write), and a write's body is the planned one. Two runs against a fast and a slow
// server follow the same plan.
func TestRunSendsItsPlan(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{0, 20 * time.Millisecond} {
		var mu sync.Mutex
		type sent struct{ target, id, path, body string }
		var got []sent
		var stored sync.Map
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(delay)
			b, _ := io.ReadAll(r.Body)
			target, id, _ := strings.Cut(r.Header.Get(requestHeader), "; id=")
			mu.Lock()
			got = append(got, sent{target, id, r.URL.RequestURI(), string(b)})
			mu.Unlock()
			if r.Method == "POST" {
				stored.Store(id, true)
				w.WriteHeader(201)
			}
		}))
		cfg := Config{BaseURL: ts.URL, Targets: planTargets, Rate: 200, Duration: time.Second, Seed: 7, RunID: "plan-7-x"}
		runFor(t, cfg)
		ts.Close()

		plan, err := Plan(cfg, 400)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) < 150 {
			t.Fatalf("delay %s: only %d requests arrived", delay, len(got))
		}
		asPlanned, recentReads := 0, 0
		for _, s := range got {
			seq, err := strconv.Atoi(strings.TrimPrefix(s.id, "plan-7-x-"))
			if err != nil || seq < 1 || seq > len(plan) {
				t.Fatalf("delay %s: id %q is not one the plan numbers", delay, s.id)
			}
			p := plan[seq-1]
			switch {
			case s.target == p.Target:
				asPlanned++
				if p.Target == "read" {
					recentReads++
					if _, ok := stored.Load(strings.TrimPrefix(s.path, "/orders/")); !ok {
						t.Errorf("delay %s: request %d read %s, which was never written", delay, seq, s.path)
					}
				} else if s.path != p.Path || s.body != p.Body {
					t.Errorf("delay %s: request %d sent %s %q, planned %s %q", delay, seq, s.path, s.body, p.Path, p.Body)
				}
			case p.Target == "read" && s.target == "write":
				// nothing acknowledged yet to read back: a write in its place
			default:
				t.Errorf("delay %s: request %d (%s) went out as %s, planned %s", delay, seq, s.id, s.target, p.Target)
			}
		}
		if recentReads == 0 || asPlanned < len(got)*9/10 {
			t.Errorf("delay %s: %d of %d requests as planned, %d recent reads", delay, asPlanned, len(got), recentReads)
		}
	}
}
