//go:build integration

package orders

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// postgresImage is built offline by `rehearse images build` (package workloads); it is never pulled.
const postgresImage = "rehearse.local/postgres:15"

// TestMain sets what testcontainers must know on this machine before any test runs (the tests run
// side by side, and t.Setenv cannot be used by a parallel test).
func TestMain(m *testing.M) {
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true") // no registry: the reaper image cannot be pulled
	}
	// Tests reach containers on loopback only; left alone, testcontainers may pick the default
	// gateway when it believes it runs inside a container.
	os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	os.Exit(m.Run())
}

// startPostgres runs the locally built PostgreSQL image as a standalone primary and returns a DSN for
// the application user.
func startPostgres(t *testing.T) string {
	t.Helper()
	dsn, _ := startPostgresContainer(t)
	return dsn
}

// startPostgresContainer is startPostgres with the container, for tests that stop it; env is added
// to the container's.
func startPostgresContainer(t *testing.T, env ...string) (string, testcontainers.Container) {
	t.Helper()
	ctx := context.Background()
	vars := map[string]string{"ROLE": "primary", "POSTGRES_PASSWORD": "su", "REPLICATION_PASSWORD": "repl", "APP_PASSWORD": "app"}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        postgresImage,
			Env:          vars,
			ExposedPorts: []string{"127.0.0.1::5432/tcp"},
			WaitingFor:   wait.ForListeningPort("5432/tcp").WithStartupTimeout(90 * time.Second),
		},
		Started: true,
	})
	testcontainers.CleanupContainer(t, c)
	if err != nil {
		t.Fatalf("start %s (built by `rehearse images build`): %v", postgresImage, err)
	}
	host, err := c.Host(ctx)
	if err != nil {
		t.Fatal(err)
	}
	port, err := c.MappedPort(ctx, "5432/tcp")
	if err != nil {
		t.Fatal(err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	return fmt.Sprintf("postgres://orders:app@%s:%s/orders?sslmode=disable", host, port.Port()), c
}

func connectPool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	deadline := time.Now().Add(30 * time.Second)
	for pool.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("database never answered")
		}
		time.Sleep(300 * time.Millisecond)
	}
	return pool
}

func columns(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var cols string
	err := pool.QueryRow(context.Background(), `SELECT string_agg(column_name || ':' || is_nullable, ',' ORDER BY column_name)
		FROM information_schema.columns WHERE table_name = 'orders'`).Scan(&cols)
	if err != nil {
		t.Fatal(err)
	}
	return cols
}

func put(t *testing.T, s Store, id, name string) {
	t.Helper()
	if _, _, err := s.Put(context.Background(), Order{ID: id, Name: name, AmountCents: 100}); err != nil {
		t.Fatalf("put %s: %v", id, err)
	}
}

