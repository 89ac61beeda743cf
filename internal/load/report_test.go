package load

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Golden files under testdata/ are rewritten with: go test ./internal/load -update
// The flag is registered only if no other test file of the package did.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files under testdata/")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if updateGolden() {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(gl), len(wl)); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("%s differs at line %d (run with -update if the change is intended)\n got: %q\nwant: %q", path, i+1, g, w)
		}
	}
}

var reportTestStart = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

// syntheticLog is the interval log of a deterministic open-model run at
// 200 requests/s for 30 one-second intervals: mostly fast responses, a
// slow stretch in the middle (where corrected latency grows well past
// uncorrected), a few 404s, 503s and timeouts. Its histograms are compact,
// as in a log the engine wrote.
func syntheticLog(t testing.TB) *Log {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	rec := &Log{Meta: Meta{
		Target:      "http://127.0.0.1:8080",
		Model:       "open",
		TargetRate:  200,
		Connections: 32,
		Duration:    30 * time.Second,
		Warmup:      5 * time.Second,
		Scenario:    "browse",
		Host:        "gen-1",
		Started:     reportTestStart,
	}}
	for i := range 30 {
		iv := Interval{
			Start:       reportTestStart.Add(5*time.Second + time.Duration(i)*time.Second),
			Corrected:   NewHistogram(),
			Uncorrected: NewHistogram(),
			Statuses:    map[int]int64{},
			Errors:      map[string]int64{},
		}
		iv.End = iv.Start.Add(time.Second)
		for range 200 {
			unc := int64(800 + rng.IntN(1500))
			if rng.IntN(100) == 0 {
				unc += int64(20_000 + rng.IntN(30_000))
			}
			corr := unc
			if i >= 12 && i < 15 { // a stall: requests leave late
				corr += int64(50_000 + rng.IntN(150_000))
				iv.LateSends++
			}
			mustRecord(t, iv.Uncorrected, unc)
			mustRecord(t, iv.Corrected, corr)
			switch r := rng.IntN(1000); {
			case r < 5:
				iv.Statuses[404]++
			case r < 7:
				iv.Statuses[503]++
			default:
				iv.Statuses[200]++
			}
		}
		if i%10 == 9 {
			iv.Errors["timeout"]++
		}
		iv.Sent = 200 + iv.Errors["timeout"]
		iv.InFlight = int64(3 + i%4)
		// As the interval log stores them: the range only just covers the values.
		iv.Corrected, iv.Uncorrected = compactCopy(t, iv.Corrected), compactCopy(t, iv.Uncorrected)
		rec.Intervals = append(rec.Intervals, iv)
	}
	return rec
}

// syntheticRecording is the Recording of syntheticLog, as the engine would
// have returned it.
func syntheticRecording(t testing.TB) *Recording {
	t.Helper()
	return recordingOf(t, syntheticLog(t))
}

