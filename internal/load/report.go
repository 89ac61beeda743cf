package load

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Summary is the totals of a run: what the final text summary shows and
// what summary.json holds. Latencies are float milliseconds derived from the
// merged HDR histograms (microsecond resolution, 3 significant digits;
// percentiles are the upper bound of their HDR bucket, as HdrHistogram
// reports them). Percentiles are never averaged: they come from one
// histogram of every interval (and every generator, after a merge).
type Summary struct {
	Meta Meta `json:"meta"`

	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	DurationS float64   `json:"duration_s"` // End - Start: the recorded window, warm-up excluded
	Intervals int       `json:"intervals"`

	TargetRate   float64 `json:"target_rate"`          // requests/s asked for; 0 in the closed model
	AchievedRate float64 `json:"achieved_rate"`        // responses (any status) per second of the schedule (Meta.Duration), or of the window when shorter
	RateRatio    float64 `json:"rate_ratio,omitempty"` // AchievedRate / TargetRate; open model only

	Sent          int64 `json:"requests_sent"`
	Responses     int64 `json:"responses"` // every HTTP response, whatever its status
	InFlightAtEnd int64 `json:"in_flight_at_end"`
	LateSends     int64 `json:"late_sends"` // open model: requests that left after their intended time

	Statuses        map[int]int64    `json:"statuses"` // status code -> responses
	Errors          map[string]int64 `json:"errors"`   // transport error kind -> count
	TransportErrors int64            `json:"transport_errors"`
	ClientErrors    int64            `json:"status_4xx"` // reported, not failures
	ServerErrors    int64            `json:"status_5xx"`
	// Failures are what an SLO's errors objective counts: transport errors
	// plus 5xx responses. FailureRatio is over completed requests
	// (responses + transport errors).
	Failures     int64   `json:"failures"`
	FailureRatio float64 `json:"failure_ratio"`

	// Corrected latency runs from each request's intended send time
	// (coordinated omission corrected); Uncorrected from the actual send. In
	// the closed model both are the same.
	Corrected   Latency `json:"corrected"`
	Uncorrected Latency `json:"uncorrected"`
}

// Latency is a latency distribution in milliseconds. Clamped counts the
// latencies above the histograms' range (HistMaxUS, 60 s) that are recorded
// at its top: when it is not zero, the mean and a percentile in the top
// bucket are only lower bounds.
type Latency struct {
	Count   int64   `json:"count"`
	Clamped int64   `json:"clamped"`
	MinMS   float64 `json:"min_ms"`
	MeanMS  float64 `json:"mean_ms"`
	P50MS   float64 `json:"p50_ms"`
	P90MS   float64 `json:"p90_ms"`
	P99MS   float64 `json:"p99_ms"`
	P999MS  float64 `json:"p999_ms"`
	P9999MS float64 `json:"p9999_ms"`
	MaxMS   float64 `json:"max_ms"`
}

// at returns the latency at one of the reported percentiles (100 = max).
func (l Latency) at(percentile float64) float64 {
	switch percentile {
	case 50:
		return l.P50MS
	case 90:
		return l.P90MS
	case 99:
		return l.P99MS
	case 99.9:
		return l.P999MS
	case 99.99:
		return l.P9999MS
	case 100:
		return l.MaxMS
	}
	return math.NaN()
}

// topBucketMS is the lowest latency, in milliseconds, that the histograms
// hold in the bucket of HistMaxUS, where the clamped latencies are: a
// percentile reported at or above it may stand for clamped ones.
var topBucketMS = sync.OnceValue(func() float64 {
	h := NewHistogram()
	h.RecordValue(HistMaxUS)
	return usToMS(h.Min()) // the lowest value equivalent to HistMaxUS
})

