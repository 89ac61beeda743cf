package postgres_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"storefront/internal/pgtest"
	"storefront/internal/postgres"
	"storefront/internal/shop"
)

// truthUsers reads every user straight from the database, the reference the
// service's answers are compared with.
func truthUsers(t *testing.T, pool *pgxpool.Pool) (live map[int64]shop.User, deleted []int64) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT user_id, username, email, last_active, deleted_at IS NOT NULL FROM users`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	live = map[int64]shop.User{}
	for rows.Next() {
		var u shop.User
		var del bool
		if err := rows.Scan(&u.ID, &u.Username, &u.Email, &u.LastActive, &del); err != nil {
			t.Fatal(err)
		}
		if del {
			deleted = append(deleted, u.ID)
		} else {
			live[u.ID] = u
		}
	}
	if len(deleted) == 0 {
		t.Fatal("seed data has no soft-deleted users")
	}
	return live, deleted
}

// TestConcurrentLookupsMatchDatabase fires 10,000 concurrent lookups with
// duplicates, missing ids and soft-deleted ids, coalescing on, and checks
// every answer against the database.
func TestConcurrentLookupsMatchDatabase(t *testing.T) {
	for _, mode := range []string{"any", "pipeline", "off"} {
		coalesce := mode != "off"
		t.Run("coalesce="+mode, func(t *testing.T) {
			db := openDB(t, func(c *postgres.Config) {
				c.Coalesce = coalesce
				if coalesce {
					c.BatchMode = mode
				}
				c.MaxConns = 8
				c.AcquireTimeout = 5 * time.Second
			})
			live, deleted := truthUsers(t, db.Pool())
			n := 10_000
			if !coalesce {
				n = 2_000
			}
			rng := rand.New(rand.NewPCG(1, 2))
			ids := make([]int64, n)
			for i := range ids {
				switch r := rng.IntN(10); {
				case r == 0:
					ids[i] = deleted[rng.IntN(len(deleted))]
				case r == 1:
					ids[i] = pgtest.Users + 1 + rng.Int64N(1000) // missing
				default:
					ids[i] = 1 + rng.Int64N(50) // hot, many duplicates
					if r > 5 {
						ids[i] = 1 + rng.Int64N(pgtest.Users)
					}
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for _, id := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					u, err := db.User(ctx, id)
					want, ok := live[id]
					switch {
					case !ok && shop.ErrorCode(err) != shop.ENOTFOUND:
						errs <- fmt.Errorf("user %d: want not found, got %+v, %v", id, u, err)
					case ok && err != nil:
						errs <- fmt.Errorf("user %d: %v", id, err)
					case ok && (u.ID != want.ID || u.Username != want.Username || u.Email != want.Email || !u.LastActive.Equal(want.LastActive)):
						errs <- fmt.Errorf("user %d: got %+v, want %+v", id, u, want)
					}
				}()
			}
			wg.Wait()
			close(errs)
			count := 0
			for err := range errs {
				if count < 10 {
					t.Error(err)
				}
				count++
			}
			if count > 0 {
				t.Fatalf("%d of %d lookups wrong", count, n)
			}
		})
	}
}

func TestProductsAndStock(t *testing.T) {
	db := openDB(t, nil)
	ctx := context.Background()
	var deletedID int64
	var sku string
	if err := db.Pool().QueryRow(ctx, `SELECT product_id FROM products WHERE deleted_at IS NOT NULL LIMIT 1`).Scan(&deletedID); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool().QueryRow(ctx, `SELECT sku FROM products WHERE product_id = 5`).Scan(&sku); err != nil {
		t.Fatal(err)
	}

	p, err := db.Product(ctx, 5)
	if err != nil || p.ID != 5 || p.SKU != sku {
		t.Fatalf("Product(5) = %+v, %v", p, err)
	}
	if p2, err := db.ProductBySKU(ctx, sku); err != nil || p2 != p {
		t.Fatalf("ProductBySKU(%q) = %+v, %v; want %+v", sku, p2, err, p)
	}
	if _, err := db.Product(ctx, deletedID); shop.ErrorCode(err) != shop.ENOTFOUND {
		t.Errorf("deleted product: err = %v, want not found", err)
	}
	if _, err := db.ProductBySKU(ctx, "no-such-sku"); shop.ErrorCode(err) != shop.ENOTFOUND {
		t.Errorf("unknown sku: err = %v", err)
	}

	list, err := db.Products(ctx, []int64{9, 3, 999999, deletedID, 3, 7})
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, p := range list {
		got = append(got, p.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint([]int64{9, 3, 7}) {
		t.Errorf("Products order = %v, want [9 3 7]", got)
	}

	var rows, total int64
	if err := db.Pool().QueryRow(ctx, `SELECT count(*), coalesce(sum(on_hand - reserved), 0) FROM inventory WHERE product_id = 5`).Scan(&rows, &total); err != nil {
		t.Fatal(err)
	}
	st, err := db.Stock(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(st.Warehouses)) != rows || st.Available() != total {
		t.Errorf("Stock(5): %d warehouses, %d available; want %d, %d", len(st.Warehouses), st.Available(), rows, total)
	}
	if _, err := db.Stock(ctx, deletedID); shop.ErrorCode(err) != shop.ENOTFOUND {
		t.Errorf("stock of deleted product: %v", err)
	}
	if _, err := db.Stock(ctx, 10_000_000); shop.ErrorCode(err) != shop.ENOTFOUND {
		t.Errorf("stock of unknown product: %v", err)
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewEmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := postgres.CheckSchema(ctx, pool); err == nil {
		t.Fatal("CheckSchema passed on an empty database")
	}
	applied, err := postgres.Migrate(ctx, pool)
	if err != nil || len(applied) != postgres.LatestVersion() {
		t.Fatalf("Migrate = %v, %v", applied, err)
	}
	if again, err := postgres.Migrate(ctx, pool); err != nil || len(again) != 0 {
		t.Fatalf("second Migrate = %v, %v; want nothing to do", again, err)
	}
	if err := postgres.CheckSchema(ctx, pool); err != nil {
		t.Fatalf("CheckSchema after migrate: %v", err)
	}
	// The constraints of the schema hold.
	_, err = pool.Exec(ctx, `INSERT INTO warehouses VALUES (1, 'X', 'x');
		INSERT INTO inventory (product_id, warehouse_id, on_hand, reserved) VALUES (1, 1, 5, 6)`)
	if err == nil {
		t.Error("reserved > on_hand was accepted")
	}
	// A schema newer than this build (a rollback) is refused by Migrate
	// as by CheckSchema, and left as it is.
	if _, err := pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, 'future')`, postgres.LatestVersion()+1); err != nil {
		t.Fatal(err)
	}
	for name, check := range map[string]func() error{
		"Migrate":     func() error { _, err := postgres.Migrate(ctx, pool); return err },
		"CheckSchema": func() error { return postgres.CheckSchema(ctx, pool) },
	} {
		if err := check(); err == nil || !strings.Contains(err.Error(), "newer than this build knows") {
			t.Errorf("%s on a newer schema: %v", name, err)
		}
	}
}

