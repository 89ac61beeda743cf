package seed

import "strconv"

const day = 24 * 60 * 60

// userColumns are the users columns the generator writes, in tuple order.
const (
	userColumns = "user_id, username, email, last_active, created_at, deleted_at"
	userFields  = 6
)

// oddEvery places one row with an unusual string every this many ids
// (ids 17, 267, 517, ...), so even a small data set contains a few.
const (
	oddEvery  = 250
	oddOffset = 17
)

// userGen generates users: "maria.schmidt42" <maria.schmidt42@example.com>,
// last active in the 90 days before the epoch, created up to four years
// before that.
type userGen struct {
	v   *vocab
	r   rowRand
	del deletions
}

func newUserGen(v *vocab, seed int64) *userGen {
	return &userGen{v: v, r: newRowRand(seed, streamUsers), del: newDeletions(seed, streamUserDeletions)}
}

func (g *userGen) appendRows(b []byte, id int64) ([]byte, int) {
	r := &g.r
	r.reset(id)
	first, last := pick(r, g.v.first), pick(r, g.v.last)
	style := r.n(100)
	num := -1
	switch {
	case style < 70:
		num = r.n(1000)
	case style < 85:
		num = 1940 + r.n(70) // a birth year
	}
	domain := pick(r, g.v.domains)
	lastActive := EpochUnix - 1 - r.n64(90*day)
	createdAt := EpochUnix - 90*day - 1 - r.n64(4*365*day)

	b = appendTupleHeader(b, userFields)
	b = appendInt64Field(b, id)

	if id%oddEvery == oddOffset {
		odd := g.v.oddUsernames[(id/oddEvery)%int64(len(g.v.oddUsernames))]
		b = appendTextField(b, odd)
		var at int
		b, at = beginField(b)
		b = append(b, "user"...)
		b = strconv.AppendInt(b, id, 10)
		b = append(b, "@example.org"...)
		b = endField(b, at)
	} else {
		var at int
		b, at = beginField(b)
		b = appendUsername(b, first.lower, last.lower, style, num)
		b = endField(b, at)
		b, at = beginField(b)
		b = appendUsername(b, first.ascii, last.ascii, style, num)
		b = append(b, '@')
		b = append(b, domain...)
		b = endField(b, at)
	}

	b = appendTimeField(b, lastActive)
	b = appendTimeField(b, createdAt)
	if g.del.deleted(id) {
		b = appendTimeField(b, lastActive+r.n64(EpochUnix-lastActive))
	} else {
		b = appendNullField(b)
	}
	return b, 1
}

// appendUsername writes first.last42, first_last or firstlast1987 depending
// on style; num < 0 means no number.
func appendUsername(b []byte, first, last string, style, num int) []byte {
	b = append(b, first...)
	switch {
	case style < 70:
		b = append(b, '.')
	case style < 85:
	default:
		b = append(b, '_')
	}
	b = append(b, last...)
	if num >= 0 {
		b = strconv.AppendInt(b, int64(num), 10)
	}
	return b
}
