package httpapi

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
// flight is throughput times latency, and both move (coalescing turns many
// lookups into one query, the database slows down, the machine is shared).
// A fixed limit set for one of those is too low (refusing work that could
// be served) or too high (letting a queue build) for another.
//
// How it adapts. The limit starts at its ceiling and only moves in windows
// where it was reached (some request was refused): below it the server is
// not the one queueing, whatever the latency, and a latency rise there
// (the database got slower, the machine is busy) is absorbed by having
// more requests in flight, not answered by refusing them. In a window at
// the limit:
//   - if the admitted requests kept a median latency within Tolerance of
//     the typical one, the limit grows (by up to a tenth);
//   - if their latency rose and the limit turned away a real share of the
//     arrivals (pinned), they are queueing downstream (for a pooled
//     connection, a batch slot, the CPU) and the limit shrinks in
//     proportion (by at most a fifth); a limit that only clipped a burst
//     does not shrink;
//   - if more than a tenth of them failed while at least half the limit
//     was in flight (a pool that times out with that many requests waiting
//     is a queue that overflowed), it halves. Failures with few requests in
//     flight (a database that refuses connections) leave it alone.
//
// A window without refusals but with half the limit in flight is a lull in
// an overload and changes nothing. Below that, with a healthy latency, the
// limit goes back up to the
// ceiling (by half per window, from the floor in about a second), so that
// after an overload the next burst, or a slower database that needs more
// requests in flight, finds room again.
//
// The typical latency follows the median latency of the windows below the
// limit, quickly down and slowly up: this server's latency on this
// machine, noise included, without the queueing of a busy spell. (The
// minimum, which Vegas-style limiters use, is far below the typical
// latency on a shared machine, and a limit reached during a burst would
// then shrink on noise alone; the median ignores the odd stalled request
// that moves a mean.) A dead database makes requests fail fast, or hang
// until their deadline with the in-flight count far below the ceiling:
// either way the limit does not move, so nothing is refused for the
// limiter's sake once the database is back. (A blackhole under enough load
// to fill half the limit does halve it; once the database answers again
// the limit is back at its ceiling within about a second.)
const (
	admissionWindow     = 100 * time.Millisecond
	admissionMinSamples = 16
	// Tolerance is how much slower than the typical latency a window at the
	// limit may be before the limit shrinks.
	admissionTolerance  = 1.2
	admissionMinLimit   = 8
	admissionMinGrad    = 0.8  // most a limit shrinks in one window on latency
	admissionMaxGrad    = 1.1  // most it grows in one window
	admissionOverflow   = 0.5  // what it shrinks by when requests time out at the limit
	admissionIdleGrowth = 1.5  // how it grows back per healthy window below it
	admissionPinned     = 0.02 // share of arrivals refused that makes a window pinned
	// How fast the typical latency follows the medians of windows below the
	// limit: quickly down, slowly up, so that a busy spell that queues
	// below the limit (and the noise of a shared machine) raises it little.
	admissionTypicalDown = 0.3
	admissionTypicalUp   = 0.05
)

// Latency buckets: four per doubling from 1 µs, up to about 4 s.
const latBuckets = 4 * 22

func latBucket(d time.Duration) int {
	us := uint64(max(d.Microseconds(), 1))
	exp := bits.Len64(us) - 1 // us in [2^exp, 2^(exp+1))
	sub := 0
	if exp >= 2 {
		sub = int(us>>(exp-2)) & 3
	}
	return min(exp*4+sub, latBuckets-1)
}

// latBucketValue is a bucket's lower bound.
func latBucketValue(i int) time.Duration {
	exp, sub := i/4, i%4
	if exp < 2 {
		return time.Duration(1<<exp) * time.Microsecond
	}
	return time.Duration((4+sub)<<(exp-2)) * time.Microsecond
}

