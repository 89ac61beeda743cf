package postgres

// The coalesced lookups' SQL, for plan checks in tests.
const (
	SQLUsersByIDs = sqlUsersByIDs
	SQLStockByIDs = sqlStockByIDs
)

// PooledStockRows takes the stock rows slice the pool would hand the next
// batch and reports its capacity and how many of its rows past its length
// still hold a warehouse code; the slice goes back to the pool.
func (db *DB) PooledStockRows() (capacity, codes int) {
	rows := db.stockRows.Get().(*[]stockRow)
	defer db.stockRows.Put(rows)
	for _, row := range (*rows)[:cap(*rows)] {
		if row.code.String != "" {
			codes++
		}
	}
	return cap(*rows), codes
}
