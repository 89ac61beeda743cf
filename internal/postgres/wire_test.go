package postgres

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"storefront/internal/shop"
)

// TestAppendInt8ArrayMatchesPgx checks the hand-written bigint[] encoding
// byte for byte against pgx's own binary encoder.
func TestAppendInt8ArrayMatchesPgx(t *testing.T) {
	m := pgtype.NewMap()
	for _, ids := range [][]int64{{}, {1}, {1, 2, 3}, {math.MaxInt64, -1, 0, 42}} {
		want, err := m.Encode(oidInt8Array, pgtype.BinaryFormatCode, ids, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			// pgx writes an empty array without dimensions; PostgreSQL
			// reads both forms as '{}'. The coalescer never sends one.
			continue
		}
		if got := appendInt8Array(nil, ids); !bytes.Equal(got, want) {
			t.Errorf("%v: got %x, want %x", ids, got, want)
		}
	}
}

// TestTimestamptzValueMatchesPgx decodes binary timestamps by hand and
// with pgx, including ones before 2000 and before 1970, and refuses
// infinities.
func TestTimestamptzValueMatchesPgx(t *testing.T) {
	m := pgtype.NewMap()
	for _, tm := range []time.Time{
		time.Date(2026, 11, 27, 23, 40, 1, 123456000, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(1969, 7, 20, 20, 17, 40, 1000, time.UTC),
	} {
		src, err := m.Encode(oidTimestamptz, pgtype.BinaryFormatCode, tm, nil)
		if err != nil {
			t.Fatal(err)
		}
		var want time.Time
		if err := m.Scan(oidTimestamptz, pgtype.BinaryFormatCode, src, &want); err != nil {
			t.Fatal(err)
		}
		got, err := timestamptzValue(src)
		if err != nil || !got.Equal(want) || got != want {
			t.Errorf("%v: got %v, %v; pgx %v", tm, got, err, want)
		}
	}
	for _, inf := range []pgtype.InfinityModifier{pgtype.Infinity, pgtype.NegativeInfinity} {
		src, err := m.Encode(oidTimestamptz, pgtype.BinaryFormatCode, pgtype.Timestamptz{InfinityModifier: inf, Valid: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := timestamptzValue(src); err == nil {
			t.Errorf("%v decoded without error", inf)
		}
	}
	if _, err := timestamptzValue([]byte{1, 2, 3}); err == nil {
		t.Error("a 3-byte timestamp decoded")
	}
}

// TestIDsStatementCheck: a statement whose parameter or result columns are
// not what the decoder reads is refused with EINTERNAL.
func TestIDsStatementCheck(t *testing.T) {
	fields := func(oids ...uint32) []pgconn.FieldDescription {
		var fs []pgconn.FieldDescription
		for _, o := range oids {
			fs = append(fs, pgconn.FieldDescription{DataTypeOID: o})
		}
		return fs
	}
	st := &stmtUsersByIDs
	for _, tc := range []struct {
		name string
		sd   pgconn.StatementDescription
		ok   bool
	}{
		{"as expected", pgconn.StatementDescription{ParamOIDs: []uint32{oidInt8Array}, Fields: fields(oidInt8, oidText, oidText, oidTimestamptz)}, true},
		{"column type changed", pgconn.StatementDescription{ParamOIDs: []uint32{oidInt8Array}, Fields: fields(oidInt8, oidText, oidText, 1114)}, false},
		{"column added", pgconn.StatementDescription{ParamOIDs: []uint32{oidInt8Array}, Fields: fields(oidInt8, oidText, oidText, oidTimestamptz, oidText)}, false},
		{"int4[] parameter", pgconn.StatementDescription{ParamOIDs: []uint32{1007}, Fields: fields(oidInt8, oidText, oidText, oidTimestamptz)}, false},
	} {
		err := st.check(&tc.sd)
		if tc.ok != (err == nil) || (err != nil && shop.ErrorCode(err) != shop.EINTERNAL) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