// lowerBound reports whether ms, one of l's percentiles, is only a lower
// bound: some latencies were clamped and ms is in the top bucket.
func (l Latency) lowerBound(ms float64) bool {
	return l.Clamped > 0 && ms >= topBucketMS()
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count:   h.TotalCount(),
		MinMS:   usToMS(h.Min()),
		MeanMS:  math.Round(h.Mean()*1000) / 1e6,
		P50MS:   usToMS(h.ValueAtQuantile(50)),
		P90MS:   usToMS(h.ValueAtQuantile(90)),
		P99MS:   usToMS(h.ValueAtQuantile(99)),
		P999MS:  usToMS(h.ValueAtQuantile(99.9)),
		P9999MS: usToMS(h.ValueAtQuantile(99.99)),
		MaxMS:   usToMS(maxOf(h)),
	}
}

func usToMS(us int64) float64 { return float64(us) / 1000 }

// Summarize computes the totals of a recording. Percentiles come from the
// recording's whole-run histograms, counts from its totals and intervals.
func Summarize(rec *Recording) Summary {
	s := Summary{Statuses: map[int]int64{}, Errors: map[string]int64{}}
	if rec == nil {
		return s
	}
	s.Meta = rec.Meta
	s.Intervals = len(rec.Intervals)
	for _, iv := range rec.Intervals {
		if s.Start.IsZero() || iv.Start.Before(s.Start) {
			s.Start = iv.Start
		}
		if !iv.End.Before(s.End) {
			s.End = iv.End
			s.InFlightAtEnd = iv.InFlight
		}
		s.LateSends += iv.LateSends
		s.Sent += iv.Sent
	}
	for code, n := range rec.Statuses {
		s.Statuses[code] += n
		s.Responses += n
		switch {
		case code >= 500 && code <= 599:
			s.ServerErrors += n
		case code >= 400 && code <= 499:
			s.ClientErrors += n
		}
	}
	for kind, n := range rec.Errors {
		s.Errors[kind] += n
		s.TransportErrors += n
	}
	if s.End.After(s.Start) {
		s.DurationS = s.End.Sub(s.Start).Seconds()
		// The rate is over the schedule: the last interval also holds the
		// wait for the last responses (up to --timeout), when nothing more
		// was due. An interrupted run's window is shorter than its schedule.
		span := s.End.Sub(s.Start)
		if d := rec.Meta.Duration; d > 0 && d < span {
			span = d
		}
		s.AchievedRate = float64(s.Responses) / span.Seconds()
	}
	if rec.Meta.Model != "closed" && rec.Meta.TargetRate > 0 {
		s.TargetRate = rec.Meta.TargetRate
		s.RateRatio = s.AchievedRate / s.TargetRate
	}
	s.Failures = s.TransportErrors + s.ServerErrors
	if completed := s.Responses + s.TransportErrors; completed > 0 {
		s.FailureRatio = float64(s.Failures) / float64(completed)
	}
	s.Corrected = latencyOf(rec.Corrected)
	s.Uncorrected = latencyOf(rec.Uncorrected)
	s.Corrected.Clamped = rec.ClampedCorrected
	s.Uncorrected.Clamped = rec.ClampedUncorrected
	return s
}

// clampWarning says, in one line, how many latencies were above the
// histograms' range and what that does to the percentiles; "" when none
// were.
func clampWarning(s Summary) string {
	c, u := s.Corrected.Clamped, s.Uncorrected.Clamped
	if c == 0 && u == 0 {
		return ""
	}
	top := formatMS(usToMS(HistMaxUS))
	what := fmt.Sprintf("%d corrected and %d uncorrected latencies", c, u)
	if s.Meta.Model == "closed" {
		what = fmt.Sprintf("%d latencies", c)
	}
	return fmt.Sprintf("%s were over %s, the histograms' top, and count as %s: the mean and any percentile shown at %s or more are lower bounds",
		what, top, top, top)
}

