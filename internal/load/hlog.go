package load

// The interval log (run.hlog) is a standard HdrHistogram log, format
// version 1.3, as written by HdrHistogram's HistogramLogWriter and read by
// HistogramLogProcessor, HistogramLogReader (Java) and hdrhistogram-go's
// log reader:
//
//	#[Histogram log format version 1.3]
//	#[StartTime: 1714557600.000 (seconds since epoch), 2024-05-01T10:00:00.000Z]
//	#[BaseTime: 1714557600.000 (seconds since epoch)]
//	# ... explanatory comments ...
//	#[storefront-loadgen meta {"target":"http://...","model":"open",...}]
//	"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
//	#[storefront-loadgen interval {"start_ms":...,"end_ms":...,"sent":1000,"statuses":{"200":998},...}]
//	Tag=corrected,10.000,1.000,12.415,HISTFAAA...
//	Tag=uncorrected,10.000,1.000,3.211,HISTFAAA...
//
// A run writes its log as it goes (Config.Hlog, HlogWriter): each interval
// is appended and flushed as it closes, and the run keeps none of its
// histograms, so a long run's memory stays flat. Each histogram is stored
// in a compact copy (see compact): reading a long log back for a merge
// takes little memory too.
//
// Values are microseconds: HistogramLogProcessor needs
// "-tag corrected -outputValueUnitRatio 1000" to print milliseconds
// (without -tag it only reads untagged histograms, and every histogram here
// is tagged). Timestamps are seconds relative to BaseTime, which equals
// StartTime (the run's start), with millisecond precision; Interval_Max is
// in milliseconds.
//
// Counts do not fit in a histogram, so each interval is preceded by a
// comment carrying its status and error counts, late sends, sent and
// in-flight requests and the latencies clamped to the histograms' top
// (above 60 s) as JSON; the header carries the run's Meta the same
// way. Standard tools skip comments; ReadHlog uses them, which makes a
// .hlog file enough to merge runs without their summary.json. A log
// without these comments (written by another tool) still reads: untagged
// histograms count as corrected, counts are then unknown (zero).
//
// The lines are written here rather than by hdrhistogram-go's
// HistogramLogWriter: that writer prints StartTime and BaseTime in whole
// seconds (so relative timestamps read back shifted by the sub-second part)
// and scales Interval_Max for nanosecond values with no exported way to
// change it. The histograms themselves use the library's V2 compressed
// encoding.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram tags in the interval log.
const (
	TagCorrected   = "corrected"
	TagUncorrected = "uncorrected"
)

const (
	hlogMetaPrefix     = "#[storefront-loadgen meta "
	hlogIntervalPrefix = "#[storefront-loadgen interval "
	hlogEndPrefix      = "#[storefront-loadgen end "
	hlogLegend         = `"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"`
)

// hlogInterval is the JSON of an interval comment.
type hlogInterval struct {
	StartMS   int64            `json:"start_ms"` // Unix milliseconds
	EndMS     int64            `json:"end_ms"`
	Sent      int64            `json:"sent"`
	Statuses  map[int]int64    `json:"statuses,omitempty"`
	Errors    map[string]int64 `json:"errors,omitempty"`
	LateSends int64            `json:"late_sends,omitempty"`
	InFlight  int64            `json:"in_flight,omitempty"`
	// Latencies above the histograms' range, recorded at its top.
	ClampedCorrected   int64 `json:"clamped_corrected,omitempty"`
	ClampedUncorrected int64 `json:"clamped_uncorrected,omitempty"`
}

// HlogWriter writes an interval log one interval at a time, so that a run
// can stream each interval to its file as it closes instead of keeping the
// histograms until the end. Call WriteHeader once, then WriteInterval for
// each interval in time order. Every interval is flushed to the underlying
// writer at once: the file is complete up to the last closed interval
// even if the process is killed. The first error is kept; later calls do
// nothing and return it, and Err reports it (as bufio.Writer does).
type HlogWriter struct {
	w      *bufio.Writer
	baseMS int64
	header bool
	n      int // intervals written
	err    error
}

