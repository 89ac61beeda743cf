package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"storefront/internal/pgtest"
)

// firstWhere returns the smallest key of table whose row matches cond, read
// straight from a clone of the seeded database.
func firstWhere(t *testing.T, table, key, cond string) int64 {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var id int64
	if err := conn.QueryRow(context.Background(),
		"SELECT "+key+" FROM "+table+" WHERE "+cond+" ORDER BY 1 LIMIT 1").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// skuSuffix reads product 1's SKU through the API and returns its suffix.
func skuSuffix(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/products/1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct{ SKU string }
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	return p.SKU[strings.LastIndexByte(p.SKU, '-')+1:]
}
