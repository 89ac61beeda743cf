package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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

// TestClampedLatenciesAreReported: latencies above the histograms' range
// (60 s; an overloaded open-model run queues requests for longer, and a
// --timeout may be longer) are recorded at its top and counted, per
// interval and in total. The counts reach the interval log, summary.json
// and the text and HTML reports, survive a merge, and percentiles at the
// top are not taken to meet an SLO: they are lower bounds.
func TestClampedLatenciesAreReported(t *testing.T) {
	rec := newRecorder(2, false)
	col := newCollector(rec)
	run := &Recording{Meta: Meta{Target: "http://t", Model: "open", TargetRate: 100, Connections: 2, Started: reportTestStart}}
	var hlog bytes.Buffer
	hw := NewHlogWriter(&hlog)
	hw.WriteHeader(run.Meta, reportTestStart)
	ok := func(w int, corrected, uncorrected time.Duration) {
		rec.record(w, outcome{part: measured, status: 200, corrected: corrected, uncorrected: uncorrected})
	}
	// First second: 97 quick responses, 2 after 90 s of queueing (sent 50 s
	// late, so 40 s uncorrected) and a timeout 70 s after its intended
	// time, 65 s after it left: 3 corrected and 1 uncorrected latency over
	// the range. Second: 99 quick ones and one of 61 s.
	for i := range 97 {
		ok(i, 5*time.Millisecond, 4*time.Millisecond)
	}
	ok(0, 90*time.Second, 40*time.Second)
	ok(1, 90*time.Second, 40*time.Second)
	rec.record(0, outcome{part: measured, err: kindTimeout, timedOut: true, corrected: 70 * time.Second, uncorrected: 65 * time.Second})
	keepInterval(run, hw, col.rotate(reportTestStart, reportTestStart.Add(time.Second), measured))
	for i := range 99 {
		ok(i, 5*time.Millisecond, 4*time.Millisecond)
	}
	ok(1, 61*time.Second, 61*time.Second)
	keepInterval(run, hw, col.rotate(reportTestStart.Add(time.Second), reportTestStart.Add(2*time.Second), measured))
	if hw.Err() != nil {
		t.Fatal(hw.Err())
	}
	for _, want := range []string{`"clamped_corrected":3,"clamped_uncorrected":1}`, `"clamped_corrected":1,"clamped_uncorrected":1}`} {
		if !strings.Contains(hlog.String(), want) {
			t.Errorf("interval log lacks %s:\n%s", want, hlog.String())
		}
	}

	slo, err := ParseSLO("p99<90s,max<120s,p50<1s")
	if err != nil {
		t.Fatal(err)
	}
	checkReports := func(name string, rec *Recording, corrected, uncorrected int64) {
		t.Helper()
		dir := t.TempDir()
		if err := WriteReports(dir, rec, slo); err != nil {
			t.Fatal(err)
		}
		var sum struct {
			Corrected struct {
				Clamped int64   `json:"clamped"`
				P99MS   float64 `json:"p99_ms"`
			} `json:"corrected"`
			Uncorrected struct {
				Clamped int64 `json:"clamped"`
			} `json:"uncorrected"`
			SLO struct {
				OK       bool     `json:"ok"`
				Failures []string `json:"failures"`
			} `json:"slo"`
		}
		b, _ := os.ReadFile(filepath.Join(dir, "summary.json"))
		if err := json.Unmarshal(b, &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Corrected.Clamped != corrected || sum.Uncorrected.Clamped != uncorrected {
			t.Errorf("%s: summary.json counts %d corrected and %d uncorrected latencies over the range, want %d and %d",
				name, sum.Corrected.Clamped, sum.Uncorrected.Clamped, corrected, uncorrected)
		}
		// The histograms keep their range: the p99 shows as the top bucket.
		if sum.Corrected.P99MS < 59_000 || sum.Corrected.P99MS > 61_000 {
			t.Errorf("%s: corrected p99 %v ms, want the top bucket", name, sum.Corrected.P99MS)
		}
		if sum.SLO.OK || len(sum.SLO.Failures) != 2 || !strings.HasPrefix(sum.SLO.Failures[0], "p99<90s: ") || !strings.HasPrefix(sum.SLO.Failures[1], "max<120s: ") {
			t.Errorf("%s: SLO verdict %+v; want p99<90s and max<120s not met, as p99 and max are only known to be 60 s or more", name, sum.SLO)
		}
		var text bytes.Buffer
		Summarize(rec).WriteText(&text)
		warning := fmt.Sprintf("warning: %d corrected and %d uncorrected latencies were over 60s", corrected, uncorrected)
		if n := strings.Count(text.String(), "\nwarning: "); n != 1 || !strings.Contains(text.String(), warning) || !strings.Contains(text.String(), "lower bounds") {
			t.Errorf("%s: text report lacks the one-line %q...lower bounds:\n%s", name, warning, text.String())
		}
		html, _ := os.ReadFile(filepath.Join(dir, "report.html"))
		if !strings.Contains(string(html), fmt.Sprintf("%d corrected and %d uncorrected latencies were over 60s", corrected, uncorrected)) {
			t.Errorf("%s: report.html does not report the latencies over the range", name)
		}
	}
	checkReports("run", run, 4, 2)

	// Two generators' logs merged: the counts add up.
	a, err := ReadHlog(bytes.NewReader(hlog.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ReadHlog(bytes.NewReader(hlog.Bytes()))
	merged, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var mergedLog bytes.Buffer
	if err := WriteHlog(&mergedLog, merged); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(mergedLog.String(), `"clamped_corrected":6,"clamped_uncorrected":2}`) {
		t.Errorf("merged interval log lacks the first second's doubled counts:\n%s", mergedLog.String())
	}
	mrec, err := merged.Recording()
	if err != nil {
		t.Fatal(err)
	}
	checkReports("merged", mrec, 8, 4)
}
