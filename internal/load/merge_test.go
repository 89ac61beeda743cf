package load

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// halvesLog records values[i] into interval i%n of a log (n intervals of
// one second from start+offset): one of two generators sharing one sample
// set.
func halvesLog(t *testing.T, values []int64, half int, offset time.Duration, host string) *Log {
	t.Helper()
	rec := &Log{Meta: Meta{Model: "open", TargetRate: 500, Connections: 8, Host: host, Target: "http://t", Started: reportTestStart.Add(offset)}}
	const n = 5
	for i := range n {
		start := reportTestStart.Add(offset + time.Duration(i)*time.Second)
		rec.Intervals = append(rec.Intervals, Interval{
			Start: start, End: start.Add(time.Second),
			Corrected: NewHistogram(), Uncorrected: NewHistogram(),
			Statuses: map[int]int64{}, Errors: map[string]int64{},
			InFlight: int64(10*half + i),
		})
	}
	for i, v := range values {
		iv := &rec.Intervals[i%n]
		mustRecord(t, iv.Corrected, v)
		mustRecord(t, iv.Uncorrected, max(v/4, 1))
		iv.Statuses[200]++
		iv.Sent++
	}
	return rec
}

func TestMergeIsLossless(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	// Generator A saw only fast responses; generator B saw 5% very slow
	// ones. The p99 of all samples is B's slow value, far from the mean of
	// the two p99s.
	var a, b, all []int64
	for range 10_000 {
		v := int64(1_000 + rng.IntN(1_000))
		a = append(a, v)
	}
	for i := range 10_000 {
		v := int64(1_000 + rng.IntN(1_000))
		if i%20 == 0 {
			v = 500_000 + int64(rng.IntN(100_000))
		}
		b = append(b, v)
	}
	all = append(append(all, a...), b...)

	recA := halvesLog(t, a, 0, 200*time.Millisecond, "gen-a")
	recB := halvesLog(t, b, 1, 700*time.Millisecond, "gen-b")
	merged, err := Merge(recA, recB)
	if err != nil {
		t.Fatal(err)
	}

	ref := NewHistogram()
	for _, v := range all {
		mustRecord(t, ref, v)
	}
	want := latencyOf(ref)
	got := Summarize(recordingOf(t, merged)).Corrected
	if got != want {
		t.Errorf("merged percentiles %+v\nwant (one histogram of all samples) %+v", got, want)
	}
	sa, sb := Summarize(recordingOf(t, recA)).Corrected, Summarize(recordingOf(t, recB)).Corrected
	if avg := (sa.P99MS + sb.P99MS) / 2; avg > 0.9*got.P99MS && avg < 1.1*got.P99MS {
		t.Fatalf("test data does not separate the average of p99s (%v) from the true p99 (%v)", avg, got.P99MS)
	}
	if got.P99MS < 500 {
		t.Errorf("p99 = %vms: the slow 2.5%% of all samples must dominate it", got.P99MS)
	}

	// Intervals at .2 s and .7 s past the same seconds share buckets.
	if len(merged.Intervals) != 5 {
		t.Fatalf("%d merged intervals, want 5", len(merged.Intervals))
	}
	for i, iv := range merged.Intervals {
		wantStart := reportTestStart.Add(time.Duration(i) * time.Second)
		if !iv.Start.Equal(wantStart) || iv.End.Sub(iv.Start) != time.Second {
			t.Errorf("interval %d: %v..%v, want to start at %v and last 1s", i, iv.Start, iv.End, wantStart)
		}
		if iv.Statuses[200] != 4000 || iv.Sent != 4000 || iv.Corrected.TotalCount() != 4000 {
			t.Errorf("interval %d: %d responses, %d sent, %d latencies, want 4000", i, iv.Statuses[200], iv.Sent, iv.Corrected.TotalCount())
		}
		if iv.InFlight != int64(10+2*i) {
			t.Errorf("interval %d: in flight %d, want %d", i, iv.InFlight, 10+2*i)
		}
	}
	// Each second's percentiles, as the report draws them, are those of one
	// histogram of that second's samples from both generators. Second 0 has
	// all of B's slow samples: 12.5% of it, so its p99 is slow, where the
	// mean of the generators' p99s would be half as much.
	for i, st := range recordingOf(t, merged).Intervals {
		ref := NewHistogram()
		for _, half := range [][]int64{a, b} {
			for j, v := range half {
				if j%5 == i {
					mustRecord(t, ref, v)
				}
			}
		}
		if want := percentilesOf(ref); st.Corrected != want {
			t.Errorf("second %d: percentiles %+v, want %+v (one histogram of its samples)", i, st.Corrected, want)
		}
		if i == 0 && st.Corrected.P99 < 500_000 {
			t.Errorf("second 0: p99 %d µs, want the slow samples' (>= 500 ms)", st.Corrected.P99)
		}
	}

	m := merged.Meta
	if m.TargetRate != 1000 || m.Connections != 16 || m.Host != "gen-a,gen-b" || m.Target != "http://t" ||
		m.Model != "open" || !m.Started.Equal(reportTestStart.Add(200*time.Millisecond)) {
		t.Errorf("meta = %+v", m)
	}
}

