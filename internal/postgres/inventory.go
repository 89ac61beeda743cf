package postgres

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"storefront/internal/shop"
)

// One row per (live product, warehouse); a live product without stock rows
// still yields one row with NULL warehouse columns, which tells "no stock"
// from "no such product" in the same round trip. warehouses is a small
// reference table that a distributed setup would replicate to every node.
//
// The batched query has no ORDER BY: fetchStock orders the rows itself,
// which costs the server less than PostgreSQL's sort costs the database
// (pgbench, 32 ids, prepared: 0.35-0.38 ms against 0.42-0.43 ms a query).
const (
	sqlStockByIDs = `SELECT p.product_id, i.warehouse_id, w.code, i.on_hand, i.reserved
FROM products p
LEFT JOIN inventory i ON i.product_id = p.product_id
LEFT JOIN warehouses w ON w.warehouse_id = i.warehouse_id
WHERE p.product_id = ANY($1) AND p.deleted_at IS NULL`
	sqlStockByID = `SELECT p.product_id, i.warehouse_id, w.code, i.on_hand, i.reserved
FROM products p
LEFT JOIN inventory i ON i.product_id = p.product_id
LEFT JOIN warehouses w ON w.warehouse_id = i.warehouse_id
WHERE p.product_id = $1 AND p.deleted_at IS NULL
ORDER BY i.warehouse_id`
)

// stmtStockByIDs is the coalesced stock lookup, read by fetchStock.
var stmtStockByIDs = idsStatement{
	name:    "storefront_stock_by_ids",
	sql:     sqlStockByIDs,
	columns: []uint32{oidInt8, oidInt8, oidText, oidInt4, oidInt4},
}

// Stock implements shop.InventoryService.
func (db *DB) Stock(ctx context.Context, productID int64) (shop.Stock, error) {
	var (
		s     shop.Stock
		found bool
		err   error
	)
	if db.cfg.Coalesce {
		s, found, err = db.inventory.Get(ctx, productID)
	} else {
		s, found, err = db.stockByID(ctx, productID)
	}
	if err != nil {
		return shop.Stock{}, translate(err)
	}
	if !found {
		return shop.Stock{}, errProductNotFound(productID)
	}
	return s, nil
}

// StockAsync implements shop.InventoryService.
func (db *DB) StockAsync(productID int64, deadline time.Time, r shop.Reply[shop.Stock]) {
	if db.cfg.Coalesce {
		db.inventory.Submit(productID, deadline, r)
		return
	}
	goLookup(deadline, r, func(ctx context.Context) (shop.Stock, error) { return db.Stock(ctx, productID) })
}

// stockByID is the uncoalesced lookup: one query per call. It retries
// like queryRetry, starting over: the failed attempt may have appended
// some of the warehouses already.
func (db *DB) stockByID(ctx context.Context, productID int64) (s shop.Stock, found bool, err error) {
	ctx, cancel := db.withAcquireDeadline(ctx)
	defer cancel()
	scan := func(r pgx.Rows) error {
		found = true
		_, err := scanStockRow(r, &s)
		return err
	}
	err = db.query(ctx, scan, sqlStockByID, productID)
	if err != nil && retryable(ctx, err) {
		s, found = shop.Stock{}, false
		err = db.query(ctx, scan, sqlStockByID, productID)
	}
	return s, found, err
}

// fetchStock is the inventory coalescer's query: one statement for the
// batch's distinct product ids, its rows (one per warehouse holding the
// product, one with NULLs for a product held nowhere) decoded from the wire
// (wire.go) and grouped per product by groupStock.
func (db *DB) fetchStock(ctx context.Context, ids []int64, found func(int64, shop.Stock, error)) error {
	rows := db.stockRows.Get().(*[]stockRow)
	defer db.putStockRows(rows)
	err := db.queryIDs(ctx, &stmtStockByIDs, ids, func(v [][]byte) (err error) {
		var row stockRow
		if row.productID, err = int8Value(v[0]); err != nil {
			return err
		}
		if v[1] != nil { // NULL when the product has no inventory row
			row.warehouseID.Valid, row.code.Valid, row.onHand.Valid, row.reserved.Valid = true, true, true, true
			if row.warehouseID.Int64, err = int8Value(v[1]); err != nil {
				return err
			}
			row.code.String = string(v[2])
			if row.onHand.Int32, err = int4Value(v[3]); err != nil {
				return err
			}
			if row.reserved.Int32, err = int4Value(v[4]); err != nil {
				return err
			}
		}
		*rows = append(*rows, row)
		return nil
	})
	if err != nil {
		return err
	}
	groupStock(*rows, found)
	return nil
}

// maxPooledStockRows is the most rows a pooled slice may hold (a batch of
// 128 products in a few warehouses each needs a few hundred): a batch with
// a product stocked in very many warehouses must not leave a slice that
// size alive for every later batch.
const maxPooledStockRows = 4096

// putStockRows gives rows back to the pool, emptied: the warehouse codes
// of its rows are released, and a slice over maxPooledStockRows is left
// to the GC.
func (db *DB) putStockRows(rows *[]stockRow) {
	if cap(*rows) > maxPooledStockRows {
		return
	}
	clear(*rows)
	*rows = (*rows)[:0]
	db.stockRows.Put(rows)
}

// groupStock orders rows by product and warehouse and hands found one
// Stock per product, with one allocation for its warehouses.
func groupStock(rows []stockRow, found func(int64, shop.Stock, error)) {
	slices.SortFunc(rows, func(a, b stockRow) int {
		if c := cmp.Compare(a.productID, b.productID); c != 0 {
			return c
		}
		return cmp.Compare(a.warehouseID.Int64, b.warehouseID.Int64)
	})
	for len(rows) > 0 {
		n, stocked := 1, 0
		for n < len(rows) && rows[n].productID == rows[0].productID {
			n++
		}
		for _, row := range rows[:n] {
			if row.warehouseID.Valid {
				stocked++
			}
		}
		s := shop.Stock{ProductID: rows[0].productID}
		if stocked > 0 {
			s.Warehouses = make([]shop.WarehouseStock, 0, stocked)
			for _, row := range rows[:n] {
				if row.warehouseID.Valid {
					s.Warehouses = append(s.Warehouses, row.warehouse())
				}
			}
		}
		found(s.ProductID, s, nil)
		rows = rows[n:]
	}
}

// stockRow is one row of the stock queries; the warehouse columns are
// NULL for a live product without stock rows.
type stockRow struct {
	productID   int64
	warehouseID pgtype.Int8
	code        pgtype.Text
	onHand      pgtype.Int4
	reserved    pgtype.Int4
}

// scanStockRow reads one row into s (setting ProductID and appending the
// warehouse when the row has one) and returns the row's product id.
func scanStockRow(r pgx.Rows, s *shop.Stock) (int64, error) {
	var row stockRow
	if err := r.Scan(row.dest()...); err != nil {
		return 0, err
	}
	s.ProductID = row.productID
	if row.warehouseID.Valid {
		s.Warehouses = append(s.Warehouses, row.warehouse())
	}
	return row.productID, nil
}

// dest lists row's fields in the order the stock queries select them.
func (row *stockRow) dest() []any {
	return []any{&row.productID, &row.warehouseID, &row.code, &row.onHand, &row.reserved}
}

func (row *stockRow) warehouse() shop.WarehouseStock {
	return shop.WarehouseStock{
		WarehouseID: row.warehouseID.Int64, Warehouse: row.code.String,
		OnHand: row.onHand.Int32, Reserved: row.reserved.Int32,
	}
}