// admission is the limiter. Its hot path is a few atomic operations.
type admission struct {
	inFlight atomic.Int64
	limit    atomic.Int64
	refused  atomic.Int64 // since the start

	winStart atomic.Int64 // UnixNano of the window's start
	oks      atomic.Int64 // successful requests of the window
	fails    atomic.Int64 // failed requests of the window
	peak     atomic.Int64 // most requests in flight during the window
	lat      [latBuckets]atomic.Int64

	mu          sync.Mutex // held by the one goroutine updating the limit
	cur         float64    // the limit, unrounded
	typical     float64    // typical median latency, nanoseconds; 0 until measured
	maxLimit    float64
	lastRefused int64
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
	now := time.Now()
	var n int64
	if ok {
		a.lat[latBucket(now.Sub(start))].Add(1)
		n = a.oks.Add(1)
	} else {
		n = a.fails.Add(1)
	}
	if n >= admissionMinSamples && now.UnixNano()-a.winStart.Load() >= int64(admissionWindow) && a.mu.TryLock() {
		a.update(now)
		a.mu.Unlock()
	}
}

// update closes the window and moves the limit.
func (a *admission) update(now time.Time) {
	var hist [latBuckets]int64
	for i := range a.lat {
		hist[i] = a.lat[i].Swap(0)
	}
	oks, fails := a.oks.Swap(0), a.fails.Swap(0)
	peak := a.peak.Swap(a.inFlight.Load())
	a.winStart.Store(now.UnixNano())
	refused := a.refused.Load() - a.lastRefused
	a.lastRefused += refused
	pinned := float64(refused) >= admissionPinned*float64(oks+fails+refused)

	var g float64
	switch {
	case fails*10 > oks+fails:
		if float64(peak) < a.cur/2 {
			return
		}
		g = admissionOverflow
	case oks == 0:
		return
	default:
		var median float64
		for i, seen := 0, int64(0); i < latBuckets; i++ {
			if seen += hist[i]; 2*seen >= oks {
				median = float64(latBucketValue(i))
				break
			}
		}
		if a.typical == 0 {
			a.typical = median
		}
		if refused == 0 {
			if float64(peak) >= a.cur/2 {
				return // a lull in an overload, not a server below its limit
			}
			rate := admissionTypicalUp
			if median < a.typical {
				rate = admissionTypicalDown
			}
			a.typical += (median - a.typical) * rate
			if a.cur >= a.maxLimit || median > admissionTolerance*a.typical {
				return
			}
			g = admissionIdleGrowth // overload is over: drift back to the ceiling
			break
		}
		g = math.Min(math.Max(admissionTolerance*a.typical/median, admissionMinGrad), admissionMaxGrad)
		if !pinned {
			g = math.Max(g, 1) // a clipped burst: never shrink for it
		}
	}
	a.cur = math.Min(math.Max(a.cur*g+1, admissionMinLimit), a.maxLimit)
	a.limit.Store(int64(a.cur))
}

// AdmissionCollector exports the limiter: its current limit, the requests
// it holds in flight and those it refused. Nil when shedding is off.
func (s *Server) AdmissionCollector() prometheus.Collector {
	if s.adm == nil {
		return nil
	}
	return admissionCollector{s.adm}
}

var (
	admLimitDesc = prometheus.NewDesc("storefront_admission_limit",
		"Adaptive limit on database-backed requests in flight (--shed).", nil, nil)
	admInFlightDesc = prometheus.NewDesc("storefront_admission_in_flight",
		"Database-backed requests admitted and not finished.", nil, nil)
	admRefusedDesc = prometheus.NewDesc("storefront_admission_refused_total",
		"Requests refused with 503 because the limit was reached.", nil, nil)
)

type admissionCollector struct{ a *admission }

func (c admissionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- admLimitDesc
	ch <- admInFlightDesc
	ch <- admRefusedDesc
}

func (c admissionCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(admLimitDesc, prometheus.GaugeValue, float64(c.a.limit.Load()))
	ch <- prometheus.MustNewConstMetric(admInFlightDesc, prometheus.GaugeValue, float64(c.a.inFlight.Load()))
	ch <- prometheus.MustNewConstMetric(admRefusedDesc, prometheus.CounterValue, float64(c.a.refused.Load()))
}