// recordingOf summarizes l as a run does, interval by interval.
func recordingOf(t testing.TB, l *Log) *Recording {
	t.Helper()
	rec, err := l.Recording()
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func compactCopy(t testing.TB, h *hdrhistogram.Histogram) *hdrhistogram.Histogram {
	t.Helper()
	c := hdrhistogram.New(HistMinUS, max(h.Max(), 2), HistSigFig)
	if c.Merge(h) != 0 {
		t.Fatal("compact copy dropped values")
	}
	return c
}

func mustRecord(t testing.TB, h *hdrhistogram.Histogram, us int64) {
	t.Helper()
	if err := h.RecordValue(us); err != nil {
		t.Fatal(err)
	}
}

func TestSummarizeKnownValues(t *testing.T) {
	start := reportTestStart
	log := &Log{Meta: Meta{Model: "open", TargetRate: 250}}
	// 1..1000 µs once each over 4 intervals (exact in HDR below 2048 µs),
	// uncorrected twice as fast.
	for i := range 4 {
		iv := Interval{
			Start: start.Add(time.Duration(i) * time.Second), End: start.Add(time.Duration(i+1) * time.Second),
			Corrected: NewHistogram(), Uncorrected: NewHistogram(),
			Statuses: map[int]int64{200: 245, 404: 2}, Errors: map[string]int64{},
			Sent: 251, LateSends: 1, InFlight: int64(i),
		}
		for v := int64(i*250 + 1); v <= int64(i*250+250); v++ {
			mustRecord(t, iv.Corrected, v)
			mustRecord(t, iv.Uncorrected, (v+1)/2)
		}
		log.Intervals = append(log.Intervals, iv)
	}
	log.Intervals[1].Statuses[503] = 3
	log.Intervals[2].Errors["timeout"] = 2
	log.Intervals[3].Errors["connect_refused"] = 1

	s := Summarize(recordingOf(t, log))
	wantCorrected := Latency{Count: 1000, MinMS: 0.001, MeanMS: 0.5005, P50MS: 0.5, P90MS: 0.9, P99MS: 0.99, P999MS: 0.999, P9999MS: 1, MaxMS: 1}
	if s.Corrected != wantCorrected {
		t.Errorf("corrected = %+v\nwant        %+v", s.Corrected, wantCorrected)
	}
	if s.Uncorrected.P50MS != 0.25 || s.Uncorrected.MaxMS != 0.5 || s.Uncorrected.Count != 1000 {
		t.Errorf("uncorrected = %+v", s.Uncorrected)
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"duration", s.DurationS, 4},
		{"responses", float64(s.Responses), 4*247 + 3},
		{"achieved rate", s.AchievedRate, (4*247 + 3) / 4.0},
		{"target rate", s.TargetRate, 250},
		{"rate ratio", s.RateRatio, (4*247 + 3) / 4.0 / 250},
		{"sent", float64(s.Sent), 4 * 251},
		{"late", float64(s.LateSends), 4},
		{"in flight at end", float64(s.InFlightAtEnd), 3},
		{"4xx", float64(s.ClientErrors), 8},
		{"5xx", float64(s.ServerErrors), 3},
		{"transport", float64(s.TransportErrors), 3},
		{"failures", float64(s.Failures), 6},
		{"failure ratio", s.FailureRatio, 6.0 / (4*247 + 3 + 3)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if s.Statuses[200] != 980 || s.Statuses[404] != 8 || s.Statuses[503] != 3 || len(s.Statuses) != 3 {
		t.Errorf("statuses = %v", s.Statuses)
	}
	if s.Errors["timeout"] != 2 || s.Errors["connect_refused"] != 1 || len(s.Errors) != 2 {
		t.Errorf("errors = %v", s.Errors)
	}
}

func TestSummarizePercentilesWithinHDRPrecision(t *testing.T) {
	// Larger values land in wider HDR buckets: the reported percentile must
	// be equivalent to the exact one (same bucket) and within 0.1% of it.
	rng := rand.New(rand.NewPCG(7, 7))
	values := make([]int64, 100_000)
	log := &Log{}
	for i := range 10 {
		iv := Interval{Start: reportTestStart.Add(time.Duration(i) * time.Second), End: reportTestStart.Add(time.Duration(i+1) * time.Second),
			Corrected: NewHistogram(), Uncorrected: NewHistogram()}
		for j := range 10_000 {
			v := int64(math.Exp(rng.Float64()*12)) + 1 // 1 µs .. ~163 ms, log-uniform
			values[i*10_000+j] = v
			mustRecord(t, iv.Corrected, v)
		}
		log.Intervals = append(log.Intervals, iv)
	}
	s := Summarize(recordingOf(t, log))
	sorted := append([]int64(nil), values...)
	slices.Sort(sorted)
	ref := NewHistogram()
	for _, p := range []struct {
		pct float64
		got float64
	}{{50, s.Corrected.P50MS}, {90, s.Corrected.P90MS}, {99, s.Corrected.P99MS}, {99.9, s.Corrected.P999MS}, {99.99, s.Corrected.P9999MS}, {100, s.Corrected.MaxMS}} {
		rank := int(math.Ceil(p.pct/100*float64(len(sorted)))) - 1
		exact := sorted[max(rank, 0)]
		got := int64(math.Round(p.got * 1000))
		if !ref.ValuesAreEquivalent(got, exact) {
			t.Errorf("p%v = %d µs, exact %d µs: not in the same HDR bucket", p.pct, got, exact)
		}
		if rel := math.Abs(float64(got-exact)) / float64(exact); rel > 0.001 {
			t.Errorf("p%v = %d µs, exact %d µs: off by %.4f%%", p.pct, got, exact, rel*100)
		}
	}
}

func TestSummarizeEmpty(t *testing.T) {
	for name, rec := range map[string]*Recording{"nil": nil, "no intervals": {Meta: Meta{Model: "open", TargetRate: 100}}} {
		s := Summarize(rec)
		if s.AchievedRate != 0 || s.DurationS != 0 || s.Corrected.Count != 0 {
			t.Errorf("%s: %+v", name, s)
		}
		if _, err := json.Marshal(s); err != nil {
			t.Errorf("%s: summary does not marshal: %v", name, err)
		}
		var b bytes.Buffer
		if err := s.WriteText(&b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestWriteTextGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Summarize(syntheticRecording(t)).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "summary.golden.txt", b.Bytes())
	for _, want := range []string{"target 200.0/s", "corrected", "uncorrected", "p99.99", "404: ", "503: ", "timeout: 3", "late sends"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text summary lacks %q", want)
		}
	}
}

func TestSummaryJSONGolden(t *testing.T) {
	rec := syntheticRecording(t)
	slo, err := ParseSLO("p99<80ms,errors<=0.5%,rate>=0.99")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := writeSummaryJSON(&b, Summarize(rec), slo); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "summary.golden.json", b.Bytes())

	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"meta", "corrected", "uncorrected", "statuses", "errors", "achieved_rate", "target_rate", "slo"} {
		if _, ok := got[key]; !ok {
			t.Errorf("summary.json lacks %q", key)
		}
	}
	corrected := got["corrected"].(map[string]any)
	for _, key := range []string{"p50_ms", "p90_ms", "p99_ms", "p999_ms", "p9999_ms", "max_ms", "mean_ms"} {
		if _, ok := corrected[key]; !ok {
			t.Errorf("corrected lacks %q", key)
		}
	}
	if v := got["slo"].(map[string]any); v["ok"] != false {
		t.Errorf("the stall should fail p99<80ms: %v", v)
	}
}

func TestWriteReports(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out", "run1")
	rec := syntheticRecording(t)
	if err := WriteReports(dir, rec, SLO{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "run.hlog")); !os.IsNotExist(err) {
		t.Errorf("WriteReports wrote run.hlog (%v): the run streams it", err)
	}
	var file summaryFile
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if file.SLO != nil || file.Responses != 6000 || file.Meta.Host != "gen-1" {
		t.Errorf("summary.json: slo %v, responses %d, host %q", file.SLO, file.Responses, file.Meta.Host)
	}
	html, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(html, []byte("<svg")) {
		t.Error("report.html has no chart")
	}
}
