package seed

import "math/bits"

const (
	productColumns = "product_id, sku, name, description, price_cents, currency, category, updated_at, deleted_at"
	productFields  = 9
)

// Prices run from minPrice to maxPrice cents on a logarithmic ladder of
// priceSteps rungs, 32 to a doubling.
const (
	minPrice   = 99
	maxPrice   = 199999
	priceSteps = 352 // 11 doublings: 99 × 2^11 ≈ 202,752
	// priceRatioQ32 is 2^(1/32) in 32.32 fixed point.
	priceRatioQ32 = 4389014833
)

// productGen generates products: "SKU-0000042-XY", "Rugged Canvas
// Backpack", a one-line description, a price around $44 with a long tail
// both ways, mostly in USD.
type productGen struct {
	v      *vocab
	r      rowRand
	del    deletions
	ladder [priceSteps + 1]int64
}

func newProductGen(v *vocab, seed int64) *productGen {
	g := &productGen{v: v, r: newRowRand(seed, streamProducts), del: newDeletions(seed, streamProductDeletions)}
	// Integer arithmetic only, so prices are identical on every platform.
	q := uint64(minPrice) << 32
	for i := range g.ladder {
		g.ladder[i] = int64(q >> 32)
		hi, lo := bits.Mul64(q, priceRatioQ32)
		q = hi<<32 | lo>>32
	}
	return g
}

// price draws a price: the sum of three uniform draws makes a bell over the
// ladder (log-normal-ish in cents), rounded to a .99, .49 or .00 ending.
func (g *productGen) price() int64 {
	r := &g.r
	i := r.n(118) + r.n(118) + r.n(118)
	p := g.ladder[i] / 100 * 100
	switch e := r.n(10); {
	case e < 7:
		p += 99
	case e < 9:
		p += 49
	}
	return min(max(p, minPrice), maxPrice)
}

func (g *productGen) appendRows(b []byte, id int64) ([]byte, int) {
	r := &g.r
	r.reset(id)
	cat := pick(r, g.v.categories)
	item := pick(r, cat.items)
	adj := pick(r, g.v.adjectives)
	material := pick(r, g.v.materials)
	withMaterial := r.percent(70)
	feature := pick(r, g.v.features)
	price := g.price()
	currency := "USD"
	switch c := r.n(100); {
	case c >= 92:
		currency = "GBP"
	case c >= 80:
		currency = "EUR"
	}
	updatedAt := EpochUnix - 1 - r.n64(180*day)

	b = appendTupleHeader(b, productFields)
	b = appendInt64Field(b, id)

	var at int
	b, at = beginField(b)
	b = append(b, "SKU-"...)
	b = appendPadded(b, id, 7)
	b = append(b, '-', byte('A'+r.n(26)), byte('A'+r.n(26)))
	b = endField(b, at)

	b, at = beginField(b)
	if id%oddEvery == oddOffset {
		b = append(b, g.v.oddProducts[(id/oddEvery)%int64(len(g.v.oddProducts))]...)
	} else {
		b = append(b, adj...)
		b = append(b, ' ')
		if withMaterial {
			b = append(b, material...)
			b = append(b, ' ')
		}
		b = append(b, item...)
	}
	b = endField(b, at)

	// "Rugged canvas backpack from our Sports & Outdoors range. Ships ..."
	b, at = beginField(b)
	b = append(b, adj...)
	b = append(b, ' ')
	if withMaterial {
		b = appendLowerASCII(b, material)
		b = append(b, ' ')
	}
	b = appendLowerASCII(b, item)
	b = append(b, " from our "...)
	b = append(b, cat.name...)
	b = append(b, " range. "...)
	b = append(b, feature...)
	b = endField(b, at)

	b = appendInt64Field(b, price)
	b = appendTextField(b, currency)
	b = appendTextField(b, cat.name)
	b = appendTimeField(b, updatedAt)
	if g.del.deleted(id) {
		b = appendTimeField(b, updatedAt) // the deletion was the last update
	} else {
		b = appendNullField(b)
	}
	return b, 1
}

// appendPadded appends v in decimal, zero-padded to at least width digits.
func appendPadded(b []byte, v int64, width int) []byte {
	var d [20]byte
	i := len(d)
	for v > 0 || len(d)-i < width {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[i:]...)
}

// appendLowerASCII appends s with capitals lowered where a lower-case letter
// follows them, so words read as in a sentence while acronyms stay:
// "USB Hub" becomes "USB hub", "T-Shirt" becomes "T-shirt".
func appendLowerASCII(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' && i+1 < len(s) && 'a' <= s[i+1] && s[i+1] <= 'z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}
