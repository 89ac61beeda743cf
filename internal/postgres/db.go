// Package postgres is storefront's PostgreSQL room: the pgx connection pool,
// the queries behind each domain service, the coalescer that turns many
// concurrent point lookups into one round trip, and the embedded schema
// migrations.
//
// PostgreSQL errors never leave this package raw: they are translated into
// *shop.Error values here, so the HTTP room only deals with domain codes.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"storefront/internal/rawio"
	"storefront/internal/shop"
)

// Config is how storefront talks to PostgreSQL.
type Config struct {
	DSN string
	// MinConns is how many connections the pool keeps open; -1 (the
	// default) means MaxConns: a fixed-size pool. A pool that may grow
	// opens a connection whenever an Acquire finds none idle, which
	// happens under load while pgxpool's health check holds every idle
	// connection for a moment: the query then waits for a new PostgreSQL
	// backend, and that backend is slow for its first few hundred queries
	// (bench/README.md, "The pool").
	MinConns              int32
	MaxConns              int32
	AcquireTimeout        time.Duration // wait for a free pooled connection at most this long
	MaxConnLifetime       time.Duration
	MaxConnLifetimeJitter time.Duration // spreads reconnects so the pool does not churn all at once
	StatementTimeout      time.Duration // set once per connection as a startup parameter
	// Coalesce merges concurrent point lookups of the same shape into one
	// "= ANY($1)" query. Off, every lookup runs its own query.
	Coalesce bool
	// MaxBatch caps the ids of one coalesced query.
	MaxBatch int
	// BatchesInFlight caps how many coalesced queries of one shape run at
	// once; lookups arriving meanwhile join the next batch.
	BatchesInFlight int
	// QueriesInFlight caps the coalesced queries of all shapes together
	// (0: only BatchesInFlight per shape). While one shape's query runs,
	// the others' lookups gather into larger batches.
	QueriesInFlight int
	// BatchMode is how a coalesced user batch reaches PostgreSQL:
	// "any" (one "= ANY($1)" query) or "pipeline" (one prepared single-row
	// query per id, all sent in one pipelined round trip). Kept for
	// measurement; "any" is the faster (see bench/README.md).
	BatchMode string
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		MinConns:              -1,
		MaxConns:              16,
		AcquireTimeout:        250 * time.Millisecond,
		MaxConnLifetime:       30 * time.Minute,
		MaxConnLifetimeJitter: 5 * time.Minute,
		StatementTimeout:      500 * time.Millisecond,
		Coalesce:              true,
		MaxBatch:              128,
		BatchesInFlight:       1,
		QueriesInFlight:       1,
		BatchMode:             "any",
	}
}

// minConns resolves MinConns: -1 is MaxConns.
func (c Config) minConns() int32 {
	if c.MinConns < 0 {
		return c.MaxConns
	}
	return c.MinConns
}

// Validate reports every problem with c, one per line.
func (c Config) Validate() error {
	var errs []error
	if c.MinConns < -1 {
		errs = append(errs, errors.New("min pool connections must be >= 0 (or -1: as many as the max)"))
	}
	if c.MaxConns < 1 {
		errs = append(errs, errors.New("max pool connections must be >= 1"))
	}
	if c.MinConns >= 0 && c.MinConns > c.MaxConns {
		errs = append(errs, fmt.Errorf("min pool connections (%d) exceeds max (%d)", c.MinConns, c.MaxConns))
	}
	if c.AcquireTimeout <= 0 {
		errs = append(errs, errors.New("pool acquire timeout must be > 0"))
	}
	if c.StatementTimeout < time.Millisecond {
		// PostgreSQL counts it in whole milliseconds, and 0 switches it off.
		errs = append(errs, errors.New("statement timeout must be at least 1ms"))
	}
	if c.MaxConnLifetime <= 0 {
		errs = append(errs, errors.New("max connection lifetime must be > 0"))
	}
	if c.MaxConnLifetimeJitter < 0 {
		errs = append(errs, errors.New("max connection lifetime jitter must be >= 0"))
	}
	if c.MaxBatch < 1 || c.MaxBatch > 10000 {
		errs = append(errs, errors.New("max batch must be between 1 and 10000"))
	}
	if c.BatchMode != "any" && c.BatchMode != "pipeline" {
		errs = append(errs, fmt.Errorf("batch mode must be any or pipeline, not %q", c.BatchMode))
	}
	if c.BatchesInFlight < 1 {
		errs = append(errs, errors.New("batches in flight must be >= 1"))
	}
	if c.QueriesInFlight < 0 {
		errs = append(errs, errors.New("coalesced queries in flight must be >= 0"))
	}
	return errors.Join(errs...)
}

