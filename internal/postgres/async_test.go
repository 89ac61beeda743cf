package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"storefront/internal/pgtest"
	"storefront/internal/postgres"
	"storefront/internal/shop"
)

// checkedReply is a shop.Reply that checks each answer with check and
// reports a second call as an error.
type checkedReply[V any] struct {
	calls atomic.Int32
	check func(V, error) error
	errs  chan<- error
	wg    *sync.WaitGroup
}

func (r *checkedReply[V]) Reply(v V, err error) {
	if n := r.calls.Add(1); n > 1 {
		r.errs <- fmt.Errorf("reply called %d times", n)
		return
	}
	if e := r.check(v, err); e != nil {
		r.errs <- e
	}
	r.wg.Done()
}

// replyFunc adapts a function to shop.Reply.
type replyFunc[V any] func(V, error)

func (f replyFunc[V]) Reply(v V, err error) { f(v, err) }

// truthProducts reads every product straight from the database, with the
// stock of the live ones.
func truthProducts(t *testing.T, pool *pgxpool.Pool) (live map[int64]shop.Product, stock map[int64]shop.Stock, deleted []int64) {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT product_id, sku, name, description, price_cents, currency, category, updated_at,
		deleted_at IS NOT NULL FROM products`)
	if err != nil {
		t.Fatal(err)
	}
	live, stock = map[int64]shop.Product{}, map[int64]shop.Stock{}
	for rows.Next() {
		var p shop.Product
		var del bool
		if err := rows.Scan(&p.ID, &p.SKU, &p.Name, &p.Description, &p.PriceCents, &p.Currency, &p.Category, &p.UpdatedAt, &del); err != nil {
			t.Fatal(err)
		}
		if del {
			deleted = append(deleted, p.ID)
		} else {
			live[p.ID] = p
			stock[p.ID] = shop.Stock{ProductID: p.ID}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(deleted) == 0 {
		t.Fatal("seed data has no soft-deleted products")
	}
	rows, err = pool.Query(ctx, `SELECT i.product_id, i.warehouse_id, w.code, i.on_hand, i.reserved
		FROM inventory i JOIN warehouses w USING (warehouse_id) ORDER BY i.product_id, i.warehouse_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var w shop.WarehouseStock
		if err := rows.Scan(&id, &w.WarehouseID, &w.Warehouse, &w.OnHand, &w.Reserved); err != nil {
			t.Fatal(err)
		}
		if s, ok := stock[id]; ok {
			s.Warehouses = append(s.Warehouses, w)
			stock[id] = s
		}
	}
	return live, stock, deleted
}

func sameUser(a, b shop.User) bool {
	return a.ID == b.ID && a.Username == b.Username && a.Email == b.Email && a.LastActive.Equal(b.LastActive)
}

func sameProduct(a, b shop.Product) bool {
	return a.ID == b.ID && a.SKU == b.SKU && a.Name == b.Name && a.Description == b.Description &&
		a.PriceCents == b.PriceCents && a.Currency == b.Currency && a.Category == b.Category && a.UpdatedAt.Equal(b.UpdatedAt)
}

func sameStock(a, b shop.Stock) bool {
	if a.ProductID != b.ProductID || len(a.Warehouses) != len(b.Warehouses) {
		return false
	}
	for i := range a.Warehouses {
		if a.Warehouses[i] != b.Warehouses[i] {
			return false
		}
	}
	return true
}

// wantAnswer checks an asynchronous answer: the record when want is set,
// otherwise ENOTFOUND with the message the synchronous method gives.
func wantAnswer[V any](what string, id int64, got V, err error, want V, ok bool, same func(a, b V) bool, notFound string) error {
	switch {
	case !ok && (shop.ErrorCode(err) != shop.ENOTFOUND || shop.ErrorMessage(err) != notFound):
		return fmt.Errorf("%s %d: want %q, got %+v, %v", what, id, notFound, got, err)
	case ok && err != nil:
		return fmt.Errorf("%s %d: %v", what, id, err)
	case ok && !same(got, want):
		return fmt.Errorf("%s %d: got %+v, want %+v", what, id, got, want)
	}
	return nil
}

