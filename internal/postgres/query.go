package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// query acquires a connection within the acquire timeout, runs sql and
// hands each row to scan. The acquire wait is bounded separately from the
// statement so that a saturated pool fails fast (503) instead of eating the
// whole request deadline.
func (db *DB) query(ctx context.Context, scan func(pgx.Rows) error, sql string, args ...any) (err error) {
	conn, err := db.acquire(ctx)
	if err != nil {
		return err
	}
	defer db.release(conn, &err)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// acquire takes a pooled connection, waiting at most the acquire timeout
// (and never past ctx). Give it back with db.release.
func (db *DB) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, db.acquireTimeout())
	defer cancel()
	return db.pool.Acquire(actx)
}

// queryRetry is query with one retry on a fresh connection when the first
// attempt failed because of the connection. Used by uncoalesced reads; the
// coalescer retries whole batches itself.
func (db *DB) queryRetry(ctx context.Context, scan func(pgx.Rows) error, sql string, args ...any) error {
	err := db.query(ctx, scan, sql, args...)
	if err != nil && retryable(ctx, err) {
		err = db.query(ctx, scan, sql, args...)
	}
	return err
}
