package orders

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// What a change of primary makes is retried; what says the database is slow, busy, or did not
// confirm a commit with its standby never is.
func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"a fenced primary refuses the write", &pgconn.PgError{Code: "25006"}, true},
		{"the primary shut down the session", fmt.Errorf("q: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"a member starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"a connection exception", &pgconn.PgError{Code: "08006"}, true},
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"the connection ended under the statement", io.ErrUnexpectedEOF, true},
		{"a statement that ran out of time", &pgconn.PgError{Code: "57014"}, false},
		{"a unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"the client's deadline", context.DeadlineExceeded, false},
		{"the pool had no connection free", ErrBusy, false},
		{"a commit on the primary alone", ErrNotReplicated, false},
		{"not found", ErrNotFound, false},
		{"anything else", errors.New("boom"), false},
		{"no error at all", nil, false},
	} {
		if got := retryable(c.err); got != c.want {
			t.Errorf("%s: retryable = %t", c.name, got)
		}
	}
}
