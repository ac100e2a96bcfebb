//go:build integration

package workloads

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	dockernet "github.com/docker/docker/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/network"
)

// member is one PostgreSQL container of the sample's image, as the StatefulSet runs it: its own
// host name, its data on a directory that outlives the container, the topology in its environment.
type member struct {
	t *testing.T
	c testcontainers.Container
}

func startMember(t *testing.T, net *testcontainers.DockerNetwork, name, designated, dataDir string, aliases ...string) *member {
	t.Helper()
	ctx := context.Background()
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image: PostgresImage,
			Env: map[string]string{"POSTGRES_PASSWORD": "su", "REPLICATION_PASSWORD": "repl", "APP_PASSWORD": "app",
				"DESIGNATED_PRIMARY": designated, "PRIMARY_SERVICE": "primary", "MEMBERS": "2"},
			Networks:       []string{net.Name},
			NetworkAliases: map[string][]string{net.Name: append([]string{name}, aliases...)},
			ConfigModifier: func(c *container.Config) { c.Hostname = name },
			HostConfigModifier: func(h *container.HostConfig) {
				h.Binds = append(h.Binds, dataDir+":/var/lib/postgresql/data")
			},
		},
		Started: true,
	})
	testcontainers.CleanupContainer(t, c)
	if err != nil {
		t.Fatalf("start %s (%s, built by `rehearse images build`): %v", name, PostgresImage, err)
	}
	return &member{t: t, c: c}
}

// sql runs one statement as the superuser over the member's socket; ok is false when psql failed.
func (m *member) sql(q string) (string, bool) {
	code, r, err := m.c.Exec(context.Background(), []string{"psql", "-h", "/run/postgresql", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-tAXc", q}, tcexec.Multiplexed())
	if err != nil {
		return err.Error(), false
	}
	out, _ := io.ReadAll(r)
	return strings.TrimSpace(string(out)), code == 0
}

func (m *member) mustSQL(q string) string {
	m.t.Helper()
	out, ok := m.sql(q)
	if !ok {
		m.t.Fatalf("%s: %s", q, out)
	}
	return out
}

// waitFor polls q until it answers want.
func (m *member) waitFor(q, want string, timeout time.Duration) {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if out, ok := m.sql(q); ok && out == want {
			return
		}
		last, _ = m.sql(q)
		time.Sleep(500 * time.Millisecond)
	}
	logs, _ := m.c.Logs(context.Background())
	b, _ := io.ReadAll(logs)
	m.t.Fatalf("%s: %q after %s, want %q; its log:\n%s", q, last, timeout, want, b)
}

const streaming = "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')"

// Promote, repoint, rejoin on real PostgreSQL, as a failover does it: a replica behind (its WAL
// receiver stopped) while the primary acknowledges more; the primary killed; the replica promoted and
// the write name moved to it. The old primary comes back with a stale designation naming itself: it
// must find the other member running as primary and rejoin it with pg_rewind — its own rows past the
// fork discarded, the new primary's rows streamed — never start writable beside it.
func TestFailoverRejoinsTheFormerPrimary(t *testing.T) {
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		t.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	t.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	ctx := context.Background()
	net, err := network.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = net.Remove(context.Background()) })
	dir0, dir1 := t.TempDir(), t.TempDir()

	db0 := startMember(t, net, "db-0", "db-0", dir0, "primary")
	db1 := startMember(t, net, "db-1", "db-0", dir1)
	db1.waitFor(streaming, "streaming", 90*time.Second)
	db0.waitFor("SELECT NOT pg_is_in_recovery()", "t", 30*time.Second)

	db0.mustSQL("CREATE TABLE t (id int PRIMARY KEY)")
	db0.mustSQL("INSERT INTO t SELECT generate_series(1, 100)")
	db1.waitFor("SELECT count(*) FROM t", "100", 30*time.Second)

	// The replica falls behind; the primary alone has rows 101-150.
	db1.mustSQL("ALTER SYSTEM SET primary_conninfo = ''")
	db1.mustSQL("SELECT pg_reload_conf()")
	db1.waitFor(streaming, "none", 30*time.Second)
	db0.mustSQL("INSERT INTO t SELECT generate_series(101, 150)")

	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if err := cli.ContainerKill(ctx, db0.c.GetContainerID(), "KILL"); err != nil {
		t.Fatal(err)
	}
	if got := db1.mustSQL("SELECT pg_promote(true, 60)"); got != "t" {
		t.Fatalf("pg_promote: %q", got)
	}
	// The write name moves to the new primary (what the write Service's selector does in Kubernetes).
	if err := cli.NetworkDisconnect(ctx, net.ID, db1.c.GetContainerID(), true); err != nil {
		t.Fatal(err)
	}
	if err := cli.NetworkConnect(ctx, net.ID, db1.c.GetContainerID(), &dockernet.EndpointSettings{Aliases: []string{"db-1", "primary"}}); err != nil {
		t.Fatal(err)
	}
	db1.mustSQL("INSERT INTO t SELECT generate_series(151, 160)")
	if err := db0.c.Terminate(ctx); err != nil {
		t.Fatal(err)
	}

	// Back on its own data, still told it is the primary (a stale designation).
	back := startMember(t, net, "db-0", "db-0", dir0)
	back.waitFor(streaming, "streaming", 90*time.Second)
	if got := back.mustSQL("SELECT pg_is_in_recovery()"); got != "t" {
		t.Fatalf("the former primary came back writable (in recovery: %s): two primaries", got)
	}
	db1.mustSQL("INSERT INTO t SELECT generate_series(161, 170)")
	back.waitFor("SELECT count(*) FROM t", "120", 30*time.Second)
	if got := back.mustSQL("SELECT count(*) FROM t WHERE id BETWEEN 101 AND 150"); got != "0" {
		t.Errorf("the rows only the old primary had are still there after the rewind: %s", got)
	}
	logs, _ := back.c.Logs(ctx)
	b, _ := io.ReadAll(logs)
	if !strings.Contains(string(b), "db-1 runs as a primary: joining it instead") || !strings.Contains(string(b), "pg_rewind") {
		t.Errorf("the rejoin is not what its log says:\n%s", b)
	}
}
