package orders

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
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

// A request's work in the database has two bounds, kept apart so that the app recovers by itself
// when the database comes back after a stall under load:
//
//   - AcquireTimeout: how long a request waits for a pooled connection (a new one included: dial
//     and authentication). Past it the request fails at once (503, ErrBusy) instead of queueing: the
//     queue of waiters stays four seconds deep whatever the rate (and API requests beyond 256 in
//     flight are shed), and no request reaches the database with its time already spent. One and
//     then two seconds were too short on a saturated two-core host: sound rollouts and switches
//     answered 503 "database busy" while pods started and the database was starved of CPU.
//   - QueryTimeout: how long one statement may run, enforced by the server (statement_timeout), which
//     cancels the statement and keeps the connection. A client-side deadline also bounds it
//     (QueryTimeout + QueryGrace, from the statement's start) for a server that stops answering
//     altogether; that deadline closes the connection.
//
// With a single deadline from the request's start (as before), a stall of a dozen seconds under 200
// req/s left a queue of ~400 waiters whose budgets were spent before they got a connection: each
// statement started with milliseconds left, its deadline closed the connection, the pool dialled and
// authenticated again, and the app answered 503 to every request for as long as the load went on,
// with the database idle and healthy (the goroutine profile: ~400 requests in pgxpool Acquire, the
// database's backends all "idle, ClientRead" and a few seconds old).
const (
	AcquireTimeout = 4 * time.Second
	QueryTimeout   = 2 * time.Second
	QueryGrace     = time.Second
)

// ErrNotReplicated: the commit returned, but PostgreSQL said its wait for a synchronous standby was
// cancelled (statement_timeout): the order is committed on the primary alone and would be lost by a
// failover. It is not acknowledged (503), and not retried either: a retry would find the id stored
// and answer it as if it were safe.
var ErrNotReplicated = errors.New("written on the primary only: the wait for a synchronous standby was cancelled")

// syncCancelled is how PostgreSQL begins the warning it sends when a commit stops waiting for a
// synchronous standby (src/backend/replication/syncrep.c).
const syncCancelled = "canceling wait for synchronous replication"

// ErrBusy: no database connection became free within AcquireTimeout.
var ErrBusy = errors.New("database busy: no connection free within " + AcquireTimeout.String())

// PGStore is the PostgreSQL store; which columns it reads and writes depends on the version.
type PGStore struct {
	pool *pgxpool.Pool
	v    Version

	// What a "database busy" was made of, for the log: requests waiting for a connection and the
	// statements holding them (since when).
	waiting  atomic.Int64
	mu       sync.Mutex
	held     map[uint64]time.Time
	nextHeld uint64
	lastBusy atomic.Int64 // unix nanoseconds of the last busy line logged

	min    int32       // connections opened at start
	filled atomic.Bool // the pool has held min connections once: the pod may take traffic

	// unreplicated: connections on which PostgreSQL warned that a commit stopped waiting for its
	// synchronous standby; Put takes the mark off the connection it used.
	unreplicated sync.Map // *pgconn.PgConn -> struct{}
}

