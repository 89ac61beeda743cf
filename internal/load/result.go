// Package load is the engine of loadgen: an open-model (constant or staged
// arrival rate, coordinated-omission corrected) and closed-model HTTP load
// generator that records latency in HDR histograms, never in sample lists,
// and turns the recording into text, JSON, HdrHistogram interval logs and an
// offline HTML report.
package load

import (
	"fmt"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: 1 µs to 60 s at 3 significant digits. Values are
// recorded in microseconds. A latency above HistMaxUS (an overloaded
// open-model run queues requests for longer; --timeout may exceed it) is
// recorded as HistMaxUS and counted as clamped (Interval.ClampedCorrected
// and ClampedUncorrected): percentiles that reach the top bucket are then
// lower bounds. The range is part of the interval log's histograms and of
// merging them, so it stays fixed.
const (
	HistMinUS  = 1
	HistMaxUS  = 60_000_000
	HistSigFig = 3
)

// NewHistogram returns an empty histogram with the package's bounds.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(HistMinUS, HistMaxUS, HistSigFig)
}

// Interval is what happened during one reporting interval (normally one
// second) of a run, merged across all workers. During a run an Interval
// lives only while it closes: its histograms are written to the interval
// log (Config.Hlog) and added to the Recording, which keeps only its
// IntervalStats; then they are reused for the next interval. A Log holds
// whole Intervals, for offline work on finished runs.
type Interval struct {
	Start time.Time
	End   time.Time
	// Corrected holds latencies measured from each request's intended send
	// time (open model); in the closed model it equals Uncorrected.
	Corrected *hdrhistogram.Histogram
	// Uncorrected holds latencies measured from the actual send.
	Uncorrected *hdrhistogram.Histogram
	Statuses    map[int]int64    // HTTP status code -> responses
	Errors      map[string]int64 // error kind ("timeout", "connect_refused", "reset", ...) -> count
	LateSends   int64            // requests that left later than their intended time (open model)
	Sent        int64            // requests sent in this interval
	InFlight    int64            // requests in flight at End
	// ClampedCorrected and ClampedUncorrected count the latencies of
	// Corrected and Uncorrected that were above HistMaxUS and are
	// recorded as HistMaxUS.
	ClampedCorrected   int64
	ClampedUncorrected int64
}