// modelLabel names the run's model and, for the open model, its engine:
// "open model on loops".
func modelLabel(m Meta) string {
	label := m.Model + " model"
	if m.Engine != "" {
		label += " on " + m.Engine
	}
	if m.SendResolution > 0 {
		label += ", sends in " + m.SendResolution.String() + " slots"
	}
	return label
}

// WriteText writes the final one-screen summary of a run.
func (s Summary) WriteText(w io.Writer) error {
	var b bytes.Buffer
	m := s.Meta

	head := []string{"loadgen"}
	if m.Model != "" {
		head = append(head, modelLabel(m))
	}
	if m.Target != "" {
		head = append(head, m.Target)
	}
	if m.Scenario != "" {
		head = append(head, "scenario "+m.Scenario)
	}
	if m.Connections > 0 {
		head = append(head, fmt.Sprintf("%d connections", m.Connections))
	}
	if m.Host != "" {
		head = append(head, "host "+m.Host)
	}
	fmt.Fprintln(&b, strings.Join(head, " · "))
	if s.Intervals > 0 {
		fmt.Fprintf(&b, "window     %s → %s  (%.1f s in %d intervals, warm-up excluded)\n",
			s.Start.UTC().Format(time.RFC3339), s.End.UTC().Format(time.RFC3339), s.DurationS, s.Intervals)
	} else {
		fmt.Fprintln(&b, "window     nothing recorded")
	}

	if m.Interrupted {
		fmt.Fprintln(&b, "interrupted: stopped (SIGINT or SIGTERM) before the end of its schedule; the figures cover what was recorded")
	}
	if s.TargetRate > 0 {
		fmt.Fprintf(&b, "rate       target %.1f/s   achieved %.1f/s (%s of target)\n", s.TargetRate, s.AchievedRate, formatPercent(s.RateRatio))
	} else {
		fmt.Fprintf(&b, "rate       achieved %.1f/s\n", s.AchievedRate)
	}
	fmt.Fprintf(&b, "requests   sent %d   responses %d   transport errors %d   in flight at end %d\n",
		s.Sent, s.Responses, s.TransportErrors, s.InFlightAtEnd)
	if m.Model != "closed" {
		late := "late sends " + fmt.Sprint(s.LateSends)
		if s.Sent > 0 {
			late += " (" + formatPercent(float64(s.LateSends)/float64(s.Sent)) + " of sent)"
		}
		fmt.Fprintln(&b, "           "+late)
	}
	fmt.Fprintln(&b)

	fmt.Fprintf(&b, "%-10s %12s %12s\n", "latency ms", "corrected", "uncorrected")
	for _, row := range latencyRows(s) {
		fmt.Fprintf(&b, "  %-8s %12s %12s\n", row.Label, row.Corrected, row.Uncorrected)
	}
	if m.Model == "closed" {
		fmt.Fprintln(&b, "(closed model: no intended send times, corrected = uncorrected)")
	}
	if warn := clampWarning(s); warn != "" {
		fmt.Fprintln(&b, "warning: "+warn)
	}
	fmt.Fprintln(&b)

	fmt.Fprintln(&b, "statuses   "+formatCountRows(statusRows(s.Statuses)))
	fmt.Fprintf(&b, "errors     %d (%s of completed requests) = %d transport + %d 5xx;  4xx, not errors: %d\n",
		s.Failures, formatPercent(s.FailureRatio), s.TransportErrors, s.ServerErrors, s.ClientErrors)
	if len(s.Errors) > 0 {
		fmt.Fprintln(&b, "transport  "+formatCountRows(errorRows(s.Errors)))
	}
	if n := s.Errors[ErrLocal]; n > 0 {
		fmt.Fprintf(&b, "warning: %d requests failed on this machine, not at the target (out of file descriptors, local ports or buffers): raise `ulimit -n`, or use fewer --connections\n", n)
	}
	_, err := w.Write(b.Bytes())
	return err
}

type latencyRow struct{ Label, Corrected, Uncorrected string }

