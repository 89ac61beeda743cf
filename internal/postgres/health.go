package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	// resetInterval is the shortest time between two pool resets.
	resetInterval = 250 * time.Millisecond
	// refillWindow is how long after a reset (or the pool's creation) the
	// pool counts as refilling.
	refillWindow = 2 * time.Second
)

// acquireTimeout is how long a query may wait for a pooled connection.
// Normally AcquireTimeout: a pool with every connection busy is saturated,
// and failing fast (503) beats eating the request's deadline. While the
// pool refills after a reset or its creation, a wait is for a connection
// being opened, which on a loaded machine takes longer than that; then only
// the caller's deadline bounds it.
func (db *DB) acquireTimeout() time.Duration {
	if time.Now().UnixNano()-db.lastReset.Load() < int64(refillWindow) {
		return db.batchTimeout()
	}
	return db.cfg.AcquireTimeout
}

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
