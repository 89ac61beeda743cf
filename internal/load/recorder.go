package load

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// The recorder turns completed requests into Intervals. Workers record into
// a few shards (a mutex, two HDR histograms and counters each; never a list
// of samples); once per interval the collector swaps every shard's live
// slots for empty ones and merges what was taken into its own scratch
// histograms, which it hands out as the closed Interval and reuses for the
// next one. Memory is therefore a fixed number of histograms, whatever the
// rate or the length of the run: the engine streams each closed interval to
// the interval log and keeps only its IntervalStats (see Recording).

// slot collects one interval's responses for one shard, for either the
// measured part of the run or the warm-up.
type slot struct {
	corrected   *hdrhistogram.Histogram
	uncorrected *hdrhistogram.Histogram
	statuses    [1000]int64 // by status code: any three digits
	errors      [numErrorKinds]int64
	// clamped counts the latencies above the histograms' range, recorded
	// at its top, by corrected (0) and uncorrected (1).
	clamped [2]int64
}

func newSlot() *slot {
	return &slot{corrected: NewHistogram(), uncorrected: NewHistogram()}
}

func (s *slot) reset() {
	s.corrected.Reset()
	s.uncorrected.Reset()
	s.statuses = [1000]int64{}
	s.errors = [numErrorKinds]int64{}
	s.clamped = [2]int64{}
}

// mergeInto adds s to dst and empties s.
func (s *slot) mergeInto(dst *slot) {
	if s.corrected.TotalCount() > 0 {
		dst.corrected.Merge(s.corrected)
		s.corrected.Reset()
	}
	if s.uncorrected.TotalCount() > 0 {
		dst.uncorrected.Merge(s.uncorrected)
		s.uncorrected.Reset()
	}
	for i, n := range s.statuses {
		if n != 0 {
			dst.statuses[i] += n
			s.statuses[i] = 0
		}
	}
	for i, n := range s.errors {
		dst.errors[i] += n
		s.errors[i] = 0
	}
	for i, n := range s.clamped {
		dst.clamped[i] += n
		s.clamped[i] = 0
	}
}

const (
	measured = 0
	warm     = 1
)

type shard struct {
	mu    sync.Mutex
	live  [2]*slot // indexed by measured / warm
	spare [2]*slot
	_     [64]byte // keep shards' locks on separate cache lines
}

// workerCounters are written by one worker and read by the collector.
type workerCounters struct {
	sent [2]atomic.Int64 // by measured / warm
	late [2]atomic.Int64
	busy atomic.Bool
	_    [64]byte
}

// recorder is shared by the workers and the collector of one run.
type recorder struct {
	shards   []shard
	counters []workerCounters
	// closed: corrected and uncorrected latency are the same thing (closed
	// model); only one histogram is kept and an interval's Uncorrected is
	// its Corrected, which halves the memory of a long run.
	closed bool
}

func newRecorder(workers int, closed bool) *recorder {
	n := min(workers, 2*runtime.GOMAXPROCS(0))
	r := &recorder{shards: make([]shard, max(n, 1)), counters: make([]workerCounters, workers), closed: closed}
	for i := range r.shards {
		for k := range 2 {
			r.shards[i].live[k] = newSlot()
			r.shards[i].spare[k] = newSlot()
		}
	}
	return r
}

// outcome is what one request came to.
type outcome struct {
	part        int // measured or warm
	status      int // 0 when the request failed
	err         errorKind
	corrected   time.Duration
	uncorrected time.Duration
	timedOut    bool
}

