package seed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"storefront/internal/pgembed"
)

// One PostgreSQL cluster serves the whole test binary; every test gets a
// fresh database cloned from a migrated template.
var (
	testServer    *pgembed.Server
	testServerErr error
	testDBSeq     atomic.Int64
)

const templateDB = "seed_template"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	ctx := context.Background()
	dir, cleanup, err := pgembed.MkdirTemp("storefront-seed-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	testServer, testServerErr = pgembed.Start(ctx, pgembed.Config{DataDir: dir, Ephemeral: true})
	if testServerErr == nil {
		defer testServer.Stop(context.WithoutCancel(ctx))
		testServerErr = createTemplate(ctx, testServer)
	}
	return m.Run()
}

// createTemplate creates the template database and applies the migrations
// in file-name order.
func createTemplate(ctx context.Context, srv *pgembed.Server) error {
	if err := srv.CreateDatabase(ctx, templateDB, ""); err != nil {
		return err
	}
	files, err := filepath.Glob("../postgres/migrations/*.sql")
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no migrations found: %v", err)
	}
	slices.Sort(files)
	conn, err := pgconn.Connect(ctx, srv.DSN(templateDB))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, f := range files {
		sql, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, string(sql)).ReadAll(); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}

// newDB returns a pool on a fresh migrated database.
func newDB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	if testServerErr != nil {
		t.Fatalf("test PostgreSQL: %v", testServerErr)
	}
	ctx := context.Background()
	name := fmt.Sprintf("seed_test_%d", testDBSeq.Add(1))
	if err := testServer.CreateDatabase(ctx, name, templateDB); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, testServer.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		if err := testServer.DropDatabase(context.Background(), name); err != nil {
			t.Error(err)
		}
	})
	return pool
}

func run(t testing.TB, pool *pgxpool.Pool, cfg Config) Stats {
	t.Helper()
	st, err := Run(context.Background(), pool, cfg)
	if err != nil {
		t.Fatalf("Run(%+v): %v", cfg, err)
	}
	return st
}

