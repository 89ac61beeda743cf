package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"storefront/internal/httpapi"
	"storefront/internal/pgembed"
	"storefront/internal/postgres"
	"storefront/internal/seed"
)

// embeddedDatabase is the database name inside the private PostgreSQL.
const embeddedDatabase = "storefront"

// privateSpareConns is how many connections the private PostgreSQL keeps
// beyond the pool's maximum, for migrations, seeding and psql.
const privateSpareConns = 20

// Main is the serve program: tests start it exactly as production does,
// on 127.0.0.1:0 with a temporary data directory.
type Main struct {
	cfg    Config
	logger *slog.Logger

	pg      *pgembed.Server // nil when --dsn points at an external PostgreSQL
	db      *postgres.DB
	api     *httpapi.Server
	ln      net.Listener
	admin   *http.Server
	adminLn net.Listener
	// adminSwitch answers the admin listener while the program starts,
	// then hands over to the API's admin handler.
	adminSwitch httpapi.AdminSwitch
	done        chan error
}

// NewMain returns an unstarted program.
func NewMain(cfg Config, logger *slog.Logger) *Main {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Main{cfg: cfg, logger: logger, done: make(chan error, 3)}
}

// Run opens the database (starting the private one when needed), checks or
// migrates the schema, then starts the listeners. It returns once the
// public listener accepts; the pool is ready before that.
func (m *Main) Run(ctx context.Context) (err error) {
	// Bind the ports first, so that a port in use fails in a moment instead
	// of after starting (and perhaps seeding) a database. Nothing is
	// accepted until the pool is ready. With --reuseport the public port is
	// bound only when ready: in a rolling restart the kernel would otherwise
	// route new connections to this process while it is still starting.
	defer func() {
		if err != nil {
			m.closeListeners()
		}
	}()
	if !m.cfg.ReusePort {
		if m.ln, err = listen(ctx, m.cfg.Addr, false); err != nil {
			return fmt.Errorf("cannot listen on %s: %w", m.cfg.Addr, err)
		}
	}
	if m.cfg.AdminAddr != "" {
		if m.adminLn, err = listen(ctx, m.cfg.AdminAddr, false); err != nil {
			return fmt.Errorf("cannot listen on admin address %s: %w", m.cfg.AdminAddr, err)
		}
		// Served at once: /healthz is 200 and /readyz 503 while the
		// database starts, which may take minutes when it is seeded.
		m.admin = &http.Server{Handler: &m.adminSwitch, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := m.admin.Serve(m.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.done <- fmt.Errorf("admin listener: %w", err)
			}
		}()
	}

	db, pg, err := connect(ctx, m.cfg, m.logger)
	if err != nil {
		return err
	}
	m.db, m.pg = db, pg

	if m.cfg.Migrate || pg != nil {
		if err := m.prepareSchema(ctx, pg != nil); err != nil {
			return err
		}
	} else if err := postgres.CheckSchema(ctx, db.Pool()); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	metrics := httpapi.NewMetrics()
	reg.MustRegister(metrics, postgres.NewPoolCollector(db),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.api = httpapi.New(m.cfg.HTTP, httpapi.Services{Users: db, Products: db, Inventory: db, Health: db}, m.logger, metrics)
	if c := m.api.AdmissionCollector(); c != nil {
		reg.MustRegister(c)
	}

	if m.ln == nil {
		if m.ln, err = listen(ctx, m.cfg.Addr, m.cfg.ReusePort); err != nil {
			return fmt.Errorf("cannot listen on %s: %w", m.cfg.Addr, err)
		}
	}
	m.adminSwitch.Set(m.api.AdminHandler(reg))
	go func() {
		if err := m.api.Serve(m.ln); err != nil {
			m.done <- fmt.Errorf("public listener: %w", err)
		}
	}()
	if m.pg != nil {
		// A private PostgreSQL that dies is restarted; one that cannot be
		// ends the program, which then exits non-zero for its supervisor,
		// instead of answering 503 for ever.
		failed := m.pg.Supervise()
		go func() {
			if err, ok := <-failed; ok {
				m.done <- fmt.Errorf("private PostgreSQL: %w", err)
			}
		}()
	}
	m.logger.Info("storefront listening", "addr", m.ln.Addr().String(), "admin_addr", m.AdminAddr(),
		"coalesce", m.cfg.DB.Coalesce, "pool_max_conns", m.cfg.DB.MaxConns)
	m.checkOpenFilesLimit()
	return nil
}

// spareDescriptors is what the process needs beyond one descriptor per
// client connection: listeners, event loops, the pool, PostgreSQL's logs.
const spareDescriptors = 64

// checkOpenFilesLimit warns when --max-conns client connections cannot
// all be open at once under the process's open-files limit (the Go
// runtime has already raised the soft limit to the hard one).
func (m *Main) checkOpenFilesLimit() {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return
	}
	need := uint64(m.cfg.HTTP.MaxConns) + uint64(m.cfg.DB.MaxConns) + spareDescriptors
	if need > rl.Cur {
		m.logger.Warn("the open-files limit is below what --max-conns needs: connections beyond it are dropped; raise it (ulimit -n, LimitNOFILE=) or lower --max-conns",
			"max_conns", m.cfg.HTTP.MaxConns, "open_files_limit", rl.Cur, "needed", need)
	}
}

