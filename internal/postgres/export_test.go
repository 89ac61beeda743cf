package postgres

// The coalesced lookups' SQL, for plan checks in tests.
const (
	SQLUsersByIDs = sqlUsersByIDs
	SQLStockByIDs = sqlStockByIDs
)