// NewHlogWriter returns an HlogWriter writing to w.
func NewHlogWriter(w io.Writer) *HlogWriter {
	return &HlogWriter{w: bufio.NewWriter(w)}
}

// Err returns the first error met, if any.
func (hw *HlogWriter) Err() error { return hw.err }

// fail keeps err as the writer's error, unless it has one already.
func (hw *HlogWriter) fail(err error) error {
	if hw.err == nil {
		hw.err = fmt.Errorf("write hlog: %w", err)
	}
	return hw.err
}

// WriteHeader writes the log's header: the format version, StartTime and
// BaseTime (both base, to the millisecond; every interval must start at or
// after it) and meta as a comment.
func (hw *HlogWriter) WriteHeader(meta Meta, base time.Time) error {
	if hw.err != nil {
		return hw.err
	}
	if hw.header {
		return hw.fail(errors.New("a second header"))
	}
	hw.header = true
	hw.baseMS = base.UnixMilli()
	m, err := hlogJSON(meta)
	if err != nil {
		return hw.fail(err)
	}
	bw, startMS := hw.w, hw.baseMS
	fmt.Fprintln(bw, "#[Histogram log format version 1.3]")
	fmt.Fprintf(bw, "#[StartTime: %s (seconds since epoch), %s]\n", msToSeconds(startMS), time.UnixMilli(startMS).UTC().Format("2006-01-02T15:04:05.000Z"))
	fmt.Fprintf(bw, "#[BaseTime: %s (seconds since epoch)]\n", msToSeconds(startMS))
	fmt.Fprintln(bw, "# storefront loadgen interval log. Latency values are microseconds; Tag=corrected is measured from")
	fmt.Fprintln(bw, "# each request's intended send time (coordinated omission corrected), Tag=uncorrected from the actual")
	fmt.Fprintln(bw, "# send. Read with: HistogramLogProcessor -i run.hlog -tag corrected -outputValueUnitRatio 1000")
	fmt.Fprintln(bw, "# The storefront-loadgen comment lines carry the run's meta and each interval's counts (JSON).")
	fmt.Fprintln(bw, "# Latencies above 60 s are recorded as 60 s and counted in clamped_corrected and clamped_uncorrected.")
	fmt.Fprintf(bw, "%s%s]\n", hlogMetaPrefix, m)
	fmt.Fprintln(bw, hlogLegend)
	return hw.flush()
}

// WriteInterval writes one interval: a comment with its counts, then its
// corrected and uncorrected histograms, each in a compact copy (see
// compact) so that reading the log back takes little memory. Nil
// histograms are written empty. iv is not retained.
func (hw *HlogWriter) WriteInterval(iv Interval) error {
	if hw.err != nil {
		return hw.err
	}
	if !hw.header {
		return hw.fail(errors.New("an interval before the header"))
	}
	i := hw.n
	hw.n++
	s, e := iv.Start.UnixMilli(), iv.End.UnixMilli()
	switch {
	case e < s:
		return hw.fail(fmt.Errorf("interval %d ends before it starts", i))
	case s < hw.baseMS:
		return hw.fail(fmt.Errorf("interval %d starts before the log's BaseTime", i))
	}
	counts, err := hlogJSON(hlogInterval{
		StartMS: s, EndMS: e, Sent: iv.Sent,
		Statuses: iv.Statuses, Errors: iv.Errors,
		LateSends: iv.LateSends, InFlight: iv.InFlight,
		ClampedCorrected: iv.ClampedCorrected, ClampedUncorrected: iv.ClampedUncorrected,
	})
	if err != nil {
		return hw.fail(err)
	}
	fmt.Fprintf(hw.w, "%s%s]\n", hlogIntervalPrefix, counts)
	var (
		prev    *hdrhistogram.Histogram
		hmax    int64
		payload []byte
	)
	for _, th := range []struct {
		tag string
		h   *hdrhistogram.Histogram
	}{{TagCorrected, iv.Corrected}, {TagUncorrected, iv.Uncorrected}} {
		h := th.h
		if h == nil {
			h = newCompactHistogram(0)
		}
		if h != prev { // closed model: one histogram, encoded once
			hmax = maxOf(h)
			enc := h
			if !isCompact(h, hmax) {
				enc = newCompactHistogram(hmax)
				enc.Merge(h)
			}
			if payload, err = enc.Encode(hdrhistogram.V2CompressedEncodingCookieBase); err != nil {
				return hw.fail(fmt.Errorf("interval %d: %w", i, err))
			}
			prev = h
		}
		fmt.Fprintf(hw.w, "Tag=%s,%s,%s,%.3f,%s\n", th.tag, msToSeconds(s-hw.baseMS), msToSeconds(e-s), usToMS(hmax), payload)
	}
	return hw.flush()
}

