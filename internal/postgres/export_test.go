package postgres

// SQLUsersByIDs is the coalesced user lookup, for plan checks in tests.
const SQLUsersByIDs = sqlUsersByIDs
