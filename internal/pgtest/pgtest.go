// Package pgtest gives test binaries a real PostgreSQL: one private cluster
// per test binary (started with pgembed, exactly as `storefront serve`
// starts its own), a template database migrated and seeded once, and a
// fresh database cloned from it for every test.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"storefront/internal/pgembed"
	"storefront/internal/postgres"
	"storefront/internal/seed"
)

// Data set of the template database: small enough to seed in a second,
// with soft-deleted rows (about 1%) and strings that need JSON escaping.
const (
	Users      = 3000
	Products   = 600
	Warehouses = 3
	Seed       = 7
	template   = "storefront_template"
)

// Cluster is a private PostgreSQL with a migrated, seeded template.
type Cluster struct {
	Server *pgembed.Server
	dir    string
	next   atomic.Int64
}

var (
	once    sync.Once
	shared  *Cluster
	initErr error
)

// Main runs m's tests with a cluster started on first use and stopped after
// the last test. Use it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := shared.Server.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stopping PostgreSQL:", err)
		}
		os.RemoveAll(shared.dir)
	}
	return code
}

// Get returns the test binary's cluster, starting it on first use.
func Get(t testing.TB) *Cluster {
	t.Helper()
	once.Do(func() { shared, initErr = start() })
	if initErr != nil {
		t.Fatalf("pgtest: %v", initErr)
	}
	return shared
}

func start() (*Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, _, err := pgembed.MkdirTemp("storefront-test-")
	if err != nil {
		return nil, err
	}
	srv, err := pgembed.Start(ctx, pgembed.Config{
		DataDir:   filepath.Join(dir, "data"),
		Ephemeral: true,
		Settings:  map[string]string{"max_connections": "300", "shared_buffers": "128MB"},
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &Cluster{Server: srv, dir: dir}
	if err := c.buildTemplate(ctx); err != nil {
		_ = srv.Stop(context.Background())
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) buildTemplate(ctx context.Context) error {
	if err := c.Server.CreateDatabase(ctx, template, ""); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, c.Server.DSN(template))
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrating template: %w", err)
	}
	if _, err := seed.Run(ctx, pool, seed.Config{Users: Users, Products: Products, Warehouses: Warehouses, Seed: Seed}); err != nil {
		return fmt.Errorf("seeding template: %w", err)
	}
	return nil
}

// NewDatabase clones the template into a fresh database for t and returns
// its DSN. The database is dropped when t ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, "t", template)
}

// NewEmptyDatabase creates a database without schema for t.
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, "e", "")
}

func createDatabase(t testing.TB, prefix, from string) string {
	t.Helper()
	c := Get(t)
	name := fmt.Sprintf("%s%d_%d", prefix, os.Getpid(), c.next.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Server.CreateDatabase(ctx, name, from); err != nil {
		t.Fatalf("pgtest: creating database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Server.DropDatabase(ctx, name)
	})
	return c.Server.DSN(name)
}