func queryInt(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// checksums returns an md5 of every table's rows in key order.
func checksums(t testing.TB, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	keys := map[string]string{
		"users":      "user_id",
		"products":   "product_id",
		"warehouses": "warehouse_id",
		"inventory":  "product_id, warehouse_id",
	}
	sums := map[string]string{}
	for table, key := range keys {
		var sum string
		q := fmt.Sprintf("SELECT coalesce(md5(string_agg(t::text, E'\\n' ORDER BY %s)), '') FROM %s t", key, table)
		if err := pool.QueryRow(context.Background(), q).Scan(&sum); err != nil {
			t.Fatal(err)
		}
		sums[table] = sum
	}
	return sums
}

var small = Config{Users: 2000, Products: 300, Seed: 42}

func TestRun(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	st := run(t, pool, small)

	inv := queryInt(t, pool, "SELECT count(*) FROM inventory")
	want := Stats{Users: 2000, Products: 300, Warehouses: 3, Inventory: inv}
	if got := (Stats{Users: st.Users, Products: st.Products, Warehouses: st.Warehouses, Inventory: st.Inventory}); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
	if st.Elapsed <= 0 {
		t.Errorf("Elapsed = %v", st.Elapsed)
	}

	checks := []struct {
		name string
		sql  string
		want int64
	}{
		{"users", "SELECT count(*) FROM users", 2000},
		{"user ids are 1..N", "SELECT count(*) FROM users WHERE user_id BETWEEN 1 AND 2000", 2000},
		{"products", "SELECT count(*) FROM products", 300},
		{"warehouses", "SELECT count(*) FROM warehouses", 3},
		{"warehouse codes", "SELECT count(*) FROM warehouses WHERE code IN ('FRA1', 'IAD1', 'SIN1')", 3},
		// Exactly one per complete block of 100 ids.
		{"deleted users", "SELECT count(*) FROM users WHERE deleted_at IS NOT NULL", 20},
		{"deleted products", "SELECT count(*) FROM products WHERE deleted_at IS NOT NULL", 3},
		{"products without stock rows", "SELECT count(*) FROM products p WHERE NOT EXISTS (SELECT 1 FROM inventory i WHERE i.product_id = p.product_id)", 0},
		{"stock of unknown products", "SELECT count(*) FROM inventory WHERE product_id NOT BETWEEN 1 AND 300", 0},
		{"bad stock levels", "SELECT count(*) FROM inventory WHERE on_hand NOT BETWEEN 0 AND 500 OR reserved NOT BETWEEN 0 AND on_hand", 0},
		{"bad emails", `SELECT count(*) FROM users WHERE email !~ '^[a-z0-9._]+@([a-z]+\.)?example\.(com|org|net)$'`, 0},
		{"bad SKUs", `SELECT count(*) FROM products WHERE sku !~ '^SKU-[0-9]{7}-[A-Z]{2}$'`, 0},
		{"bad prices", "SELECT count(*) FROM products WHERE price_cents NOT BETWEEN 99 AND 199999", 0},
		{"bad currencies", "SELECT count(*) FROM products WHERE currency NOT IN ('USD', 'EUR', 'GBP')", 0},
		{"categories", "SELECT count(DISTINCT category) FROM products", 21},
		{"last_active outside the 90 days before the epoch",
			"SELECT count(*) FROM users WHERE last_active < $1::timestamptz - interval '90 days' OR last_active >= $1", 0},
		{"created after last active", "SELECT count(*) FROM users WHERE created_at >= last_active", 0},
		{"deleted before last active", "SELECT count(*) FROM users WHERE deleted_at < last_active OR deleted_at >= $1", 0},
		{"timestamps not whole seconds", "SELECT count(*) FROM users WHERE last_active <> date_trunc('second', last_active)", 0},
	}
	epoch := time.Unix(EpochUnix, 0).UTC()
	for _, c := range checks {
		var args []any
		if strings.Contains(c.sql, "$1") {
			args = append(args, epoch)
		}
		if got := queryInt(t, pool, c.sql, args...); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}

	// Stock: each product in each warehouse with 85% probability.
	if frac := float64(inv) / (300 * 3); frac < 0.78 || frac > 0.92 {
		t.Errorf("inventory covers %.2f of product×warehouse pairs, want about 0.85", frac)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM products WHERE currency = 'USD'"); n < 200 || n > 270 {
		t.Errorf("%d of 300 products in USD, want about 80%%", n)
	}

	// Strings that need escaping in JSON are there, and valid UTF-8.
	var names []string
	rows, err := pool.Query(context.Background(), "SELECT username FROM users UNION ALL SELECT name FROM products")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		names = append(names, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, needle := range []string{`"`, `\`, "\t", "\u2028", "<", "é", "ë", "日本"} {
		if !slices.ContainsFunc(names, func(s string) bool { return strings.Contains(s, needle) }) {
			t.Errorf("no username or product name contains %q", needle)
		}
	}
	for _, s := range names {
		if !utf8.ValidString(s) {
			t.Errorf("invalid UTF-8: %q", s)
		}
	}
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	a, b, c, d := newDB(t), newDB(t), newDB(t), newDB(t)
	run(t, a, small)
	run(t, b, small)

	// Loading in two steps (the second takes the contiguous-prefix path)
	// gives the same bytes as loading at once.
	run(t, c, Config{Users: 500, Products: 100, Seed: small.Seed})
	run(t, c, small)

	other := small
	other.Seed++
	run(t, d, other)

	sa, sb, sc, sd := checksums(t, a), checksums(t, b), checksums(t, c), checksums(t, d)
	for table := range sa {
		if sa[table] != sb[table] {
			t.Errorf("%s: same seed, different data: %s vs %s", table, sa[table], sb[table])
		}
		if sa[table] != sc[table] {
			t.Errorf("%s: loaded in two steps, different data: %s vs %s", table, sa[table], sc[table])
		}
	}
	for _, table := range []string{"users", "products", "inventory"} {
		if sa[table] == sd[table] {
			t.Errorf("%s: seeds %d and %d give the same data", table, small.Seed, other.Seed)
		}
	}
}

func TestIdempotent(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	run(t, pool, small)
	want := checksums(t, pool)

	st := run(t, pool, small)
	if st.Rows() != 0 {
		t.Errorf("second run inserted %+v, want nothing", st)
	}
	if got := checksums(t, pool); !maps.Equal(got, want) {
		t.Errorf("second run changed data")
	}

	// Holes are filled through the staging table, and only the holes.
	ctx := context.Background()
	for _, sql := range []string{
		"DELETE FROM users WHERE user_id IN (5, 1500)",
		"DELETE FROM products WHERE product_id = 7",
		"DELETE FROM inventory WHERE product_id IN (7, 8)",
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	st = run(t, pool, small)
	if st.Users != 2 || st.Products != 1 || st.Warehouses != 0 || st.Inventory < 2 || st.Inventory > 6 {
		t.Errorf("refill inserted %+v, want 2 users, 1 product, 2..6 inventory rows", st)
	}
	if got := checksums(t, pool); !maps.Equal(got, want) {
		t.Errorf("refilled data differs from the original")
	}
}

// A unique SKU taken by a row the seeder did not write sends the fast path
// back through the staging table, which skips the conflicting row.
func TestConflictingSKU(t *testing.T) {
	t.Parallel()
	ref := newDB(t)
	run(t, ref, Config{Products: 10, Seed: small.Seed})
	var sku string
	if err := ref.QueryRow(context.Background(), "SELECT sku FROM products WHERE product_id = 2").Scan(&sku); err != nil {
		t.Fatal(err)
	}

	pool := newDB(t)
	_, err := pool.Exec(context.Background(),
		"INSERT INTO products (product_id, sku, name, price_cents, currency, category) VALUES (1, $1, 'hand-made', 100, 'USD', 'Misc')", sku)
	if err != nil {
		t.Fatal(err)
	}
	st := run(t, pool, Config{Products: 10, Seed: small.Seed})
	if st.Products != 8 {
		t.Errorf("inserted %d products, want 8 (1 existed, 1 SKU taken)", st.Products)
	}
}

func TestProgress(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	var (
		mu      sync.Mutex
		busy    bool
		reports []Progress
	)
	cfg := small
	cfg.Progress = func(p Progress) {
		mu.Lock()
		if busy {
			t.Error("Progress called concurrently")
		}
		busy = true
		reports = append(reports, p)
		busy = false
		mu.Unlock()
	}
	st := run(t, pool, cfg)

	final := map[string]Progress{}
	for _, p := range reports {
		if prev, ok := final[p.Table]; ok && (p.Done < prev.Done || p.Elapsed < prev.Elapsed) {
			t.Errorf("%s went backwards: %+v after %+v", p.Table, p, prev)
		}
		final[p.Table] = p
	}
	want := map[string]int64{"users": st.Users, "products": st.Products, "inventory": st.Inventory}
	for table, n := range want {
		if p := final[table]; p.Done != n || p.Total != n {
			t.Errorf("last %s report %+v, want Done = Total = %d", table, p, n)
		}
	}
}

// A cancelled run leaves no partial table behind (each COPY is one
// statement), and the next run completes the data.
func TestCanceled(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 400k users twice")
	}
	t.Parallel()
	pool := newDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const users = 400_000 // big enough to be mid-COPY at the first report
	cfg := Config{Users: users, Products: 300, Seed: small.Seed}
	cfg.Progress = func(p Progress) {
		if p.Table == "users" && p.Done > 0 && p.Done < p.Total {
			cancel()
		}
	}
	_, err := Run(ctx, pool, cfg)
	if err == nil {
		t.Skip("users were loaded before the first progress report could cancel")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Run returned %v, want context.Canceled", err)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM users"); n != 0 {
		t.Errorf("%d users left by a cancelled run", n)
	}
	cfg.Progress = nil
	st := run(t, pool, cfg)
	if st.Users != users {
		t.Errorf("run after cancel inserted %d users, want %d", st.Users, users)
	}
}

func TestProgressPrinter(t *testing.T) {
	var buf bytes.Buffer
	pr := ProgressPrinter(&buf)
	pr(Progress{Table: "users", Done: 0, Total: 1000})
	pr(Progress{Table: "products", Done: 0, Total: 10})
	pr(Progress{Table: "users", Done: 500, Total: 1000}) // within a second: dropped
	pr(Progress{Table: "products", Done: 10, Total: 10})
	pr(Progress{Table: "users", Done: 1000, Total: 1000, Elapsed: 1500 * time.Millisecond})
	pr(Progress{Table: "users", Done: 1000, Total: 1000, Elapsed: 1600 * time.Millisecond}) // already ended
	want := "seed: users 0/1,000 (0%) 0.0s\n" +
		"seed: users 1,000/1,000 products 10/10 1.5s\n"
	if got := buf.String(); got != want {
		t.Errorf("printed\n%s\nwant\n%s", got, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{Config{}, ""},
		{Config{Users: 1_000_000, Products: 100_000, Warehouses: 1000}, ""},
		{Config{Users: -1}, "users must not be negative"},
		{Config{Products: -5}, "products must not be negative"},
		{Config{Users: MaxRows + 1}, "users must be at most 100000000"},
		{Config{Products: 200_000_000}, "products must be at most"},
		{Config{Warehouses: -1}, "warehouses must be between 1 and 1000"},
		{Config{Warehouses: 1001}, "warehouses must be between 1 and 1000"},
		{Config{Products: 2_000_000, Warehouses: 1000}, "products × warehouses must be at most"},
		{Config{Users: -1, Warehouses: 5000}, "warehouses must be between"}, // all problems reported
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", tt.cfg, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Validate(%+v) = %v, want error containing %q", tt.cfg, err, tt.want)
		}
	}
	if _, err := Run(context.Background(), nil, Config{Users: -1}); err == nil {
		t.Error("Run accepted an invalid Config")
	}
}

func TestVocabASCII(t *testing.T) {
	v := newVocab()
	for _, n := range slices.Concat(v.first, v.last) {
		if n.ascii == "" || strings.Trim(n.ascii, "abcdefghijklmnopqrstuvwxyz") != "" {
			t.Errorf("%q folds to %q, want lower-case ASCII letters", n.lower, n.ascii)
		}
	}
}

// A row depends only on the seed, the table and its id: generating it alone
// or after others gives the same bytes.
func TestRowsIndependentOfOrder(t *testing.T) {
	v := newVocab()
	gens := map[string]func() rowGen{
		"users":     func() rowGen { return newUserGen(v, 7) },
		"products":  func() rowGen { return newProductGen(v, 7) },
		"inventory": func() rowGen { return newInventoryGen(7, 5) },
	}
	for name, newGen := range gens {
		forward, backward := map[int64]string{}, map[int64]string{}
		g := newGen()
		for id := int64(1); id <= 300; id++ {
			b, _ := g.appendRows(nil, id)
			forward[id] = string(b)
		}
		g = newGen()
		for id := int64(300); id >= 1; id-- {
			b, _ := g.appendRows(nil, id)
			backward[id] = string(b)
		}
		if !maps.Equal(forward, backward) {
			t.Errorf("%s: rows depend on generation order", name)
		}
	}
}

// Generation alone, without a database: rows per second and allocations.
func BenchmarkUserRows(b *testing.B) {
	benchmarkRows(b, newUserGen(newVocab(), 1))
}

func BenchmarkProductRows(b *testing.B) {
	benchmarkRows(b, newProductGen(newVocab(), 1))
}

func BenchmarkInventoryRows(b *testing.B) {
	benchmarkRows(b, newInventoryGen(1, 3))
}

func benchmarkRows(b *testing.B, g rowGen) {
	buf := make([]byte, 0, 1<<16)
	var bytes int64
	b.ReportAllocs()
	id := int64(0)
	for b.Loop() {
		id++
		var n int
		buf, n = g.appendRows(buf[:0], id)
		bytes += int64(len(buf))
		_ = n
	}
	b.SetBytes(bytes / max(int64(b.N), 1))
}

// BenchmarkRun loads the full-size data set (1M users, 100k products, 3
// warehouses) into a fresh database per iteration:
//
//	go test ./internal/seed -run '^$' -bench Run -benchtime 1x
func BenchmarkRun(b *testing.B) {
	cfg := Config{Users: 1_000_000, Products: 100_000, Seed: 1}
	for b.Loop() {
		b.StopTimer()
		pool := newDB(b)
		b.StartTimer()
		st, err := Run(context.Background(), pool, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Rows())/st.Elapsed.Seconds(), "rows/s")
	}
}
