package workloads

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The sample's topology lives in two objects that change together: the ConfigMap each member reads
// when its container starts (pg-entrypoint: a former primary that is not designated rejoins as a
// replica) and the write Service's selector (where the app's writes go).
const (
	topologyConfigMap = "orders-db-topology"
	writeService      = "orders-db-primary"
	memberLabel       = "statefulset.kubernetes.io/pod-name"
)

// Primary is the member the topology names as primary.
func (s *Sample) Primary(ctx context.Context) (string, error) {
	cm, err := s.cs.CoreV1().ConfigMaps(s.Options.Namespace).Get(ctx, topologyConfigMap, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("topology: %w", err)
	}
	p := cm.Data["primary"]
	if p == "" {
		return "", fmt.Errorf("topology: ConfigMap %s names no primary", topologyConfigMap)
	}
	return p, nil
}

// Members are the database's members, by name.
func (s *Sample) Members() []string { return s.dbPods() }

// Designate makes member the primary in the topology: first the ConfigMap (a member that restarts
// from now on knows it), then the write Service's selector (the app's new connections go to it).
func (s *Sample) Designate(ctx context.Context, member string) error {
	patch := fmt.Sprintf(`{"data":{"primary":%q}}`, member)
	if _, err := s.cs.CoreV1().ConfigMaps(s.Options.Namespace).Patch(ctx, topologyConfigMap, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("topology: designate %s: %w", member, err)
	}
	patch = fmt.Sprintf(`{"spec":{"selector":{"app":"orders-db",%q:%q}}}`, memberLabel, member)
	if _, err := s.cs.CoreV1().Services(s.Options.Namespace).Patch(ctx, writeService, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("topology: point %s at %s: %w", writeService, member, err)
	}
	return nil
}

// WriteServiceReady says whether the write Service has a ready endpoint on member.
func (s *Sample) WriteServiceReady(ctx context.Context, member string) (bool, error) {
	pod, err := s.cs.CoreV1().Pods(s.Options.Namespace).Get(ctx, member, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue, nil
		}
	}
	return false, nil
}

// MemberState is what one member says of itself.
type MemberState struct {
	Member     string `json:"member"`
	InRecovery bool   `json:"in_recovery"`
	// LSN is how far its WAL goes: a primary's current position, a replica's last replayed one.
	LSN      string `json:"lsn"`
	Received string `json:"received,omitempty"` // a replica: the last WAL position received
	Receiver string `json:"receiver,omitempty"` // a replica: its WAL receiver's status (streaming, …, none)
}

// State asks member for its role and WAL positions.
func (s *Sample) State(ctx context.Context, member string) (MemberState, error) {
	res, err := s.psql(ctx, member, `SELECT pg_is_in_recovery(),
		CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
		coalesce(pg_last_wal_receive_lsn()::text, ''),
		coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')`)
	if err != nil {
		return MemberState{}, err
	}
	f := strings.Split(res, "|")
	if len(f) != 4 {
		return MemberState{}, fmt.Errorf("state of %s: %q", member, res)
	}
	st := MemberState{Member: member, InRecovery: f[0] == "t", LSN: f[1], Received: f[2], Receiver: f[3]}
	if !st.InRecovery {
		st.Received, st.Receiver = "", ""
	}
	return st, nil
}