// record adds the outcome of a request of worker w. Latencies are recorded
// for responses and for timeouts (a timed-out user waited at least that
// long); other failures are only counted, since their instant failure would
// make the percentiles look better than the service is. A latency above
// the histograms' range is recorded at its top and counted as clamped.
func (r *recorder) record(w int, o outcome) {
	sh := &r.shards[w%len(r.shards)]
	sh.mu.Lock()
	s := sh.live[o.part]
	if o.status > 0 || o.timedOut {
		us, over := clampUS(o.corrected)
		s.corrected.RecordValue(us)
		if over {
			s.clamped[0]++
		}
		if !r.closed {
			us, over = clampUS(o.uncorrected)
			s.uncorrected.RecordValue(us)
			if over {
				s.clamped[1]++
			}
		}
	}
	if o.status > 0 {
		if o.status < len(s.statuses) {
			s.statuses[o.status]++
		} else {
			s.statuses[0]++
		}
	} else {
		s.errors[o.err]++
	}
	sh.mu.Unlock()
}

// clampUS converts d to whole microseconds within the histogram's range;
// over reports a latency above the range, which is then HistMaxUS.
func clampUS(d time.Duration) (us int64, over bool) {
	us = int64(d / time.Microsecond)
	if us < HistMinUS {
		return HistMinUS, false
	}
	if us > HistMaxUS {
		return HistMaxUS, true
	}
	return us, false
}

// collector builds intervals from the recorder.
type collector struct {
	rec      *recorder
	acc      [2]*slot // scratch accumulators, by measured / warm
	handed   *slot    // the accumulator whose histograms the last rotate returned
	prevSent [2]int64 // counter totals at the last rotation
	prevLate [2]int64
	unsent   int64 // added to the next measured interval as Errors[unsent]
}

func newCollector(rec *recorder) *collector {
	return &collector{rec: rec, acc: [2]*slot{newSlot(), newSlot()}}
}

// rotate closes the interval [start, end) of the given part and returns it.
// Its histograms are the collector's scratch, valid until the next rotate:
// write them out or merge them, never keep them.
func (c *collector) rotate(start, end time.Time, part int) Interval {
	if c.handed != nil {
		c.handed.reset()
		c.handed = nil
	}
	for i := range c.rec.shards {
		sh := &c.rec.shards[i]
		sh.mu.Lock()
		sh.live, sh.spare = sh.spare, sh.live
		sh.mu.Unlock()
		for k := range 2 {
			sh.spare[k].mergeInto(c.acc[k])
		}
	}
	var sent, late [2]int64
	var inflight int64
	for i := range c.rec.counters {
		w := &c.rec.counters[i]
		for k := range 2 {
			sent[k] += w.sent[k].Load()
			late[k] += w.late[k].Load()
		}
		if w.busy.Load() {
			inflight++
		}
	}
	iv := Interval{
		Start:     start,
		End:       end,
		Statuses:  map[int]int64{},
		Errors:    map[string]int64{},
		LateSends: late[part] - c.prevLate[part],
		Sent:      sent[part] - c.prevSent[part],
		InFlight:  inflight,
	}
	c.prevSent[part], c.prevLate[part] = sent[part], late[part]
	a := c.acc[part]
	for code, n := range a.statuses {
		if n != 0 {
			iv.Statuses[code] = n
		}
	}
	for k, n := range a.errors {
		if n != 0 {
			iv.Errors[errorKind(k).String()] = n
		}
	}
	if part == measured && c.unsent > 0 {
		iv.Errors[ErrUnsent] += c.unsent
		c.unsent = 0
	}
	iv.Corrected = a.corrected
	iv.ClampedCorrected = a.clamped[0]
	if c.rec.closed {
		iv.Uncorrected = iv.Corrected
		iv.ClampedUncorrected = iv.ClampedCorrected
	} else {
		iv.Uncorrected = a.uncorrected
		iv.ClampedUncorrected = a.clamped[1]
	}
	c.handed = a // emptied by the next rotate, once the caller is done with it
	// Measured requests may leave (and even complete) before the collector
	// wakes up to close the warm-up: what they recorded stays in acc and
	// their sends in the counters, for the first measured interval. Warm-up
	// requests that complete after the warm-up are not measured: dropped.
	if part == measured {
		c.acc[warm].reset()
	}
	return iv
}
