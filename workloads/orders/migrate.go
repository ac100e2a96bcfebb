package orders

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A schema migration of the orders table, following expand / backfill / contract:
//
//	create    orders(id, name NOT NULL, amount_cents, created_at)             v1 runs on it
//	expand    + full_name (nullable); name becomes nullable                   v2 writes both
//	backfill  full_name = name where missing, in batches (resumable)          after every writer is v2
//	contract  full_name NOT NULL; name dropped (refuses while rows lack it)   v3 reads/writes full_name
//
// Every step has a down-migration; schema_versions records the steps applied. Steps are idempotent and
// serialized by an advisory lock, so a Job that is retried or run twice does no harm.
type Migration struct {
	Version int
	Name    string
	Up      func(ctx context.Context, m *Migrator) error
	Down    func(ctx context.Context, m *Migrator) error
}

// Migrations in order.
var Migrations = []Migration{
	{1, "create", upCreate, downCreate},
	{2, "expand", upExpand, downExpand},
	{3, "backfill", upBackfill, func(context.Context, *Migrator) error { return nil }},
	{4, "contract", upContract, downContract},
}

const migrationLock = 7250438 // pg_advisory_lock key for orders migrations

// Migrator applies migrations with one pool.
type Migrator struct {
	Pool *pgxpool.Pool
	// BatchSize is the number of rows a backfill batch updates.
	BatchSize int
	// Log receives progress lines; nil discards.
	Log io.Writer
}

func (m *Migrator) logf(format string, args ...any) {
	if m.Log != nil {
		fmt.Fprintf(m.Log, format+"\n", args...)
	}
}

func (m *Migrator) exec(ctx context.Context, sql string, args ...any) error {
	_, err := m.Pool.Exec(ctx, sql, args...)
	return err
}

func migrationByName(name string) (int, error) {
	for i, mg := range Migrations {
		if mg.Name == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown migration %q (want create, expand, backfill or contract)", name)
}

// Applied returns the names of applied migrations, in version order.
func (m *Migrator) Applied(ctx context.Context) ([]string, error) {
	if err := m.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_versions (
		version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, err
	}
	rows, err := m.Pool.Query(ctx, `SELECT name FROM schema_versions ORDER BY version`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// underLock resolves target to its index, takes the migration advisory lock on one connection, and
// runs f with the index and the set of applied migrations.
func (m *Migrator) underLock(ctx context.Context, target string, f func(idx int, done map[string]bool) error) error {
	idx, err := migrationByName(target)
	if err != nil {
		return err
	}
	conn, err := m.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock) //nolint:errcheck
	applied, err := m.Applied(ctx)
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, a := range applied {
		done[a] = true
	}
	return f(idx, done)
}

// Up applies every migration up to and including target that is not applied yet.
func (m *Migrator) Up(ctx context.Context, target string) error {
	return m.underLock(ctx, target, func(last int, done map[string]bool) error {
		for _, mg := range Migrations[:last+1] {
			if done[mg.Name] {
				m.logf("migrate: %s already applied", mg.Name)
				continue
			}
			start := time.Now()
			m.logf("migrate: applying %s", mg.Name)
			if err := mg.Up(ctx, m); err != nil {
				return fmt.Errorf("migration %s: %w", mg.Name, err)
			}
			if err := m.exec(ctx, `INSERT INTO schema_versions (version, name) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING`,
				mg.Version, mg.Name); err != nil {
				return err
			}
			m.logf("migrate: applied %s in %s", mg.Name, time.Since(start).Round(time.Millisecond))
		}
		return nil
	})
}

// Down reverts target and every applied migration after it, newest first.
func (m *Migrator) Down(ctx context.Context, target string) error {
	return m.underLock(ctx, target, func(first int, done map[string]bool) error {
		for i := len(Migrations) - 1; i >= first; i-- {
			mg := Migrations[i]
			if !done[mg.Name] {
				continue
			}
			m.logf("migrate: reverting %s", mg.Name)
			if err := mg.Down(ctx, m); err != nil {
				return fmt.Errorf("down-migration %s: %w", mg.Name, err)
			}
			if err := m.exec(ctx, `DELETE FROM schema_versions WHERE version = $1`, mg.Version); err != nil {
				return err
			}
		}
		return nil
	})
}

func upCreate(ctx context.Context, m *Migrator) error {
	return m.exec(ctx, `CREATE TABLE IF NOT EXISTS orders (
		id text PRIMARY KEY,
		name text NOT NULL,
		amount_cents bigint NOT NULL DEFAULT 0,
		created_at timestamptz NOT NULL DEFAULT now())`)
}

func downCreate(ctx context.Context, m *Migrator) error {
	return m.exec(ctx, `DROP TABLE IF EXISTS orders`)
}

func upExpand(ctx context.Context, m *Migrator) error {
	return m.exec(ctx, `ALTER TABLE orders ADD COLUMN IF NOT EXISTS full_name text;
		ALTER TABLE orders ALTER COLUMN name DROP NOT NULL`)
}

func downExpand(ctx context.Context, m *Migrator) error {
	// Rows written with full_name only (by v3) get their name back before name is required again.
	if err := m.batched(ctx, "name", "full_name"); err != nil {
		return err
	}
	return m.exec(ctx, `ALTER TABLE orders ALTER COLUMN name SET NOT NULL;
		ALTER TABLE orders DROP COLUMN IF EXISTS full_name`)
}

func upBackfill(ctx context.Context, m *Migrator) error {
	return m.batched(ctx, "full_name", "name")
}

// batched copies column src into dst where dst is NULL, BatchSize rows per transaction, so that a
// large table is never locked at once and an interrupted run resumes where it stopped.
func (m *Migrator) batched(ctx context.Context, dst, src string) error {
	size := m.BatchSize
	if size <= 0 {
		size = 500
	}
	total := int64(0)
	for {
		tag, err := m.Pool.Exec(ctx, `UPDATE orders SET `+dst+` = `+src+` WHERE id IN (
			SELECT id FROM orders WHERE `+dst+` IS NULL AND `+src+` IS NOT NULL ORDER BY id LIMIT $1)`, size)
		if err != nil {
			return err
		}
		n := tag.RowsAffected()
		total += n
		if n > 0 {
			m.logf("migrate: copied %s into %s for %d rows (%d so far)", src, dst, n, total)
		}
		if n < int64(size) {
			return nil
		}
	}
}

func upContract(ctx context.Context, m *Migrator) error {
	var missing int64
	if err := m.Pool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE full_name IS NULL`).Scan(&missing); err != nil {
		return err
	}
	if missing > 0 {
		return fmt.Errorf("%d rows still lack full_name: finish the rollout to v2 and run backfill first", missing)
	}
	return m.exec(ctx, `ALTER TABLE orders ALTER COLUMN full_name SET NOT NULL;
		ALTER TABLE orders DROP COLUMN IF EXISTS name`)
}

func downContract(ctx context.Context, m *Migrator) error {
	if err := m.exec(ctx, `ALTER TABLE orders ADD COLUMN IF NOT EXISTS name text;
		ALTER TABLE orders ALTER COLUMN full_name DROP NOT NULL`); err != nil {
		return err
	}
	return m.batched(ctx, "name", "full_name")
}
