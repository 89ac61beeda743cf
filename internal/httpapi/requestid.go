package httpapi

import (
	"crypto/rand"
	"strconv"
	"sync/atomic"
)

// maxRequestIDLen bounds a caller's X-Request-ID.
const maxRequestIDLen = 128

// validRequestID reports whether a caller's id can be echoed as is:
// 1-128 characters of [A-Za-z0-9._-].
func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestIDLen {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// requestIDs generates ids unique across restarts and processes: a random
// per-process prefix and a counter, so generating one is a single atomic
// add and no allocation.
type requestIDs struct {
	prefix []byte
	seq    atomic.Uint64
}

func newRequestIDs() *requestIDs {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var raw [10]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails on supported platforms
	p := make([]byte, 0, len(raw)+1)
	for _, c := range raw {
		p = append(p, alphabet[int(c)%len(alphabet)])
	}
	return &requestIDs{prefix: append(p, '-')}
}

// appendNext appends a fresh id to b.
func (g *requestIDs) appendNext(b []byte) []byte {
	b = append(b, g.prefix...)
	return strconv.AppendUint(b, g.seq.Add(1), 36)
}
