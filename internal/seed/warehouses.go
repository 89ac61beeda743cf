package seed

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"
)

// warehouseSites are the locations warehouses are named after, by airport
// code. Warehouse i (from 0) is at site i mod len, numbered i/len + 1:
// FRA1, IAD1, SIN1, ..., FRA2, ...
func warehouseSites() [][2]string {
	return [][2]string{
		{"FRA", "Frankfurt"}, {"IAD", "Ashburn"}, {"SIN", "Singapore"}, {"NRT", "Tokyo"},
		{"GRU", "São Paulo"}, {"SYD", "Sydney"}, {"DUB", "Dublin"}, {"ORD", "Chicago"},
		{"LHR", "London"}, {"BOM", "Mumbai"}, {"CDG", "Paris"}, {"AMS", "Amsterdam"},
		{"YYZ", "Toronto"}, {"JNB", "Johannesburg"}, {"ICN", "Seoul"}, {"MAD", "Madrid"},
		{"SEA", "Seattle"}, {"DFW", "Dallas"}, {"ARN", "Stockholm"}, {"WAW", "Warsaw"},
	}
}

// warehouses returns the codes and names of warehouses 1..n.
func warehouses(n int) (codes, names []string) {
	sites := warehouseSites()
	for i := range n {
		site, num := sites[i%len(sites)], strconv.Itoa(i/len(sites)+1)
		codes = append(codes, site[0]+num)
		names = append(names, site[1]+" "+num)
	}
	return codes, names
}

// loadWarehouses inserts the missing warehouses 1..n and checks that all of
// them exist afterwards, since inventory rows reference them.
func loadWarehouses(ctx context.Context, pool *pgxpool.Pool, n int) (int64, error) {
	codes, names := warehouses(n)
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	tag, err := pool.Exec(ctx, `
		INSERT INTO warehouses (warehouse_id, code, name)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])
		ON CONFLICT DO NOTHING`, ids, codes, names)
	if err != nil {
		return 0, fmt.Errorf("seed: warehouses: %w", err)
	}
	var have int
	err = pool.QueryRow(ctx, `SELECT count(*) FROM warehouses WHERE warehouse_id BETWEEN 1 AND $1`, n).Scan(&have)
	if err != nil {
		return 0, fmt.Errorf("seed: warehouses: %w", err)
	}
	if have != n {
		return 0, fmt.Errorf("seed: warehouses: only %d of ids 1..%d exist after loading; a warehouse code is taken by another id", have, n)
	}
	return tag.RowsAffected(), nil
}
