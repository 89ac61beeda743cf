package load

import (
	"bytes"
	"encoding/xml"
	"io"
	"regexp"
	"strings"
	"testing"
)

func renderHTML(t *testing.T, rec *Recording, spec string) string {
	t.Helper()
	slo, err := ParseSLO(spec)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteHTML(&b, rec, slo); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestHTMLReportGolden(t *testing.T) {
	html := renderHTML(t, syntheticRecording(t), "p99<80ms,errors<=0.5%,rate>=0.99")
	checkGolden(t, "report.golden.html", []byte(html))
}

func TestHTMLReportContent(t *testing.T) {
	html := renderHTML(t, syntheticRecording(t), "p99<80ms,errors<=0.5%,rate>=0.99")
	for _, want := range []string{
		`<figure id="latency-over-time">`,
		`<figure id="throughput">`,
		`<figure id="percentile-spectrum">`,
		`class="verdict fail"`,
		"p99&lt;80ms: corrected p99 latency is 187.007ms",
		">p99.99<", ">99.9%<", // spectrum axis
		">responses/s<", ">errors/s<", ">target<",
		">p99 uncorrected<",
		">timeout<", ">404<", ">503<",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if n := strings.Count(html, "<svg "); n != 3 {
		t.Errorf("%d charts, want 3", n)
	}
	if strings.Contains(html, "no data") {
		t.Error("a chart has no data")
	}
}

// TestHTMLReportSelfContained checks that the report loads nothing from
// elsewhere: no scripts, styles, fonts or images by address.
func TestHTMLReportSelfContained(t *testing.T) {
	rec := syntheticRecording(t)
	rec.Meta.Target = "https://shop.example/api" // shown as text, never as a link
	html := renderHTML(t, rec, "")
	external := regexp.MustCompile(`(?i)(\b(src|href|xlink:href|action|poster|data)\s*=\s*["']?\s*(https?:|//))|@import|url\(|<link\b|<script\b|<iframe\b|<object\b|<embed\b|<img\b`)
	if m := external.FindString(html); m != "" {
		t.Errorf("report references something outside itself: %q", m)
	}
	if strings.Count(html, "https://") != 2 { // the title and the heading
		t.Errorf("the target address appears %d times, want it only in the title and heading", strings.Count(html, "https://"))
	}
	if !strings.Contains(html, `class="verdict none"`) {
		t.Error("no SLO is not shown")
	}
}

// TestHTMLReportWellFormed parses the whole page as XML: every element is
// closed and nested, and every attribute is quoted.
func TestHTMLReportWellFormed(t *testing.T) {
	for name, rec := range map[string]*Recording{
		"synthetic": syntheticRecording(t),
		"empty":     {Meta: Meta{Model: "closed"}},
	} {
		html := renderHTML(t, rec, "p99<1s")
		d := xml.NewDecoder(strings.NewReader(html))
		d.Strict = true
		var stack []string
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: not well-formed: %v", name, err)
			}
			switch e := tok.(type) {
			case xml.StartElement:
				stack = append(stack, e.Name.Local)
			case xml.EndElement:
				stack = stack[:len(stack)-1]
			}
		}
		if len(stack) != 0 {
			t.Errorf("%s: unclosed elements %v", name, stack)
		}
	}
}

func TestHTMLReportEscapes(t *testing.T) {
	log := syntheticLog(t)
	log.Meta.Scenario = `<script>alert("x")</script>`
	log.Intervals[0].Errors[`"><img src=x>`] = 1
	html := renderHTML(t, recordingOf(t, log), "")
	if strings.Contains(html, "<script>") || strings.Contains(html, "<img") {
		t.Error("meta and error kinds are not escaped")
	}
	if !strings.Contains(html, "&lt;script&gt;") {
		t.Error("scenario missing from the report")
	}
}

func TestHTMLReportEmpty(t *testing.T) {
	html := renderHTML(t, &Recording{Meta: Meta{Model: "open", TargetRate: 100}}, "p99<80ms")
	if n := strings.Count(html, ">no data<"); n != 3 {
		t.Errorf("%d empty charts, want 3", n)
	}
	if !strings.Contains(html, "no request completed") {
		t.Error("an empty run passes its SLO")
	}
}

func TestLogAxis(t *testing.T) {
	tests := []struct {
		min, max, lo, hi float64
		ticks            int
	}{
		{0.8, 201, 0.1, 1000, 5}, // four decades: decade ticks only
		{1.2, 8, 1, 10, 4},       // one decade: 1, 2, 5, 10
		{10, 10, 10, 100, 4},     // a single value
		{0.001, 60000, 0.001, 1e5, 9},
	}
	for _, tt := range tests {
		lo, hi, ticks := logAxis(tt.min, tt.max)
		if !closeTo(lo, tt.lo) || !closeTo(hi, tt.hi) || len(ticks) != tt.ticks {
			t.Errorf("logAxis(%v, %v) = %v, %v, %v; want %v, %v and %d ticks", tt.min, tt.max, lo, hi, ticks, tt.lo, tt.hi, tt.ticks)
		}
	}
}

func closeTo(a, b float64) bool { return a/b > 0.999999 && a/b < 1.000001 }

func TestNiceSteps(t *testing.T) {
	for _, tt := range []struct{ span, want float64 }{{210, 50}, {1000, 200}, {7, 2}, {0, 1}} {
		if got := niceStep(tt.span, 5); got != tt.want {
			t.Errorf("niceStep(%v) = %v, want %v", tt.span, got, tt.want)
		}
	}
	for _, tt := range []struct {
		span, want float64
	}{{30, 5}, {60, 10}, {600, 120}, {3600, 600}} {
		if got := timeStep(tt.span); got != tt.want {
			t.Errorf("timeStep(%v) = %v, want %v", tt.span, got, tt.want)
		}
	}
	for _, tt := range []struct {
		s    float64
		want string
	}{{0, "0s"}, {45, "45s"}, {120, "2m"}, {90, "1m30s"}, {7200, "2h"}} {
		if got := formatSeconds(tt.s); got != tt.want {
			t.Errorf("formatSeconds(%v) = %q, want %q", tt.s, got, tt.want)
		}
	}
}
