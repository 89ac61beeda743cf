package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"storefront/internal/shop"
)

// The coalesced lookups run below pgx's row interface: a named prepared
// statement executed on the connection's pgconn with one binary bigint[]
// parameter, and each row's binary column values decoded by hand. That
// skips pgx's argument encoding (which boxes every id), its statement-cache
// lookup and its per-column scan plans; what a row costs is the strings it
// yields. The statement's result columns are checked against what the
// decoders expect every time it is used (a few comparisons), so a schema
// change that alters a column's type fails loudly instead of misreading.

// PostgreSQL type OIDs the decoders read.
const (
	oidInt8        = 20
	oidInt4        = 23
	oidText        = 25
	oidTimestamptz = 1184
	oidInt8Array   = 1016
)

// binaryFormat asks for every parameter, or every result column, in
// PostgreSQL's binary format (one format code applies to all).
var binaryFormat = []int16{1}

// idsStatement is a coalesced lookup: its prepared statement's name, its
// SQL (one bigint[] parameter) and the result column types its row decoder
// expects.
type idsStatement struct {
	name    string
	sql     string
	columns []uint32
}

// queryIDs runs st for ids on a pooled connection and hands each row's
// binary values (nil for NULL, valid only during the call) to row.
func (db *DB) queryIDs(ctx context.Context, st *idsStatement, ids []int64, row func(vals [][]byte) error) (err error) {
	conn, err := db.acquire(ctx)
	if err != nil {
		return err
	}
	defer db.release(conn, &err)
	sd, err := conn.Conn().Prepare(ctx, st.name, st.sql)
	if err != nil {
		return err
	}
	if err := st.check(sd); err != nil {
		return err
	}
	rr := conn.Conn().PgConn().ExecPrepared(ctx, st.name, [][]byte{appendInt8Array(nil, ids)}, binaryFormat, binaryFormat)
	for rr.NextRow() {
		if err := row(rr.Values()); err != nil {
			_, _ = rr.Close()
			return err
		}
	}
	_, err = rr.Close()
	return err
}

// check reports an EINTERNAL error unless sd takes one bigint[] and
// returns the columns st's decoder expects.
func (st *idsStatement) check(sd *pgconn.StatementDescription) error {
	ok := len(sd.ParamOIDs) == 1 && sd.ParamOIDs[0] == oidInt8Array && len(sd.Fields) == len(st.columns)
	for i := 0; ok && i < len(st.columns); i++ {
		ok = sd.Fields[i].DataTypeOID == st.columns[i]
	}
	if !ok {
		return shop.Errorf(shop.EINTERNAL, "statement %s: parameters or result columns are not of the types its decoder reads (schema changed?)", st.name)
	}
	return nil
}

// appendInt8Array appends ids as a one-dimensional bigint[] in
// PostgreSQL's binary array format: dimensions, a no-NULLs flag, the
// element type, the length and lower bound, then each element's length
// and value.
func appendInt8Array(b []byte, ids []int64) []byte {
	if b == nil {
		b = make([]byte, 0, 20+12*len(ids))
	}
	b = binary.BigEndian.AppendUint32(b, 1) // dimensions
	b = binary.BigEndian.AppendUint32(b, 0) // no NULLs
	b = binary.BigEndian.AppendUint32(b, oidInt8)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	b = binary.BigEndian.AppendUint32(b, 1) // lower bound
	for _, id := range ids {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(id))
	}
	return b
}

// errBadValue is a column value of the wrong size for its type; check
// makes it unreachable short of a protocol error.
var errBadValue = errors.New("postgres: binary value of unexpected size")

func int8Value(v []byte) (int64, error) {
	if len(v) != 8 {
		return 0, errBadValue
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

func int4Value(v []byte) (int32, error) {
	if len(v) != 4 {
		return 0, errBadValue
	}
	return int32(binary.BigEndian.Uint32(v)), nil
}

// postgresEpoch is 2000-01-01 UTC in Unix seconds: binary timestamps count
// microseconds from it.
const postgresEpoch = 946684800

// errInfiniteTimestamp is a timestamp column holding ±infinity, which the
// API's timestamps (Unix seconds, a JSON number) cannot represent: the
// lookup of its row fails (500), and no other.
var errInfiniteTimestamp = errors.New("postgres: infinite timestamp, which a JSON number cannot represent")

// timestamptzValue decodes a binary timestamptz as pgx does (time.Unix, so
// values from both paths compare equal with ==). ±infinity is
// errInfiniteTimestamp.
func timestamptzValue(v []byte) (time.Time, error) {
	if len(v) != 8 {
		return time.Time{}, errBadValue
	}
	us := int64(binary.BigEndian.Uint64(v))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return time.Time{}, errInfiniteTimestamp
	}
	// Seconds and microseconds apart: in microseconds since 1970 the
	// latest timestamps PostgreSQL stores (year 294276) overflow an int64.
	return time.Unix(postgresEpoch+us/1_000_000, (us%1_000_000)*1000), nil
}