// AnswersAsPrimary says whether member answers as a primary when asked over the network from the
// member observer (as its peers see it: a member whose node is lost does not answer, while an exec
// into it would wait on the lost node's kubelet). The answer must come within a second.
func (s *Sample) AnswersAsPrimary(ctx context.Context, observer, member string) (bool, error) {
	var stdout, stderr bytes.Buffer
	cmd := []string{"sh", "-c", `PGPASSWORD=$POSTGRES_PASSWORD PGCONNECT_TIMEOUT=1 psql -h "$1" -U postgres -d postgres -tAXc "SELECT NOT pg_is_in_recovery()" || true`,
		"sh", member + "." + "orders-db"}
	if err := s.r.ExecInPod(ctx, s.Options.Namespace, observer, "postgres", cmd, &stdout, &stderr); err != nil {
		return false, fmt.Errorf("ask %s from %s: %w: %s", member, observer, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()) == "t", nil
}

// LSNAtLeast says whether WAL position a is at or past b (both as PostgreSQL prints them, X/Y).
func LSNAtLeast(a, b string) bool {
	pa, oka := parseLSN(a)
	pb, okb := parseLSN(b)
	return oka && okb && pa >= pb
}

// parseLSN reads X/Y (two hexadecimal halves of a 64-bit position).
func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	var h, l uint64
	if _, err := fmt.Sscanf(hi, "%x", &h); err != nil {
		return 0, false
	}
	if _, err := fmt.Sscanf(lo, "%x", &l); err != nil {
		return 0, false
	}
	return h<<32 | l, true
}

// Fence stops member taking writes without stopping it: new transactions are read-only (its readers
// go on), and the app's sessions are ended so that none is left mid-write.
func (s *Sample) Fence(ctx context.Context, member string) error {
	for _, q := range []string{
		"ALTER SYSTEM SET default_transaction_read_only = on",
		"SELECT pg_reload_conf()",
		"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'orders' AND pid <> pg_backend_pid()",
	} {
		if _, err := s.psql(ctx, member, q); err != nil {
			return fmt.Errorf("fence %s: %w", member, err)
		}
	}
	return nil
}

// Unfence takes a fence back (a switchover called off).
func (s *Sample) Unfence(ctx context.Context, member string) error {
	for _, q := range []string{"ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()"} {
		if _, err := s.psql(ctx, member, q); err != nil {
			return fmt.Errorf("unfence %s: %w", member, err)
		}
	}
	return nil
}

// Promote ends member's recovery: it becomes a primary on a new timeline (pg_promote, waiting up to
// a minute for it).
func (s *Sample) Promote(ctx context.Context, member string) error {
	res, err := s.psql(ctx, member, "SELECT pg_promote(true, 60)")
	if err != nil {
		return fmt.Errorf("promote %s: %w", member, err)
	}
	if res != "t" {
		return fmt.Errorf("promote %s: pg_promote answered %q", member, res)
	}
	// The control file names the new timeline only after a checkpoint; a former primary's pg_rewind
	// reads it there (pg-entrypoint asks for one too).
	if _, err := s.psql(ctx, member, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint after promoting %s: %w", member, err)
	}
	return nil
}

// Demote makes member a replica at its next start (pg-follow: standby.signal, primary_conninfo to the
// write Service) and shuts its server down cleanly (fast: sessions ended, a shutdown checkpoint
// written and streamed to the replicas). Its container restarts as a replica of whichever member the
// write Service names; as its WAL ends where the new primary's timeline forks, it follows that
// timeline without a rewind.
func (s *Sample) Demote(ctx context.Context, member string) error {
	var stdout, stderr bytes.Buffer
	cmd := []string{"sh", "-c", `pg-follow && kill -INT "$(head -1 "$PGDATA/postmaster.pid")"`}
	if err := s.r.ExecInPod(ctx, s.Options.Namespace, member, "postgres", cmd, &stdout, &stderr); err != nil {
		return fmt.Errorf("demote %s: %w: %s", member, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// WaitStreaming waits until member is a replica streaming from the primary (or timeout passes).
func (s *Sample) WaitStreaming(ctx context.Context, member string, timeout time.Duration) (MemberState, error) {
	deadline := time.Now().Add(timeout)
	var last MemberState
	var lastErr error
	for {
		st, err := s.State(ctx, member)
		if err == nil && st.InRecovery && st.Receiver == "streaming" {
			return st, nil
		}
		last, lastErr = st, err
		if time.Now().After(deadline) {
			if lastErr != nil {
				return last, fmt.Errorf("%s does not stream as a replica after %s: %w", member, timeout, lastErr)
			}
			return last, fmt.Errorf("%s does not stream as a replica after %s (in recovery %t, WAL receiver %s)", member, timeout, last.InRecovery, last.Receiver)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
