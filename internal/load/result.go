// Package load is the engine of loadgen: an open-model (constant or staged
// arrival rate, coordinated-omission corrected) and closed-model HTTP load
// generator that records latency in HDR histograms, never in sample lists,
// and turns the recording into text, JSON, HdrHistogram interval logs and an
// offline HTML report.
package load

import (
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: 1 µs to 60 s at 3 significant digits. Values are
// recorded in microseconds.
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
// second) of a run, merged across all workers.
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
}

// Meta describes how a run was configured.
type Meta struct {
	Target      string        `json:"target"`
	Model       string        `json:"model"`                 // "open" or "closed"
	TargetRate  float64       `json:"target_rate,omitempty"` // requests/s; 0 in the closed model
	Stages      string        `json:"stages,omitempty"`      // as given by --stages
	Connections int           `json:"connections"`
	Duration    time.Duration `json:"duration"`
	Warmup      time.Duration `json:"warmup"`
	Scenario    string        `json:"scenario,omitempty"`
	Host        string        `json:"host,omitempty"` // generator host name, for merged runs
	Started     time.Time     `json:"started"`
}

// Recording is a whole run (warm-up excluded): its configuration and its
// intervals in time order. Totals are derived by merging intervals, which is
// lossless for HDR histograms and counts alike.
type Recording struct {
	Meta      Meta
	Intervals []Interval
}
