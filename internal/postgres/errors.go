package postgres

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"storefront/internal/shop"
)

// translate turns a pgx error into a domain error. Anything that means "the
// database cannot answer right now" becomes EUNAVAILABLE (HTTP 503 with
// Retry-After); everything else is EINTERNAL and its detail is only logged.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var se *shop.Error
	if errors.As(err, &se) {
		return err
	}
	if unavailable(err) {
		return shop.Wrap(shop.EUNAVAILABLE, "database unavailable, retry later", err)
	}
	return shop.Wrap(shop.EINTERNAL, "internal error", err)
}

// unavailable reports whether err means the database cannot answer now: a
// timeout, a cancelled, refused or closed connection, a connection
// PostgreSQL would not accept, a closed pool (the server is stopping), a
// server shutting down or starting up.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		pgconn.Timeout(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, puddle.ErrClosedPool) {
		return true
	}
	// Checked before the server's error code: a connection PostgreSQL
	// refused (the database not accepting connections, dropped, a rotated
	// password) leaves the service unable to answer, whatever the code.
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch sqlStateClass(pgErr.Code) {
		case "08", // connection exception
			"53", // insufficient resources (too many connections, out of memory)
			"57": // operator intervention: query_canceled (statement timeout), admin shutdown, cannot connect now
			return true
		}
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr)
}

// retryable reports whether a read that failed with err may run once more on
// another connection: the failure happened before the server saw the query,
// or it was the connection (not the query) that broke. Reads are idempotent,
// so running one twice is harmless.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Terminated backend (57P01 admin_shutdown, 57P02 crash_shutdown) or a
		// connection failure reported by the server.
		return pgErr.Code == "57P01" || pgErr.Code == "57P02" || sqlStateClass(pgErr.Code) == "08"
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		isConnReset(err)
}

// sqlStateClass is the class of a SQLSTATE, its first two characters ("" for
// a code too short to have one, which a broken server could send).
func sqlStateClass(code string) string {
	if len(code) < 2 {
		return ""
	}
	return code[:2]
}

func isConnReset(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && !opErr.Timeout()
}
