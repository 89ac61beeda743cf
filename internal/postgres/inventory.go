package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"storefront/internal/shop"
)

// One row per (live product, warehouse); a live product without stock rows
// still yields one row with NULL warehouse columns, which tells "no stock"
// from "no such product" in the same round trip. warehouses is a small
// reference table that a distributed setup would replicate to every node.
const (
	sqlStockByIDs = `SELECT p.product_id, i.warehouse_id, w.code, i.on_hand, i.reserved
FROM products p
LEFT JOIN inventory i ON i.product_id = p.product_id
LEFT JOIN warehouses w ON w.warehouse_id = i.warehouse_id
WHERE p.product_id = ANY($1) AND p.deleted_at IS NULL
ORDER BY p.product_id, i.warehouse_id`
	sqlStockByID = `SELECT p.product_id, i.warehouse_id, w.code, i.on_hand, i.reserved
FROM products p
LEFT JOIN inventory i ON i.product_id = p.product_id
LEFT JOIN warehouses w ON w.warehouse_id = i.warehouse_id
WHERE p.product_id = $1 AND p.deleted_at IS NULL
ORDER BY i.warehouse_id`
)

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

// stockByID is the uncoalesced lookup: one query per call.
func (db *DB) stockByID(ctx context.Context, productID int64) (s shop.Stock, found bool, err error) {
	ctx, cancel := db.withAcquireDeadline(ctx)
	defer cancel()
	err = db.queryRetry(ctx, func(r pgx.Rows) error {
		found = true
		_, err := scanStockRow(r, &s)
		return err
	}, sqlStockByID, productID)
	return s, found, err
}

func (db *DB) fetchStock(ctx context.Context, ids []int64, found func(int64, shop.Stock)) error {
	var cur shop.Stock
	have := false
	err := db.query(ctx, func(r pgx.Rows) error {
		var next shop.Stock
		id, err := scanStockRow(r, &next)
		if err != nil {
			return err
		}
		if have && id == cur.ProductID {
			cur.Warehouses = append(cur.Warehouses, next.Warehouses...)
			return nil
		}
		if have {
			found(cur.ProductID, cur)
		}
		cur, have = next, true
		return nil
	}, sqlStockByIDs, ids)
	if err == nil && have {
		found(cur.ProductID, cur)
	}
	return err
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
	if err := r.Scan(&row.productID, &row.warehouseID, &row.code, &row.onHand, &row.reserved); err != nil {
		return 0, err
	}
	s.ProductID = row.productID
	if row.warehouseID.Valid {
		s.Warehouses = append(s.Warehouses, shop.WarehouseStock{
			WarehouseID: row.warehouseID.Int64, Warehouse: row.code.String,
			OnHand: row.onHand.Int32, Reserved: row.reserved.Int32,
		})
	}
	return row.productID, nil
}