// hlogEnd is the JSON of the comment that ends a run's log.
type hlogEnd struct {
	Interrupted bool `json:"interrupted"`
}

// WriteEnd ends a run's log with a comment saying whether the run was
// interrupted: the header was written before the run, when that was not
// known, and loadgen merge must not take a run cut short for a complete
// one.
func (hw *HlogWriter) WriteEnd(interrupted bool) error {
	if hw.err != nil {
		return hw.err
	}
	if !hw.header {
		return hw.fail(errors.New("an end before the header"))
	}
	fmt.Fprintf(hw.w, "%s{\"interrupted\":%t}]\n", hlogEndPrefix, interrupted)
	return hw.flush()
}

func (hw *HlogWriter) flush() error {
	if err := hw.w.Flush(); err != nil {
		return hw.fail(err)
	}
	return nil
}

// WriteHlog writes log as an HdrHistogram interval log: per interval one
// histogram tagged "corrected" and one tagged "uncorrected", preceded by a
// comment with the interval's counts. Times are kept to the millisecond.
func WriteHlog(w io.Writer, log *Log) error {
	if log == nil {
		return errors.New("write hlog: no log")
	}
	hw := NewHlogWriter(w)
	hw.WriteHeader(log.Meta, time.UnixMilli(hlogStartMS(log)))
	for _, iv := range log.Intervals {
		hw.WriteInterval(iv)
	}
	return hw.Err()
}

// hlogStartMS is the log's StartTime and BaseTime: the run's start, or the
// first interval's if that is earlier (relative timestamps cannot be
// negative).
func hlogStartMS(log *Log) int64 {
	var start int64
	have := false
	if !log.Meta.Started.IsZero() {
		start, have = log.Meta.Started.UnixMilli(), true
	}
	for _, iv := range log.Intervals {
		if s := iv.Start.UnixMilli(); !have || s < start {
			start, have = s, true
		}
	}
	return start
}

// msToSeconds formats milliseconds as seconds with three decimals, exactly.
func msToSeconds(ms int64) string {
	sign := ""
	if ms < 0 {
		sign, ms = "-", -ms
	}
	return fmt.Sprintf("%s%d.%03d", sign, ms/1000, ms%1000)
}

// hlogJSON marshals v for a comment line. '#' only occurs inside JSON
// strings, so escaping it keeps a value from posing as a "#[StartTime:"
// header to readers that search lines for it.
func hlogJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return strings.ReplaceAll(string(b), "#", `\u0023`), nil
}