// TestAsyncLookupsMatchDatabase is TestConcurrentLookupsMatchDatabase for
// the asynchronous methods: 10,000 lookups of users, products and stock,
// all submitted at once from one goroutine as an event loop would, with
// duplicates, missing ids and soft-deleted ids. Every answer is compared
// with the database and must arrive exactly once. Coalesced, both with the
// shapes taking turns at one shared gate (the default: batches top up
// while they wait) and without the gate.
func TestAsyncLookupsMatchDatabase(t *testing.T) {
	for _, variant := range []struct {
		name     string
		coalesce bool
		queries  int
	}{
		{"coalesce=true/gate=1", true, 1},
		{"coalesce=true/gate=off", true, 0},
		{"coalesce=false", false, 0},
	} {
		coalesce := variant.coalesce
		t.Run(variant.name, func(t *testing.T) {
			db := openDB(t, func(c *postgres.Config) {
				c.Coalesce = coalesce
				c.QueriesInFlight = variant.queries
				c.MaxConns = 8
				// Uncoalesced, 10,000 lookups queue for 8 connections: on
				// a busy machine under the race detector the last ones
				// wait many seconds. This test is about answers, not
				// timing.
				c.AcquireTimeout = 2 * time.Minute
			})
			users, deletedUsers := truthUsers(t, db.Pool())
			products, stock, deletedProducts := truthProducts(t, db.Pool())

			// pick returns an id of a table with rows 1..n: hot (many
			// duplicates), any, soft-deleted or missing.
			rng := rand.New(rand.NewPCG(3, 4))
			pick := func(n int64, deleted []int64) int64 {
				switch r := rng.IntN(10); {
				case r == 0:
					return deleted[rng.IntN(len(deleted))]
				case r == 1:
					return n + 1 + rng.Int64N(1000)
				case r <= 5:
					return 1 + rng.Int64N(50)
				default:
					return 1 + rng.Int64N(n)
				}
			}

			const n = 10_000
			var wg sync.WaitGroup
			errs := make(chan error, 2*n)
			deadline := time.Now().Add(2 * time.Minute)
			wg.Add(n)
			for i := range n {
				switch i % 3 {
				case 0:
					id := pick(pgtest.Users, deletedUsers)
					db.UserAsync(id, deadline, &checkedReply[shop.User]{errs: errs, wg: &wg, check: func(u shop.User, err error) error {
						want, ok := users[id]
						return wantAnswer("user", id, u, err, want, ok, sameUser, fmt.Sprintf("user %d not found", id))
					}})
				case 1:
					id := pick(pgtest.Products, deletedProducts)
					db.ProductAsync(id, deadline, &checkedReply[shop.Product]{errs: errs, wg: &wg, check: func(p shop.Product, err error) error {
						want, ok := products[id]
						return wantAnswer("product", id, p, err, want, ok, sameProduct, fmt.Sprintf("product %d not found", id))
					}})
				case 2:
					id := pick(pgtest.Products, deletedProducts)
					db.StockAsync(id, deadline, &checkedReply[shop.Stock]{errs: errs, wg: &wg, check: func(s shop.Stock, err error) error {
						want, ok := stock[id]
						return wantAnswer("stock of", id, s, err, want, ok, sameStock, fmt.Sprintf("product %d not found", id))
					}})
				}
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Minute):
				t.Fatal("not every lookup was answered")
			}
			time.Sleep(50 * time.Millisecond) // a second reply would come about now
			close(errs)
			count := 0
			for err := range errs {
				if count < 10 {
					t.Error(err)
				}
				count++
			}
			if count > 0 {
				t.Fatalf("%d wrong answers to %d lookups", count, n)
			}
		})
	}
}

// TestAsyncLookupUnavailable: an asynchronous lookup that cannot get a
// connection is answered EUNAVAILABLE, as the synchronous one is, with
// coalescing on and off.
func TestAsyncLookupUnavailable(t *testing.T) {
	for _, coalesce := range []bool{true, false} {
		t.Run(fmt.Sprintf("coalesce=%v", coalesce), func(t *testing.T) {
			db := openDB(t, func(c *postgres.Config) {
				c.Coalesce = coalesce
				c.MaxConns, c.MinConns = 1, 0
				c.AcquireTimeout = 50 * time.Millisecond
			})
			conn, err := db.Pool().Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			db.UserAsync(1, time.Now().Add(5*time.Second), replyFunc[shop.User](func(u shop.User, err error) { got <- err }))
			err = <-got
			conn.Release()
			if shop.ErrorCode(err) != shop.EUNAVAILABLE {
				t.Fatalf("lookup with exhausted pool: %v, want unavailable", err)
			}
		})
	}
}
