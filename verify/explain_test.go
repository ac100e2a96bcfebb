package verify

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rehearse-dev/rehearse/load"
)

func ep(t float64, pod, what string, ready int) Change {
	return Change{T: t, Kind: "endpoint", Object: "pod/" + pod, What: what, ReadyEndpoints: &ready}
}

// epServing is an endpoint change after which serving endpoints remain.
func epServing(t float64, pod, what string, ready, serving int) Change {
	c := ep(t, pod, what, ready)
	c.ServingEndpoints = &serving
	return c
}

func podc(t float64, pod, what string) Change {
	return Change{T: t, Kind: "pod", Object: "pod/" + pod, What: what}
}

func exited(t float64, pod string, code int32, reason string) Change {
	c := podc(t, pod, PodExited)
	c.Container, c.ExitCode, c.Reason = "web", &code, reason
	return c
}

func TestBursts(t *testing.T) {
	secs := []load.Second{{T: 0, OK: 10}, {T: 1, OK: 8, Failed: 2}, {T: 2, OK: 5, Failed: 5}, {T: 3, OK: 10},
		{T: 4, Failed: 10}, {T: 5, OK: 10}}
	want := []Burst{{From: 1, To: 3, Failed: 7, Requests: 20}, {From: 4, To: 5, Failed: 10, Requests: 10}}
	if d := cmp.Diff(want, Bursts(secs)); d != "" {
		t.Errorf("bursts (-want +got):\n%s", d)
	}
	if b := Bursts([]load.Second{{T: 0, OK: 10}, {T: 1, OK: 10}}); len(b) != 0 {
		t.Errorf("a run without failures has bursts: %v", b)
	}
}