// The whole expand / backfill / contract path with every version against a real PostgreSQL, then the
// down-migrations back to the start.
func TestExpandBackfillContractAndBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := startPostgres(t)
	pool := connectPool(t, dsn)
	m := &Migrator{Pool: pool, BatchSize: 7}

	if err := m.Up(ctx, "create"); err != nil {
		t.Fatal(err)
	}
	if err := m.Up(ctx, "create"); err != nil {
		t.Fatalf("create is not idempotent: %v", err)
	}
	v1, _ := OpenPG(ctx, dsn, V1)
	defer v1.Close()
	for i := 0; i < 50; i++ {
		put(t, v1, fmt.Sprintf("v1-%03d", i), fmt.Sprintf("name %d", i))
	}
	// Idempotent retry and conflict through the real store.
	if _, created, err := v1.Put(ctx, Order{ID: "v1-000", Name: "name 0", AmountCents: 100}); err != nil || created {
		t.Fatalf("retry: created=%v err=%v", created, err)
	}
	if _, _, err := v1.Put(ctx, Order{ID: "v1-000", Name: "other", AmountCents: 100}); err != ErrConflict {
		t.Fatalf("conflicting retry: %v, want ErrConflict", err)
	}

	if err := m.Up(ctx, "expand"); err != nil {
		t.Fatal(err)
	}
	if got := columns(t, pool); got != "amount_cents:NO,created_at:NO,full_name:YES,id:NO,name:YES" {
		t.Fatalf("after expand: %s", got)
	}
	// v1 keeps working on the expanded schema (old and new versions run side by side in a rollout).
	put(t, v1, "v1-after-expand", "late v1")
	v2, _ := OpenPG(ctx, dsn, V2)
	defer v2.Close()
	put(t, v2, "v2-001", "second")

	if err := m.Up(ctx, "backfill"); err != nil {
		t.Fatal(err)
	}
	var lacking int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE full_name IS DISTINCT FROM name`).Scan(&lacking); err != nil || lacking != 0 {
		t.Fatalf("after backfill %d rows have full_name != name (%v)", lacking, err)
	}

	// A v1 writer still running after the backfill leaves a row without full_name: contract must
	// refuse instead of failing half-way or dropping data.
	put(t, v1, "v1-straggler", "late")
	err := m.Up(ctx, "contract")
	if err == nil || !strings.Contains(err.Error(), "1 rows still lack full_name") {
		t.Fatalf("contract with a row lacking full_name: %v, want a refusal", err)
	}
	if got := columns(t, pool); !strings.Contains(got, "name:YES") {
		t.Fatalf("refused contract changed the schema: %s", got)
	}
	// Backfill is re-runnable: revert its record, run it again, and it picks up what is missing.
	if err := m.Down(ctx, "backfill"); err != nil {
		t.Fatal(err)
	}
	if err := m.Up(ctx, "contract"); err != nil {
		t.Fatalf("contract after a complete backfill: %v", err)
	}
	if got := columns(t, pool); got != "amount_cents:NO,created_at:NO,full_name:NO,id:NO" {
		t.Fatalf("after contract: %s", got)
	}
	v3, _ := OpenPG(ctx, dsn, V3)
	defer v3.Close()
	put(t, v3, "v3-001", "third")
	if o, err := v3.Get(ctx, "v1-straggler"); err != nil || o.Name != "late" {
		t.Fatalf("v3 reads a v1 row as %+v, %v", o, err)
	}
	if n, err := v3.Count(ctx); err != nil || n != 54 {
		t.Fatalf("count after contract = %d, %v; want 54", n, err)
	}

	// Down-migrations, newest first: v1 must read every row again, v3's included.
	if err := m.Down(ctx, "contract"); err != nil {
		t.Fatal(err)
	}
	if o, err := v1.Get(ctx, "v3-001"); err != nil || o.Name != "third" {
		t.Fatalf("after down contract, v1 reads v3's row as %+v, %v", o, err)
	}
	if err := m.Down(ctx, "expand"); err != nil {
		t.Fatal(err)
	}
	if got := columns(t, pool); got != "amount_cents:NO,created_at:NO,id:NO,name:NO" {
		t.Fatalf("after down expand: %s", got)
	}
	if err := m.Down(ctx, "create"); err != nil {
		t.Fatal(err)
	}
	if applied, err := m.Applied(ctx); err != nil || len(applied) != 0 {
		t.Fatalf("applied after all downs: %v, %v", applied, err)
	}
}

// Two migration runs at once (a Job retried while the first still runs) serialize on the lock.
func TestConcurrentMigrationsSerialize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := connectPool(t, startPostgres(t))
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { errs <- (&Migrator{Pool: pool}).Up(ctx, "contract") }()
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	applied, err := (&Migrator{Pool: pool}).Applied(ctx)
	if err != nil || strings.Join(applied, ",") != "create,expand,backfill,contract" {
		t.Fatalf("applied = %v, %v", applied, err)
	}
}

// A request whose client gives up mid-statement leaves its connection in the pool: the statement
// finishes (or the server's statement_timeout ends it) and no connection is dialled in its place.
func TestAbandonedRequestKeepsItsConnection(t *testing.T) {
	t.Parallel()
	dsn := startPostgres(t)
	connectPool(t, dsn)
	bg := context.Background()
	st, err := OpenPG(bg, dsn, V1)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	exec := func(ctx context.Context, sql string) error {
		return st.with(ctx, func(ctx context.Context, c *pgxpool.Conn) error { _, err := c.Exec(ctx, sql); return err })
	}
	if err := exec(bg, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); st.pool.Stat().TotalConns() < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pool never reached its 2 kept connections: %d", st.pool.Stat().TotalConns())
		}
	}
	dialled := st.pool.Stat().NewConnsCount()

	// The client leaves after 100 ms; the statement takes 500 ms and completes.
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	err = exec(ctx, "SELECT pg_sleep(0.5)")
	cancel()
	if err != nil {
		t.Errorf("statement of an abandoned request: %v; want it to complete", err)
	}
	// A statement past statement_timeout is ended by the server; its connection is kept.
	if err := exec(bg, "SELECT pg_sleep(10)"); err == nil || !strings.Contains(err.Error(), "statement timeout") {
		t.Errorf("10 s statement: %v; want the server's statement timeout", err)
	}
	if err := exec(bg, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if n := st.pool.Stat().NewConnsCount() - dialled; n != 0 {
		t.Errorf("%d connections dialled after an abandoned request and a timed-out statement; want 0", n)
	}
}

// With synchronous replication and no standby connected, a write's commit waits until
// statement_timeout cancels the wait; PostgreSQL then returns success with a warning, the order
// committed on the primary alone. The app must not acknowledge it (a failover would lose it), nor
// answer a retry of the same id as stored.
func TestSyncCommitWithoutStandbyIsNotAcknowledged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, _ := startPostgresContainer(t, "REPLICATION=sync")
	// The schema and the checks below commit locally (a runtime parameter of their session): only
	// the app's own writes are to wait for a standby.
	pool := connectPool(t, dsn+"&synchronous_commit=local")
	if err := (&Migrator{Pool: pool}).Up(ctx, "create"); err != nil {
		t.Fatal(err)
	}
	st, err := OpenPG(ctx, dsn, V1)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	_, _, err = st.Put(ctx, Order{ID: "sync-1", Name: "a", AmountCents: 1})
	if !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Put without a synchronous standby = %v; want ErrNotReplicated", err)
	}
	if took := time.Since(start); took < QueryTimeout || took > QueryTimeout+QueryGrace+time.Second {
		t.Errorf("the write was refused after %s; want about statement_timeout (%s)", took, QueryTimeout)
	}
	// A retry of the same order finds it stored, and is refused all the same.
	if _, _, err := st.Put(ctx, Order{ID: "sync-1", Name: "a", AmountCents: 1}); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("a retry of the unreplicated order = %v; want ErrNotReplicated", err)
	}
	// The row is on the primary (the commit happened); the answer still says it is not safe.
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM orders WHERE id = 'sync-1'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count = %d, %v; want the row committed on the primary", n, err)
	}
	// Its sound twin: asynchronous replication acknowledges at once.
	dsn2, _ := startPostgresContainer(t)
	pool2 := connectPool(t, dsn2)
	if err := (&Migrator{Pool: pool2}).Up(ctx, "create"); err != nil {
		t.Fatal(err)
	}
	st2, err := OpenPG(ctx, dsn2, V1)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if _, created, err := st2.Put(ctx, Order{ID: "async-1", Name: "a", AmountCents: 1}); err != nil || !created {
		t.Fatalf("async Put = %v, %v", created, err)
	}
}
