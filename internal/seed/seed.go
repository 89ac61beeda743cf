// Package seed fills storefront's schema with deterministic, realistic data:
// users, products, warehouses and inventory, loaded with PostgreSQL's binary
// COPY protocol.
//
// The same Config (seed and sizes) always produces byte-identical rows: every
// row is generated from its own random stream derived from (seed, table, id),
// so the result depends neither on goroutine scheduling nor on the order in
// which rows are loaded. Timestamps are relative to a fixed epoch, never to
// the wall clock.
//
// Run is idempotent: ids are 1..N, rows that already exist are left alone, and
// a second run with the same Config inserts nothing.
package seed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Limits enforced by Validate.
const (
	// DefaultWarehouses is used when Config.Warehouses is zero.
	DefaultWarehouses = 3
	// MaxRows bounds Users and Products.
	MaxRows = 100_000_000
	// MaxWarehouses bounds Warehouses.
	MaxWarehouses = 1000
	// MaxInventoryPairs bounds Products × Warehouses, the upper bound of
	// inventory rows.
	MaxInventoryPairs = 1_000_000_000
)

// EpochUnix is the instant, in Unix seconds, that every generated timestamp
// is relative to (2026-01-01T00:00:00Z): users were last active in the 90
// days before it, products updated in the 180 days before it, and so on.
const EpochUnix int64 = 1767225600

// Config says how much data to generate and from which seed.
type Config struct {
	Users      int            // number of users, ids 1..Users
	Products   int            // number of products, ids 1..Products
	Warehouses int            // number of warehouses, ids 1..Warehouses; 0 means DefaultWarehouses
	Seed       int64          // random seed; the same Config always gives byte-identical data
	Progress   func(Progress) // optional; called at most twice a second per table, never concurrently
}

// Progress reports how far the load of one table has come.
type Progress struct {
	Table       string        // "users", "products" or "inventory"
	Done, Total int64         // rows generated and sent so far, rows to send in all
	Elapsed     time.Duration // since Run started
}

// Stats counts the rows Run inserted; rows that already existed are not
// counted, so a repeated run reports zeros.
type Stats struct {
	Users, Products, Warehouses, Inventory int64
	Elapsed                                time.Duration
}

// Rows is the total number of rows inserted.
func (s Stats) Rows() int64 { return s.Users + s.Products + s.Warehouses + s.Inventory }

func (c Config) withDefaults() Config {
	if c.Warehouses == 0 {
		c.Warehouses = DefaultWarehouses
	}
	return c
}

// Validate reports every problem with c at once. Zero Warehouses is valid and
// means DefaultWarehouses.
func (c Config) Validate() error {
	var errs []error
	check := func(name string, n int) {
		switch {
		case n < 0:
			errs = append(errs, fmt.Errorf("%s must not be negative (got %d)", name, n))
		case n > MaxRows:
			errs = append(errs, fmt.Errorf("%s must be at most %d (got %d)", name, MaxRows, n))
		}
	}
	check("users", c.Users)
	check("products", c.Products)
	w := c.withDefaults().Warehouses
	if w < 1 || w > MaxWarehouses {
		errs = append(errs, fmt.Errorf("warehouses must be between 1 and %d (got %d)", MaxWarehouses, c.Warehouses))
	} else if c.Products > 0 && c.Products <= MaxRows && int64(c.Products)*int64(w) > MaxInventoryPairs {
		errs = append(errs, fmt.Errorf("products × warehouses must be at most %d (got %d × %d)", MaxInventoryPairs, c.Products, w))
	}
	return errors.Join(errs...)
}

// Run generates the data described by cfg and loads it through pool into a
// database that has storefront's schema. Warehouses go first because
// inventory references them; users, products and inventory then load side by
// side on two connections of pool. Tables that received rows are vacuumed
// and analyzed at the end. On error the returned Stats count the rows
// committed before it; running again completes the data.
func Run(ctx context.Context, pool *pgxpool.Pool, cfg Config) (Stats, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	l := &loader{pool: pool, cfg: cfg, start: time.Now(), vocab: newVocab()}
	return l.run(ctx)
}
