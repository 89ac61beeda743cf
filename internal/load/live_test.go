package load

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestLiveLine(t *testing.T) {
	h := NewHistogram()
	for v := int64(1); v <= 1000; v++ {
		h.RecordValue(v * 100) // 0.1 .. 100 ms
	}
	start := time.Now()
	p := Progress{
		Interval: Interval{Start: start, End: start.Add(time.Second), Corrected: h, Uncorrected: h,
			Statuses: map[int]int64{200: 980, 503: 10}, Errors: map[string]int64{ErrTimeout: 10}, LateSends: 3, InFlight: 7},
		Elapsed: 5 * time.Second, Total: 30 * time.Second,
	}
	var plain, term bytes.Buffer
	NewLive(&plain, false, Config{Rate: 1000}).Update(p)
	l := NewLive(&term, true, Config{Rate: 1000})
	l.Update(p)
	l.Update(p)
	l.Done()

	want := "[5s/30s]     990 req/s (target 1000)  p50 50.0ms  p99 99.0ms  errors 20  late 3  in-flight 7\n"
	if plain.String() != want {
		t.Errorf("plain line:\n%q\nwant\n%q", plain.String(), want)
	}
	// On a terminal the line is redrawn in place and ended once.
	if got := term.String(); strings.Count(got, "\r\033[K") != 2 || strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
		t.Errorf("terminal output %q", got)
	}
	// Closed model: no target, no late sends.
	var closed bytes.Buffer
	NewLive(&closed, false, Config{}).Update(p)
	if s := closed.String(); strings.Contains(s, "target") || strings.Contains(s, "late") {
		t.Errorf("closed-model line %q", s)
	}
}
