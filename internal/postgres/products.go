package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"storefront/internal/shop"
)

// productColumns are the columns a product lookup reads. currency is a
// char(3), which PostgreSQL pads with spaces it holds insignificant: as
// text it loses them ('EU' is served as "EU", not "EU ").
const productColumns = `product_id, sku, name, description, price_cents, currency::text, category, updated_at`

const (
	sqlProductsByIDs = `SELECT ` + productColumns + ` FROM products
WHERE product_id = ANY($1) AND deleted_at IS NULL`
	sqlProductByID = `SELECT ` + productColumns + ` FROM products
WHERE product_id = $1 AND deleted_at IS NULL`
	sqlProductBySKU = `SELECT ` + productColumns + ` FROM products
WHERE sku = $1 AND deleted_at IS NULL`
)

// stmtProductsByIDs is the coalesced product lookup, read by
// fetchProducts (productColumns, in order).
var stmtProductsByIDs = idsStatement{
	name:    "storefront_products_by_ids",
	sql:     sqlProductsByIDs,
	columns: []uint32{oidInt8, oidText, oidText, oidText, oidInt8, oidText, oidText, oidTimestamptz},
}

// Product implements shop.ProductService.
func (db *DB) Product(ctx context.Context, id int64) (shop.Product, error) {
	var (
		p     shop.Product
		found bool
		err   error
	)
	if db.cfg.Coalesce {
		p, found, err = db.products.Get(ctx, id)
	} else {
		p, found, err = db.productWhere(ctx, sqlProductByID, id)
	}
	if err != nil {
		return shop.Product{}, translate(err)
	}
	if !found {
		return shop.Product{}, errProductNotFound(id)
	}
	return p, nil
}

// ProductAsync implements shop.ProductService.
func (db *DB) ProductAsync(id int64, deadline time.Time, r shop.Reply[shop.Product]) {
	if db.cfg.Coalesce {
		db.products.Submit(id, deadline, r)
		return
	}
	goLookup(deadline, r, func(ctx context.Context) (shop.Product, error) { return db.Product(ctx, id) })
}

// errProductNotFound is also the answer for the stock of a product that
// does not exist.
func errProductNotFound(id int64) error {
	return shop.Errorf(shop.ENOTFOUND, "product %d not found", id)
}

// ProductBySKU implements shop.ProductService. SKU lookups are rare next to
// id lookups, so they are not coalesced.
func (db *DB) ProductBySKU(ctx context.Context, sku string) (shop.Product, error) {
	p, found, err := db.productWhere(ctx, sqlProductBySKU, sku)
	if err != nil {
		return shop.Product{}, translate(err)
	}
	if !found {
		return shop.Product{}, shop.Errorf(shop.ENOTFOUND, "product with SKU %q not found", sku)
	}
	return p, nil
}

// Products implements shop.ProductService: one query for the whole list.
func (db *DB) Products(ctx context.Context, ids []int64) ([]shop.Product, error) {
	if len(ids) > shop.MaxBatchIDs {
		return nil, shop.Errorf(shop.EINVALID, "at most %d ids per request", shop.MaxBatchIDs)
	}
	byID := make(map[int64]shop.Product, len(ids))
	ctx, cancel := db.withAcquireDeadline(ctx)
	defer cancel()
	err := db.queryRetry(ctx, func(r pgx.Rows) error {
		var p shop.Product
		if err := scanProduct(r, &p); err != nil {
			return err
		}
		byID[p.ID] = p
		return nil
	}, sqlProductsByIDs, ids)
	if err != nil {
		return nil, translate(err)
	}
	out := make([]shop.Product, 0, len(byID))
	for _, id := range ids {
		if p, ok := byID[id]; ok {
			out = append(out, p)
			delete(byID, id) // a repeated id is listed once
		}
	}
	return out, nil
}

func (db *DB) productWhere(ctx context.Context, sql string, arg any) (p shop.Product, found bool, err error) {
	ctx, cancel := db.withAcquireDeadline(ctx)
	defer cancel()
	err = db.queryRetry(ctx, func(r pgx.Rows) error {
		found = true
		return scanProduct(r, &p)
	}, sql, arg)
	return p, found, err
}

// fetchProducts is the products coalescer's query: one "= ANY" statement
// for the batch's distinct ids, its rows decoded from the wire (wire.go).
func (db *DB) fetchProducts(ctx context.Context, ids []int64, found func(int64, shop.Product, error)) error {
	return db.queryIDs(ctx, &stmtProductsByIDs, ids, func(v [][]byte) (err error) {
		var p shop.Product
		if p.ID, err = int8Value(v[0]); err != nil {
			return err
		}
		p.SKU, p.Name, p.Description = string(v[1]), string(v[2]), string(v[3])
		if p.PriceCents, err = int8Value(v[4]); err != nil {
			return err
		}
		p.Currency, p.Category = string(v[5]), string(v[6])
		if p.UpdatedAt, err = timestamptzValue(v[7]); err != nil {
			found(p.ID, shop.Product{}, fmt.Errorf("product %d: updated_at: %w", p.ID, err))
			return nil
		}
		found(p.ID, p, nil)
		return nil
	})
}

// productDest lists p's fields in the order productColumns names them.
func productDest(p *shop.Product) []any {
	return []any{&p.ID, &p.SKU, &p.Name, &p.Description, &p.PriceCents, &p.Currency, &p.Category, &p.UpdatedAt}
}

func scanProduct(r pgx.Rows, p *shop.Product) error {
	return r.Scan(productDest(p)...)
}