// ReadHlog reads an interval log written by HlogWriter or WriteHlog (or
// any HdrHistogram log of microsecond values). Histograms tagged "corrected" or untagged
// become Corrected, "uncorrected" become Uncorrected, other tags are
// skipped. Histograms keep their encoded geometry when it merges into
// NewHistogram's losslessly (as the engine's compact ones do), others are
// converted, and values outside NewHistogram's range are an error rather
// than silently dropped.
func ReadHlog(r io.Reader) (*Log, error) {
	const yearMS = 365 * 24 * 3600 * 1000
	var (
		startMS, baseMS     int64
		haveStart, haveBase bool
		startInHeader       bool
		meta                *Meta
		intervals           = make(map[int64]*Interval)
		counted             = make(map[int64]bool)
		interrupted         bool
	)
	interval := func(startMS int64) *Interval {
		iv := intervals[startMS]
		if iv == nil {
			iv = &Interval{Start: time.UnixMilli(startMS).UTC(), Statuses: map[int]int64{}, Errors: map[string]int64{}}
			intervals[startMS] = iv
		}
		return iv
	}

	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 64<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		fail := func(format string, args ...any) error {
			return fmt.Errorf("hlog line %d: %s", lineNo, fmt.Sprintf(format, args...))
		}
		switch {
		case line == "", strings.HasPrefix(line, `"StartTimestamp"`):
			continue
		case strings.HasPrefix(line, "#[StartTime: "):
			ms, err := parseSecondsMS(hlogFirstField(strings.TrimPrefix(line, "#[StartTime: ")))
			if err != nil {
				return nil, fail("StartTime: %v", err)
			}
			startMS, haveStart, startInHeader = ms, true, true
		case strings.HasPrefix(line, "#[BaseTime: "):
			ms, err := parseSecondsMS(hlogFirstField(strings.TrimPrefix(line, "#[BaseTime: ")))
			if err != nil {
				return nil, fail("BaseTime: %v", err)
			}
			baseMS, haveBase = ms, true
		case strings.HasPrefix(line, hlogMetaPrefix):
			if meta != nil {
				return nil, fail("a second run meta line: is this several logs concatenated? merge them with loadgen merge instead")
			}
			meta = new(Meta)
			if err := json.Unmarshal([]byte(hlogCommentJSON(line, hlogMetaPrefix)), meta); err != nil {
				return nil, fail("run meta: %v", err)
			}
		case strings.HasPrefix(line, hlogEndPrefix):
			var end hlogEnd
			if err := json.Unmarshal([]byte(hlogCommentJSON(line, hlogEndPrefix)), &end); err != nil {
				return nil, fail("end of run: %v", err)
			}
			interrupted = interrupted || end.Interrupted
		case strings.HasPrefix(line, hlogIntervalPrefix):
			var c hlogInterval
			if err := json.Unmarshal([]byte(hlogCommentJSON(line, hlogIntervalPrefix)), &c); err != nil {
				return nil, fail("interval counts: %v", err)
			}
			if counted[c.StartMS] {
				return nil, fail("a second set of counts for the interval starting at %s", msToSeconds(c.StartMS))
			}
			counted[c.StartMS] = true
			iv := interval(c.StartMS)
			iv.End = time.UnixMilli(c.EndMS).UTC()
			iv.Sent, iv.LateSends, iv.InFlight = c.Sent, c.LateSends, c.InFlight
			iv.ClampedCorrected, iv.ClampedUncorrected = c.ClampedCorrected, c.ClampedUncorrected
			for code, n := range c.Statuses {
				iv.Statuses[code] += n
			}
			for kind, n := range c.Errors {
				iv.Errors[kind] += n
			}
		case strings.HasPrefix(line, "#"):
			continue
		default:
			tag := ""
			if rest, ok := strings.CutPrefix(line, "Tag="); ok {
				var found bool
				tag, line, found = strings.Cut(rest, ",")
				if !found {
					return nil, fail("tag without an interval")
				}
			}
			fields := strings.SplitN(line, ",", 4)
			if len(fields) != 4 {
				return nil, fail("want StartTimestamp,Interval_Length,Interval_Max,Interval_Compressed_Histogram")
			}
			ts, err := parseSecondsMS(fields[0])
			if err != nil {
				return nil, fail("StartTimestamp: %v", err)
			}
			length, err := parseSecondsMS(fields[1])
			if err != nil {
				return nil, fail("Interval_Length: %v", err)
			}
			// As HdrHistogram's readers do: without a StartTime the first
			// timestamp is the start; without a BaseTime, timestamps more
			// than a year before the start are relative to it.
			if !haveStart {
				startMS, haveStart = ts, true
			}
			if !haveBase {
				if ts < startMS-yearMS {
					baseMS = startMS
				}
				haveBase = true
			}
			var slot **hdrhistogram.Histogram
			iv := interval(baseMS + ts)
			switch tag {
			case "", TagCorrected:
				slot = &iv.Corrected
			case TagUncorrected:
				slot = &iv.Uncorrected
			default:
				continue
			}
			if *slot != nil {
				return nil, fail("a second %q histogram for the interval starting at %s", tag, fields[0])
			}
			h, err := hdrhistogram.Decode([]byte(fields[3]))
			if err != nil {
				return nil, fail("histogram: %v", err)
			}
			if h, err = withPackageGeometry(h); err != nil {
				return nil, fail("%v", err)
			}
			*slot = h
			if iv.End.IsZero() {
				iv.End = iv.Start.Add(time.Duration(length) * time.Millisecond)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("hlog line %d: %w", lineNo+1, err)
	}

	rec := &Log{}
	keys := make([]int64, 0, len(intervals))
	for k := range intervals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		iv := intervals[k]
		if iv.Corrected == nil {
			iv.Corrected = newCompactHistogram(0)
		}
		if iv.Uncorrected == nil {
			iv.Uncorrected = newCompactHistogram(0)
		}
		rec.Intervals = append(rec.Intervals, *iv)
	}
	switch {
	case meta != nil:
		rec.Meta = *meta
	case startInHeader:
		rec.Meta.Started = time.UnixMilli(startMS).UTC()
	case len(rec.Intervals) > 0:
		rec.Meta.Started = rec.Intervals[0].Start
	}
	rec.Meta.Interrupted = rec.Meta.Interrupted || interrupted
	return rec, nil
}

