package httpapi

import (
	"bytes"
	"math"
	"unicode/utf8"

	"storefront/internal/shop"
)

// parseID parses a positive decimal id (1..2^63-1): digits only, no sign,
// no spaces, no overflow. Leading zeros are allowed, however many.
func parseID(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, shop.Errorf(shop.EINVALID, "missing id")
	}
	if len(bytes.TrimLeft(b, "0")) > 19 { // 19 digits cannot overflow a uint64
		return 0, invalidID(b)
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, invalidID(b)
		}
		n = n*10 + uint64(c-'0')
	}
	if n == 0 || n > math.MaxInt64 {
		return 0, invalidID(b)
	}
	return int64(n), nil
}

func invalidID(b []byte) error {
	const show = 32
	if len(b) > show {
		return shop.Errorf(shop.EINVALID, "invalid id %q...: must be a positive integer below 2^63", b[:show])
	}
	return shop.Errorf(shop.EINVALID, "invalid id %q: must be a positive integer below 2^63", b)
}

// parseIDList parses "1,2,3": 1..MaxBatchIDs valid ids separated by commas.
// Duplicates are kept; the service collapses them.
func parseIDList(b []byte) ([]int64, error) {
	if len(b) == 0 {
		return nil, shop.Errorf(shop.EINVALID, "ids must list 1 to %d ids separated by commas", shop.MaxBatchIDs)
	}
	if n := bytes.Count(b, []byte{','}) + 1; n > shop.MaxBatchIDs {
		return nil, shop.Errorf(shop.EINVALID, "too many ids: %d, at most %d", n, shop.MaxBatchIDs)
	}
	ids := make([]int64, 0, 8)
	for len(b) > 0 {
		part := b
		if i := bytes.IndexByte(b, ','); i >= 0 {
			part, b = b[:i], b[i+1:]
			if len(b) == 0 {
				return nil, shop.Errorf(shop.EINVALID, "ids must not end with a comma")
			}
		} else {
			b = nil
		}
		if len(part) == 0 {
			return nil, shop.Errorf(shop.EINVALID, "ids must not hold an empty entry (a leading comma, or two in a row)")
		}
		id, err := parseID(part)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// validSKU accepts any SKU PostgreSQL can hold: non-empty valid UTF-8
// without NUL. The schema puts no other limit on sku (other services write
// it), so a slash, a control character or a long SKU is looked up like any
// other; the request's head bounds its length. A NUL or broken UTF-8 would
// reach PostgreSQL as a text parameter it rejects (a 500 instead of a 400).
func validSKU(sku []byte) bool {
	return len(sku) > 0 && utf8.Valid(sku) && bytes.IndexByte(sku, 0) < 0
}