// DB is an open connection pool plus the services built on it.
type DB struct {
	pool   *pgxpool.Pool
	cfg    Config
	logger *slog.Logger

	users     *Coalescer[int64, shop.User]
	products  *Coalescer[int64, shop.Product]
	inventory *Coalescer[int64, shop.Stock]
	stockRows sync.Pool // *[]stockRow: one batch's rows, reused (inventory.go)

	lastReset atomic.Int64 // UnixNano of the last pool reset (health.go)
}

// Open creates the pool, waits until one connection works and returns the
// DB. It fails with an EUNAVAILABLE error when PostgreSQL cannot be reached.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, shop.Errorf(shop.EINVALID, "invalid database DSN: %v", err)
	}
	pc.MinConns = cfg.minConns()
	pc.MaxConns = cfg.MaxConns
	pc.MaxConnLifetime = cfg.MaxConnLifetime
	pc.MaxConnLifetimeJitter = cfg.MaxConnLifetimeJitter
	pc.MaxConnIdleTime = 5 * time.Minute
	// The health check takes every idle connection and gives them back,
	// which reorders the idle stack: the next query may run on a backend
	// that has not served this workload yet and is slow for its first few
	// hundred queries (at 28,000 lookups/s, bursts of 30-45 statements of
	// 2-15 ms). Dead connections are found by the queries themselves
	// (see release), so once a minute is enough for lifetimes and MinConns.
	pc.HealthCheckPeriod = time.Minute
	// statement_timeout travels in the startup packet: it costs no round trip
	// per request (the article sent "SET statement_timeout" every time).
	pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = "storefront"
	}
	// Every prepared lookup runs its generic plan. Left to choose, a backend
	// plans a "= ANY($1)" statement afresh on every execution as long as the
	// batches it has seen were small (its custom plans then look cheaper
	// than the generic one), and settles on the generic plan only once
	// large batches have raised that average. Measured on the 1M-user data
	// set (bench/README.md, "Generic plans"): a query of 5 ids cost 45-50
	// µs of backend CPU instead of 67-72 (users) and 65-68 instead of
	// 185-205 (stock), and a server at 3,000 users req/s spent 69-71 µs of
	// PostgreSQL CPU per request instead of 92-101. The generic plans have
	// the custom ones' index-only shape there. A plan_cache_mode given in
	// the DSN's options wins.
	if !strings.Contains(pc.ConnConfig.RuntimeParams["options"], "plan_cache_mode") {
		if _, ok := pc.ConnConfig.RuntimeParams["plan_cache_mode"]; !ok {
			pc.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
		}
	}
	// Prepared statements are cached per connection (pgx's default mode,
	// stated here because the hot path depends on it).
	pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	// Reads and writes on PostgreSQL's socket are raw system calls (see
	// package rawio): on the hot path every query makes both.
	dial := pc.ConnConfig.DialFunc
	pc.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return rawio.Wrap(c), nil
	}
	if pc.ConnConfig.ConnectTimeout == 0 || pc.ConnConfig.ConnectTimeout > 5*time.Second {
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
	}

	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, shop.Wrap(shop.EINVALID, "invalid database configuration", err)
	}
	db := &DB{pool: pool, cfg: cfg, logger: logger}
	db.stockRows.New = func() any { return new([]stockRow) }
	fetchUsers := db.fetchUsers
	if cfg.BatchMode == "pipeline" {
		fetchUsers = db.fetchUsersPipelined
	}
	var gate *Gate
	if cfg.QueriesInFlight > 0 {
		gate = NewGate(cfg.QueriesInFlight)
	}
	db.users = NewCoalescer(cfg.MaxBatch, cfg.BatchesInFlight, db.batchTimeout(), fetchUsers).
		WithNotFound(errUserNotFound).WithGate(gate)
	db.products = NewCoalescer(cfg.MaxBatch, cfg.BatchesInFlight, db.batchTimeout(), db.fetchProducts).
		WithNotFound(errProductNotFound).WithGate(gate)
	db.inventory = NewCoalescer(cfg.MaxBatch, cfg.BatchesInFlight, db.batchTimeout(), db.fetchStock).
		WithNotFound(errProductNotFound).WithGate(gate)

	pingCtx, cancel := context.WithTimeout(ctx, pc.ConnConfig.ConnectTimeout+time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, shop.Wrap(shop.EUNAVAILABLE, "database unreachable", err)
	}
	if err := warm(pingCtx, pool, cfg.minConns()); err != nil {
		pool.Close()
		return nil, shop.Wrap(shop.EUNAVAILABLE, "database unreachable", err)
	}
	db.lastReset.Store(time.Now().UnixNano()) // the pool fills up under the first load
	return db, nil
}

