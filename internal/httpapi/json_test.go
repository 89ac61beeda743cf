package httpapi

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"storefront/internal/shop"
)

// stdString is what encoding/json writes for s (with its default HTML
// escaping), the reference appendString must equal.
func stdString(t testing.TB, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and \ backslash`, "tab\tnew\nline\rcr", "\x00\x01\x1f\x7f",
		"<script>&amp;</script>", "josé Zoë ☂ 日本", "\u2028\u2029", "bad \xff\xfe utf8 \xc3", "\xed\xa0\x80",
		strings.Repeat("a", 1000),
	} {
		if got, want := string(appendString(nil, s)), stdString(t, s); got != want {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00", "\xff", "<>&", "\u2028", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendString(nil, s)
		if !json.Valid(got) {
			t.Fatalf("invalid JSON for %q: %s", s, got)
		}
		if want := stdString(t, s); string(got) != want {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("round trip of %q gave %q", s, back)
		}
	})
}

// FuzzAppendUser checks a whole record: valid JSON that decodes back to the
// same values as encoding/json's encoding of them.
func FuzzAppendUser(f *testing.F) {
	f.Add(int64(42), "maria", "m@example.com", int64(1795785518160000))
	f.Add(int64(1), "\"<x>\"", "\xff", int64(-1))
	f.Fuzz(func(t *testing.T, id int64, name, email string, us int64) {
		u := shop.User{ID: id, Username: name, Email: email, LastActive: time.UnixMicro(us)}
		got := appendUser(nil, &u)
		var dec struct {
			UserID     int64   `json:"user_id"`
			Username   string  `json:"username"`
			Email      string  `json:"email"`
			LastActive float64 `json:"last_active"`
		}
		if err := json.Unmarshal(got, &dec); err != nil {
			t.Fatalf("invalid JSON %s: %v", got, err)
		}
		var wantName, wantEmail string
		_ = json.Unmarshal([]byte(stdString(t, name)), &wantName)
		_ = json.Unmarshal([]byte(stdString(t, email)), &wantEmail)
		if dec.UserID != id || dec.Username != wantName || dec.Email != wantEmail {
			t.Fatalf("decoded %+v from %s", dec, got)
		}
		if want := float64(us) / 1e6; dec.LastActive != want {
			t.Fatalf("last_active %v, want %v (%s)", dec.LastActive, want, got)
		}
	})
}

func TestAppendUnixSeconds(t *testing.T) {
	for us, want := range map[int64]string{
		1795785518160000: "1795785518.16",
		1795785518000000: "1795785518",
		1795785518000001: "1795785518.000001",
		0:                "0",
		-1500000:         "-1.5",
		-500000:          "-0.5",
		-1:               "-0.000001",
	} {
		if got := string(appendUnixSeconds(nil, time.UnixMicro(us))); got != want {
			t.Errorf("%d µs: %s, want %s", us, got, want)
		}
	}
}

// TestAppendUnixSecondsAtPostgresRange: PostgreSQL's timestamps run from
// 4714 BC to 294276 AD, past what Unix microseconds hold in an int64 (after
// 294246 AD) and far past what a float64 holds to the microsecond (about
// 285 years either side of 1970); each must still be written exactly.
func TestAppendUnixSecondsAtPostgresRange(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(294276, 12, 31, 23, 59, 59, 999999000, time.UTC), "9224318015999.999999"}, // the latest timestamptz
		{time.Date(294247, 1, 10, 4, 0, 54, 775808000, time.UTC), "9223372036854.775808"},    // one µs past int64 µs
		{time.Date(-4713, 11, 24, 0, 0, 0, 0, time.UTC), "-210866803200"},                    // the earliest
		{time.Date(-4713, 11, 24, 0, 0, 0, 1000, time.UTC), "-210866803199.999999"},
		{time.Date(1000, 1, 1, 0, 0, 0, 1000, time.UTC), "-30610223999.999999"},
		{time.Date(1969, 12, 31, 23, 59, 59, 250000000, time.UTC), "-0.75"},
	} {
		if got := string(appendUnixSeconds(nil, tc.t)); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.t, got, tc.want)
		}
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "9223372036854775807", "9223372036854775808", "abc", "", "1e3", "٣",
		"0000000000000000001", "00000000000000000001", "0009223372036854775807", "00000000000000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseID([]byte(s))
		// A string of ASCII digits is an id exactly when strconv reads it
		// as a positive int64 (leading zeros included).
		if digits := s != "" && strings.Trim(s, "0123456789") == ""; digits {
			want, werr := strconv.ParseInt(s, 10, 64)
			if ok := werr == nil && want > 0; ok != (err == nil) || (ok && id != want) {
				t.Fatalf("parseID(%q) = %d, %v; strconv: %d, %v", s, id, err, want, werr)
			}
		}
		if err != nil {
			if shop.ErrorCode(err) != shop.EINVALID {
				t.Fatalf("parseID(%q): error code %q", s, shop.ErrorCode(err))
			}
			return
		}
		if id < 1 {
			t.Fatalf("parseID(%q) = %d", s, id)
		}
		for _, c := range s {
			if c < '0' || c > '9' {
				t.Fatalf("parseID accepted %q", s)
			}
		}
	})
}

func FuzzRoute(f *testing.F) {
	for _, s := range []string{"/users/1", "/products/by-sku/X", "/products", "/inventory/", "/", "/users//1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		r, param := matchRoute([]byte(path), true)
		if r >= numRoutes {
			t.Fatalf("route %d out of range", r)
		}
		if r == routeUnknown && param != nil {
			t.Fatal("unknown route with a parameter")
		}
		if r != routeUnknown && !strings.HasSuffix(path, string(param)) {
			t.Fatalf("param %q not from path %q", param, path)
		}
	})
}

var sink []byte

func BenchmarkEncodeUser(b *testing.B) {
	u := shop.User{ID: 424242, Username: "maria.schmidt42", Email: "maria.schmidt42@example.com", LastActive: time.UnixMicro(1795785518160000)}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendUser(buf[:0], &u)
	}
	sink = buf
}

// BenchmarkEncodeUserStdlib is the encoding/json baseline for the same user.
func BenchmarkEncodeUserStdlib(b *testing.B) {
	type user struct {
		UserID     int64   `json:"user_id"`
		Username   string  `json:"username"`
		Email      string  `json:"email"`
		LastActive float64 `json:"last_active"`
	}
	u := user{424242, "maria.schmidt42", "maria.schmidt42@example.com", 1795785518.16}
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = json.Marshal(&u)
	}
}

func BenchmarkEncodeStock(b *testing.B) {
	s := shop.Stock{ProductID: 7, Warehouses: []shop.WarehouseStock{
		{WarehouseID: 1, Warehouse: "FRA1", OnHand: 130, Reserved: 2},
		{WarehouseID: 2, Warehouse: "IAD1", OnHand: 5, Reserved: 5},
		{WarehouseID: 3, Warehouse: "SIN1", OnHand: 333, Reserved: 1},
	}}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendStock(buf[:0], &s)
	}
	sink = buf
}