// closeListeners releases ports bound by a Run that failed.
func (m *Main) closeListeners() {
	if m.ln != nil && m.api == nil {
		_ = m.ln.Close()
	}
	if m.admin != nil && m.api == nil {
		_ = m.admin.Close() // closes adminLn
	}
}

// Addr is the public listener's address (useful with port 0).
func (m *Main) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// AdminAddr is the admin listener's address, "" when disabled.
func (m *Main) AdminAddr() string {
	if m.adminLn == nil {
		return ""
	}
	return m.adminLn.Addr().String()
}

// Done reports what failed for good on its own: a listener, or the private
// PostgreSQL when it could not be restarted.
func (m *Main) Done() <-chan error { return m.done }

// poolCloseTimeout bounds the closing of the pool after the drain: a
// database that stopped answering would otherwise hold the exit for pgx's
// 15 s per cancelled connection.
const poolCloseTimeout = 2 * time.Second

// Close drains and stops everything in order: /readyz turns 503, after
// ShutdownDelay the listener stops accepting, in-flight requests finish
// (until ctx or the drain timeout ends), the pool closes (within
// poolCloseTimeout), the private PostgreSQL stops.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	if m.api != nil {
		m.api.StartDraining()
		if d := m.cfg.ShutdownDelay; d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		drainCtx, cancel := context.WithTimeout(ctx, m.cfg.DrainTimeout)
		if err := m.api.Shutdown(drainCtx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	if m.admin != nil {
		_ = m.admin.Close()
	}
	if m.db != nil && !m.db.CloseWithin(poolCloseTimeout) {
		m.logger.Warn("database connections still closing: the database does not answer; stopping without waiting for them",
			"waited", poolCloseTimeout.String())
	}
	if m.pg != nil {
		if err := m.pg.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping private PostgreSQL: %w", err))
		}
	}
	return errors.Join(errs...)
}

// PrintWelcome tells a new user how to reach what just started.
func (m *Main) PrintWelcome(w io.Writer) {
	host, port, _ := net.SplitHostPort(m.Addr())
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	base := "http://" + net.JoinHostPort(host, port)
	fmt.Fprintf(w, "\nstorefront is ready. Try:\n  curl -i %s/users/1\n  curl -i %s/products/1\n  curl -i '%s/products?ids=1,2,3'\n  curl -i %s/inventory/1\n",
		base, base, base, base)
	if m.AdminAddr() != "" {
		fmt.Fprintf(w, "  curl -s http://%s/metrics | grep storefront_\n", m.AdminAddr())
	}
	if m.pg != nil {
		fmt.Fprintf(w, "Database: psql \"%s\"\n", m.pg.DSN(embeddedDatabase))
	}
	fmt.Fprintln(w, "Stop with Ctrl-C.")
}

