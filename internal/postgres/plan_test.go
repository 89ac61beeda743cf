package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"storefront/internal/pgtest"
	"storefront/internal/postgres"
)

// TestUserLookupIsIndexOnly checks that the coalesced user lookup is
// answered from the covering index alone, without heap fetches once the
// table is vacuumed. A column added to the query but not to the index turns
// this red.
func TestUserLookupIsIndexOnly(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Seeding vacuums too, but a snapshot held at that moment (autovacuum
	// analyzing the fresh rows) can keep it from marking pages all-visible.
	if _, err := pool.Exec(ctx, "VACUUM users"); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "+postgres.SQLUsersByIDs, []int64{1, 17, 250, 999, 2500})
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
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "Index Only Scan using users_live_cover") || !strings.Contains(text, "Heap Fetches: 0") {
		t.Errorf("user lookup is not an index-only scan without heap fetches:\n%s", text)
	}
}