// Each rule on a recorded shape of the cluster, and the burst it must (or must not) explain.
func TestExplain(t *testing.T) {
	oom := podc(31.0, "web-c", PodRestarted)
	code := int32(137)
	oom.Container, oom.ExitCode, oom.Reason = "web", &code, "OOMKilled"
	noProbe := podc(4.0, "web-new", PodCreated)
	noProbe.Detail = NoReadinessProbe
	withProbe := podc(4.0, "web-probed", PodCreated)
	for _, c := range []struct {
		name    string
		burst   Burst
		changes []Change
		want    []string // substrings of the lines, in order; nil: unexplained
	}{
		{"a pod that exits at SIGTERM while its endpoint is ready",
			Burst{From: 10, To: 12, Failed: 13},
			[]Change{ep(1, "web-a", EndpointReady, 3), podc(10.0, "web-a", PodDeleting), exited(10.1, "web-a", 2, "Error"),
				ep(10.4, "web-a", EndpointNotReady, 2), podc(10.6, "web-a", PodGone)},
			[]string{"pod/web-a received SIGTERM at +10.0s (its deletion began) and its container web exited at +10.1s (exit 2, Error); its endpoint stayed ready until +10.4s: requests went to a pod that had stopped listening (a preStop delay"}},
		{"a pod that exits at SIGTERM just after its endpoint left",
			Burst{From: 10, To: 11, Failed: 4},
			[]Change{ep(1, "web-a", EndpointReady, 3), podc(10.0, "web-a", PodDeleting), ep(10.02, "web-a", EndpointNotReady, 2),
				exited(10.2, "web-a", 0, "Completed")},
			[]string{"its endpoint left the Service at +10.0s, 0.2s before: kube-proxy routes to an endpoint for a moment after it leaves"}},
		{"a pod killed with no grace",
			Burst{From: 10, To: 11, Failed: 6},
			[]Change{ep(1, "web-a", EndpointReady, 3), {T: 10.0, Kind: "pod", Object: "pod/web-a", What: PodDeleting, Detail: "grace 0s"},
				exited(10.1, "web-a", 137, "Error"), ep(10.5, "web-a", EndpointNotReady, 2)},
			[]string{"pod/web-a was deleted with no grace at +10.0s (killed, not asked to stop) and its container web exited at +10.1s (exit 137, Error); its endpoint stayed ready until +10.5s: requests went to a pod that had stopped listening"}},
		{"no ready endpoint while a node was NotReady",
			Burst{From: 20, To: 39, Failed: 900},
			[]Change{ep(1, "db-0", EndpointReady, 1), {T: 19.0, Kind: "node", Object: "node/worker2", What: NodeNotReady},
				ep(20.1, "db-0", EndpointNotReady, 0), ep(38.6, "db-0", EndpointReady, 1), {T: 40, Kind: "node", Object: "node/worker2", What: NodeReady}},
			[]string{"the load's Service had no ready endpoint from +20.1s to +38.6s", "node/worker2 NotReady at +19.0s until +40.0s"}},
		{"the only pod drained: it served while terminating, then nothing did",
			Burst{From: 6, To: 7, Failed: 5},
			[]Change{ep(1, "web-a", EndpointReady, 1), epServing(3.1, "web-a", EndpointNotReady, 0, 1), epServing(6.1, "web-a", EndpointNotReady, 0, 0),
				ep(7.4, "web-b", EndpointReady, 1)},
			[]string{"the load's Service had no ready endpoint from +3.1s to +7.4s; terminating endpoints still served until +6.1s (kube-proxy falls back to them while none is ready)"}},
		{"a database pod stopped, not behind the load's Service",
			Burst{From: 5, To: 18, Failed: 600},
			[]Change{podc(5.2, "db-0", PodDeleting), exited(5.4, "db-0", 0, "Completed")},
			[]string{"pod/db-0 received SIGTERM at +5.2s (its deletion began) and its container web exited at +5.4s (exit 0, Completed) (not an endpoint of the load's Service then: what depends on it met its stop)"}},
		{"a container OOM-killed while ready",
			Burst{From: 31, To: 32, Failed: 5},
			[]Change{ep(1, "web-c", EndpointReady, 3), oom},
			[]string{"pod/web-c container web ended at +31.0s (exit 137, OOMKilled) and was restarted; its endpoint was ready then"}},
		{"a new pod without a readiness probe",
			Burst{From: 5, To: 7, Failed: 12},
			[]Change{noProbe, ep(5.0, "web-new", EndpointReady, 4)},
			[]string{"pod/web-new was added to the Service's ready endpoints at +5.0s, 1.0s after it was created; it has no readiness probe: serving before its app listens?"}},
		{"a new pod with a readiness probe is no suspect",
			Burst{From: 5, To: 7, Failed: 12},
			[]Change{withProbe, ep(5.0, "web-probed", EndpointReady, 4)},
			nil},
		{"an eviction",
			Burst{From: 50, To: 52, Failed: 3},
			[]Change{{T: 45, Kind: "event", Object: "pod/web-d", What: "Evicted", Detail: "The node was low on resource: memory."}},
			[]string{"pod/web-d: Evicted at +45.0s: The node was low on resource: memory."}},
		{"a database pod no node had room for",
			Burst{From: 23, To: 327, Failed: 15159},
			[]Change{ep(1, "orders-a", EndpointReady, 3), ep(26.6, "orders-a", EndpointNotReady, 0),
				{T: 24.8, Kind: "event", Object: "pod/orders-db-0", What: "FailedScheduling", Warning: true, Detail: "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu."},
				{T: 60.1, Kind: "event", Object: "pod/orders-db-0", What: "FailedScheduling", Warning: true, Detail: "0/3 nodes are available: 2 Insufficient cpu."}},
			[]string{"the load's Service had no ready endpoint from +26.6s to the end of the record",
				"pod/orders-db-0 could not be scheduled (FailedScheduling at +24.8s): 0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu."}},
		{"a pod that waited for room long before the burst is no suspect",
			Burst{From: 100, To: 101, Failed: 3},
			[]Change{{T: 20, Kind: "event", Object: "pod/web-e", What: "FailedScheduling", Warning: true, Detail: "0/3 nodes are available: 2 Insufficient cpu."}},
			nil},
		{"changes long before the burst explain nothing",
			Burst{From: 100, To: 101, Failed: 1},
			[]Change{ep(1, "web-a", EndpointReady, 3), podc(10.0, "web-a", PodDeleting), exited(10.1, "web-a", 0, ""), ep(10.4, "web-a", EndpointNotReady, 2)},
			nil},
		{"a graceful pod that exits after its endpoint left long before",
			Burst{From: 14, To: 15, Failed: 1},
			[]Change{ep(1, "web-a", EndpointReady, 3), podc(10.0, "web-a", PodDeleting), ep(10.1, "web-a", EndpointNotReady, 2), exited(14.0, "web-a", 0, "Completed")},
			nil},
		{"nothing recorded", Burst{From: 3, To: 4, Failed: 2}, nil, nil},
		{"a node-loss acting before the control plane noticed",
			Burst{From: 10, To: 24, Failed: 144},
			[]Change{{T: 5, Kind: "step", Object: "step/lose-node", What: "start", Detail: "fault/node-loss"},
				{T: 5, Kind: "step", Object: "step/warm", What: "end", Detail: "ok"},
				{T: 65, Kind: "step", Object: "step/lose-node", What: "end", Detail: "ok"}},
			[]string{"the fault lose-node (fault/node-loss) was acting, from +5.0s to +65.0s"}},
		{"a fault over before the burst",
			Burst{From: 10, To: 12, Failed: 3},
			[]Change{{T: 2, Kind: "step", Object: "step/kill", What: "start", Detail: "fault/pod-kill"}, {T: 4, Kind: "step", Object: "step/kill", What: "end", Detail: "ok"}},
			nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			es := Explain([]Burst{c.burst}, c.changes, nil, time.Time{})
			if len(es) != 1 {
				t.Fatalf("%d explanations for one burst", len(es))
			}
			e := es[0]
			if c.want == nil {
				if e.Explained || len(e.Lines) != 1 || e.Lines[0] != Unexplained {
					t.Errorf("explained as %q; want %q", e.Lines, Unexplained)
				}
				return
			}
			if !e.Explained || len(e.Lines) != len(c.want) {
				t.Fatalf("lines %q; want %d like %q", e.Lines, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(e.Lines[i], w) {
					t.Errorf("line %d: %q\nwant it to contain %q", i, e.Lines[i], w)
				}
			}
		})
	}
}