// OpenPG connects to dsn.
func OpenPG(ctx context.Context, dsn string, v Version) (*PGStore, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database DSN: %w", err)
	}
	// Eight, all opened at start and kept. Eight at most: at 50-200 req/s a pod has one or two
	// statements in flight; more connections do not make a stalled database answer sooner, and the
	// app's pods of a rollout or a blue-green (nine at most: 16 each was 144) stay under
	// PostgreSQL's max_connections (100). All at start: a request that finds no idle connection
	// while the pool may grow dials one and waits for *that* dial (pgxpool/puddle), even when other
	// connections come back idle a millisecond later; on a loaded two-core host a dial (address,
	// TCP, a forked backend, SCRAM) took over 4 s while green's pods started beside the database,
	// and requests failed "database busy" with 5 of 8 connections idle (the busy log below).
	cfg.MaxConns = 8
	cfg.MinConns = cfg.MaxConns
	// A database member that restarts leaves connections to an address that no longer answers:
	// find them out quickly instead of hanging requests on them.
	cfg.HealthCheckPeriod = 2 * time.Second
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(QueryTimeout.Milliseconds(), 10)
	// statement_timeout does not reach a commit's wait for a synchronous standby (PostgreSQL ends the
	// statement's timer before the commit). Past the client's deadline a cancel request ends that
	// wait too: PostgreSQL then answers the commit with a warning (OnNotice below: not acknowledged)
	// and the connection stays usable. A closed connection instead would leave its backend waiting,
	// its slot taken, until a standby came back: with every write timing out, the pods' redials
	// would fill max_connections and refuse the reads too. A server that answers nothing at all is
	// left a second more before the connection is closed.
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: time.Second}
	}
	s := &PGStore{v: v, held: map[uint64]time.Time{}, min: cfg.MinConns}
	cfg.ConnConfig.OnNotice = func(c *pgconn.PgConn, n *pgconn.Notice) {
		if strings.HasPrefix(n.Message, syncCancelled) {
			s.unreplicated.Store(c, struct{}{})
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.pool = pool
	return s, nil
}

// with runs f on a pooled connection, within the bounds above, and again while it fails in a way a
// change of primary makes and the request has time left (RetryFor): a primary fenced read-only or
// shutting down, a connection it ended, a member not taking connections yet. Every statement of the
// app may run twice: reads, and writes that are idempotent by the order's id (an order that did
// land is answered as stored, once a synchronous standby has it too).
func (s *PGStore) with(ctx context.Context, f func(ctx context.Context, c *pgxpool.Conn) error) error {
	deadline := time.Now().Add(RetryFor)
	for {
		err := s.withOnce(ctx, f)
		if err == nil || !retryable(err) || time.Now().Add(retryPause).After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(retryPause):
		}
	}
}

// RetryFor bounds how long a request retries across a change of primary (a switchover fences the
// primary for about a second); retryPause is the pause between tries.
const (
	RetryFor   = 4 * time.Second
	retryPause = 100 * time.Millisecond
)

// retryable: the statement failed because the primary was changing (fenced read-only, shutting
// down, not taking connections yet) or its connection was gone before an answer — never a statement
// that ran out of time, a busy pool, or a commit a synchronous standby did not confirm.
func retryable(err error) bool {
	if err == nil || errors.Is(err, ErrNotReplicated) || errors.Is(err, ErrBusy) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "25006", // read_only_sql_transaction: a fenced primary, or a replica not promoted yet
			"57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection exceptions
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return false
	}
	// A connection that was refused, reset or closed under the statement.
	return pgconn.SafeToRetry(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "conn closed")
}

// withOnce runs f once on a pooled connection.
func (s *PGStore) withOnce(ctx context.Context, f func(ctx context.Context, c *pgxpool.Conn) error) error {
	actx, cancel := context.WithTimeout(ctx, AcquireTimeout)
	s.waiting.Add(1)
	c, err := s.pool.Acquire(actx)
	s.waiting.Add(-1)
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			s.logBusy()
			return ErrBusy
		}
		return err
	}
	defer c.Release()
	s.mu.Lock()
	s.nextHeld++
	id := s.nextHeld
	s.held[id] = time.Now()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.held, id)
		s.mu.Unlock()
	}()
	// The statement is not cancelled with the request: a client that gives up (its timeout, a closed
	// connection) would make pgx break the connection off mid-statement (and send a cancel request,
	// one more connection): the pool then dials and authenticates a new one, the most CPU a request
	// can cost the database, at the moment the host is already too slow for the client. The
	// statement finishes within statement_timeout and its connection goes back to the pool.
	qctx, qcancel := context.WithTimeout(context.WithoutCancel(ctx), QueryTimeout+QueryGrace)
	defer qcancel()
	err = f(qctx, c)
	if retryable(err) {
		// Its server is not (or no longer) the primary: a connection made while the write Service
		// still led to a member that is a replica now stays there, and would refuse every write for
		// as long as the pool kept it. Closed, it goes from the pool, and the next try dials the
		// primary the Service names now.
		_ = c.Conn().Close(context.Background())
	}
	return err
}

