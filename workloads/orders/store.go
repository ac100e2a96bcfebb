package orders

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Order is one order.
type Order struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	AmountCents int64     `json:"amount_cents"`
	CreatedAt   time.Time `json:"created_at"`
}

var (
	// ErrNotFound: no order with that id.
	ErrNotFound = errors.New("order not found")
	// ErrConflict: an order with that id exists with other content.
	ErrConflict = errors.New("order id exists with different content")
)

// Store persists orders.
type Store interface {
	// Put stores o unless an order with o.ID exists. It returns the stored order and whether this call
	// created it; an existing order with other content is ErrConflict.
	Put(ctx context.Context, o Order) (Order, bool, error)
	Get(ctx context.Context, id string) (Order, error)
	// List returns up to limit orders with ids after `after`, in id order.
	List(ctx context.Context, after string, limit int) ([]Order, error)
	Count(ctx context.Context) (int64, error)
	Ping(ctx context.Context) error
	Close()
}

// QueryTimeout bounds one request's work in the database: a query stuck on a connection to a member
// that went away fails after it (and the pool drops that connection) rather than holding the request
// until the client gives up.
const QueryTimeout = 2 * time.Second

// PGStore is the PostgreSQL store; which columns it reads and writes depends on the version.
type PGStore struct {
	pool *pgxpool.Pool
	v    Version
}

// OpenPG connects to dsn.
func OpenPG(ctx context.Context, dsn string, v Version) (*PGStore, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database DSN: %w", err)
	}
	cfg.MaxConns = 16
	// A database member that restarts leaves connections to an address that no longer answers:
	// find them out quickly instead of hanging requests on them.
	cfg.HealthCheckPeriod = 2 * time.Second
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &PGStore{pool: pool, v: v}, nil
}

func (s *PGStore) nameColumn() string {
	if s.v.readsFullName() {
		return "full_name"
	}
	return "name"
}

func (s *PGStore) Put(ctx context.Context, o Order) (Order, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	var q string
	switch {
	case s.v.writesName() && s.v.writesFullName():
		q = `INSERT INTO orders (id, name, full_name, amount_cents) VALUES ($1, $2, $2, $3)
		     ON CONFLICT (id) DO NOTHING RETURNING created_at`
	case s.v.writesFullName():
		q = `INSERT INTO orders (id, full_name, amount_cents) VALUES ($1, $2, $3)
		     ON CONFLICT (id) DO NOTHING RETURNING created_at`
	default:
		q = `INSERT INTO orders (id, name, amount_cents) VALUES ($1, $2, $3)
		     ON CONFLICT (id) DO NOTHING RETURNING created_at`
	}
	err := s.pool.QueryRow(ctx, q, o.ID, o.Name, o.AmountCents).Scan(&o.CreatedAt)
	if err == nil {
		return o, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Order{}, false, err
	}
	// The id exists: a retry of the same order is answered with what is stored.
	existing, err := s.Get(ctx, o.ID)
	if err != nil {
		return Order{}, false, err
	}
	if existing.Name != o.Name || existing.AmountCents != o.AmountCents {
		return existing, false, ErrConflict
	}
	return existing, false, nil
}

func (s *PGStore) Get(ctx context.Context, id string) (Order, error) {
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	var o Order
	var name *string
	err := s.pool.QueryRow(ctx, `SELECT id, `+s.nameColumn()+`, amount_cents, created_at FROM orders WHERE id = $1`, id).
		Scan(&o.ID, &name, &o.AmountCents, &o.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, ErrNotFound
	}
	if name != nil {
		o.Name = *name
	}
	return o, err
}

func (s *PGStore) List(ctx context.Context, after string, limit int) ([]Order, error) {
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id, coalesce(`+s.nameColumn()+`, ''), amount_cents, created_at FROM orders
		WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Order, error) {
		var o Order
		err := r.Scan(&o.ID, &o.Name, &o.AmountCents, &o.CreatedAt)
		return o, err
	})
}

func (s *PGStore) Count(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&n)
	return n, err
}

func (s *PGStore) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func (s *PGStore) Close() { s.pool.Close() }
