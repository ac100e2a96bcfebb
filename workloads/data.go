package workloads

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TableSum is the checksum of one table on one database member: its row count and the md5 of its rows'
// text, in order.
type TableSum struct {
	Rows int64  `json:"rows"`
	MD5  string `json:"md5"`
}

// ReplicaChecksum is the data checksum of one database member.
type ReplicaChecksum struct {
	Pod     string              `json:"pod"`
	Primary bool                `json:"primary"`
	Tables  map[string]TableSum `json:"tables"`
	// CaughtUp says the member had replayed the primary's WAL position taken at the start before its
	// checksum was computed. A member that had not caught up within the timeout is checksummed anyway;
	// its checksum then shows what it lacks.
	CaughtUp  bool   `json:"caught_up"`
	ReplayLSN string `json:"replay_lsn,omitempty"`
}

const appDB = "orders"

// psql runs one SQL command as the superuser on a member (over its local socket) and returns the
// unaligned, tuples-only output.
func (s *Sample) psql(ctx context.Context, pod, sql string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := []string{"psql", "-h", "/run/postgresql", "-U", "postgres", "-d", appDB, "-v", "ON_ERROR_STOP=1", "-tAXc", sql}
	if err := s.r.ExecInPod(ctx, s.Options.Namespace, pod, "postgres", cmd, &stdout, &stderr); err != nil {
		return "", fmt.Errorf("psql on %s: %w: %s", pod, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func (s *Sample) dbPods() []string {
	pods := make([]string, s.Options.DBReplicas)
	for i := range pods {
		pods[i] = fmt.Sprintf("orders-db-%d", i)
	}
	return pods
}

// Checksums computes a checksum of every table on every database member. It first reads the primary's
// current WAL position and gives each replica up to catchUp to replay past it, so that members that
// received everything agree exactly.
//
// Writes can still land after the load stopped (a request the client gave up on commits later): then
// the primary's checksum is older than what a replica replays, and the two differ although nothing
// was lost. So when members differ and the primary's WAL position moved while they were measured,
// the measurement is taken again, until the members agree, the primary stood still through a whole
// measurement, or catchUp has passed; the last measurement is returned. A replica that lost writes
// or stopped replaying differs through a still primary and is reported as it is.
func (s *Sample) Checksums(ctx context.Context, catchUp time.Duration) ([]ReplicaChecksum, error) {
	deadline := time.Now().Add(catchUp)
	for {
		sums, start, err := s.checksumsOnce(ctx, deadline)
		if err != nil {
			return nil, err
		}
		if membersAgree(sums) || time.Now().After(deadline) {
			return sums, nil
		}
		end, err := s.psql(ctx, sums[0].Pod, "SELECT pg_current_wal_lsn()")
		if err != nil {
			return nil, err
		}
		if end == start {
			return sums, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// membersAgree says every member's tables equal the primary's.
func membersAgree(sums []ReplicaChecksum) bool {
	for _, rc := range sums[1:] {
		if !maps.Equal(rc.Tables, sums[0].Tables) {
			return false
		}
	}
	return true
}

// checksumsOnce is one measurement: the primary's WAL position, then each member's checksum, a
// replica's once it replayed past that position (or deadline passed).
func (s *Sample) checksumsOnce(ctx context.Context, deadline time.Time) ([]ReplicaChecksum, string, error) {
	pods, err := s.primaryFirst(ctx)
	if err != nil {
		return nil, "", err
	}
	target, err := s.psql(ctx, pods[0], "SELECT pg_current_wal_lsn()")
	if err != nil {
		return nil, "", err
	}
	var out []ReplicaChecksum
	for i, pod := range pods {
		rc := ReplicaChecksum{Pod: pod, Primary: i == 0, CaughtUp: i == 0, Tables: map[string]TableSum{}}
		if i > 0 {
			for {
				q := fmt.Sprintf("SELECT pg_last_wal_replay_lsn(), pg_last_wal_replay_lsn() >= '%s'::pg_lsn", target)
				res, err := s.psql(ctx, pod, q)
				if err != nil {
					return nil, "", err
				}
				lsn, ok, _ := strings.Cut(res, "|")
				rc.ReplayLSN = lsn
				if ok == "t" {
					rc.CaughtUp = true
					break
				}
				if time.Now().After(deadline) {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
		}
		tables, err := s.psql(ctx, pod, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
		if err != nil {
			return nil, "", err
		}
		for _, t := range strings.Fields(tables) {
			res, err := s.psql(ctx, pod, fmt.Sprintf(
				`SELECT count(*), coalesce(md5(string_agg(t::text, E'\n' ORDER BY t::text)), '') FROM %q t`, t))
			if err != nil {
				return nil, "", err
			}
			n, sum, _ := strings.Cut(res, "|")
			rows, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return nil, "", fmt.Errorf("checksum of %s on %s: %q", t, pod, res)
			}
			rc.Tables[t] = TableSum{Rows: rows, MD5: sum}
		}
		out = append(out, rc)
	}
	return out, target, nil
}

// primaryFirst are the members of the topology as it is now, its primary first: after a switchover
// or a failover the primary is whichever member the topology names, never a fenced former one.
func (s *Sample) primaryFirst(ctx context.Context) ([]string, error) {
	p, err := s.Primary(ctx)
	if err != nil {
		return nil, err
	}
	out := []string{p}
	for _, m := range s.dbPods() {
		if m != p {
			out = append(out, m)
		}
	}
	return out, nil
}

// MissingIDs returns which of ids have no order on the primary the topology names now.
func (s *Sample) MissingIDs(ctx context.Context, ids []string) ([]string, error) {
	primary, err := s.Primary(ctx)
	if err != nil {
		return nil, err
	}
	const chunk = 2000 // keeps one psql argument well under the kernel's per-argument limit
	var missing []string
	for start := 0; start < len(ids); start += chunk {
		end := min(start+chunk, len(ids))
		quoted := make([]string, 0, end-start)
		for _, id := range ids[start:end] {
			quoted = append(quoted, "'"+strings.ReplaceAll(id, "'", "''")+"'")
		}
		q := "SELECT w.id FROM unnest(ARRAY[" + strings.Join(quoted, ",") +
			"]::text[]) AS w(id) WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = w.id) ORDER BY 1"
		res, err := s.psql(ctx, primary, q)
		if err != nil {
			return nil, err
		}
		missing = append(missing, strings.Fields(res)...)
	}
	sort.Strings(missing)
	return missing, nil
}

// PauseReplay stops (or resumes) WAL replay on a replica: a deliberate way to make it miss writes.
func (s *Sample) PauseReplay(ctx context.Context, pod string, pause bool) error {
	fn := "pg_wal_replay_resume()"
	if pause {
		fn = "pg_wal_replay_pause()"
	}
	_, err := s.psql(ctx, pod, "SELECT "+fn)
	return err
}

// ReplicaLag is how far one streaming replica is behind the primary, as the primary sees it.
type ReplicaLag struct {
	Name       string        `json:"name"` // the replica's application_name (its host)
	ReplayLag  time.Duration `json:"replay_lag"`
	ReplayByte int64         `json:"replay_bytes"`
	State      string        `json:"state"`
}

// ReplicationLag reads pg_stat_replication on the primary.
func (s *Sample) ReplicationLag(ctx context.Context) ([]ReplicaLag, error) {
	primary, err := s.Primary(ctx)
	if err != nil {
		return nil, err
	}
	res, err := s.psql(ctx, primary, `SELECT application_name, state,
		coalesce(extract(epoch FROM replay_lag), 0), coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint
		FROM pg_stat_replication ORDER BY application_name`)
	if err != nil {
		return nil, err
	}
	var out []ReplicaLag
	for _, line := range strings.Split(res, "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 {
			continue
		}
		secs, _ := strconv.ParseFloat(f[2], 64)
		bytes, _ := strconv.ParseInt(f[3], 10, 64)
		out = append(out, ReplicaLag{Name: f[0], State: f[1], ReplayLag: time.Duration(secs * float64(time.Second)), ReplayByte: bytes})
	}
	return out, nil
}