func TestMergeThroughHlogs(t *testing.T) {
	// What loadgen merge does: each generator's run.hlog, read back, merged.
	a, b := syntheticLog(t), syntheticLog(t)
	b.Meta.Host = "gen-2"
	inMemory, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var fromLogs []*Log
	for _, rec := range []*Log{a, b} {
		var buf bytes.Buffer
		if err := WriteHlog(&buf, rec); err != nil {
			t.Fatal(err)
		}
		back, err := ReadHlog(&buf)
		if err != nil {
			t.Fatal(err)
		}
		fromLogs = append(fromLogs, back)
	}
	merged, err := Merge(fromLogs...)
	if err != nil {
		t.Fatal(err)
	}
	sameIntervals(t, merged, inMemory)
	got, want := Summarize(recordingOf(t, merged)), Summarize(recordingOf(t, inMemory))
	if got.Corrected != want.Corrected || got.Uncorrected != want.Uncorrected || got.Responses != 12000 || got.Failures != 24 ||
		got.Statuses[404] != want.Statuses[404] || got.Errors["timeout"] != 6 || got.LateSends != 1200 {
		t.Errorf("merged from logs: %+v\nwant %+v", got, want)
	}
	if got.TargetRate != 400 || got.RateRatio != 1 {
		t.Errorf("target rate %v, ratio %v: want 400/s, 1", got.TargetRate, got.RateRatio)
	}
	// Merging a merge is a merge.
	again, err := Merge(merged)
	if err != nil {
		t.Fatal(err)
	}
	sameIntervals(t, again, merged)
}

func TestMergeLeavesInputsAlone(t *testing.T) {
	a := syntheticLog(t)
	before := Summarize(recordingOf(t, a))
	if _, err := Merge(a, a); err != nil {
		t.Fatal(err)
	}
	if after := Summarize(recordingOf(t, a)); after.Corrected != before.Corrected || after.Responses != before.Responses {
		t.Error("Merge changed its input")
	}
}

func TestMergeSharedHistogram(t *testing.T) {
	// Closed model: Corrected and Uncorrected may be one histogram.
	h := NewHistogram()
	mustRecord(t, h, 1500)
	rec := &Log{Meta: Meta{Model: "closed", Connections: 4}, Intervals: []Interval{{
		Start: reportTestStart, End: reportTestStart.Add(time.Second), Corrected: h, Uncorrected: h, Statuses: map[int]int64{200: 1},
	}}}
	merged, err := Merge(rec, rec)
	if err != nil {
		t.Fatal(err)
	}
	if c, u := merged.Intervals[0].Corrected.TotalCount(), merged.Intervals[0].Uncorrected.TotalCount(); c != 2 || u != 2 {
		t.Errorf("counts %d/%d, want 2/2", c, u)
	}
	if h.TotalCount() != 1 {
		t.Error("input histogram changed")
	}
	if merged.Meta.Model != "closed" || merged.Meta.TargetRate != 0 || merged.Meta.Connections != 8 {
		t.Errorf("meta = %+v", merged.Meta)
	}
}

func TestMergeErrors(t *testing.T) {
	open := &Log{Meta: Meta{Model: "open", TargetRate: 10}}
	closed := &Log{Meta: Meta{Model: "closed"}}
	tests := []struct {
		name string
		recs []*Log
		want string
	}{
		{"nothing", nil, "no recordings"},
		{"nil", []*Log{open, nil}, "recording 2 is nil"},
		{"mixed models", []*Log{open, closed}, "cannot mix open-model and closed-model"},
		// A merge of g1 and g2 merged again with g1's run.
		{"merged again", []*Log{{Meta: Meta{Model: "open", Host: "g1,g2"}}, {Meta: Meta{Model: "open", Host: "g1"}}},
			`recording 1 is a merge that holds generator "g1", and recording 2 is "g1" too`},
	}
	for _, tt := range tests {
		_, err := Merge(tt.recs...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestMergeMetaHosts(t *testing.T) {
	recs := []*Log{
		{Meta: Meta{Host: "a,b", Scenario: "browse", Stages: "10s:100"}},
		{Meta: Meta{Host: "c", Scenario: "browse", Stages: "10s:100"}},
		{Meta: Meta{Host: "d", Scenario: "checkout", Stages: "20s:5"}},
		{Meta: Meta{}},
	}
	merged, err := Merge(recs...)
	if err != nil {
		t.Fatal(err)
	}
	if m := merged.Meta; m.Host != "a,b,c,d,1 unnamed" || m.Scenario != "browse checkout" || m.Stages != "" {
		t.Errorf("meta = %+v", m)
	}
}
