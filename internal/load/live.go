package load

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Live prints the once-a-second progress line of a run: achieved rate,
// corrected p50 and p99 of that second, errors, late sends and requests in
// flight. On a terminal the line is redrawn in place; otherwise (a file, a
// CI log) each second gets a line of its own.
type Live struct {
	w        io.Writer
	terminal bool
	target   func(time.Duration) float64 // intended rate at an offset; nil in the closed model
	drawn    bool
}

// NewLive returns a Live writing to w. terminal selects the in-place line.
func NewLive(w io.Writer, terminal bool, cfg Config) *Live {
	l := &Live{w: w, terminal: terminal}
	switch {
	case len(cfg.Stages) > 0:
		p := newWithWarmup(ConstantPacer{Freq: cfg.Stages[0].Target, Length: cfg.Warmup}, StagedPacer{Stages: cfg.Stages})
		l.target = p.Rate
	case cfg.Rate > 0:
		l.target = func(time.Duration) float64 { return cfg.Rate }
	}
	return l
}

// Update prints the line for one interval; use it as Config.Progress.
func (l *Live) Update(p Progress) {
	fmt.Fprint(l.w, l.format(p))
}

// Done ends an in-place line so that what follows starts on a fresh line.
func (l *Live) Done() {
	if l.terminal && l.drawn {
		fmt.Fprintln(l.w)
		l.drawn = false
	}
}

func (l *Live) format(p Progress) string {
	iv := p.Interval
	secs := iv.End.Sub(iv.Start).Seconds()
	var responses, errors int64
	for code, n := range iv.Statuses {
		responses += n
		if code >= 500 {
			errors += n // as in the report and the SLO: transport errors plus 5xx
		}
	}
	for _, n := range iv.Errors {
		errors += n
	}
	var b strings.Builder
	if l.terminal {
		b.WriteString("\r\033[K") // back to the start of the line, clear it
	}
	phase := ""
	if p.Warmup {
		phase = "warmup "
	}
	// The last interval runs until the last response is in, past the end.
	fmt.Fprintf(&b, "[%s%s/%s] ", phase, roundSeconds(min(p.Elapsed, p.Total)), roundSeconds(p.Total))
	rate := 0.0
	if secs > 0 {
		rate = float64(responses) / secs
	}
	fmt.Fprintf(&b, "%7.0f req/s", rate)
	if l.target != nil {
		mid := p.Elapsed - time.Duration(secs*float64(time.Second)/2)
		fmt.Fprintf(&b, " (target %.0f)", l.target(mid))
	}
	if h := iv.Corrected; h != nil && h.TotalCount() > 0 {
		fmt.Fprintf(&b, "  p50 %s  p99 %s", formatUS(h.ValueAtQuantile(50)), formatUS(h.ValueAtQuantile(99)))
	} else {
		b.WriteString("  p50 -  p99 -")
	}
	fmt.Fprintf(&b, "  errors %d", errors)
	if l.target != nil {
		fmt.Fprintf(&b, "  late %d", iv.LateSends)
	}
	fmt.Fprintf(&b, "  in-flight %d", iv.InFlight)
	if iv.ClampedCorrected > 0 {
		// Recorded at the histograms' top: the p99 shown is a lower bound.
		fmt.Fprintf(&b, "  over %s %d", formatMS(usToMS(HistMaxUS)), iv.ClampedCorrected)
	}
	if l.terminal {
		l.drawn = true
	} else {
		b.WriteByte('\n')
	}
	return b.String()
}

func roundSeconds(d time.Duration) time.Duration { return d.Round(time.Second) }

// formatUS prints microseconds with a unit and three significant digits.
func formatUS(us int64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 10_000:
		return fmt.Sprintf("%.2fms", float64(us)/1e3)
	case us < 100_000:
		return fmt.Sprintf("%.1fms", float64(us)/1e3)
	case us < 1_000_000:
		return fmt.Sprintf("%.0fms", float64(us)/1e3)
	}
	return fmt.Sprintf("%.2fs", float64(us)/1e6)
}
