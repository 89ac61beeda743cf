package load

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// WriteHTML writes the run's report: one self-contained page that works
// offline (no scripts, fonts or styles from elsewhere) with the summary,
// the SLO verdict and three inline SVG charts drawn here: latency
// percentiles over time, throughput over time and the percentile spectrum.
func WriteHTML(w io.Writer, rec *Recording, slo SLO) error {
	return writeHTML(w, rec, Summarize(rec), slo)
}

func writeHTML(w io.Writer, rec *Recording, sum Summary, slo SLO) error {
	if rec == nil {
		return fmt.Errorf("write html: no recording")
	}
	var b bytes.Buffer
	if err := reportTemplate.Execute(&b, newReportView(rec, sum, slo)); err != nil {
		return fmt.Errorf("write html: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

type reportRow struct{ Label, Value string }

type reportView struct {
	Title     string
	Subtitle  string
	Verdict   *Verdict
	Run       []reportRow
	Traffic   []reportRow
	Latency   []latencyRow
	Clamped   string // the text report's warning about latencies above the histograms' range, if any
	Closed    bool
	Statuses  []countRow
	Transport []countRow
	Charts    []chartView
}

func newReportView(rec *Recording, sum Summary, slo SLO) reportView {
	m := sum.Meta
	v := reportView{
		Title:   "loadgen report",
		Verdict: slo.Verdict(sum),
		Latency: latencyRows(sum),
		Clamped: clampWarning(sum),
		Closed:  m.Model == "closed",
	}
	if m.Target != "" {
		v.Title += ": " + m.Target
	}
	var sub []string
	if m.Model != "" {
		sub = append(sub, modelLabel(m))
	}
	if m.Scenario != "" {
		sub = append(sub, "scenario "+m.Scenario)
	}
	if m.Stages != "" {
		sub = append(sub, "stages "+m.Stages)
	}
	if m.Connections > 0 {
		sub = append(sub, fmt.Sprintf("%d connections", m.Connections))
	}
	if m.Host != "" {
		sub = append(sub, "host "+m.Host)
	}
	v.Subtitle = strings.Join(sub, " · ")

	if !m.Started.IsZero() {
		v.Run = append(v.Run, reportRow{"run started", m.Started.UTC().Format(time.RFC3339)})
	}
	if sum.Intervals > 0 {
		v.Run = append(v.Run,
			reportRow{"recorded from", sum.Start.UTC().Format(time.RFC3339)},
			reportRow{"recorded to", sum.End.UTC().Format(time.RFC3339)},
		)
	}
	v.Run = append(v.Run, reportRow{"recorded", fmt.Sprintf("%.1f s in %d intervals", sum.DurationS, sum.Intervals)})
	if m.Interrupted {
		v.Run = append(v.Run, reportRow{"interrupted", "stopped (SIGINT or SIGTERM) before the end of its schedule: the figures cover what was recorded"})
	}
	if m.Warmup > 0 {
		v.Run = append(v.Run, reportRow{"warm-up (excluded)", m.Warmup.String()})
	}

	if sum.TargetRate > 0 {
		v.Traffic = append(v.Traffic, reportRow{"target rate", fmt.Sprintf("%.1f/s", sum.TargetRate)})
		v.Traffic = append(v.Traffic, reportRow{"achieved rate", fmt.Sprintf("%.1f/s (%s of target)", sum.AchievedRate, formatPercent(sum.RateRatio))})
	} else {
		v.Traffic = append(v.Traffic, reportRow{"achieved rate", fmt.Sprintf("%.1f/s", sum.AchievedRate)})
	}
	v.Traffic = append(v.Traffic,
		reportRow{"requests sent", fmt.Sprint(sum.Sent)},
		reportRow{"responses", fmt.Sprint(sum.Responses)},
		reportRow{"in flight at end", fmt.Sprint(sum.InFlightAtEnd)},
	)
	if !v.Closed {
		v.Traffic = append(v.Traffic, reportRow{"late sends", fmt.Sprint(sum.LateSends)})
	}
	v.Traffic = append(v.Traffic,
		reportRow{"errors (transport + 5xx)", fmt.Sprintf("%d (%s)", sum.Failures, formatPercent(sum.FailureRatio))},
		reportRow{"4xx (not errors)", fmt.Sprint(sum.ClientErrors)},
	)
	v.Statuses = statusRows(sum.Statuses)
	v.Transport = errorRows(sum.Errors)

	v.Charts = []chartView{
		latencyOverTimeChart(rec, sum),
		throughputChart(rec, sum),
		spectrumChart(rec, sum),
	}
	return v
}

// Chart geometry, in SVG user units.
const (
	chartW      = 960
	chartH      = 320
	chartLeft   = 72
	chartRight  = 24
	chartTop    = 34
	chartBottom = 44
)

// px is an SVG coordinate, printed with one decimal.
type px float64

func (p px) String() string { return fmt.Sprintf("%.1f", float64(p)) }

type chartTick struct {
	Pos   px
	Label string
}

type chartSeries struct {
	Name  string
	Class string
	Path  string
	// Legend position.
	LX, LY px
}

type chartView struct {
	ID, Title, Caption string
	W, H               int
	X0, Y0, X1, Y1     px // plot area corners: left, top, right, bottom
	XTicks, YTicks     []chartTick
	XLabel, YLabel     string
	Series             []chartSeries
	Empty              bool
}

func newChart(id, title, caption, xLabel, yLabel string) chartView {
	return chartView{
		ID: id, Title: title, Caption: caption, XLabel: xLabel, YLabel: yLabel,
		W: chartW, H: chartH,
		X0: chartLeft, Y0: chartTop, X1: chartW - chartRight, Y1: chartH - chartBottom,
	}
}

// point is a data point; NaN y breaks the line.
type point struct{ x, y float64 }

// addSeries scales points into the plot and lays out its legend entry.
func (c *chartView) addSeries(name, class string, pts []point, sx, sy func(float64) px) {
	var b strings.Builder
	pen := false
	for _, p := range pts {
		if math.IsNaN(p.y) || math.IsInf(p.y, 0) {
			pen = false
			continue
		}
		cmd := "L"
		if !pen {
			cmd = "M"
		}
		fmt.Fprintf(&b, "%s%s,%s", cmd, sx(p.x), sy(p.y))
		pen = true
	}
	lx := c.X0 + 8
	for _, s := range c.Series {
		lx += px(40 + 7*len(s.Name))
	}
	c.Series = append(c.Series, chartSeries{Name: name, Class: class, Path: b.String(), LX: lx, LY: c.Y0 - 14})
}

func (c *chartView) scaleX(lo, hi float64) func(float64) px {
	if hi <= lo {
		hi = lo + 1
	}
	return func(x float64) px { return c.X0 + px((x-lo)/(hi-lo))*(c.X1-c.X0) }
}

func (c *chartView) scaleYLinear(lo, hi float64) func(float64) px {
	if hi <= lo {
		hi = lo + 1
	}
	return func(y float64) px { return c.Y1 - px((y-lo)/(hi-lo))*(c.Y1-c.Y0) }
}

func (c *chartView) scaleYLog(lo, hi float64) func(float64) px {
	llo, lhi := math.Log10(lo), math.Log10(hi)
	return func(y float64) px {
		y = max(y, lo)
		return c.Y1 - px((math.Log10(y)-llo)/(lhi-llo))*(c.Y1-c.Y0)
	}
}

// logAxis widens [min, max] (positive) to whole decades and returns its
// ticks: the decades, plus 2 and 5 times each when there are few.
func logAxis(minV, maxV float64) (lo, hi float64, ticks []float64) {
	lo = math.Pow(10, math.Floor(math.Log10(minV)))
	hi = math.Pow(10, math.Ceil(math.Log10(maxV)))
	if hi <= lo {
		hi = lo * 10
	}
	decades := int(math.Round(math.Log10(hi / lo)))
	for d := 0; d <= decades; d++ {
		base := lo * math.Pow(10, float64(d))
		ticks = append(ticks, base)
		if decades <= 2 && d < decades {
			ticks = append(ticks, 2*base, 5*base)
		}
	}
	return lo, hi, ticks
}

// niceStep returns a 1, 2 or 5 times a power of ten step near span/n.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// timeStep returns a step of seconds giving at most about 8 ticks.
func timeStep(span float64) float64 {
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400} {
		if span/s <= 8 {
			return s
		}
	}
	return 86400
}

func formatSeconds(s float64) string {
	sec := int64(math.Round(s))
	switch {
	case sec < 60:
		return fmt.Sprintf("%ds", sec)
	case sec%3600 == 0:
		return fmt.Sprintf("%dh", sec/3600)
	case sec%60 == 0:
		return fmt.Sprintf("%dm", sec/60)
	default:
		return fmt.Sprintf("%dm%02ds", sec/60, sec%60)
	}
}

func formatCount(v float64) string {
	switch {
	case v >= 1e6:
		return trimFloat(v/1e6) + "M"
	case v >= 1e4:
		return trimFloat(v/1e3) + "k"
	default:
		return trimFloat(v)
	}
}

func (c *chartView) timeTicks(span float64, sx func(float64) px) {
	step := timeStep(span)
	for t := 0.0; t <= span+1e-9; t += step {
		c.XTicks = append(c.XTicks, chartTick{sx(t), formatSeconds(t)})
	}
}

func (c *chartView) logTicks(ticks []float64, sy func(float64) px) {
	for _, t := range ticks {
		c.YTicks = append(c.YTicks, chartTick{sy(t), formatMS(t)})
	}
}

// timeSpan returns the offset of an interval's middle from the start of
// the recording, in seconds, and the recording's length.
func timeSpan(sum Summary, iv IntervalStats) (mid, length float64) {
	mid = iv.Start.Sub(sum.Start).Seconds() + iv.End.Sub(iv.Start).Seconds()/2
	return mid, sum.End.Sub(sum.Start).Seconds()
}

func latencyOverTimeChart(rec *Recording, sum Summary) chartView {
	c := newChart("latency-over-time", "Latency percentiles over time",
		"Per interval, corrected latency (from the intended send time); log scale.",
		"time since start of recording", "latency")
	type line struct {
		name, class string
		value       func(Percentiles) int64
		uncorrected bool
	}
	lines := []line{
		{"p50", "s-p50", func(p Percentiles) int64 { return p.P50 }, false},
		{"p90", "s-p90", func(p Percentiles) int64 { return p.P90 }, false},
		{"p99", "s-p99", func(p Percentiles) int64 { return p.P99 }, false},
		{"max", "s-max", func(p Percentiles) int64 { return p.Max }, false},
	}
	if sum.Meta.Model != "closed" {
		lines = append(lines, line{"p99 uncorrected", "s-unc", func(p Percentiles) int64 { return p.P99 }, true})
	}
	pts := make([][]point, len(lines))
	minV, maxV := math.Inf(1), 0.0
	span := 0.0
	for _, iv := range rec.Intervals {
		mid, length := timeSpan(sum, iv)
		span = length
		for i, l := range lines {
			p := iv.Corrected
			if l.uncorrected {
				p = iv.Uncorrected
			}
			y := math.NaN()
			if p.Count > 0 {
				y = math.Max(usToMS(l.value(p)), 0.001)
				minV, maxV = math.Min(minV, y), math.Max(maxV, y)
			}
			pts[i] = append(pts[i], point{mid, y})
		}
	}
	if maxV == 0 {
		c.Empty = true
		return c
	}
	lo, hi, ticks := logAxis(minV, maxV)
	sx, sy := c.scaleX(0, span), c.scaleYLog(lo, hi)
	c.timeTicks(span, sx)
	c.logTicks(ticks, sy)
	for i, l := range lines {
		c.addSeries(l.name, l.class, pts[i], sx, sy)
	}
	return c
}

func throughputChart(rec *Recording, sum Summary) chartView {
	c := newChart("throughput", "Throughput over time",
		"Per interval: responses per second (any status) and errors per second (transport errors + 5xx).",
		"time since start of recording", "requests/s")
	var resp, errs []point
	maxV, span := 0.0, 0.0
	for _, iv := range rec.Intervals {
		mid, length := timeSpan(sum, iv)
		span = length
		secs := iv.End.Sub(iv.Start).Seconds()
		if secs <= 0 {
			continue
		}
		n, e := iv.Responses, iv.ServerErrors+iv.TransportErrors
		r, er := float64(n)/secs, float64(e)/secs
		resp = append(resp, point{mid, r})
		errs = append(errs, point{mid, er})
		maxV = math.Max(maxV, math.Max(r, er))
	}
	if len(resp) == 0 {
		c.Empty = true
		return c
	}
	showTarget := sum.TargetRate > 0 && sum.Meta.Stages == ""
	if showTarget {
		maxV = math.Max(maxV, sum.TargetRate)
	}
	step := niceStep(maxV*1.05, 5)
	hi := math.Ceil(maxV*1.05/step) * step
	sx, sy := c.scaleX(0, span), c.scaleYLinear(0, hi)
	c.timeTicks(span, sx)
	for y := 0.0; y <= hi+step/1e6; y += step {
		c.YTicks = append(c.YTicks, chartTick{sy(y), formatCount(y)})
	}
	c.addSeries("responses/s", "s-resp", resp, sx, sy)
	c.addSeries("errors/s", "s-err", errs, sx, sy)
	if showTarget {
		c.addSeries("target", "s-target", []point{{0, sum.TargetRate}, {span, sum.TargetRate}}, sx, sy)
	}
	return c
}

// spectrumNines are the tick positions of the percentile axis: x is the
// number of nines, -log10(1 - p).
var spectrumNines = []struct {
	x     float64
	label string
}{{0, "0%"}, {math.Log10(2), "50%"}, {1, "90%"}, {2, "99%"}, {3, "99.9%"}, {4, "99.99%"}, {5, "99.999%"}, {6, "99.9999%"}}

func spectrumChart(rec *Recording, sum Summary) chartView {
	c := newChart("percentile-spectrum", "Percentile spectrum",
		"Latency at each percentile of the whole recording; the x axis counts nines, the y axis is log scale.",
		"percentile", "latency")
	corrected, uncorrected := rec.Corrected, rec.Uncorrected
	if corrected == nil || uncorrected == nil || corrected.TotalCount() == 0 && uncorrected.TotalCount() == 0 {
		c.Empty = true
		return c
	}
	count := max(corrected.TotalCount(), uncorrected.TotalCount())
	// Beyond about log10(count) nines every percentile is the maximum.
	maxX := math.Min(6, math.Max(2, math.Ceil(math.Log10(float64(count)))))
	curve := func(h *hdrhistogram.Histogram) []point {
		if h.TotalCount() == 0 {
			return nil
		}
		var pts []point
		const steps = 300
		for i := 0; i <= steps; i++ {
			x := maxX * float64(i) / steps
			p := 100 * (1 - math.Pow(10, -x))
			pts = append(pts, point{x, math.Max(usToMS(h.ValueAtQuantile(p)), 0.001)})
		}
		return pts
	}
	lines := []struct {
		name, class string
		pts         []point
	}{{"corrected", "s-p99", curve(corrected)}}
	if sum.Meta.Model != "closed" {
		lines = append(lines, struct {
			name, class string
			pts         []point
		}{"uncorrected", "s-unc", curve(uncorrected)})
	}
	minV, maxV := math.Inf(1), 0.0
	for _, l := range lines {
		for _, p := range l.pts {
			minV, maxV = math.Min(minV, p.y), math.Max(maxV, p.y)
		}
	}
	lo, hi, ticks := logAxis(minV, maxV)
	sx, sy := c.scaleX(0, maxX), c.scaleYLog(lo, hi)
	for _, t := range spectrumNines {
		if t.x <= maxX+1e-9 {
			c.XTicks = append(c.XTicks, chartTick{sx(t.x), t.label})
		}
	}
	c.logTicks(ticks, sy)
	for _, l := range lines {
		c.addSeries(l.name, l.class, l.pts, sx, sy)
	}
	return c
}

var reportTemplate = template.Must(template.New("report").Parse(reportHTML))

// reportHTML is XHTML-clean (every element closed) so that tests can check
// its structure with an XML parser.
const reportHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>{{.Title}}</title>
<style>
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 24px auto; max-width: 1000px; padding: 0 16px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.sub { color: #555; margin: 0 0 16px; }
.verdict { padding: 10px 14px; border-radius: 4px; margin: 12px 0 20px; }
.verdict.ok { background: #e6f4ea; border: 1px solid #8bc79b; }
.verdict.fail { background: #fdecea; border: 1px solid #e0a09a; }
.verdict.none { background: #f2f2f2; border: 1px solid #ccc; }
.verdict ul { margin: 6px 0 0; padding-left: 20px; }
.tables { display: flex; flex-wrap: wrap; gap: 24px; }
table { border-collapse: collapse; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 24px 0; }
figcaption { font-weight: 600; }
figcaption span { font-weight: normal; color: #555; }
svg.chart { width: 100%; height: auto; display: block; }
.frame { fill: none; stroke: #999; }
.grid { stroke: #e8e8e8; }
.tick { font-size: 11px; fill: #444; }
.axis { font-size: 12px; fill: #222; }
.empty { font-size: 14px; fill: #777; }
path.line, line.key { fill: none; stroke-width: 1.6; }
.s-p50 { stroke: #1f77b4; }
.s-p90 { stroke: #2ca02c; }
.s-p99 { stroke: #ff7f0e; }
.s-max { stroke: #d62728; }
.s-unc { stroke: #7f7f7f; stroke-dasharray: 5 4; }
.s-resp { stroke: #1f77b4; }
.s-err { stroke: #d62728; }
.s-target { stroke: #555; stroke-dasharray: 2 4; }
.note { color: #555; font-size: 12px; }
.warn { color: #a40000; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="sub">{{.Subtitle}}</p>
{{with .Verdict}}{{if .OK}}<div class="verdict ok"><strong>SLO met</strong>: {{.SLO}}</div>
{{else}}<div class="verdict fail"><strong>SLO NOT met</strong>: {{.SLO}}<ul>{{range .Failures}}<li>{{.}}</li>{{end}}</ul></div>
{{end}}{{else}}<div class="verdict none">No SLO given.</div>
{{end}}
<h2>Summary</h2>
<div class="tables">
<table><tbody>
{{range .Run}}<tr><th>{{.Label}}</th><td>{{.Value}}</td></tr>
{{end}}{{range .Traffic}}<tr><th>{{.Label}}</th><td class="num">{{.Value}}</td></tr>
{{end}}</tbody></table>
<table>
<thead><tr><th>latency (ms)</th><th class="num">corrected</th><th class="num">uncorrected</th></tr></thead>
<tbody>
{{range .Latency}}<tr><th>{{.Label}}</th><td class="num">{{.Corrected}}</td><td class="num">{{.Uncorrected}}</td></tr>
{{end}}</tbody></table>
<table>
<thead><tr><th>status</th><th class="num">responses</th></tr></thead>
<tbody>
{{range .Statuses}}<tr><td>{{.Label}}</td><td class="num">{{.Count}}</td></tr>
{{else}}<tr><td>none</td><td></td></tr>
{{end}}</tbody></table>
<table>
<thead><tr><th>transport error</th><th class="num">count</th></tr></thead>
<tbody>
{{range .Transport}}<tr><td>{{.Label}}</td><td class="num">{{.Count}}</td></tr>
{{else}}<tr><td>none</td><td></td></tr>
{{end}}</tbody></table>
</div>
{{with .Clamped}}<p class="warn"><strong>Warning</strong>: {{.}}.</p>
{{end}}{{if .Closed}}<p class="note">Closed model: requests have no intended send time, so corrected latency equals uncorrected latency.</p>
{{end}}
{{range .Charts}}{{template "chart" .}}{{end}}
<p class="note">Latency is recorded in HDR histograms (1 µs to 60 s, 3 significant digits) and totals come from merging them, never from averaging percentiles.
Corrected latency runs from each request's intended send time, so it includes time spent waiting behind a slow server (coordinated omission); uncorrected latency runs from the actual send.</p>
</body>
</html>
{{define "chart"}}<figure id="{{.ID}}">
<figcaption>{{.Title}} <span>{{.Caption}}</span></figcaption>
<svg class="chart" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="{{.Title}}">
<rect class="frame" x="{{.X0}}" y="{{.Y0}}" width="{{.PlotW}}" height="{{.PlotH}}"/>
{{if .Empty}}<text class="empty" x="{{.MidX}}" y="{{.MidY}}" text-anchor="middle">no data</text>
{{else}}{{range .YTicks}}<line class="grid" x1="{{$.X0}}" x2="{{$.X1}}" y1="{{.Pos}}" y2="{{.Pos}}"/><text class="tick" x="{{$.YTickX}}" y="{{.Pos}}" text-anchor="end" dominant-baseline="middle">{{.Label}}</text>
{{end}}{{range .XTicks}}<line class="grid" x1="{{.Pos}}" x2="{{.Pos}}" y1="{{$.Y0}}" y2="{{$.Y1}}"/><text class="tick" x="{{.Pos}}" y="{{$.XTickY}}" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Series}}<path class="line {{.Class}}" d="{{.Path}}"/>
<line class="key {{.Class}}" x1="{{.LX}}" x2="{{.LXEnd}}" y1="{{.LY}}" y2="{{.LY}}"/><text class="tick" x="{{.LXText}}" y="{{.LY}}" dominant-baseline="middle">{{.Name}}</text>
{{end}}{{end}}<text class="axis" x="{{.MidX}}" y="{{.XLabelY}}" text-anchor="middle">{{.XLabel}}</text>
<text class="axis" x="{{.YLabelX}}" y="{{.MidY}}" text-anchor="middle" transform="rotate(-90 {{.YLabelX}} {{.MidY}})">{{.YLabel}}</text>
</svg>
</figure>
{{end}}`

// Derived positions used by the chart template.
func (c chartView) PlotW() px   { return c.X1 - c.X0 }
func (c chartView) PlotH() px   { return c.Y1 - c.Y0 }
func (c chartView) MidX() px    { return (c.X0 + c.X1) / 2 }
func (c chartView) MidY() px    { return (c.Y0 + c.Y1) / 2 }
func (c chartView) YTickX() px  { return c.X0 - 6 }
func (c chartView) XTickY() px  { return c.Y1 + 16 }
func (c chartView) XLabelY() px { return c.Y1 + 36 }
func (c chartView) YLabelX() px { return 16 }

func (s chartSeries) LXEnd() px  { return s.LX + 24 }
func (s chartSeries) LXText() px { return s.LX + 28 }
