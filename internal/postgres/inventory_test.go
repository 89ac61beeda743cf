package postgres

import (
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"storefront/internal/shop"
)

// The batched stock query returns rows in no particular order; groupStock
// must give each product all its warehouses, ordered by warehouse id.
func TestGroupStockOrdersShuffledRows(t *testing.T) {
	row := func(product, warehouse int64, code string, onHand int32) stockRow {
		r := stockRow{productID: product}
		if warehouse != 0 {
			r.warehouseID = pgtype.Int8{Int64: warehouse, Valid: true}
			r.code = pgtype.Text{String: code, Valid: true}
			r.onHand = pgtype.Int4{Int32: onHand, Valid: true}
			r.reserved = pgtype.Int4{Int32: 1, Valid: true}
		}
		return r
	}
	rows := []stockRow{
		row(9, 3, "SIN1", 30), row(4, 0, "", 0), row(9, 1, "FRA1", 10),
		row(7, 2, "IAD1", 20), row(9, 2, "IAD1", 20), row(7, 1, "FRA1", 10),
	}
	got := map[int64]shop.Stock{}
	var order []int64
	groupStock(rows, func(id int64, s shop.Stock, _ error) {
		if _, dup := got[id]; dup {
			t.Errorf("product %d answered twice", id)
		}
		got[id] = s
		order = append(order, id)
	})
	ws := func(id int64, code string, onHand int32) shop.WarehouseStock {
		return shop.WarehouseStock{WarehouseID: id, Warehouse: code, OnHand: onHand, Reserved: 1}
	}
	want := map[int64]shop.Stock{
		4: {ProductID: 4},
		7: {ProductID: 7, Warehouses: []shop.WarehouseStock{ws(1, "FRA1", 10), ws(2, "IAD1", 20)}},
		9: {ProductID: 9, Warehouses: []shop.WarehouseStock{ws(1, "FRA1", 10), ws(2, "IAD1", 20), ws(3, "SIN1", 30)}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("grouped %+v, want %+v", got, want)
	}
	if !reflect.DeepEqual(order, []int64{4, 7, 9}) {
		t.Errorf("answered in order %v", order)
	}
}