// Close closes every pooled connection. In-flight queries finish first.
func (db *DB) Close() { db.pool.Close() }

// CloseWithin is Close bounded by d: it reports false when the
// connections were still closing after d, and leaves them to finish in the
// background. A connection whose query was cancelled is closed only once
// its cancel request has reached the server, which pgx waits up to 15
// seconds for: a server that has stopped answering would hold the caller
// that long.
func (db *DB) CloseWithin(d time.Duration) bool {
	closed := make(chan struct{})
	go func() {
		db.pool.Close()
		close(closed)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-closed:
		return true
	case <-t.C:
		return false
	}
}

// Pool exposes the pool for migrations, seeding and metrics.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Ping reports whether a query round trip works within ctx.
func (db *DB) Ping(ctx context.Context) error {
	ctx, cancel := db.withAcquireDeadline(ctx)
	defer cancel()
	if err := db.pool.Ping(ctx); err != nil {
		return translate(err)
	}
	return nil
}

// withAcquireDeadline bounds a lookup: acquiring a connection and running
// the statement together never take longer than AcquireTimeout plus the
// statement timeout, whatever deadline the caller brought.
func (db *DB) withAcquireDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, db.batchTimeout())
}

// goLookup is the uncoalesced asynchronous lookup: the synchronous one on
// a goroutine of its own, under a context that ends at deadline (zero:
// none), its answer handed to r.
func goLookup[V any](deadline time.Time, r shop.Reply[V], lookup func(context.Context) (V, error)) {
	go func() {
		ctx := context.Background()
		if !deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		r.Reply(lookup(ctx))
	}()
}

// batchTimeout bounds one query including the wait for a connection; the
// small margin lets PostgreSQL's own statement timeout fire first.
func (db *DB) batchTimeout() time.Duration {
	return db.cfg.AcquireTimeout + db.cfg.StatementTimeout + 50*time.Millisecond
}

// Compile-time checks that DB implements the domain services.
var (
	_ shop.UserService      = (*DB)(nil)
	_ shop.ProductService   = (*DB)(nil)
	_ shop.InventoryService = (*DB)(nil)
	_ shop.HealthChecker    = (*DB)(nil)
)

// OpenMaintenance opens a small pool for schema migrations and bulk loads:
// no statement timeout (a COPY of a million rows takes seconds), a few
// connections, closed by the caller when the work is done.
func OpenMaintenance(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, shop.Errorf(shop.EINVALID, "invalid database DSN: %v", err)
	}
	pc.MaxConns = 4
	pc.MinConns = 0
	pc.ConnConfig.RuntimeParams["statement_timeout"] = "0"
	pc.ConnConfig.RuntimeParams["application_name"] = "storefront-maintenance"
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, shop.Wrap(shop.EINVALID, "invalid database configuration", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, shop.Wrap(shop.EUNAVAILABLE, "database unreachable", err)
	}
	return pool, nil
}