// A release that answers 500s while old pods stop (gracefully, just after leaving the Service): the
// stops are not what failed requests that an app answered, and are not named as their cause.
func TestExplainDoesNotBlameStopsForAnsweredFailures(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	changes := []Change{ep(1, "old", EndpointReady, 3), podc(7.4, "old", PodDeleting), ep(9.9, "old", EndpointNotReady, 2),
		exited(11.0, "old", 0, "Completed")}
	b := Burst{From: 5, To: 17, Failed: 3}
	answered := []load.Failure{{Time: at(8), Code: 500}, {Time: at(10), Code: 500}, {Time: at(11.2), Code: 500}}
	if es := Explain([]Burst{b}, changes, answered, t0); es[0].Explained || es[0].Lines[0] != Unexplained {
		t.Errorf("answered failures blamed on a stop: %q", es[0].Lines)
	}
	refused := append(answered, load.Failure{Time: at(11.1), Error: "connect: connection refused"})
	if es := Explain([]Burst{b}, changes, refused, t0); !es[0].Explained || !strings.Contains(es[0].Lines[0], "pod/old received SIGTERM") {
		t.Errorf("a refused connection as the pod stopped not explained: %q", es[0].Lines)
	}
}

// What the failed requests met, from the load's own record: beside "no cluster change explains"
// for a release that answers 500s, and counted by kind, most first.
func TestExplainSaysWhatTheRequestsMet(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	secs := []load.Second{{T: 0, OK: 20}, {T: 1, OK: 10, Failed: 10, VersionFailed: map[string]int{"v2-bad": 7}}, {T: 2, OK: 20}}
	fails := []load.Failure{{Time: at(1.1), Code: 500}, {Time: at(1.2), Code: 500}, {Time: at(1.3), Code: 503},
		{Time: at(1.4), Error: "dial tcp 127.0.0.1:30080: connect: connection refused"}, {Time: at(2.5), Code: 500},
		{Time: at(1.5), Error: `Post "http://127.0.0.1:30080/orders": unexpected thing`}}
	es := Explain(Bursts(secs), nil, fails, t0)
	if len(es) != 1 || es[0].Explained {
		t.Fatalf("%+v", es)
	}
	want := []string{Unexplained, "the failed requests met (by the sampled failures): 2 HTTP 500, 1 HTTP 503, 1 connection refused, 1 unexpected thing; failed answers by version: v2-bad 7"}
	if d := cmp.Diff(want, es[0].Lines); d != "" {
		t.Errorf("lines (-want +got):\n%s", d)
	}
}