// prepareSchema migrates the database and, for the private PostgreSQL,
// seeds the demo data set when it is empty. Both run on a maintenance pool
// without the serving statement timeout.
func (m *Main) prepareSchema(ctx context.Context, seedDemo bool) error {
	pool, err := postgres.OpenMaintenance(ctx, m.dbDSN())
	if err != nil {
		return err
	}
	defer pool.Close()
	applied, err := postgres.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		m.logger.Info("applied migrations", "versions", applied)
	}
	if !seedDemo {
		return nil
	}
	if m.cfg.DemoUsers == 0 && m.cfg.DemoProducts == 0 {
		return nil
	}
	// Seeding commits table by table, so a first start cut short may have
	// loaded some tables and not others. The data set is there when every
	// table it fills has rows; otherwise seed (again), which adds only what
	// is missing.
	var seeded bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM warehouses)
		AND ($1 = 0 OR EXISTS (SELECT 1 FROM users))
		AND ($2 = 0 OR (EXISTS (SELECT 1 FROM products) AND EXISTS (SELECT 1 FROM inventory)))`,
		m.cfg.DemoUsers, m.cfg.DemoProducts).Scan(&seeded); err != nil {
		return fmt.Errorf("checking for demo data: %w", err)
	}
	if seeded {
		return nil
	}
	m.logger.Info("seeding demo data (the next start completes a seeding cut short)", "users", m.cfg.DemoUsers, "products", m.cfg.DemoProducts)
	st, err := seed.Run(ctx, pool, seed.Config{Users: m.cfg.DemoUsers, Products: m.cfg.DemoProducts, Warehouses: 3, Seed: 1})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("seeding demo data interrupted; the next start seeds what is missing")
		}
		return fmt.Errorf("seeding demo data: %w", err)
	}
	m.logger.Info("demo data seeded", "elapsed", st.Elapsed.Round(time.Millisecond))
	return nil
}

// dbDSN is the DSN the program's pool uses.
func (m *Main) dbDSN() string {
	if m.pg != nil {
		return m.pg.DSN(embeddedDatabase)
	}
	return m.cfg.DSN
}

// connect opens the serving pool on cfg.DSN, or starts the private
// PostgreSQL under cfg.DataDir and opens the pool on it.
func connect(ctx context.Context, cfg Config, logger *slog.Logger) (*postgres.DB, *pgembed.Server, error) {
	dsn, pg, err := resolveDatabase(ctx, cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	dbCfg := cfg.DB
	dbCfg.DSN = dsn
	db, err := postgres.Open(ctx, dbCfg, logger)
	if err != nil {
		if pg != nil {
			_ = pg.Stop(context.Background())
		}
		return nil, nil, err
	}
	return db, pg, nil
}

// resolveDatabase returns cfg.DSN, or starts the private PostgreSQL under
// cfg.DataDir (creating its database on first start) and returns its DSN
// and the server, which the caller stops.
func resolveDatabase(ctx context.Context, cfg Config, logger *slog.Logger) (string, *pgembed.Server, error) {
	if cfg.DSN != "" {
		return cfg.DSN, nil, nil
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return "", nil, err
	}
	if ignored := clearLibpqEnv(); len(ignored) > 0 {
		logger.Info("private PostgreSQL: ignoring libpq environment variables, which are for --dsn", "vars", strings.Join(ignored, ","))
	}
	pgCfg := pgembed.Config{DataDir: dir, Logger: logger}
	// A pool larger than the private server's default connections gets
	// them, with room for migrations, seeding and a psql session.
	if need := int(cfg.DB.MaxConns) + privateSpareConns; need > pgembed.DefaultMaxConnections {
		pgCfg.Settings = map[string]string{"max_connections": strconv.Itoa(need)}
	}
	pg, err := pgembed.Start(ctx, pgCfg)
	if err != nil {
		return "", nil, err
	}
	if err := ensureDatabase(ctx, pg, embeddedDatabase); err != nil {
		_ = pg.Stop(context.Background())
		return "", nil, err
	}
	logger.Info("private PostgreSQL running", "data_dir", dir, "psql", pg.DSN(embeddedDatabase))
	logSharedMemory(ctx, pg, logger)
	return pg.DSN(embeddedDatabase), pg, nil
}

// clearLibpqEnv removes the PG* variables of libpq's environment from
// this process and returns their names. pgx reads them for every
// connection; storefront's connections to its private PostgreSQL say
// where and how to connect, and a variable meant for some other server
// could only break them (PGSERVICE naming a service file that is not
// there, PGTARGETSESSIONATTRS=standby) or change their sessions
// (PGOPTIONS).
func clearLibpqEnv() []string {
	var names []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PG") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		os.Unsetenv(name)
	}
	return names
}

// logSharedMemory says whether the private PostgreSQL's shared memory is
// on huge pages and, when it is not, how many to reserve: on small pages
// lookups cost more (bench/README.md, "Huge pages for PostgreSQL").
func logSharedMemory(ctx context.Context, pg *pgembed.Server, logger *slog.Logger) {
	sm, err := pg.SharedMemory(ctx)
	switch {
	case err != nil:
		logger.Info("cannot tell whether PostgreSQL's shared memory is on huge pages", "err", err)
	case sm.HugePages:
		logger.Info("PostgreSQL's shared memory is on huge pages", "huge_pages", true, "huge_pages_needed", sm.HugePagesNeeded)
	case sm.HugePagesNeeded > 0:
		logger.Info("PostgreSQL's shared memory is not on huge pages: lookups cost more; reserve huge pages for it (sysctl vm.nr_hugepages, free ones count) and restart",
			"huge_pages", false, "huge_pages_needed", sm.HugePagesNeeded)
	}
}

// openMaintenance opens a maintenance pool (no statement timeout) for the
// one-shot commands; the returned func closes it and stops the private
// PostgreSQL if one was started.
func openMaintenance(ctx context.Context, cfg Config, logger *slog.Logger) (*pgxpool.Pool, func(), error) {
	dsn, pg, err := resolveDatabase(ctx, cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	stop := func() {
		if pg != nil {
			_ = pg.Stop(context.Background())
		}
	}
	pool, err := postgres.OpenMaintenance(ctx, dsn)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return pool, func() { pool.Close(); stop() }, nil
}

// ensureDatabase creates name in the private cluster on first start.
func ensureDatabase(ctx context.Context, pg *pgembed.Server, name string) error {
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("connecting to private PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	return pg.CreateDatabase(ctx, name, "")
}

// listen opens a TCP listener, optionally with SO_REUSEPORT so that during
// a rolling restart old and new processes share the port.
func listen(ctx context.Context, addr string, reusePort bool) (net.Listener, error) {
	lc := net.ListenConfig{}
	if reusePort {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0x0F /* SO_REUSEPORT */, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return lc.Listen(ctx, "tcp", addr)
}
