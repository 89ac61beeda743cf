package load

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxRate bounds any requested arrival rate; beyond it a schedule is taken
// for a typo rather than a plan.
const MaxRate = 10_000_000

// A Pacer is the schedule of an open-model run: it gives the intended send
// time of every request as an offset from the start of the run. Request n
// (counting from 0) must leave at Offset(n); the engine measures corrected
// latency from that instant, whether or not the request could leave on time.
type Pacer interface {
	// Offset returns the intended send time of request n and false when the
	// schedule ends before request n.
	Offset(n int64) (time.Duration, bool)
	// Rate returns the intended arrival rate (requests/s) at offset d.
	Rate(d time.Duration) float64
	// Duration returns the length of the schedule.
	Duration() time.Duration
}

// ConstantPacer sends Freq requests per second, evenly spaced, for Length.
type ConstantPacer struct {
	Freq   float64
	Length time.Duration
}

var _ Pacer = ConstantPacer{}

// Offset implements Pacer: request n leaves at n/Freq.
func (p ConstantPacer) Offset(n int64) (time.Duration, bool) {
	if p.Freq <= 0 || n < 0 {
		return 0, false
	}
	ns := float64(n) / p.Freq * 1e9
	if !(ns < float64(p.Length)) {
		// Past the end; at a tiny rate also past what a Duration holds,
		// where the conversion below would wrap around.
		return p.Length, false
	}
	d := time.Duration(ns)
	return d, d < p.Length
}

// Rate implements Pacer.
func (p ConstantPacer) Rate(time.Duration) float64 { return p.Freq }

// Duration implements Pacer.
func (p ConstantPacer) Duration() time.Duration { return p.Length }

// A Stage is one leg of a staged schedule: the rate moves linearly from the
// previous stage's target (or the pacer's start rate) to Target over Length.
type Stage struct {
	Length time.Duration
	Target float64
}

// ParseStages parses "30s:1000,60s:5000,30s:0": comma-separated
// duration:target pairs.
func ParseStages(spec string) ([]Stage, error) {
	var stages []Stage
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		d, r, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("stage %q: want DURATION:RATE, e.g. 30s:1000", part)
		}
		length, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil || length <= 0 {
			return nil, fmt.Errorf("stage %q: duration must be positive, e.g. 30s", part)
		}
		target, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil {
			return nil, fmt.Errorf("stage %q: rate %q is not a number of requests/s", part, strings.TrimSpace(r))
		}
		if target < 0 || target > MaxRate || math.IsNaN(target) {
			return nil, fmt.Errorf("stage %q: rate must be between 0 and %d requests/s", part, MaxRate)
		}
		stages = append(stages, Stage{Length: length, Target: target})
	}
	var any bool
	for _, s := range stages {
		any = any || s.Target > 0
	}
	if !any {
		return nil, fmt.Errorf("stages %q: every stage has rate 0, nothing would be sent", spec)
	}
	return stages, nil
}

// StagedPacer ramps the arrival rate linearly through Stages, starting from
// Start requests/s. The intended time of request n is where the integral of
// the rate reaches n, so a ramp is smooth rather than a staircase.
type StagedPacer struct {
	Start  float64
	Stages []Stage
}

var _ Pacer = StagedPacer{}

// Offset implements Pacer by inverting the rate integral of the stage that
// holds request n.
func (p StagedPacer) Offset(n int64) (time.Duration, bool) {
	if n < 0 {
		return 0, false
	}
	var (
		begin time.Duration // start of the current stage
		done  float64       // requests scheduled before it
		from  = p.Start
	)
	target := float64(n)
	for _, s := range p.Stages {
		secs := s.Length.Seconds()
		count := (from + s.Target) / 2 * secs
		if target < done+count {
			// Within the stage the rate is a + k·t with k = (b-a)/T, so
			// a·t + k·t²/2 = m; this root form stays exact when k is 0
			// and when k is negative (a ramp down).
			m := target - done
			a := from
			k := (s.Target - from) / secs
			t := 2 * m / (a + math.Sqrt(math.Max(a*a+2*k*m, 0)))
			if math.IsNaN(t) || math.IsInf(t, 0) {
				t = 0
			}
			return begin + time.Duration(t*1e9), true
		}
		done += count
		begin += s.Length
		from = s.Target
	}
	return 0, false
}

// Rate implements Pacer.
func (p StagedPacer) Rate(d time.Duration) float64 {
	from := p.Start
	var begin time.Duration
	for _, s := range p.Stages {
		if d < begin+s.Length {
			f := float64(d-begin) / float64(s.Length)
			return from + (s.Target-from)*f
		}
		begin += s.Length
		from = s.Target
	}
	return from
}

// Duration implements Pacer.
func (p StagedPacer) Duration() time.Duration {
	var d time.Duration
	for _, s := range p.Stages {
		d += s.Length
	}
	return d
}

// Count returns how many requests a pacer schedules in all, found by
// bisection on Offset. It is meant for tests and planning, not the hot path.
func Count(p Pacer) int64 {
	hi := int64(1)
	for {
		if _, ok := p.Offset(hi); !ok {
			break
		}
		hi *= 2
	}
	lo := int64(0) // smallest n whose Offset fails lies in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		if _, ok := p.Offset(mid); ok {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// withWarmup prefixes a pacer with a warm-up at a constant rate. Requests of
// the warm-up come first; Offset of the main schedule is shifted by the
// warm-up's length.
type withWarmup struct {
	warm  ConstantPacer
	n     int64 // requests in the warm-up
	main  Pacer
	shift time.Duration
}

func newWithWarmup(warm ConstantPacer, main Pacer) *withWarmup {
	w := &withWarmup{warm: warm, main: main, shift: warm.Length}
	if warm.Freq > 0 && warm.Length > 0 {
		w.n = Count(warm)
	}
	return w
}

func (w *withWarmup) Offset(n int64) (time.Duration, bool) {
	if n < w.n {
		return w.warm.Offset(n)
	}
	d, ok := w.main.Offset(n - w.n)
	return w.shift + d, ok
}

func (w *withWarmup) Rate(d time.Duration) float64 {
	if d < w.shift {
		return w.warm.Freq
	}
	return w.main.Rate(d - w.shift)
}

func (w *withWarmup) Duration() time.Duration { return w.shift + w.main.Duration() }
