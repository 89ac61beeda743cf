package httpapi

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Admission control for the database-backed routes: an adaptive limit on
// the requests in flight, in the spirit of Netflix's concurrency-limits
// gradient limiter. A request over the limit is refused at once with 503
// and Retry-After, so that under overload the admitted requests keep their
// unloaded latency and the rest learn within a millisecond to come back
// later, instead of everyone waiting for a pooled connection until the
// acquire timeout.
//
// Why adaptive rather than a fixed limit: the right number of requests in
// flight is capacity times latency, and both move (coalescing turns many
// lookups into one query, the database slows down, the machine is shared).
// A fixed limit set for one of those is too low (refusing work that could
// be served) or too high (letting a queue build) for another. The limiter
// instead watches the latency of successful requests per window: while it
// stays within Tolerance of the no-load latency the limit may grow; when
// it rises, requests are queueing somewhere downstream and the limit
// shrinks in proportion.
//
// The no-load latency is the average latency of the windows in which the
// limit was not in use, followed slowly: the typical latency of this server
// on this machine, noise included, not its best moment (the minimum, which
// Vegas-style limiters use, is far below the typical latency on a shared
// machine, and the limit would then shrink on noise alone).
//
// The limit only moves while it is being used (the window's peak in-flight
// reached half of it): a latency rise with few requests in flight is not
// queueing caused by this server, and a quiet server keeps its limit.
// Failures (database down, timeouts) are not latency samples, and a window
// with more than a tenth of failures leaves the limit alone: requests
// piling up behind a dead database are not load the limit should answer,
// and shrinking then would keep refusing work after the database is back.
// The limit moves by the gradient itself, between halving and growing by
// half per window, so it finds its level again within a second.
const (
	admissionWindow     = 100 * time.Millisecond
	admissionMinSamples = 16
	// Tolerance is how much slower than the no-load latency a window may be
	// before the limit shrinks.
	admissionTolerance = 1.5
	// A window counts as using the limit when its peak in-flight reached
	// this fraction of it.
	admissionSaturated = 0.5
	admissionMinLimit  = 8
	admissionMinGrad   = 0.5 // most a limit shrinks in one window
	admissionMaxGrad   = 1.5 // most it grows in one window
	admissionNoLoadEMA = 0.1 // how fast the no-load latency follows a server below its limit
)

// admission is the limiter. Its hot path is three atomic operations.
type admission struct {
	inFlight atomic.Int64
	limit    atomic.Int64
	refused  atomic.Uint64

	winStart atomic.Int64 // UnixNano of the window's start
	rttSum   atomic.Int64 // nanoseconds, successful requests of the window
	rttCount atomic.Int64
	fails    atomic.Int64 // failed requests of the window
	peak     atomic.Int64 // highest in-flight seen in the window

	mu       sync.Mutex // held by the one goroutine updating the limit
	cur      float64    // the limit, unrounded
	noLoad   float64    // no-load latency estimate, nanoseconds
	maxLimit float64
}

// newAdmission returns a limiter starting at (and never above) maxInFlight.
func newAdmission(maxInFlight int) *admission {
	a := &admission{cur: float64(maxInFlight), maxLimit: float64(maxInFlight)}
	a.limit.Store(int64(maxInFlight))
	a.winStart.Store(time.Now().UnixNano())
	return a
}

// acquire admits a request or refuses it.
func (a *admission) acquire() bool {
	n := a.inFlight.Add(1)
	if n > a.limit.Load() {
		a.inFlight.Add(-1)
		a.refused.Add(1)
		return false
	}
	if n > a.peak.Load() {
		a.peak.Store(n) // a racy maximum is close enough
	}
	return true
}

// release ends an admitted request that started at start; ok says whether
// it succeeded (its latency is then a sample).
func (a *admission) release(start time.Time, ok bool) {
	a.inFlight.Add(-1)
	if !ok {
		a.fails.Add(1)
		return
	}
	now := time.Now()
	a.rttSum.Add(int64(now.Sub(start)))
	if a.rttCount.Add(1) >= admissionMinSamples && now.UnixNano()-a.winStart.Load() >= int64(admissionWindow) && a.mu.TryLock() {
		a.update(now)
		a.mu.Unlock()
	}
}

// update closes the window and moves the limit.
func (a *admission) update(now time.Time) {
	n, sum, fails := a.rttCount.Swap(0), a.rttSum.Swap(0), a.fails.Swap(0)
	peak := a.peak.Swap(a.inFlight.Load())
	a.winStart.Store(now.UnixNano())
	if n == 0 || fails*10 > n {
		return
	}
	avg := float64(sum) / float64(n)
	saturated := float64(peak) >= a.cur*admissionSaturated
	if a.noLoad == 0 {
		a.noLoad = avg
	}
	if !saturated {
		a.noLoad += (avg - a.noLoad) * admissionNoLoadEMA
		return
	}
	g := math.Min(math.Max(admissionTolerance*a.noLoad/avg, admissionMinGrad), admissionMaxGrad)
	a.cur = a.cur*g + 1
	a.cur = math.Min(math.Max(a.cur, admissionMinLimit), a.maxLimit)
	a.limit.Store(int64(a.cur))
}

// admit is called at the start of every route. For a database-backed one
// it returns false after answering 503 when the request is refused;
// otherwise the caller must call s.admitted(ctx, start) once the response
// is written.
func (s *Server) admit(ctx *fasthttp.RequestCtx, r route) (start time.Time, ok bool) {
	if s.adm == nil || !usesDatabase(r) {
		return time.Time{}, true
	}
	if !s.adm.acquire() {
		s.writeError(ctx, fasthttp.StatusServiceUnavailable, "server overloaded, retry later")
		return time.Time{}, false
	}
	return time.Now(), true
}

// admitted releases a request admit let in.
func (s *Server) admitted(ctx *fasthttp.RequestCtx, start time.Time) {
	if !start.IsZero() {
		s.adm.release(start, ctx.Response.StatusCode() < 500)
	}
}

func usesDatabase(r route) bool {
	switch r {
	case routeUser, routeProduct, routeProductBySKU, routeProducts, routeInventory:
		return true
	}
	return false
}
