package verify

import (
	"strings"
	"testing"
)

// A fault passes only with evidence that it happened; one that did nothing fails by name.
func TestFaultTookEffect(t *testing.T) {
	killed := Kill{Pods: []string{"ns/a"}, Matched: 3, Gone: true, Replaced: true}
	drained := &Drain{Node: "w1", Evicted: []string{"ns/a", "ns/b"}, Emptied: true, DrainS: 12}
	for _, c := range []struct {
		name   string
		faults []Fault
		want   Status
		text   string
	}{
		{"a kill that killed and was healed", []Fault{{Step: "kill", Kind: "fault/pod-kill", Status: "ok", Kills: []Kill{killed}}}, Pass, "1 pods killed and replaced"},
		{"a selector that matched nothing", []Fault{{Step: "kill", Kind: "fault/pod-kill", Status: "ok", Kills: []Kill{{Matched: 0}}}}, Fail, "kill: pod-kill matched no pod"},
		{"a victim that never went", []Fault{{Step: "kill", Kind: "fault/pod-kill", Status: "ok", Kills: []Kill{{Pods: []string{"ns/a"}, Matched: 1}}}}, Fail, "did not go away"},
		{"no replacement", []Fault{{Step: "kill", Kind: "fault/pod-kill", Status: "ok", Kills: []Kill{{Pods: []string{"ns/a"}, Matched: 1, Gone: true}}}}, Fail, "were not replaced"},
		{"a drain that emptied its node", []Fault{{Step: "drain", Kind: "fault/node-drain", Status: "ok", Drain: drained}}, Pass, "w1 drained in 12.0s, 2 pods evicted"},
		{"a drain a budget blocked", []Fault{{Step: "drain", Kind: "fault/node-drain", Status: "ok",
			Drain: &Drain{Node: "w1", Refused429: 30, Error: "global timeout reached: 1m0s"}}}, Fail, "evicted nothing (30 evictions refused by a PodDisruptionBudget)"},
		{"a drain of an empty node", []Fault{{Step: "drain", Kind: "fault/node-drain", Status: "ok", Drain: &Drain{Node: "w1", Emptied: true}}}, Fail, "the node ran no evictable pod"},
		{"a drain that left pods", []Fault{{Step: "drain", Kind: "fault/node-drain", Status: "ok", Drain: &Drain{Node: "w1", Evicted: []string{"ns/a"}, Left: []string{"ns/b"}}}}, Fail, "left evictable pods (ns/b)"},
		{"a fault the harness could not act on", []Fault{{Step: "kill", Kind: "fault/pod-kill", Status: "error", Error: "forbidden"}}, Error, "could not be carried out"},
		{"no fault", nil, Error, "no fault ran"},
		{"one good, one empty", []Fault{{Step: "drain", Kind: "fault/node-drain", Status: "ok", Drain: drained},
			{Step: "kill", Kind: "fault/pod-kill", Status: "ok", Kills: []Kill{{Matched: 0}}}}, Fail, "kill: pod-kill matched no pod"},
	} {
		r := FaultTookEffect(c.faults)
		if r.Status != c.want || !strings.Contains(r.Message, c.text) {
			t.Errorf("%s: %s %q, want %s containing %q", c.name, r.Status, r.Message, c.want, c.text)
		}
	}
}
