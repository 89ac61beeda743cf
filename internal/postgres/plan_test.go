package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"storefront/internal/pgtest"
	"storefront/internal/postgres"
	"storefront/internal/shop"
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
		// the same for the generic plan. On this small data set (3,000
		// users) the planner takes users_pkey for a generic user lookup
		// (ten rows assumed, a few heap pages); on the benchmark's 1M
		// users it takes users_live_cover, as the custom plans do here.
		genericIndexes []string
	}{
		{"users", postgres.SQLUsersByIDs, []string{"users_live_cover"}, nil},
		{"stock", postgres.SQLStockByIDs, []string{"products_live", "inventory_pkey"}, []string{"products_live", "inventory_pkey"}},
	} {
		// The custom plan (planned for these ids) and the generic one
		// (planned for any $1), which the serving pool runs.
		for _, generic := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/generic=%v", tc.name, generic), func(t *testing.T) {
				text := explain(t, pool, tc.sql, ids, generic)
				indexes := tc.indexes
				if generic {
					indexes = tc.genericIndexes
				}
				if !strings.Contains(text, "Index") || strings.Contains(text, "Seq Scan") {
					t.Errorf("not an index scan:\n%s", text)
				}
				for _, index := range indexes {
					if !strings.Contains(text, "Index Only Scan using "+index+" ") {
						t.Errorf("no index-only scan using %s:\n%s", index, text)
					}
				}
				if strings.Contains(text, "Heap Fetches:") && strings.Count(text, "Heap Fetches: 0") != strings.Count(text, "Heap Fetches:") {
					t.Errorf("index-only scans fetched heap rows:\n%s", text)
				}
				if generic != strings.Contains(text, "ANY ($1)") {
					t.Errorf("generic=%v, but the plan is not:\n%s", generic, text)
				}
			})
		}
	}
}

// explain returns the EXPLAIN ANALYZE output of sql run with ids: planned
// for ids, or with its generic plan (a prepared statement under
// plan_cache_mode = force_generic_plan, as the serving pool sets it).
func explain(t *testing.T, pool *pgxpool.Pool, sql string, ids []int64, generic bool) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	query, args := "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "+sql, []any{ids}
	if generic {
		if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "PREPARE explain_lookup(bigint[]) AS "+sql); err != nil {
			t.Fatal(err)
		}
		defer conn.Exec(ctx, "DEALLOCATE explain_lookup; RESET plan_cache_mode") //nolint:errcheck // the pool is closed at the end of the test
		// EXECUTE takes no bind parameters: the ids go in as a literal.
		literal := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ids)), ","), "[]")
		query, args = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE explain_lookup('{"+literal+"}')", nil
	}
	rows, err := conn.Query(ctx, query, args...)
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

// TestLookupsUseGenericPlans checks that the serving pool's backends run
// the coalesced lookups on their generic plans instead of planning each
// execution afresh, which PostgreSQL's default does for as long as the
// batches it has seen were small.
func TestLookupsUseGenericPlans(t *testing.T) {
	db := openDB(t, func(c *postgres.Config) { c.MaxConns, c.MinConns = 1, 1 })
	ctx := context.Background()
	for id := int64(1); id <= 12; id++ { // one-id batches, one after the other
		if _, err := db.User(ctx, id); err != nil && shop.ErrorCode(err) != shop.ENOTFOUND {
			t.Fatal(err)
		}
		if _, err := db.Stock(ctx, id); err != nil && shop.ErrorCode(err) != shop.ENOTFOUND {
			t.Fatal(err)
		}
	}
	rows, err := db.Pool().Query(ctx, `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%= ANY($1)%' AND statement NOT LIKE '%pg_prepared_statements%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var statement string
		var generic, custom int64
		if err := rows.Scan(&statement, &generic, &custom); err != nil {
			t.Fatal(err)
		}
		n++
		if custom != 0 || generic < 12 {
			t.Errorf("%d generic and %d custom plans, want only generic ones, for\n%s", generic, custom, statement)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d coalesced statements prepared on the connection, want 2 (users, stock)", n)
	}
}