// TestUnavailable checks that a database that cannot answer in time is an
// EUNAVAILABLE error, not an internal one: a statement that outlives the
// statement timeout and a pool with no free connection.
func TestUnavailable(t *testing.T) {
	db := openDB(t, func(c *postgres.Config) {
		c.MaxConns, c.MinConns = 1, 0
		c.AcquireTimeout = 50 * time.Millisecond
		c.StatementTimeout = 100 * time.Millisecond
	})
	ctx := context.Background()
	if _, err := db.Pool().Exec(ctx, `SELECT pg_sleep(1)`); err == nil {
		t.Fatal("pg_sleep(1) outlived a 100 ms statement timeout")
	}
	// Hold the only connection: the lookup cannot get one.
	conn, err := db.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.User(ctx, 1)
	conn.Release()
	var se *shop.Error
	if !errors.As(err, &se) || se.Code != shop.EUNAVAILABLE {
		t.Fatalf("lookup with exhausted pool: %v, want unavailable", err)
	}
	if _, err := db.User(ctx, 1); err != nil {
		t.Fatalf("lookup after release: %v", err)
	}
}

// TestClosedPoolUnavailable: a lookup after the pool is closed (a server
// past its drain timeout) is EUNAVAILABLE, a 503 the client may retry
// elsewhere, not an internal error.
func TestClosedPoolUnavailable(t *testing.T) {
	for _, coalesce := range []bool{true, false} {
		t.Run(fmt.Sprint("coalesce=", coalesce), func(t *testing.T) {
			db := openDB(t, func(c *postgres.Config) { c.Coalesce = coalesce })
			db.Close()
			_, err := db.User(context.Background(), 1)
			var se *shop.Error
			if !errors.As(err, &se) || se.Code != shop.EUNAVAILABLE {
				t.Fatalf("lookup on a closed pool: %v, want unavailable", err)
			}
		})
	}
}

