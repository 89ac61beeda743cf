package httpapi

import (
	"strconv"
	"time"
	"unicode/utf8"

	"storefront/internal/shop"
)

// The encoders below append JSON to a caller's buffer: no reflection and no
// allocation on the hot path. Field order is fixed and matches the README.

func appendUser(b []byte, u *shop.User) []byte {
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, u.ID, 10)
	b = append(b, `,"username":`...)
	b = appendString(b, u.Username)
	b = append(b, `,"email":`...)
	b = appendString(b, u.Email)
	b = append(b, `,"last_active":`...)
	b = appendUnixSeconds(b, u.LastActive)
	return append(b, '}')
}

func appendProduct(b []byte, p *shop.Product) []byte {
	b = append(b, `{"product_id":`...)
	b = strconv.AppendInt(b, p.ID, 10)
	b = append(b, `,"sku":`...)
	b = appendString(b, p.SKU)
	b = append(b, `,"name":`...)
	b = appendString(b, p.Name)
	b = append(b, `,"description":`...)
	b = appendString(b, p.Description)
	b = append(b, `,"price_cents":`...)
	b = strconv.AppendInt(b, p.PriceCents, 10)
	b = append(b, `,"currency":`...)
	b = appendString(b, p.Currency)
	b = append(b, `,"category":`...)
	b = appendString(b, p.Category)
	b = append(b, `,"updated_at":`...)
	b = appendUnixSeconds(b, p.UpdatedAt)
	return append(b, '}')
}

func appendProducts(b []byte, ps []shop.Product, missing []int64) []byte {
	b = append(b, `{"products":[`...)
	for i := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendProduct(b, &ps[i])
	}
	b = append(b, `],"not_found":[`...)
	for i, id := range missing {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return append(b, "]}"...)
}

func appendStock(b []byte, s *shop.Stock) []byte {
	b = append(b, `{"product_id":`...)
	b = strconv.AppendInt(b, s.ProductID, 10)
	b = append(b, `,"warehouses":[`...)
	for i, w := range s.Warehouses {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"warehouse_id":`...)
		b = strconv.AppendInt(b, w.WarehouseID, 10)
		b = append(b, `,"warehouse":`...)
		b = appendString(b, w.Warehouse)
		b = append(b, `,"on_hand":`...)
		b = strconv.AppendInt(b, int64(w.OnHand), 10)
		b = append(b, `,"reserved":`...)
		b = strconv.AppendInt(b, int64(w.Reserved), 10)
		b = append(b, `,"available":`...)
		b = strconv.AppendInt(b, int64(w.Available()), 10)
		b = append(b, '}')
	}
	b = append(b, `],"available":`...)
	b = strconv.AppendInt(b, s.Available(), 10)
	return append(b, '}')
}

func appendError(b []byte, message string, status int, requestID []byte) []byte {
	b = append(b, `{"error":`...)
	b = appendString(b, message)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"request_id":`...)
	b = appendString(b, string(requestID)) // request ids are [A-Za-z0-9._-]; the conversion does not escape
	return append(b, '}')
}

// appendUnixSeconds writes t as Unix seconds with microsecond precision,
// the shortest decimal that round-trips (1795785518.16, 1795785518.163421).
// Seconds and microseconds are written apart, in integers: PostgreSQL's
// timestamps (4714 BC to 294276 AD) overflow Unix microseconds in an int64
// after 294246 AD, and a float64 keeps whole microseconds only within about
// 285 years of 1970.
func appendUnixSeconds(b []byte, t time.Time) []byte {
	sec, us := t.Unix(), int64(t.Nanosecond()/1000)
	if sec < 0 && us != 0 {
		// -1.25 is -2 s + 750000 µs: the sign, then 1 s and 250000 µs.
		b = append(b, '-')
		sec, us = -(sec + 1), 1_000_000-us
	}
	b = strconv.AppendInt(b, sec, 10)
	if us == 0 {
		return b
	}
	var digits [7]byte
	digits[0] = '.'
	for i := 6; i >= 1; i-- {
		digits[i] = byte('0' + us%10)
		us /= 10
	}
	n := 7
	for digits[n-1] == '0' {
		n--
	}
	return append(b, digits[:n]...)
}

const hexDigits = "0123456789abcdef"

// safeASCII marks the ASCII bytes that need no escaping; the same set as
// encoding/json with HTML escaping (<, > and & become \u003c, \u003e, \u0026
// so a response can never be sniffed as markup).
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as a JSON string with the same escaping as
// encoding/json: control characters, quotes, backslashes, <, >, &, U+2028
// and U+2029 escaped; invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safeASCII[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
