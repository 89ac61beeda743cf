package postgres_test

import (
	"context"
	"os"
	"testing"
	"time"

	"storefront/internal/pgtest"
	"storefront/internal/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// openDB opens a DB on a fresh clone of the seeded template.
func openDB(t testing.TB, mutate func(*postgres.Config)) *postgres.DB {
	t.Helper()
	cfg := postgres.DefaultConfig()
	cfg.DSN = pgtest.NewDatabase(t)
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}