// What a step did to the system in or just before a burst (a switchover's fence, demotion,
// promotion) explains it, one line per step; actions long before or after the burst do not.
func TestExplainNamesStepActions(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	act := func(s float64, member, what, detail string) Change {
		return Change{T: s, Kind: KindAction, Object: "pod/" + member, What: what, Detail: "step switch-primary: " + detail}
	}
	changes := []Change{act(2, "db-0", "fenced", "db-0 fenced"), act(5.3, "db-0", "fenced", "db-0 fenced"),
		act(5.6, "db-0", "demoted", "db-0 demoted"), act(6.2, "db-1", "promoted", "db-1 promoted"), act(30, "db-1", "rejoined", "db-0 streams")}
	es := Explain([]Burst{{From: 5, To: 7, Failed: 3}}, changes, []load.Failure{{Time: t0.Add(5500 * time.Millisecond), Code: 503}}, t0)
	want := "step switch-primary acted: db-0 fenced at +5.3s; db-0 demoted at +5.6s; db-1 promoted at +6.2s"
	if !es[0].Explained || es[0].Lines[0] != want {
		t.Errorf("lines %q\nwant the first %q", es[0].Lines, want)
	}
	// Its twin: the same burst with nothing done near it is not explained by the step.
	es = Explain([]Burst{{From: 15, To: 17, Failed: 3}}, changes, []load.Failure{{Time: t0.Add(15500 * time.Millisecond), Code: 503}}, t0)
	if es[0].Explained || es[0].Lines[0] != Unexplained {
		t.Errorf("a burst far from any action explained: %q", es[0].Lines)
	}
}

// A lost node's requests time out until the control plane marks it NotReady: the NotReady that came
// while the burst's failed requests were still waiting is named, from their own latencies; the same
// NotReady after a burst of quick refusals (over at once) is not.
func TestNodeNotReadyWhileFailuresWereInFlight(t *testing.T) {
	start := time.Unix(1000, 0)
	burst := Burst{From: 40, To: 44, Failed: 13}
	changes := []Change{{T: 45.8, Kind: "node", Object: "node/worker3", What: NodeNotReady}, {T: 57, Kind: "node", Object: "node/worker3", What: NodeReady}}
	fail := func(at float64, latency time.Duration, err string) load.Failure {
		return load.Failure{Time: start.Add(time.Duration(at * float64(time.Second))), Target: "POST /orders", Error: err, Latency: latency}
	}
	timedOut := []load.Failure{fail(41, 2*time.Second, "context deadline exceeded"), fail(43.5, 2500*time.Millisecond, "context deadline exceeded")}
	e := Explain([]Burst{burst}, changes, timedOut, start)[0]
	if !strings.Contains(strings.Join(e.Lines, "\n"), "node/worker3 NotReady at +45.8s until +57.0s") || e.Burst.InFlightTo != 46 {
		t.Errorf("in flight to %.1f, lines %q; want the NotReady at +45.8s named", e.Burst.InFlightTo, e.Lines)
	}
	refused := []load.Failure{fail(41, time.Millisecond, "connection refused"), fail(43.5, time.Millisecond, "connection refused")}
	if e := Explain([]Burst{burst}, changes, refused, start)[0]; e.Explained {
		t.Errorf("a NotReady after quick refusals was named: %q", e.Lines)
	}
}
