package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"storefront/internal/shop"
)

// TestTranslateServerErrorCodes checks the codes a server error maps to,
// including a code too short to have a class, which must not panic.
func TestTranslateServerErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		code string
		want string
	}{
		{"57014", shop.EUNAVAILABLE}, // statement timeout
		{"08006", shop.EUNAVAILABLE},
		{"53300", shop.EUNAVAILABLE},
		{"40001", shop.EUNAVAILABLE},
		{"42P01", shop.EINTERNAL}, // undefined table: a bug or a schema mismatch
		{"", shop.EINTERNAL},
		{"5", shop.EINTERNAL},
	} {
		err := &pgconn.PgError{Code: tc.code}
		if got := shop.ErrorCode(translate(err)); got != tc.want {
			t.Errorf("SQLSTATE %q: %q, want %q", tc.code, got, tc.want)
		}
		if retryable(t.Context(), err) && tc.code[:min(2, len(tc.code))] != "08" {
			t.Errorf("SQLSTATE %q: retryable", tc.code)
		}
	}
}
