package seed

import (
	"math/bits"
	"math/rand/v2"
)

// Stream numbers keep the tables' random streams apart.
const (
	streamUsers uint64 = iota + 1
	streamProducts
	streamInventory
	streamInventoryLevels
	streamUserDeletions
	streamProductDeletions
)

// mix64 is the SplitMix64 finaliser: a bijection on uint64 that spreads
// neighbouring inputs (ids 1, 2, 3...) over unrelated outputs.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// streamBase derives the key of one table's streams from the user's seed.
func streamBase(seed int64, stream uint64) uint64 {
	return mix64(uint64(seed) ^ mix64(stream))
}

// rowRand is a PCG generator re-seeded for every row from (stream, id), so a
// row's values depend only on the seed, the table and the id. Bounded draws
// are done here (multiply-shift) rather than by rand.Rand so the output is
// defined by PCG and this file alone. Not safe for concurrent use; it does not
// allocate.
type rowRand struct {
	base uint64
	pcg  rand.PCG
}

func newRowRand(seed int64, stream uint64) rowRand {
	return rowRand{base: streamBase(seed, stream)}
}

// reset positions the generator at the start of id's stream.
func (r *rowRand) reset(id int64) {
	r.pcg.Seed(r.base, mix64(r.base^uint64(id)))
}

// n returns a value in [0, k). k must be positive. The bias of
// multiply-shift without rejection is below k/2^64, far too small to matter.
func (r *rowRand) n(k int) int {
	hi, _ := bits.Mul64(r.pcg.Uint64(), uint64(k))
	return int(hi)
}

// n64 is n for int64 bounds.
func (r *rowRand) n64(k int64) int64 {
	hi, _ := bits.Mul64(r.pcg.Uint64(), uint64(k))
	return int64(hi)
}

// percent reports true with probability p/100.
func (r *rowRand) percent(p int) bool { return r.n(100) < p }

// pick returns a random element of list.
func pick[T any](r *rowRand, list []T) T { return list[r.n(len(list))] }

// deletions chooses the soft-deleted rows of a table: exactly one id in every
// complete block of 100 consecutive ids (so 1% of a table), at an offset
// derived from the seed and the block number. A trailing partial block gets
// its deleted row only if the chosen offset falls inside it.
type deletions struct{ base uint64 }

func newDeletions(seed int64, stream uint64) deletions {
	return deletions{base: streamBase(seed, stream)}
}

func (d deletions) deleted(id int64) bool {
	if id < 1 {
		return false
	}
	block, off := uint64(id-1)/100, uint64(id-1)%100
	return mix64(d.base^block)%100 == off
}