// logBusy writes, at most once a second, what the pool looked like when a request gave up waiting:
// whether the connections were held by statements the database was slow to answer (and for how
// long), or being dialled, or whether this process was too starved to take them back.
func (s *PGStore) logBusy() {
	now := time.Now()
	last := s.lastBusy.Load()
	if now.UnixNano()-last < int64(time.Second) || !s.lastBusy.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	st := s.pool.Stat()
	s.mu.Lock()
	held := len(s.held)
	var oldest time.Duration
	for _, at := range s.held {
		oldest = max(oldest, now.Sub(at))
	}
	s.mu.Unlock()
	log.Printf("database busy: %d of %d connections acquired (%d held by a statement, the oldest for %s), %d idle, %d being dialled; %d requests waiting",
		st.AcquiredConns(), st.MaxConns(), held, oldest.Round(time.Millisecond), st.IdleConns(), st.ConstructingConns(), s.waiting.Load())
}

func (s *PGStore) nameColumn() string {
	if s.v.readsFullName() {
		return "full_name"
	}
	return "name"
}

func (s *PGStore) Put(ctx context.Context, o Order) (Order, bool, error) {
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
	var existing Order
	created := false
	err := s.with(ctx, func(ctx context.Context, c *pgxpool.Conn) error {
		s.unreplicated.Delete(c.Conn().PgConn())
		err := c.QueryRow(ctx, q, o.ID, o.Name, o.AmountCents).Scan(&o.CreatedAt)
		if _, warned := s.unreplicated.LoadAndDelete(c.Conn().PgConn()); warned {
			return ErrNotReplicated
		}
		if err == nil {
			created = true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// The id exists: a retry of the same order is answered with what is stored, once that is as
		// safe as a new write would be. The insert that stored it may have committed on the primary
		// alone (its wait for a synchronous standby cancelled). A commit waits for a standby only when
		// its transaction wrote WAL (an id alone is not enough): rewriting the row in place writes
		// WAL, so its commit waits until a standby confirms everything up to it, the stored order
		// included.
		if existing, err = s.get(ctx, c, o.ID); err != nil {
			return err
		}
		if _, err := c.Exec(ctx, "UPDATE orders SET amount_cents = amount_cents WHERE id = $1", o.ID); err != nil {
			return err
		}
		if _, warned := s.unreplicated.LoadAndDelete(c.Conn().PgConn()); warned {
			return ErrNotReplicated
		}
		return nil
	})
	switch {
	case err != nil:
		return Order{}, false, err
	case created:
		return o, true, nil
	case existing.Name != o.Name || existing.AmountCents != o.AmountCents:
		return existing, false, ErrConflict
	}
	return existing, false, nil
}

func (s *PGStore) Get(ctx context.Context, id string) (o Order, err error) {
	err = s.with(ctx, func(ctx context.Context, c *pgxpool.Conn) error {
		o, err = s.get(ctx, c, id)
		return err
	})
	return o, err
}

func (s *PGStore) get(ctx context.Context, c *pgxpool.Conn, id string) (Order, error) {
	var o Order
	var name *string
	err := c.QueryRow(ctx, `SELECT id, `+s.nameColumn()+`, amount_cents, created_at FROM orders WHERE id = $1`, id).
		Scan(&o.ID, &name, &o.AmountCents, &o.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, ErrNotFound
	}
	if name != nil {
		o.Name = *name
	}
	return o, err
}

func (s *PGStore) List(ctx context.Context, after string, limit int) (orders []Order, err error) {
	err = s.with(ctx, func(ctx context.Context, c *pgxpool.Conn) error {
		rows, err := c.Query(ctx, `SELECT id, coalesce(`+s.nameColumn()+`, ''), amount_cents, created_at FROM orders
			WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
		if err != nil {
			return err
		}
		orders, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Order, error) {
			var o Order
			err := r.Scan(&o.ID, &o.Name, &o.AmountCents, &o.CreatedAt)
			return o, err
		})
		return err
	})
	return orders, err
}

func (s *PGStore) Count(ctx context.Context) (n int64, err error) {
	err = s.with(ctx, func(ctx context.Context, c *pgxpool.Conn) error {
		return c.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&n)
	})
	return n, err
}

// Ping reports whether the database answers; until the pool has opened its connections once, it
// fails (the pod is not ready), so that no request of a pod just started waits on a dial.
func (s *PGStore) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return err
	}
	if !s.filled.Load() {
		if n := s.pool.Stat().TotalConns(); n < s.min {
			return fmt.Errorf("connection pool filling: %d of %d open", n, s.min)
		}
		s.filled.Store(true)
	}
	return nil
}

func (s *PGStore) Close() { s.pool.Close() }
