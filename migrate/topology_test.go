package migrate

import (
	"testing"

	"github.com/rehearse-dev/rehearse/workloads"
)

// The failover promotes the replica that has replayed the most; the primary (not in recovery) and
// members that did not answer are never chosen.
func TestMostAdvanced(t *testing.T) {
	for _, c := range []struct {
		name   string
		states []workloads.MemberState
		want   string
	}{
		{"the furthest replayed", []workloads.MemberState{{Member: "db-1", InRecovery: true, LSN: "0/3000060"}, {Member: "db-2", InRecovery: true, LSN: "0/30000F8"}}, "db-2"},
		{"positions compare as numbers, not text", []workloads.MemberState{{Member: "db-1", InRecovery: true, LSN: "0/9FFFFFF"}, {Member: "db-2", InRecovery: true, LSN: "0/10000000"}}, "db-2"},
		{"the high half counts first", []workloads.MemberState{{Member: "db-1", InRecovery: true, LSN: "1/0"}, {Member: "db-2", InRecovery: true, LSN: "0/FFFFFFFF"}}, "db-1"},
		{"a member out of recovery is a primary, not a candidate", []workloads.MemberState{{Member: "db-0", InRecovery: false, LSN: "9/0"}, {Member: "db-1", InRecovery: true, LSN: "0/1"}}, "db-1"},
		{"no replica answered", nil, ""},
	} {
		if got := mostAdvanced(c.states); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
