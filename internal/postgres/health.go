package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// resetInterval is the shortest time between two pool resets.
const resetInterval = 250 * time.Millisecond

// release gives conn back to the pool after a query that ended with *err.
// A connection the query found dead (pgx closes it on any fatal error: a
// terminated backend, a restarted server, a reset or timed-out socket) is
// rarely dead alone: a restart or a mass pg_terminate_backend kills every
// connection of the pool at once, and the idle ones would each fail one
// more request before the periodic health check found them. So the whole
// pool is reset: idle connections are closed and busy ones are discarded
// when released, and the retry of the failed read runs on a fresh
// connection. Resets are spaced by resetInterval: every connection alive
// at a reset is already condemned by it.
func (db *DB) release(conn *pgxpool.Conn, err *error) {
	if *err != nil && conn.Conn().IsClosed() {
		now := time.Now().UnixNano()
		last := db.lastReset.Load()
		if now-last >= int64(resetInterval) && db.lastReset.CompareAndSwap(last, now) {
			db.pool.Reset()
			db.logger.Warn("database connection lost; reconnecting the pool", "err", *err)
		}
	}
	conn.Release()
}

// warm opens n connections before the pool is used, so that a process
// reporting ready (a rolling restart hands it all the traffic at once)
// does not make its first requests wait for connections being set up.
func warm(ctx context.Context, pool *pgxpool.Pool, n int32) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	return nil
}
