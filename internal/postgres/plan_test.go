package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"storefront/internal/pgtest"
	"storefront/internal/postgres"
)

// TestLookupsAreIndexOnly checks that the coalesced user and stock lookups
// are answered from covering indexes alone, without heap fetches once the
// tables are vacuumed. A column added to a query but not to its index, or
// a migration that drops one of these indexes, turns this red.
func TestLookupsAreIndexOnly(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Seeding vacuums too, but a snapshot held at that moment (autovacuum
	// analyzing the fresh rows) can keep it from marking pages all-visible.
	if _, err := pool.Exec(ctx, "VACUUM users, products, inventory"); err != nil {
		t.Fatal(err)
	}
	ids := []int64{1, 17, 250, 999, 2500}
	for _, tc := range []struct {
		name    string
		sql     string
		indexes []string // each must be scanned index-only
	}{
		{"users", postgres.SQLUsersByIDs, []string{"users_live_cover"}},
		{"stock", postgres.SQLStockByIDs, []string{"products_live", "inventory_pkey"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := explain(t, pool, tc.sql, ids)
			for _, index := range tc.indexes {
				if !strings.Contains(text, "Index Only Scan using "+index+" ") {
					t.Errorf("no index-only scan using %s:\n%s", index, text)
				}
			}
			if strings.Contains(text, "Heap Fetches:") && strings.Count(text, "Heap Fetches: 0") != strings.Count(text, "Heap Fetches:") {
				t.Errorf("index-only scans fetched heap rows:\n%s", text)
			}
		})
	}
}

// explain returns the EXPLAIN ANALYZE output of sql run with ids.
func explain(t *testing.T, pool *pgxpool.Pool, sql string, ids []int64) string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "+sql, ids)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}
