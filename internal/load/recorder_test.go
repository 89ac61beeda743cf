package load

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// TestMemoryFlatOverIntervals: what a run holds does not grow with its
// length beyond each interval's stats. It drives the recorder, collector,
// interval log and Recording as the engine does (keepInterval), 600
// simulated one-second intervals, and compares the live heap after 10 and
// after 600 of them. Keeping each interval's histograms, even compacted,
// would cost tens of KB per interval (2 × 72 KB when values reach 200 ms):
// over 590 intervals, far beyond the bound.
//
// Under the race detector the interval log is left out (the run without
// --out): encoding 1,200 histograms there takes about 20 s on two cores,
// and the writer holds nothing from one interval to the next.
func TestMemoryFlatOverIntervals(t *testing.T) {
	const (
		workers     = 1   // one shard: fewer merges per interval, the same code
		requests    = 200 // per interval
		perInterval = 1024
	)
	rec := newRecorder(workers, false)
	col := newCollector(rec)
	run := &Recording{Meta: Meta{Model: "open"}} // no preallocated stats: growth shows
	var log countingWriter
	var hw *HlogWriter
	start := time.Now()
	if !raceEnabled {
		hw = NewHlogWriter(&log)
		if err := hw.WriteHeader(run.Meta, start); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(1, 1))
	interval := func(i int) {
		for j := range requests {
			// Mostly 0.2..5 ms, with a 200 ms outlier now and then, which
			// widens the range a kept histogram would need.
			d := time.Duration(200+r.IntN(4800)) * time.Microsecond
			if j%97 == 0 {
				d = 200*time.Millisecond + time.Duration(r.IntN(1000))*time.Microsecond
			}
			rec.record(j%workers, outcome{part: measured, status: 200, corrected: 2 * d, uncorrected: d})
		}
		iv := col.rotate(start.Add(time.Duration(i)*time.Second), start.Add(time.Duration(i+1)*time.Second), measured)
		keepInterval(run, hw, iv)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}

	for i := range 10 {
		interval(i)
	}
	at10 := heap()
	for i := 10; i < 600; i++ {
		interval(i)
	}
	at600 := heap()
	runtime.KeepAlive(rec)
	runtime.KeepAlive(col)
	runtime.KeepAlive(run)
	runtime.KeepAlive(hw)

	growth := int64(at600) - int64(at10)
	t.Logf("live heap %d bytes after 10 intervals, %d after 600: %d bytes per interval; interval log %d bytes",
		at10, at600, growth/590, log.n)
	// The stats are about 200 bytes an interval; the slice holding them
	// doubles as it grows, which can take up to 2.5 times that on average.
	if growth > 590*perInterval {
		t.Errorf("live heap grew by %d bytes over 590 intervals (%d per interval), want under %d per interval",
			growth, growth/590, perInterval)
	}
	if hw != nil && hw.Err() != nil {
		t.Fatal(hw.Err())
	}
	if n := run.Corrected.TotalCount(); n != 600*requests || len(run.Intervals) != 600 || run.Statuses[200] != 600*requests {
		t.Errorf("recorded %d latencies, %d intervals, %d responses; want %d, 600, %d", n, len(run.Intervals), run.Statuses[200], 600*requests, 600*requests)
	}
	if p := run.Intervals[599].Corrected; p.Count != requests || p.Max < 400_000 {
		t.Errorf("last interval's stats %+v", p)
	}
}

// countingWriter counts and discards what is written to it.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

func TestCompactIsLossless(t *testing.T) {
	h := NewHistogram()
	for v := int64(1); v < 3_000_000; v = v*11/10 + 1 {
		h.RecordValue(v)
	}
	c := compact(h)
	if !c.Equals(h) && (c.TotalCount() != h.TotalCount() || c.Max() != h.Max()) {
		t.Fatal("compact copy differs")
	}
	for _, q := range []float64{1, 50, 90, 99, 99.9, 100} {
		if a, b := h.ValueAtQuantile(q), c.ValueAtQuantile(q); a != b {
			t.Errorf("p%v: %d vs %d", q, a, b)
		}
	}
	// Merging the compact copy into a full histogram drops nothing.
	full := NewHistogram()
	if dropped := full.Merge(c); dropped != 0 || full.TotalCount() != h.TotalCount() {
		t.Errorf("dropped %d", dropped)
	}
	if c.ByteSize() >= h.ByteSize() {
		t.Errorf("compact copy is %d bytes, full %d", c.ByteSize(), h.ByteSize())
	}
}

func TestMaxOfIsMax(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, h := range []*hdrhistogram.Histogram{NewHistogram(), newCompactHistogram(0), newCompactHistogram(5000)} {
		if got, want := maxOf(h), h.Max(); got != want {
			t.Errorf("empty: maxOf %d, Max %d", got, want)
		}
		for range 200 {
			mustRecord(t, h, 1+r.Int64N(min(h.HighestTrackableValue(), 1+r.Int64N(HistMaxUS))))
			if got, want := maxOf(h), h.Max(); got != want {
				t.Fatalf("maxOf %d, Max %d", got, want)
			}
		}
	}
}