func hlogFirstField(s string) string {
	if i := strings.IndexAny(s, " ,]"); i >= 0 {
		return s[:i]
	}
	return s
}

// hlogCommentJSON returns the JSON between prefix and the closing bracket.
func hlogCommentJSON(line, prefix string) string {
	return strings.TrimSuffix(strings.TrimPrefix(line, prefix), "]")
}

// parseSecondsMS parses a decimal number of seconds into milliseconds.
func parseSecondsMS(s string) (int64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("bad number of seconds %q", s)
	}
	return int64(math.Round(f * 1000)), nil
}

// withPackageGeometry returns h if merging it into a NewHistogram is
// lossless (same lowest value and precision, no higher range: the engine
// stores intervals in such compact histograms), else a compact copy.
// Values beyond NewHistogram's range are an error, not silently dropped.
func withPackageGeometry(h *hdrhistogram.Histogram) (*hdrhistogram.Histogram, error) {
	if h.LowestTrackableValue() == HistMinUS && h.SignificantFigures() == HistSigFig && h.HighestTrackableValue() <= HistMaxUS {
		return h, nil
	}
	n := newCompactHistogram(maxOf(h))
	if dropped := n.Merge(h); dropped > 0 {
		return nil, fmt.Errorf("%d values outside %dµs..%dµs (values must be microseconds)", dropped, HistMinUS, HistMaxUS)
	}
	return n, nil
}

// compact copies h into a histogram whose highest trackable value is just
// above h's maximum. The copy has the same precision and equivalent value
// ranges as NewHistogram, so merging it into a NewHistogram is lossless; it
// costs 16 KB when every value is below 2 ms instead of 136 KB for the full
// 1 µs..60 s range. The interval log stores histograms so, which keeps
// logs read back (for a merge) small.
func compact(h *hdrhistogram.Histogram) *hdrhistogram.Histogram {
	c := newCompactHistogram(maxOf(h))
	c.Merge(h)
	return c
}

// isCompact reports whether h, whose maximum is hmax, already has
// compact's geometry.
func isCompact(h *hdrhistogram.Histogram, hmax int64) bool {
	return h.LowestTrackableValue() == HistMinUS && h.SignificantFigures() == HistSigFig &&
		h.HighestTrackableValue() == min(max(hmax, 2*HistMinUS), HistMaxUS)
}

// newCompactHistogram returns an empty histogram with NewHistogram's lowest
// value and precision, and so the same value buckets, but a range only up
// to maxUS (within NewHistogram's): merging it into a NewHistogram is
// lossless, and it takes a fraction of the memory.
func newCompactHistogram(maxUS int64) *hdrhistogram.Histogram {
	return hdrhistogram.New(HistMinUS, min(max(maxUS, 2*HistMinUS), HistMaxUS), HistSigFig)
}