// TestTimestampsAtTheEdges: the coalesced lookups decode timestamps by hand
// (wire.go); at the ends of PostgreSQL's range, and around 1970 and 2000,
// they must give what pgx gives, as the uncoalesced lookups do.
func TestTimestampsAtTheEdges(t *testing.T) {
	ctx := context.Background()
	edges := []string{
		"294276-12-31 23:59:59.999999+00", // the latest timestamptz
		"4714-11-24 00:00:00+00 BC",       // the earliest
		"1969-12-31 23:59:59.000001+00",
		"1999-12-31 23:59:59.999999+00",
	}
	for _, coalesce := range []bool{true, false} {
		t.Run(fmt.Sprint("coalesce=", coalesce), func(t *testing.T) {
			db := openDB(t, func(c *postgres.Config) { c.Coalesce = coalesce })
			for i, ts := range edges {
				var userID, productID int64
				var want time.Time
				if err := db.Pool().QueryRow(ctx, `UPDATE users SET last_active = $1::timestamptz
					WHERE user_id = (SELECT user_id FROM users WHERE deleted_at IS NULL ORDER BY user_id OFFSET $2 LIMIT 1)
					RETURNING user_id, last_active`, ts, i).Scan(&userID, &want); err != nil {
					t.Fatal(err)
				}
				if err := db.Pool().QueryRow(ctx, `UPDATE products SET updated_at = $1::timestamptz
					WHERE product_id = (SELECT product_id FROM products WHERE deleted_at IS NULL ORDER BY product_id OFFSET $2 LIMIT 1)
					RETURNING product_id`, ts, i).Scan(&productID); err != nil {
					t.Fatal(err)
				}
				u, err := db.User(ctx, userID)
				if err != nil || u.LastActive != want {
					t.Errorf("%s: user %d last_active = %v, %v; want %v", ts, userID, u.LastActive, err, want)
				}
				p, err := db.Product(ctx, productID)
				if err != nil || p.UpdatedAt != want {
					t.Errorf("%s: product %d updated_at = %v, %v; want %v", ts, productID, p.UpdatedAt, err, want)
				}
			}
		})
	}
}

// cuttingProxy forwards TCP connections to the PostgreSQL of dsn. Once
// armed, it cuts the next connection whose server sends a data row right
// after forwarding that row, as a backend dying in the middle of a result
// would; it then forwards everything again.
type cuttingProxy struct {
	armed atomic.Bool
	dsn   string // dsn through the proxy
}

func newCuttingProxy(t *testing.T, dsn string) *cuttingProxy {
	t.Helper()
	p := &cuttingProxy{}
	p.dsn = listenProxy(t, dsn, func(client net.Conn, upstream string) {
		server, err := net.Dial("unix", upstream)
		if err != nil {
			client.Close()
			return
		}
		go func() { _, _ = io.Copy(server, client); server.Close() }()
		go p.serverToClient(server, client)
	})
	return p
}

// listenProxy listens on a loopback TCP port for the tests' proxies in
// front of the PostgreSQL of dsn, and hands each accepted connection to
// serve with the server's socket path. It returns the DSN through the
// proxy; the listener closes when the test ends.
func listenProxy(t *testing.T, dsn string, serve func(client net.Conn, upstream string)) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	upstream := fmt.Sprintf("%s/.s.PGSQL.%d", cfg.Host, cfg.Port)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			serve(client, upstream)
		}
	}()
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", ln.Addr().(*net.TCPAddr).Port, cfg.User, cfg.Database)
}

// openThrough opens an uncoalesced DB of at most two connections on dsn
// (a proxy's).
func openThrough(t *testing.T, ctx context.Context, dsn string) *postgres.DB {
	t.Helper()
	cfg := postgres.DefaultConfig()
	cfg.DSN, cfg.Coalesce, cfg.MaxConns = dsn, false, 2
	db, err := postgres.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return db
}

// serverToClient forwards the server's messages one at a time (type byte,
// length, body; sslmode=disable, so there is no unframed SSL answer).
func (p *cuttingProxy) serverToClient(server, client net.Conn) {
	defer client.Close()
	defer server.Close()
	r := bufio.NewReader(server)
	head := make([]byte, 5)
	for {
		if _, err := io.ReadFull(r, head); err != nil {
			return
		}
		msg := make([]byte, 1+binary.BigEndian.Uint32(head[1:]))
		copy(msg, head)
		if _, err := io.ReadFull(r, msg[5:]); err != nil {
			return
		}
		if _, err := client.Write(msg); err != nil {
			return
		}
		if head[0] == 'D' && p.armed.CompareAndSwap(true, false) {
			return
		}
	}
}

// TestStockRetryStartsOver: an uncoalesced stock lookup whose connection
// breaks after some of its rows arrived is retried on a fresh connection,
// and its answer holds each warehouse once, as the database has it.
func TestStockRetryStartsOver(t *testing.T) {
	proxy := newCuttingProxy(t, pgtest.NewDatabase(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db := openThrough(t, ctx, proxy.dsn)
	defer db.Close()

	var id, rows int64
	if err := db.Pool().QueryRow(ctx, `SELECT i.product_id, count(*) FROM inventory i JOIN products p USING (product_id)
		WHERE p.deleted_at IS NULL GROUP BY i.product_id HAVING count(*) > 1 ORDER BY 1 LIMIT 1`).Scan(&id, &rows); err != nil {
		t.Fatal(err)
	}
	proxy.armed.Store(true)
	st, err := db.Stock(ctx, id)
	if err != nil {
		t.Fatalf("Stock(%d): %v", id, err)
	}
	if proxy.armed.Load() {
		t.Fatal("the proxy never cut a result")
	}
	if int64(len(st.Warehouses)) != rows {
		t.Errorf("Stock(%d) after a retry: %d warehouses %+v, want %d", id, len(st.Warehouses), st.Warehouses, rows)
	}
}

// TestUnrepresentableRowFailsAlone: a row the API cannot represent (an
// infinite timestamp: the API's Unix seconds are a JSON number, which has
// no infinity) fails its own lookup, as an internal error, and no other
// lookup of its batch.
func TestUnrepresentableRowFailsAlone(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{"any", "pipeline", "off"} {
		t.Run("coalesce="+mode, func(t *testing.T) {
			db := openDB(t, func(c *postgres.Config) {
				c.Coalesce = mode != "off"
				if c.Coalesce {
					c.BatchMode = mode
				}
			})
			live, _ := truthUsers(t, db.Pool())
			var badUser, badProduct, goodProduct int64
			if err := db.Pool().QueryRow(ctx, `UPDATE users SET last_active = 'infinity'
				WHERE user_id = (SELECT min(user_id) FROM users WHERE deleted_at IS NULL) RETURNING user_id`).Scan(&badUser); err != nil {
				t.Fatal(err)
			}
			if err := db.Pool().QueryRow(ctx, `UPDATE products SET updated_at = '-infinity'
				WHERE product_id = (SELECT min(product_id) FROM products WHERE deleted_at IS NULL) RETURNING product_id`).Scan(&badProduct); err != nil {
				t.Fatal(err)
			}
			if err := db.Pool().QueryRow(ctx, `SELECT min(product_id) FROM products WHERE deleted_at IS NULL AND product_id > $1`, badProduct).Scan(&goodProduct); err != nil {
				t.Fatal(err)
			}
			var good []int64
			for id := range live {
				if id != badUser && len(good) < 200 {
					good = append(good, id)
				}
			}
			var wrong atomic.Int64
			for round := range 5 {
				var wg sync.WaitGroup
				start := make(chan struct{})
				lookup := func(f func() error) {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						if err := f(); err != nil {
							wrong.Add(1)
							t.Errorf("round %d: %v", round, err)
						}
					}()
				}
				for i, id := range good {
					lookup(func() error {
						if u, err := db.User(ctx, id); err != nil || u.ID != id {
							return fmt.Errorf("user %d: %+v, %v", id, u, err)
						}
						return nil
					})
					if i%10 == 0 {
						lookup(func() error {
							if _, err := db.User(ctx, badUser); shop.ErrorCode(err) != shop.EINTERNAL {
								return fmt.Errorf("user %d (infinite last_active): %v, want an internal error", badUser, err)
							}
							return nil
						})
						lookup(func() error {
							if _, err := db.Product(ctx, badProduct); shop.ErrorCode(err) != shop.EINTERNAL {
								return fmt.Errorf("product %d (infinite updated_at): %v, want an internal error", badProduct, err)
							}
							return nil
						})
						lookup(func() error {
							if p, err := db.Product(ctx, goodProduct); err != nil || p.ID != goodProduct {
								return fmt.Errorf("product %d: %+v, %v", goodProduct, p, err)
							}
							return nil
						})
					}
				}
				close(start)
				wg.Wait()
				if wrong.Load() > 20 {
					t.FailNow()
				}
			}
		})
	}
}

// TestCurrencyPaddingIsNotServed: currency is a char(3), which PostgreSQL
// pads with spaces that it treats as insignificant (they go when the value
// becomes text). A code shorter than three characters is served without
// them, by every product lookup.
func TestCurrencyPaddingIsNotServed(t *testing.T) {
	ctx := context.Background()
	for _, coalesce := range []bool{true, false} {
		t.Run(fmt.Sprint("coalesce=", coalesce), func(t *testing.T) {
			db := openDB(t, func(c *postgres.Config) { c.Coalesce = coalesce })
			var id int64
			var sku string
			if err := db.Pool().QueryRow(ctx, `UPDATE products SET currency = 'EU'
				WHERE product_id = (SELECT min(product_id) FROM products WHERE deleted_at IS NULL)
				RETURNING product_id, sku`).Scan(&id, &sku); err != nil {
				t.Fatal(err)
			}
			check := func(how string, p shop.Product, err error) {
				t.Helper()
				if err != nil || p.Currency != "EU" {
					t.Errorf("%s: currency %q, %v; want \"EU\"", how, p.Currency, err)
				}
			}
			p, err := db.Product(ctx, id)
			check("Product", p, err)
			p, err = db.ProductBySKU(ctx, sku)
			check("ProductBySKU", p, err)
			list, err := db.Products(ctx, []int64{id})
			if len(list) != 1 {
				t.Fatalf("Products(%d) = %+v, %v", id, list, err)
			}
			check("Products", list[0], err)
		})
	}
}

// TestHugeStockBatchIsNotPooled: a product stocked in very many warehouses
// makes one coalesced batch's rows that many; that slice, and the
// warehouse codes its rows hold, must not stay in the pool for every later
// batch. (GOMAXPROCS 1: the pool then hands back what was put in it.)
func TestHugeStockBatchIsNotPooled(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ctx := context.Background()
	db := openDB(t, nil)
	const warehouses = 20_000
	var id int64
	if err := db.Pool().QueryRow(ctx, `SELECT min(product_id) FROM products WHERE deleted_at IS NULL`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool().Exec(ctx, `INSERT INTO warehouses SELECT g, 'W' || g, 'warehouse ' || g
		FROM generate_series(1000, 999 + $1::int) g`, warehouses); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool().Exec(ctx, `INSERT INTO inventory (product_id, warehouse_id, on_hand, reserved)
		SELECT $1::bigint, g, 1, 0 FROM generate_series(1000, 999 + $2::int) g`, id, warehouses); err != nil {
		t.Fatal(err)
	}
	st, err := db.Stock(ctx, id)
	if err != nil || len(st.Warehouses) < warehouses {
		t.Fatalf("Stock(%d): %d warehouses, %v", id, len(st.Warehouses), err)
	}
	if capacity, _ := db.PooledStockRows(); capacity >= warehouses {
		t.Errorf("after a batch of %d rows the pool keeps a slice of %d", warehouses, capacity)
	}
	if _, err := db.Stock(ctx, id+1); err != nil {
		t.Fatal(err)
	}
	if _, codes := db.PooledStockRows(); codes > 0 {
		t.Errorf("a pooled slice still holds %d warehouse codes of earlier batches", codes)
	}
}
