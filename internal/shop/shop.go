// Package shop is the domain of storefront: the records it serves (users,
// products, stock levels), the services that look them up, and the single
// coded error type every layer speaks.
//
// It imports no technology: the PostgreSQL adapter implements the services
// and the HTTP adapter consumes them.
package shop

import (
	"context"
	"time"
)

// MaxBatchIDs is the largest number of ids one batch lookup may ask for.
const MaxBatchIDs = 100

// User is a customer profile. Soft-deleted users are never returned.
type User struct {
	ID         int64
	Username   string
	Email      string
	LastActive time.Time
}

// Product is a catalogue entry. Soft-deleted products are never returned.
type Product struct {
	ID          int64
	SKU         string
	Name        string
	Description string
	PriceCents  int64
	Currency    string
	Category    string
	UpdatedAt   time.Time
}

// WarehouseStock is the stock of one product in one warehouse.
type WarehouseStock struct {
	WarehouseID int64
	Warehouse   string // warehouse code, e.g. "FRA1"
	OnHand      int32
	Reserved    int32
}

// Available is what can still be sold from this warehouse.
func (w WarehouseStock) Available() int32 { return w.OnHand - w.Reserved }

// Stock is the inventory of one product across all warehouses.
type Stock struct {
	ProductID  int64
	Warehouses []WarehouseStock
}

// Available is the total sellable quantity across warehouses.
func (s Stock) Available() int64 {
	var n int64
	for _, w := range s.Warehouses {
		n += int64(w.Available())
	}
	return n
}

// Reply receives the answer to an asynchronous lookup: exactly once, on a
// goroutine of the service (never the caller's), with the same value and
// error the synchronous method would have returned. It must not block for
// long (writing a response to a socket is fine) and must not call back into
// the same service synchronously.
type Reply[V any] interface{ Reply(v V, err error) }

// UserService looks up user profiles.
type UserService interface {
	// User returns the live user with the given id, or an ENOTFOUND error.
	User(ctx context.Context, id int64) (User, error)
	// UserAsync is User for callers that must not block, such as an event
	// loop: it returns at once and hands r what User would have returned
	// (ENOTFOUND with the same message, errors translated the same way),
	// or EUNAVAILABLE at deadline (zero: none). The caller's goroutine is
	// never blocked on the database.
	UserAsync(id int64, deadline time.Time, r Reply[User])
}

// ProductService looks up products.
type ProductService interface {
	// Product returns the live product with the given id, or ENOTFOUND.
	Product(ctx context.Context, id int64) (Product, error)
	// ProductAsync is Product for callers that must not block: it returns
	// at once and hands r what Product would have returned (ENOTFOUND with
	// the same message, errors translated the same way), or EUNAVAILABLE
	// at deadline (zero: none). The caller's goroutine is never blocked on
	// the database.
	ProductAsync(id int64, deadline time.Time, r Reply[Product])
	// ProductBySKU returns the live product with the given SKU, or ENOTFOUND.
	ProductBySKU(ctx context.Context, sku string) (Product, error)
	// Products returns the live products among ids, in the order of ids
	// (duplicates collapsed to their first occurrence). Ids without a live
	// product are simply absent.
	Products(ctx context.Context, ids []int64) ([]Product, error)
}

// InventoryService looks up stock levels.
type InventoryService interface {
	// Stock returns the per-warehouse stock of a live product, or ENOTFOUND
	// when the product does not exist or is deleted.
	Stock(ctx context.Context, productID int64) (Stock, error)
	// StockAsync is Stock for callers that must not block: it returns at
	// once and hands r what Stock would have returned (ENOTFOUND with the
	// same message, errors translated the same way), or EUNAVAILABLE at
	// deadline (zero: none). The caller's goroutine is never blocked on the
	// database.
	StockAsync(productID int64, deadline time.Time, r Reply[Stock])
}

// HealthChecker reports whether the backing store can serve requests.
type HealthChecker interface {
	Ping(ctx context.Context) error
}
