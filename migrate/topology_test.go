package migrate

import (
	"context"
	"testing"
	"time"

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

// poll: done at once, done after a few tries, never done within the timeout, and a ctx that ends.
func TestPoll(t *testing.T) {
	ctx := context.Background()
	n := 0
	if ok, err := poll(ctx, time.Millisecond, time.Second, func() bool { n++; return n == 3 }); !ok || err != nil || n != 3 {
		t.Errorf("done on the third try: %t %v after %d", ok, err, n)
	}
	n = 0
	if ok, err := poll(ctx, time.Millisecond, 0, func() bool { n++; return true }); !ok || err != nil || n != 1 {
		t.Errorf("done at once, even with no time: %t %v after %d", ok, err, n)
	}
	start := time.Now()
	if ok, err := poll(ctx, 5*time.Millisecond, 30*time.Millisecond, func() bool { return false }); ok || err != nil || time.Since(start) < 30*time.Millisecond {
		t.Errorf("never done: %t %v after %s", ok, err, time.Since(start))
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if ok, err := poll(cctx, time.Second, time.Minute, func() bool { return false }); ok || err != context.Canceled {
		t.Errorf("an ended ctx: %t %v", ok, err)
	}
}
