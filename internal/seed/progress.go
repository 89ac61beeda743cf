package seed

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// reportEvery is how often Run reports progress of each table that moved.
const reportEvery = 500 * time.Millisecond

// startReporting calls cfg.Progress from one goroutine: first for every
// table with rows to load, then every reportEvery for tables that moved, and
// a last time for each table with its final count when the returned stop
// function is called.
func (l *loader) startReporting(tables []*table) (stop func()) {
	if l.cfg.Progress == nil {
		return func() {}
	}
	last := make([]int64, len(tables))
	report := func(force bool) {
		for i, t := range tables {
			if t.total == 0 {
				continue
			}
			d := t.done.Load()
			if d != last[i] || force {
				last[i] = d
				l.cfg.Progress(Progress{Table: t.name, Done: d, Total: t.total, Elapsed: time.Since(l.start)})
			}
		}
	}
	report(true)
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(reportEvery)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				report(false)
				return
			case <-tick.C:
				report(false)
			}
		}
	}()
	return func() {
		close(quit)
		<-exited
	}
}

// ProgressPrinter returns a Progress func that shows all tables on one line.
// When w is a terminal the line is rewritten in place (\r) on every call and
// ends with a newline once every table is complete; otherwise a plain line is
// written at most once a second, plus a last one when every table is
// complete. The returned func is safe for concurrent use.
func ProgressPrinter(w io.Writer) func(Progress) {
	p := &printer{w: w, tty: isTerminal(w)}
	return p.update
}

type printer struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	tables  []Progress // latest report per table, in order of first report
	printed time.Time  // when the last plain line was written
	width   int        // length of the last terminal line, to blank leftovers
	ended   bool
}

func (p *printer) update(pr Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := 0
	for i < len(p.tables) && p.tables[i].Table != pr.Table {
		i++
	}
	if i == len(p.tables) {
		p.tables = append(p.tables, pr)
	}
	p.tables[i] = pr

	complete := true
	var elapsed time.Duration
	for _, t := range p.tables {
		complete = complete && t.Done >= t.Total
		elapsed = max(elapsed, t.Elapsed)
	}
	if complete && p.ended {
		return
	}
	if !p.tty && !complete && !p.printed.IsZero() && time.Since(p.printed) < time.Second {
		return
	}

	var b strings.Builder
	b.WriteString("seed:")
	for _, t := range p.tables {
		fmt.Fprintf(&b, " %s %s/%s", t.Table, group(t.Done), group(t.Total))
		if t.Total > 0 && t.Done < t.Total {
			fmt.Fprintf(&b, " (%d%%)", t.Done*100/t.Total)
		}
	}
	fmt.Fprintf(&b, " %.1fs", elapsed.Seconds())
	line := b.String()

	if p.tty {
		pad := max(0, p.width-len(line))
		p.width = len(line)
		fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
		if complete {
			fmt.Fprintln(p.w)
		}
	} else {
		fmt.Fprintln(p.w, line)
		p.printed = time.Now()
	}
	p.ended = complete
}

// group formats n with thousands separators: 1,000,000.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return s
	}
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	return string(b)
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
