// Command seeddata loads the benchmark data set into the private PostgreSQL
// under --data-dir, as "storefront seed" does, but on connections without a
// statement_timeout: "storefront seed" opens its pool with the API's
// timeout (500 ms by default), which a COPY of a million users exceeds.
// bench/lib.sh uses it only when "storefront seed" fails.
//
//	seeddata --data-dir bench/results/data --users 1000000 --products 100000
//
// Like "storefront seed" it is idempotent: rows that exist are kept, missing
// ones are added, and a complete data set costs a few count queries.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"storefront/internal/pgembed"
	"storefront/internal/postgres"
	"storefront/internal/seed"
)

// database is the name storefront serve uses inside its private PostgreSQL.
const database = "storefront"

func main() {
	dataDir := flag.String("data-dir", "", "storefront's --data-dir (required)")
	cfg := seed.Config{Users: 1_000_000, Products: 100_000, Warehouses: 3, Seed: 1}
	flag.IntVar(&cfg.Users, "users", cfg.Users, "users (ids 1..N)")
	flag.IntVar(&cfg.Products, "products", cfg.Products, "products (ids 1..N)")
	flag.IntVar(&cfg.Warehouses, "warehouses", cfg.Warehouses, "warehouses")
	flag.Int64Var(&cfg.Seed, "seed", cfg.Seed, "random seed, as storefront seed --seed")
	quiet := flag.Bool("quiet", false, "no progress")
	flag.Parse()
	if *dataDir == "" {
		flag.Usage()
		os.Exit(2)
	}
	if !*quiet {
		cfg.Progress = seed.ProgressPrinter(os.Stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dataDir, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "seeddata:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dataDir string, cfg seed.Config) (err error) {
	pg, err := pgembed.Start(ctx, pgembed.Config{DataDir: dataDir})
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if serr := pg.Stop(stopCtx); err == nil {
			err = serr
		}
	}()
	if err := ensureDatabase(ctx, pg); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, pg.DSN(database))
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		return err
	}
	st, err := seed.Run(ctx, pool, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("seeded in %s: %d users, %d products, %d warehouses, %d inventory rows inserted\n",
		st.Elapsed.Round(time.Millisecond), st.Users, st.Products, st.Warehouses, st.Inventory)
	return nil
}

func ensureDatabase(ctx context.Context, pg *pgembed.Server) error {
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, database).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	return pg.CreateDatabase(ctx, database, "")
}
