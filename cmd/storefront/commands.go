package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"storefront/internal/postgres"
	"storefront/internal/seed"
)

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := DefaultConfig()
	fs := newServeFlagSet(&cfg)
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	m := NewMain(cfg, newLogger(cfg))
	// With JSON logs stderr is a stream of JSON lines for a log collector:
	// a fatal error is one of them, not a plain-text line after them.
	fatal := func(err error) error {
		if cfg.LogFormat != "json" || err == nil {
			return err
		}
		m.logger.Error("storefront serve failed", "err", err.Error())
		return loggedError{err}
	}
	if err := m.Run(ctx); err != nil {
		closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = m.Close(closeCtx)
		if ctx.Err() != nil {
			// Stopped by a signal while starting (seeding, say): the stop
			// was asked for, so it is not a failure.
			m.logger.Warn("stopped before serving", "why", err.Error())
			return nil
		}
		return fatal(err)
	}
	if cfg.LogFormat == "json" {
		// stderr is a stream of JSON lines for a log collector: the
		// welcome goes through the logger instead.
		m.logger.Info("storefront is ready", "api", "http://"+m.Addr(), "admin", m.AdminAddr())
	} else {
		m.PrintWelcome(stderr)
	}
	var serveErr error
	select {
	case <-ctx.Done():
		m.logger.Info("shutdown signal received, draining", "shutdown_delay", cfg.ShutdownDelay, "drain_timeout", cfg.DrainTimeout)
	case serveErr = <-m.Done():
		m.logger.Error("stopping: cannot serve", "err", serveErr)
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownDelay+cfg.DrainTimeout+30*time.Second)
	defer cancel()
	if err := m.Close(closeCtx); err != nil {
		return fatal(err)
	}
	if serveErr != nil {
		m.logger.Info("stopped, after the error above")
		if cfg.LogFormat == "json" {
			return loggedError{serveErr} // logged when it happened
		}
	} else {
		m.logger.Info("stopped cleanly")
	}
	return serveErr
}

func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("storefront migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bindDatabaseFlags(fs, &cfg)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	pool, closeDB, err := openMaintenance(ctx, cfg, newLogger(cfg))
	if err != nil {
		return err
	}
	defer closeDB()
	applied, err := postgres.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "schema is up to date (version %d)\n", postgres.LatestVersion())
	} else {
		fmt.Fprintf(stdout, "applied migrations %v; schema is at version %d\n", applied, postgres.LatestVersion())
	}
	return nil
}

func seedCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	sc := seed.Config{Users: 100_000, Products: 10_000, Warehouses: 3, Seed: 1}
	fs := flag.NewFlagSet("storefront seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bindDatabaseFlags(fs, &cfg)
	fs.IntVar(&sc.Users, "users", sc.Users, "users to generate (ids 1..N)")
	fs.IntVar(&sc.Products, "products", sc.Products, "products to generate (ids 1..N)")
	fs.IntVar(&sc.Warehouses, "warehouses", sc.Warehouses, "warehouses to generate")
	fs.Int64Var(&sc.Seed, "seed", sc.Seed, "random seed: the same seed and sizes give the same data")
	quiet := fs.Bool("quiet", false, "do not show progress")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	if sc.Warehouses == 0 {
		// The library reads 0 as its default; on the command line it
		// would be a surprise.
		return usageError{fmt.Errorf("--warehouses must be between 1 and %d", seed.MaxWarehouses)}
	}
	if err := sc.Validate(); err != nil {
		return usageError{withFlagNames(err, seedSubjects)}
	}
	if !*quiet {
		sc.Progress = seed.ProgressPrinter(stderr)
	}
	logger := newLogger(cfg)
	pool, closeDB, err := openMaintenance(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeDB()
	if cfg.DSN == "" {
		// The private database is ours: bring its schema up to date first.
		if _, err := postgres.Migrate(ctx, pool); err != nil {
			return err
		}
	} else if err := postgres.CheckSchema(ctx, pool); err != nil {
		return err
	}
	st, err := seed.Run(ctx, pool, sc)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded in %s: %d users, %d products, %d warehouses, %d inventory rows inserted\n",
		st.Elapsed.Round(time.Millisecond), st.Users, st.Products, st.Warehouses, st.Inventory)
	return nil
}

func newServeFlagSet(cfg *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("storefront serve", flag.ContinueOnError)
	bindServeFlags(fs, cfg)
	return fs
}