// Meta describes how a run was configured.
type Meta struct {
	Target      string  `json:"target"`
	Model       string  `json:"model"`                 // "open" or "closed"
	TargetRate  float64 `json:"target_rate,omitempty"` // requests/s; 0 in the closed model
	Stages      string  `json:"stages,omitempty"`      // as given by --stages
	Connections int     `json:"connections"`
	Engine      string  `json:"engine,omitempty"` // open model: "loops" or "goroutines"
	// SendResolution is Config.SendResolution (0: every request at its
	// own time).
	SendResolution time.Duration `json:"send_resolution,omitempty"`
	Duration       time.Duration `json:"duration"`
	Warmup         time.Duration `json:"warmup"`
	Scenario       string        `json:"scenario,omitempty"`
	Host           string        `json:"host,omitempty"` // generator host name, for merged runs
	Started        time.Time     `json:"started"`
	// Interrupted is set when the run was stopped (SIGINT, SIGTERM) before
	// its duration: the figures cover only what was recorded until then.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Recording is a whole run (warm-up excluded) as the reports need it: the
// run's histograms, merged from every interval, the counts by status and
// error kind, and per interval only its IntervalStats. Its size is two
// histograms plus about 200 bytes per interval, whatever the rate: a
// 10-minute run adds about 120 KB to the fixed part. The intervals' own
// histograms are not kept; they are in the run's interval log.
//
// Build one with Add, interval by interval (the engine does as each
// interval closes, Log.Recording for a log read back or merged); the zero
// Recording is empty and ready for Add.
type Recording struct {
	Meta      Meta
	Intervals []IntervalStats
	// Corrected and Uncorrected are the whole run's latencies: every
	// interval's histogram merged losslessly, in NewHistogram's range. Nil
	// when nothing was added.
	Corrected   *hdrhistogram.Histogram
	Uncorrected *hdrhistogram.Histogram
	Statuses    map[int]int64    // HTTP status code -> responses, whole run
	Errors      map[string]int64 // error kind -> count, whole run
	// ClampedCorrected and ClampedUncorrected count the whole run's
	// latencies above HistMaxUS, recorded as HistMaxUS (see Interval).
	ClampedCorrected   int64
	ClampedUncorrected int64
}

// IntervalStats is what a Recording keeps of one interval: its counts and
// the latency percentiles that the report's charts draw.
type IntervalStats struct {
	Start           time.Time
	End             time.Time
	Sent            int64
	Responses       int64 // HTTP responses, any status
	ServerErrors    int64 // 5xx responses (included in Responses)
	TransportErrors int64 // requests that got no response (see Interval.Errors)
	LateSends       int64
	InFlight        int64 // at End
	Corrected       Percentiles
	Uncorrected     Percentiles
}

// Percentiles summarize one interval's latency histogram, in microseconds
// (as ValueAtQuantile reports them: the upper bound of the HDR bucket).
// They are for showing an interval on its own; percentiles over several
// intervals come from merging their histograms, never from these.
type Percentiles struct {
	Count                    int64
	P50, P90, P99, P999, Max int64
	Clamped                  int64 // latencies above HistMaxUS, counted as HistMaxUS
}

// maxOf returns h.Max(), the highest equivalent value of the highest value
// recorded (0 when empty), from the library's block scan of the counts. Max
// walks every bucket of a 1 µs..60 s histogram with its iterator, which
// would cost more than all the rest of closing an interval.
func maxOf(h *hdrhistogram.Histogram) int64 {
	return h.ValueAtQuantile(100)
}

func percentilesOf(h *hdrhistogram.Histogram) Percentiles {
	if h == nil || h.TotalCount() == 0 {
		return Percentiles{}
	}
	return Percentiles{
		Count: h.TotalCount(),
		P50:   h.ValueAtQuantile(50),
		P90:   h.ValueAtQuantile(90),
		P99:   h.ValueAtQuantile(99),
		P999:  h.ValueAtQuantile(99.9),
		Max:   maxOf(h),
	}
}

// Add adds a closed interval: its histograms are merged into the run's,
// its counts added and its stats appended. The interval is not retained.
// It fails if a histogram holds values beyond NewHistogram's range (the
// engine's never do, nor those that ReadHlog returns); the Recording is
// then incomplete.
func (r *Recording) Add(iv Interval) error {
	if r.Corrected == nil {
		r.Corrected, r.Uncorrected = NewHistogram(), NewHistogram()
	}
	if r.Statuses == nil {
		r.Statuses = map[int]int64{}
	}
	if r.Errors == nil {
		r.Errors = map[string]int64{}
	}
	var dropped int64
	if iv.Corrected != nil {
		dropped += r.Corrected.Merge(iv.Corrected)
	}
	if iv.Uncorrected != nil {
		dropped += r.Uncorrected.Merge(iv.Uncorrected)
	}
	if dropped > 0 {
		return fmt.Errorf("interval at %s: %d latencies outside %dµs..%dµs", iv.Start.UTC().Format(time.RFC3339), dropped, HistMinUS, HistMaxUS)
	}
	st := IntervalStats{
		Start: iv.Start, End: iv.End,
		Sent: iv.Sent, LateSends: iv.LateSends, InFlight: iv.InFlight,
		Corrected: percentilesOf(iv.Corrected), Uncorrected: percentilesOf(iv.Uncorrected),
	}
	st.Corrected.Clamped, st.Uncorrected.Clamped = iv.ClampedCorrected, iv.ClampedUncorrected
	r.ClampedCorrected += iv.ClampedCorrected
	r.ClampedUncorrected += iv.ClampedUncorrected
	for code, n := range iv.Statuses {
		r.Statuses[code] += n
		st.Responses += n
		if code >= 500 && code <= 599 {
			st.ServerErrors += n
		}
	}
	for kind, n := range iv.Errors {
		r.Errors[kind] += n
		st.TransportErrors += n
	}
	r.Intervals = append(r.Intervals, st)
	return nil
}

// Log is an interval log in memory: a run's meta and every interval with
// its histograms, in time order, as ReadHlog reads it back and Merge
// combines several. It is for offline work on finished runs: a run itself
// streams its intervals to the log file as they close (Config.Hlog) and
// keeps only a Recording.
type Log struct {
	Meta      Meta
	Intervals []Interval
}

// Recording summarizes the log the way a run summarizes itself.
func (l *Log) Recording() (*Recording, error) {
	rec := &Recording{Meta: l.Meta}
	for _, iv := range l.Intervals {
		if err := rec.Add(iv); err != nil {
			return nil, err
		}
	}
	return rec, nil
}
