package load

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

func writeHlogString(t *testing.T, rec *Log) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHlog(&b, rec); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func readHlogString(t *testing.T, s string) *Log {
	t.Helper()
	rec, err := ReadHlog(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// sameIntervals reports the first difference between two logs'
// intervals: times (to the millisecond), histograms and counts.
func sameIntervals(t *testing.T, got, want *Log) {
	t.Helper()
	if len(got.Intervals) != len(want.Intervals) {
		t.Fatalf("%d intervals, want %d", len(got.Intervals), len(want.Intervals))
	}
	for i := range want.Intervals {
		g, w := got.Intervals[i], want.Intervals[i]
		if g.Start.UnixMilli() != w.Start.UnixMilli() || g.End.UnixMilli() != w.End.UnixMilli() {
			t.Errorf("interval %d: %v..%v, want %v..%v", i, g.Start, g.End, w.Start, w.End)
		}
		if !sameCounts(g.Corrected, w.Corrected) {
			t.Errorf("interval %d: corrected histograms differ", i)
		}
		if !sameCounts(g.Uncorrected, w.Uncorrected) {
			t.Errorf("interval %d: uncorrected histograms differ", i)
		}
		if !maps.Equal(g.Statuses, w.Statuses) && (len(g.Statuses) > 0 || len(w.Statuses) > 0) {
			t.Errorf("interval %d: statuses %v, want %v", i, g.Statuses, w.Statuses)
		}
		if !maps.Equal(g.Errors, w.Errors) && (len(g.Errors) > 0 || len(w.Errors) > 0) {
			t.Errorf("interval %d: errors %v, want %v", i, g.Errors, w.Errors)
		}
		if g.Sent != w.Sent || g.LateSends != w.LateSends || g.InFlight != w.InFlight {
			t.Errorf("interval %d: sent/late/in flight %d/%d/%d, want %d/%d/%d", i, g.Sent, g.LateSends, g.InFlight, w.Sent, w.LateSends, w.InFlight)
		}
	}
}

// sameCounts reports whether two histograms hold the same values, whatever
// their highest trackable values.
func sameCounts(a, b *hdrhistogram.Histogram) bool {
	na, nb := NewHistogram(), NewHistogram()
	return na.Merge(a) == 0 && nb.Merge(b) == 0 && na.Equals(nb)
}

func TestHlogKeepsCompactHistograms(t *testing.T) {
	rec := syntheticLog(t)
	back := readHlogString(t, writeHlogString(t, rec))
	sameIntervals(t, back, rec)
	for i, iv := range back.Intervals {
		if !iv.Corrected.Equals(rec.Intervals[i].Corrected) || iv.Corrected.HighestTrackableValue() >= HistMaxUS {
			t.Fatalf("interval %d: read back with another geometry (highest %d)", i, iv.Corrected.HighestTrackableValue())
		}
	}
	merged, err := Merge(back, back)
	if err != nil {
		t.Fatal(err)
	}
	for i, iv := range merged.Intervals {
		if h := iv.Corrected.HighestTrackableValue(); h >= HistMaxUS {
			t.Fatalf("merged interval %d has the full range (highest %d)", i, h)
		}
	}
	if got, want := Summarize(recordingOf(t, merged)).Corrected, Summarize(recordingOf(t, rec)).Corrected; got.P99MS != want.P99MS || got.Count != 2*want.Count {
		t.Errorf("merged %+v, want the percentiles of %+v with twice the count", got, want)
	}
}

func TestHlogRoundTrip(t *testing.T) {
	rec := syntheticLog(t)
	// Sub-millisecond start times and an odd interval length.
	rec.Meta.Started = rec.Meta.Started.Add(123456789 * time.Nanosecond)
	rec.Intervals[29].End = rec.Intervals[29].Start.Add(437 * time.Millisecond)
	// A full-range histogram.
	full := NewHistogram()
	full.Merge(rec.Intervals[3].Corrected)
	rec.Intervals[3].Corrected = full
	// An interval with nothing in it, and nil histograms and maps.
	rec.Intervals = append(rec.Intervals, Interval{Start: rec.Intervals[29].End, End: rec.Intervals[29].End.Add(time.Second)})

	log := writeHlogString(t, rec)
	back := readHlogString(t, log)
	want := *rec
	want.Intervals = append([]Interval(nil), rec.Intervals...)
	want.Intervals[30].Corrected, want.Intervals[30].Uncorrected = NewHistogram(), NewHistogram()
	if h := back.Intervals[30].Corrected; h.HighestTrackableValue() >= HistMaxUS {
		t.Errorf("an empty interval reads back with the full range (highest %d)", h.HighestTrackableValue())
	}
	sameIntervals(t, back, &want)

	if !back.Meta.Started.Equal(rec.Meta.Started) {
		t.Errorf("meta started %v, want %v", back.Meta.Started, rec.Meta.Started)
	}
	back.Meta.Started = rec.Meta.Started
	if back.Meta != rec.Meta {
		t.Errorf("meta %+v, want %+v", back.Meta, rec.Meta)
	}
	if got, want := Summarize(recordingOf(t, back)), Summarize(recordingOf(t, &want)); got.Corrected != want.Corrected || got.Uncorrected != want.Uncorrected ||
		!maps.Equal(got.Statuses, want.Statuses) || !maps.Equal(got.Errors, want.Errors) || got.Sent != want.Sent {
		t.Errorf("summaries differ after a round trip:\n got %+v\nwant %+v", got, want)
	}

	// Writing what was read gives the same log.
	if again := writeHlogString(t, back); again != log {
		t.Error("a second write differs from the first")
	}
}

func TestHlogFormat(t *testing.T) {
	rec := syntheticLog(t)
	rec.Meta.Scenario = "#[StartTime: 5 ]" // must not pose as a header
	log := writeHlogString(t, rec)
	lines := strings.Split(log, "\n")
	for i, want := range []string{
		"#[Histogram log format version 1.3]",
		"#[StartTime: 1714557600.000 (seconds since epoch), 2024-05-01T10:00:00.000Z]",
		"#[BaseTime: 1714557600.000 (seconds since epoch)]",
	} {
		if lines[i] != want {
			t.Errorf("line %d = %q, want %q", i+1, lines[i], want)
		}
	}
	for _, want := range []string{
		"\n" + hlogLegend + "\n",
		"\n#[storefront-loadgen meta {",
		"\n#[storefront-loadgen interval {\"start_ms\":1714557605000,\"end_ms\":1714557606000,",
		"\nTag=corrected,5.000,1.000,",
		"\nTag=uncorrected,5.000,1.000,",
		"\nTag=corrected,34.000,1.000,",
		",HISTF", // base64 of the V2 compressed cookie
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Count(log, "#[StartTime:") != 1 {
		t.Error("a meta value poses as a StartTime header")
	}
	if strings.Count(log, "\nTag=corrected,") != 30 || strings.Count(log, "\nTag=uncorrected,") != 30 {
		t.Error("want one corrected and one uncorrected histogram per interval")
	}
	if back := readHlogString(t, log); back.Meta.Scenario != rec.Meta.Scenario {
		t.Errorf("scenario %q, want %q", back.Meta.Scenario, rec.Meta.Scenario)
	}
}

// TestHlogReadableByHdrHistogramReader reads the log with hdrhistogram-go's
// own reader, as any HdrHistogram tool would.
func TestHlogReadableByHdrHistogramReader(t *testing.T) {
	rec := syntheticLog(t)
	rec.Meta.Started = rec.Meta.Started.Add(250 * time.Millisecond)
	for i := range rec.Intervals {
		rec.Intervals[i].Start = rec.Intervals[i].Start.Add(250 * time.Millisecond)
		rec.Intervals[i].End = rec.Intervals[i].End.Add(250 * time.Millisecond)
	}
	r := hdrhistogram.NewHistogramLogReader(strings.NewReader(writeHlogString(t, rec)))
	n := 0
	for {
		h, err := r.NextIntervalHistogram()
		if err != nil {
			t.Fatalf("histogram %d: %v", n+1, err)
		}
		if h == nil {
			break
		}
		iv := rec.Intervals[n/2]
		want, tag := iv.Corrected, TagCorrected
		if n%2 == 1 {
			want, tag = iv.Uncorrected, TagUncorrected
		}
		if h.Tag() != tag {
			t.Errorf("histogram %d: tag %q, want %q", n+1, h.Tag(), tag)
		}
		if !sameCounts(h, want) {
			t.Errorf("histogram %d (%s): differs from the recorded one", n+1, tag)
		}
		// The library converts float seconds to milliseconds by truncation.
		if d := h.StartTimeMs() - iv.Start.UnixMilli(); d < -1 || d > 0 {
			t.Errorf("histogram %d: start %d ms, want %d", n+1, h.StartTimeMs(), iv.Start.UnixMilli())
		}
		if d := h.EndTimeMs() - iv.End.UnixMilli(); d < -1 || d > 0 {
			t.Errorf("histogram %d: end %d ms, want %d", n+1, h.EndTimeMs(), iv.End.UnixMilli())
		}
		n++
	}
	if n != 2*len(rec.Intervals) {
		t.Errorf("read %d histograms, want %d", n, 2*len(rec.Intervals))
	}
}

// TestReadHlogOfLibraryWriter reads a log written by hdrhistogram-go's
// writer: untagged histograms, absolute timestamps, no counts.
func TestReadHlogOfLibraryWriter(t *testing.T) {
	var b bytes.Buffer
	w := hdrhistogram.NewHistogramLogWriter(&b)
	start := reportTestStart.UnixMilli()
	if err := w.OutputLogFormatVersion(); err != nil {
		t.Fatal(err)
	}
	if err := w.OutputStartTime(start); err != nil {
		t.Fatal(err)
	}
	if err := w.OutputLegend(); err != nil {
		t.Fatal(err)
	}
	var want []*hdrhistogram.Histogram
	for i := range 3 {
		h := NewHistogram()
		for v := int64(1); v <= 100; v++ {
			mustRecord(t, h, v*int64(i+1)*37)
		}
		h.SetStartTimeMs(start + int64(i)*1000)
		h.SetEndTimeMs(start + int64(i+1)*1000)
		if err := w.OutputIntervalHistogram(h); err != nil {
			t.Fatal(err)
		}
		want = append(want, h)
	}
	rec := readHlogString(t, b.String())
	if len(rec.Intervals) != 3 {
		t.Fatalf("%d intervals, want 3", len(rec.Intervals))
	}
	for i, iv := range rec.Intervals {
		if !sameCounts(iv.Corrected, want[i]) || iv.Uncorrected.TotalCount() != 0 {
			t.Errorf("interval %d: corrected equal %v, uncorrected count %d", i, sameCounts(iv.Corrected, want[i]), iv.Uncorrected.TotalCount())
		}
		if got := iv.Start.UnixMilli(); got != start+int64(i)*1000 {
			t.Errorf("interval %d: start %d, want %d", i, got, start+int64(i)*1000)
		}
		if got := iv.End.Sub(iv.Start); got != time.Second {
			t.Errorf("interval %d: length %v", i, got)
		}
	}
	if !rec.Meta.Started.Equal(reportTestStart) {
		t.Errorf("started %v, want %v", rec.Meta.Started, reportTestStart)
	}
}

func TestReadHlogOtherGeometry(t *testing.T) {
	encode := func(h *hdrhistogram.Histogram) string {
		b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// Microseconds at 2 digits, within range: converted, nothing lost.
	small := hdrhistogram.New(1, 10_000_000, 2)
	mustRecord(t, small, 1234)
	rec := readHlogString(t, "0.000,1.000,1.234,"+encode(small)+"\n")
	if c := rec.Intervals[0].Corrected; c.TotalCount() != 1 || c.SignificantFigures() != HistSigFig || c.HighestTrackableValue() > HistMaxUS {
		t.Errorf("not converted: count %d, highest %d", c.TotalCount(), c.HighestTrackableValue())
	}
	// Nanoseconds beyond 60 s of microseconds: an error, not a silent drop.
	ns := hdrhistogram.New(1, 3_600_000_000_000, 3)
	mustRecord(t, ns, 120_000_000_000)
	_, err := ReadHlog(strings.NewReader("0.000,1.000,120000.0," + encode(ns) + "\n"))
	if err == nil || !strings.Contains(err.Error(), "line 1:") || !strings.Contains(err.Error(), "values must be microseconds") {
		t.Errorf("err = %v", err)
	}
}

func TestReadHlogErrors(t *testing.T) {
	good := writeHlogString(t, syntheticLog(t))
	lines := strings.Split(good, "\n")
	firstHist := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "Tag=corrected,") {
			firstHist = i
			break
		}
	}
	replace := func(i int, s string) string {
		c := append([]string(nil), lines...)
		c[i] = s
		return strings.Join(c, "\n")
	}
	tests := []struct{ name, log, want string }{
		{"garbage", "hello\n", "hlog line 1: want StartTimestamp,Interval_Length"},
		{"tag only", "Tag=corrected\n", "hlog line 1: tag without an interval"},
		{"bad timestamp", "abc,1.000,0.0,HISTFAAA\n", `hlog line 1: StartTimestamp: bad number of seconds "abc"`},
		{"bad payload", replace(firstHist, "Tag=corrected,5.000,1.000,0.0,HISTnotbase64!"), "histogram:"},
		{"duplicate histogram", replace(firstHist+1, lines[firstHist]), `a second "corrected" histogram`},
		{"bad counts", replace(firstHist-1, hlogIntervalPrefix+"{not json}]"), "interval counts:"},
		{"concatenated", good + good, "a second run meta line"},
		{"bad start time", "#[StartTime: x (seconds since epoch)]\n", "hlog line 1: StartTime:"},
	}
	for _, tt := range tests {
		_, err := ReadHlog(strings.NewReader(tt.log))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
	if rec, err := ReadHlog(strings.NewReader("")); err != nil || len(rec.Intervals) != 0 {
		t.Errorf("empty log: %v, %v", rec, err)
	}
}

// TestHlogWriterStreams: intervals written one at a time give the same log
// as WriteHlog, each one flushed as it is written; the first error sticks.
func TestHlogWriterStreams(t *testing.T) {
	log := syntheticLog(t)
	var b bytes.Buffer
	hw := NewHlogWriter(&b)
	if err := hw.WriteHeader(log.Meta, log.Meta.Started); err != nil {
		t.Fatal(err)
	}
	for i, iv := range log.Intervals {
		if err := hw.WriteInterval(iv); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(b.String(), "\nTag=uncorrected,"); n != i+1 {
			t.Fatalf("after interval %d, %d intervals in the file", i, n)
		}
	}
	if b.String() != writeHlogString(t, log) {
		t.Error("streamed log differs from WriteHlog's")
	}

	fresh := NewHlogWriter(io.Discard)
	if err := fresh.WriteInterval(log.Intervals[0]); err == nil || !strings.Contains(err.Error(), "before the header") {
		t.Errorf("interval before the header: %v", err)
	}
	late := NewHlogWriter(io.Discard)
	late.WriteHeader(log.Meta, log.Intervals[1].Start)
	if err := late.WriteInterval(log.Intervals[0]); err == nil || !strings.Contains(err.Error(), "before the log's BaseTime") {
		t.Errorf("interval before the base time: %v", err)
	}
	broken := NewHlogWriter(failingWriter{})
	broken.WriteHeader(log.Meta, log.Meta.Started)
	err := broken.WriteInterval(log.Intervals[0])
	if err == nil || broken.Err() != err || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("write error: %v, kept %v", err, broken.Err())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }
