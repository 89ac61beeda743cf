package load

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// TestRecorderMemoryIsFlat: the recorder's memory does not grow with the
// number of requests, and a finished interval costs a bounded, small amount
// (compact histograms), so a 10-minute run holds 600 of them comfortably.
func TestRecorderMemoryIsFlat(t *testing.T) {
	perInterval := func(requests int) float64 {
		rec := newRecorder(64, false)
		col := newCollector(rec)
		r := rand.New(rand.NewPCG(1, 1))
		var ivs []Interval
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		const intervals = 60
		for i := range intervals {
			for j := range requests {
				// Mostly 0.2..5 ms, with a 200 ms outlier now and then.
				d := time.Duration(200+r.IntN(4800)) * time.Microsecond
				if j%997 == 0 {
					d = 200 * time.Millisecond
				}
				rec.record(j%64, outcome{part: measured, status: 200, corrected: d, uncorrected: d})
			}
			ivs = append(ivs, col.rotate(start.Add(time.Duration(i)*time.Second), start.Add(time.Duration(i+1)*time.Second), measured))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(rec)
		runtime.KeepAlive(col)
		var n, size int64
		for _, iv := range ivs {
			n += iv.Corrected.TotalCount()
			size += int64(iv.Corrected.ByteSize() + iv.Uncorrected.ByteSize())
		}
		t.Logf("%d requests per interval: histograms %d bytes, heap %d bytes per interval",
			requests, size/intervals, int64(after.HeapAlloc-before.HeapAlloc)/intervals)
		if n != int64(intervals*requests) {
			t.Fatalf("recorded %d of %d", n, intervals*requests)
		}
		return float64(after.HeapAlloc-before.HeapAlloc) / intervals
	}
	few, many := perInterval(1_000), perInterval(20_000)
	t.Logf("bytes per interval: %.0f with 1,000 requests each, %.0f with 20,000; a 10-minute run: %.0f MB",
		few, many, 600*many/1e6)
	if many > 1.5*few+20_000 {
		t.Errorf("memory per interval grows with requests: %.0f -> %.0f bytes", few, many)
	}
	// Two histograms reaching 200 ms are 2 × 72 KB compacted (2 × 136 KB in full).
	if many > 160_000 {
		t.Errorf("%.0f bytes per interval, want under 160 KB", many)
	}
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