func latencyRows(s Summary) []latencyRow {
	c, u := s.Corrected, s.Uncorrected
	f := func(v float64) string { return fmt.Sprintf("%.3f", v) }
	return []latencyRow{
		{"p50", f(c.P50MS), f(u.P50MS)},
		{"p90", f(c.P90MS), f(u.P90MS)},
		{"p99", f(c.P99MS), f(u.P99MS)},
		{"p99.9", f(c.P999MS), f(u.P999MS)},
		{"p99.99", f(c.P9999MS), f(u.P9999MS)},
		{"max", f(c.MaxMS), f(u.MaxMS)},
		{"mean", f(c.MeanMS), f(u.MeanMS)},
		{"count", fmt.Sprint(c.Count), fmt.Sprint(u.Count)},
	}
}

// countRow is one entry of a per-status or per-error-kind count.
type countRow struct {
	Label string
	Count int64
}

func statusRows(statuses map[int]int64) []countRow {
	codes := make([]int, 0, len(statuses))
	for code := range statuses {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	rows := make([]countRow, len(codes))
	for i, code := range codes {
		rows[i] = countRow{fmt.Sprint(code), statuses[code]}
	}
	return rows
}

func errorRows(errs map[string]int64) []countRow {
	kinds := make([]string, 0, len(errs))
	for kind := range errs {
		kinds = append(kinds, kind)
	}
	slices.Sort(kinds)
	rows := make([]countRow, len(kinds))
	for i, kind := range kinds {
		rows[i] = countRow{kind, errs[kind]}
	}
	return rows
}

func formatCountRows(rows []countRow) string {
	if len(rows) == 0 {
		return "none"
	}
	parts := make([]string, len(rows))
	for i, r := range rows {
		parts[i] = fmt.Sprintf("%s: %d", r.Label, r.Count)
	}
	return strings.Join(parts, "   ")
}

// formatMS formats a latency given in milliseconds with a fitting unit.
func formatMS(ms float64) string {
	switch {
	case ms >= 1000:
		return trimFloat(ms/1000) + "s"
	case ms >= 1:
		return trimFloat(ms) + "ms"
	default:
		return trimFloat(ms*1000) + "µs"
	}
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func formatPercent(ratio float64) string {
	pct := ratio * 100
	switch {
	case pct == 0 || pct >= 10:
		return trimFloat(math.Round(pct*100)/100) + "%"
	case pct >= 0.01:
		return trimFloat(math.Round(pct*1000)/1000) + "%"
	default:
		return fmt.Sprintf("%.2g%%", pct)
	}
}

// summaryFile is the content of summary.json.
type summaryFile struct {
	Summary
	SLO *Verdict `json:"slo"` // null when no SLO was given
}

func writeSummaryJSON(w io.Writer, sum Summary, slo SLO) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(summaryFile{Summary: sum, SLO: slo.Verdict(sum)})
}

// WriteReports creates dir and writes into it summary.json (the Summary,
// the run's meta and the SLO verdict) and report.html (see WriteHTML). The
// third file of a run directory, run.hlog, is not written from a Recording
// (which holds no per-interval histograms): a run streams it while it runs
// (Config.Hlog), a merge writes it with WriteHlog.
func WriteReports(dir string, rec *Recording, slo SLO) error {
	if rec == nil {
		return fmt.Errorf("write reports: no recording")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write reports: %w", err)
	}
	sum := Summarize(rec)
	files := []struct {
		name  string
		write func(io.Writer) error
	}{
		{"summary.json", func(w io.Writer) error { return writeSummaryJSON(w, sum, slo) }},
		{"report.html", func(w io.Writer) error { return writeHTML(w, rec, sum, slo) }},
	}
	// Each file is attempted even when another failed.
	var errs []error
	for _, f := range files {
		var b bytes.Buffer
		if err := f.write(&b); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", f.name, err))
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), b.Bytes(), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("write reports: %w", err))
		}
	}
	return errors.Join(errs...)
}
