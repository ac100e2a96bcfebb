package migrate

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
)

// green is a stand-in for a new version on its own Service: POST /items/ID stores ID (unless it only
// acknowledges), GET /items/ID answers 200 when stored (or always, for one that answers anything).
type green struct {
	mu          sync.Mutex
	items       map[string]bool
	keepNothing bool // 201 to writes it never keeps
	anyRead     bool // 200 to any read
	writeStatus int  // answers writes with this status instead
}

func (g *green) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-App-Version", "v2")
	id := strings.TrimPrefix(r.URL.Path, "/items/")
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && g.writeStatus != 0:
		w.WriteHeader(g.writeStatus)
		io.WriteString(w, "database busy\n")
	case r.Method == http.MethodPost:
		if !g.keepNothing {
			g.items[id] = true
		}
		w.WriteHeader(http.StatusCreated)
	case r.URL.Path == "/healthz":
		io.WriteString(w, "ok v2")
	case g.anyRead || g.items[id]:
		io.WriteString(w, id)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func acceptEnv() *steps.Env {
	return &steps.Env{Version: load.HeaderVersion("X-App-Version"), Accept: &steps.Acceptance{
		RunID: "run-1", ReadPath: "/items/{{.ID}}",
		Write: load.Target{Name: "write", Method: http.MethodPost, Path: "/items/{{.ID}}", Body: `{"id":"{{.ID}}"}`},
	}}
}

// A green that keeps what it acknowledges passes; one that acknowledges and keeps nothing, one that
// answers "stored" to anything, and one that refuses writes fail, each saying why; stated requests are
// held to their status and body; skip runs nothing.
func TestAcceptance(t *testing.T) {
	m := &scenarios.Migrate{Version: "v2"}
	for _, c := range []struct {
		name   string
		g      *green
		accept *scenarios.Accept
		want   string // "" = passes
	}{
		{"keeps its writes", &green{}, nil, ""},
		{"acknowledges and keeps nothing", &green{keepNothing: true}, nil, "acknowledged 5 writes and 5 of them read back as missing"},
		{"answers stored to anything", &green{keepNothing: true, anyRead: true}, nil, "2 of 2 ids never written read back as stored"},
		{"refuses writes", &green{writeStatus: 503}, nil, "acceptance write 1 (POST /items/run-1-accept-switch-0): status 503: database busy"},
		{"three writes", &green{keepNothing: true}, &scenarios.Accept{Writes: 3}, "acknowledged 3 writes and 3 of them"},
		{"stated request answered", &green{}, &scenarios.Accept{Requests: []scenarios.AcceptRequest{{Path: "/healthz", BodyContains: "ok"}}}, ""},
		{"stated request wrong body", &green{}, &scenarios.Accept{Requests: []scenarios.AcceptRequest{{Path: "/healthz", BodyContains: "v3"}}}, `the body lacks "v3"`},
		{"stated request wrong status", &green{}, &scenarios.Accept{Requests: []scenarios.AcceptRequest{{Path: "/nothing", Status: 200}}}, "status 404"},
		{"skipped", &green{keepNothing: true}, &scenarios.Accept{Skip: true}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.g.items = map[string]bool{}
			ts := httptest.NewServer(c.g)
			defer ts.Close()
			mm := *m
			mm.Accept = c.accept
			var rec steps.Record
			err := accept(context.Background(), acceptEnv(), ts.URL, "switch", &mm, &rec)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("failed: %v", err)
			case c.want != "" && (err == nil || !isAcceptFailure(err) || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want an acceptance failure containing %q", err, c.want)
			case c.want == "" && rec.Data()["acceptance"] == nil:
				t.Errorf("nothing recorded: %v", rec.Data())
			}
		})
	}
}

// With no ledger write target and no read rule there is nothing to write: the acceptance says so.
func TestAcceptanceWithoutAWriteTarget(t *testing.T) {
	var rec steps.Record
	env := acceptEnv()
	env.Accept.ReadPath = ""
	if err := accept(context.Background(), env, "http://127.0.0.1:1", "switch", &scenarios.Migrate{}, &rec); err != nil {
		t.Fatal(err)
	}
	if got, _ := rec.Data()["acceptance"].(string); !strings.HasPrefix(got, "none") {
		t.Errorf("recorded %q", got)
	}
}

func TestAcceptProblems(t *testing.T) {
	ps := acceptProblems(&scenarios.Accept{Writes: -1, ReadPath: "/items", Requests: []scenarios.AcceptRequest{{Path: "healthz", Method: "GET2", Status: 1000}}})
	var fields []string
	for _, p := range ps {
		fields = append(fields, p.Field)
	}
	want := "migrate.accept.writes migrate.accept.readPath migrate.accept.requests[0].path migrate.accept.requests[0].method migrate.accept.requests[0].status"
	if strings.Join(fields, " ") != want {
		t.Errorf("problems %v, want fields %s", ps, want)
	}
}

// The smoke test wants the new version in every answer; an app that says no version passes it only
// for a canary judged by probes, and a version it does say must be the new one even then.
func TestSmokeFaults(t *testing.T) {
	answers := func(code int, version string, err error) func() (int, string, error) {
		return func() (int, string, error) { return code, version, err }
	}
	for _, c := range []struct {
		name        string
		get         func() (int, string, error)
		versionless bool
		want        string // "" = no fault
	}{
		{"the new version", answers(200, "v2", nil), false, ""},
		{"no version said", answers(200, "", nil), false, `answered by version "", not "v2"`},
		{"no version said, probes judge", answers(200, "", nil), true, ""},
		{"the old version, probes judge", answers(200, "v1", nil), true, `answered by version "v1", not "v2"`},
		{"a 503, probes judge", answers(503, "", nil), true, "status 503"},
		{"an error", answers(0, "", io.ErrUnexpectedEOF), true, "unexpected EOF"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := smokeFaults(c.get, 4, "v2", c.versionless)
			switch {
			case c.want == "" && len(bad) != 0:
				t.Errorf("faults %q, want none", bad)
			case c.want != "" && (len(bad) != 4 || bad[0] != c.want):
				t.Errorf("faults %q, want 4 of %q", bad, c.want)
			}
		})
	}
}
