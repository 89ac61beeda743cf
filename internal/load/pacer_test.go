package load

import (
	"math"
	"testing"
	"time"
)

func TestConstantPacer(t *testing.T) {
	p := ConstantPacer{Freq: 1000, Length: 2 * time.Second}
	if n := Count(p); n != 2000 {
		t.Fatalf("Count = %d, want 2000", n)
	}
	if d, _ := p.Offset(1); d != time.Millisecond {
		t.Errorf("Offset(1) = %v, want 1ms", d)
	}
	if d, ok := p.Offset(1999); !ok || d != 1999*time.Millisecond {
		t.Errorf("Offset(1999) = %v, %v", d, ok)
	}
	if _, ok := p.Offset(2000); ok {
		t.Error("Offset(2000) is past the end and must fail")
	}
	checkMonotonic(t, p)
	// A rate that does not divide the duration: 3 per second over 1 s.
	if n := Count(ConstantPacer{Freq: 3, Length: time.Second}); n != 3 {
		t.Errorf("Count at 3/s over 1s = %d, want 3", n)
	}
}

// TestConstantPacerTinyRate: at a rate so low that the second request's
// time does not fit in a Duration, the schedule is the first request
// alone, not a stream of requests at a wrapped-around (negative) time.
func TestConstantPacerTinyRate(t *testing.T) {
	for _, freq := range []float64{1e-11, 1e-300, math.SmallestNonzeroFloat64} {
		p := ConstantPacer{Freq: freq, Length: time.Hour}
		if d, ok := p.Offset(0); !ok || d != 0 {
			t.Errorf("%v/s: Offset(0) = %v, %v", freq, d, ok)
		}
		for _, n := range []int64{1, 2, 1 << 40} {
			if d, ok := p.Offset(n); ok {
				t.Errorf("%v/s: Offset(%d) = %v within a 1h schedule", freq, n, d)
			}
		}
		if n := Count(p); n != 1 {
			t.Errorf("%v/s: Count = %d, want 1", freq, n)
		}
	}
}

func TestStagedPacer(t *testing.T) {
	stages, err := ParseStages("30s:1000,60s:5000,30s:0")
	if err != nil {
		t.Fatal(err)
	}
	p := StagedPacer{Stages: stages}
	if p.Duration() != 120*time.Second {
		t.Errorf("Duration = %v", p.Duration())
	}
	// The integral of the rate: 0→1000 over 30 s, 1000→5000 over 60 s, 5000→0 over 30 s.
	want := int64(30*1000/2 + 60*(1000+5000)/2 + 30*5000/2)
	if n := Count(p); abs(n-want) > 1 {
		t.Errorf("Count = %d, want %d", n, want)
	}
	checkMonotonic(t, p)

	// In the first ramp (0 → R over T), request n leaves at sqrt(2·T·n/R).
	for _, n := range []int64{1, 100, 5000, 14999} {
		got, _ := p.Offset(n)
		wantT := math.Sqrt(2 * 30 * float64(n) / 1000)
		if math.Abs(got.Seconds()-wantT) > 1e-6 {
			t.Errorf("Offset(%d) = %v, want %.6fs", n, got, wantT)
		}
	}
	// Where the stages meet, the schedule is continuous.
	if d, _ := p.Offset(15000); d != 30*time.Second {
		t.Errorf("Offset(15000) = %v, want 30s", d)
	}
	for _, c := range []struct {
		at   time.Duration
		rate float64
	}{{0, 0}, {15 * time.Second, 500}, {60 * time.Second, 3000}, {105 * time.Second, 2500}, {120 * time.Second, 0}} {
		if r := p.Rate(c.at); math.Abs(r-c.rate) > 1e-9 {
			t.Errorf("Rate(%v) = %v, want %v", c.at, r, c.rate)
		}
	}
	// A flat stage after a ramp: 1s 0→100 (50 requests), then 1s at 100.
	flat := StagedPacer{Stages: []Stage{{time.Second, 100}, {time.Second, 100}}}
	if n := Count(flat); n != 150 {
		t.Errorf("Count = %d, want 150", n)
	}
	checkMonotonic(t, flat)
}

func TestWarmupPacer(t *testing.T) {
	p := newWithWarmup(ConstantPacer{Freq: 100, Length: 500 * time.Millisecond}, ConstantPacer{Freq: 200, Length: time.Second})
	if n := Count(p); n != 250 {
		t.Fatalf("Count = %d, want 50 warm-up + 200", n)
	}
	if d, _ := p.Offset(50); d != 500*time.Millisecond {
		t.Errorf("first measured request at %v, want 500ms", d)
	}
	checkMonotonic(t, p)
}

func TestParseStagesErrors(t *testing.T) {
	for _, spec := range []string{"", "30s", "x:100", "30s:abc", "-1s:100", "30s:-5", "30s:0,10s:0", "30s:1e9"} {
		if _, err := ParseStages(spec); err == nil {
			t.Errorf("ParseStages(%q) accepted", spec)
		}
	}
}

func checkMonotonic(t *testing.T, p Pacer) {
	t.Helper()
	var prev time.Duration
	for n := int64(0); ; n++ {
		d, ok := p.Offset(n)
		if !ok {
			return
		}
		if d < prev || d >= p.Duration() {
			t.Fatalf("Offset(%d) = %v after %v (duration %v)", n, d, prev, p.Duration())
		}
		prev = d
	}
}
