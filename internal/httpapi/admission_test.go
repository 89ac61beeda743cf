package httpapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"storefront/internal/pgtest"
	"storefront/internal/postgres"
)

// window feeds one synthetic window to a and closes it.
func window(a *admission, oks int, lat time.Duration, fails, refused, peak int) int64 {
	for range oks {
		a.lat[latBucket(lat)].Add(1)
	}
	a.oks.Add(int64(oks))
	a.fails.Add(int64(fails))
	a.refused.Add(int64(refused))
	a.peak.Store(int64(peak))
	a.mu.Lock()
	a.update(time.Now())
	a.mu.Unlock()
	return a.limit.Load()
}

func TestAdmissionLimit(t *testing.T) {
	a := newAdmission(1024)
	// Below the limit the latency may do anything: the limit stays.
	for _, lat := range []time.Duration{10 * time.Millisecond, 80 * time.Millisecond, 10 * time.Millisecond} {
		if got := window(a, 100, lat, 0, 0, 50); got != 1024 {
			t.Fatalf("below the limit, latency %v: limit %d, want 1024", lat, got)
		}
	}
	for range 30 { // typical latency settles at 10 ms
		window(a, 100, 10*time.Millisecond, 0, 0, 50)
	}

	// At the limit with latency 3x typical: queueing, the limit shrinks,
	// by at most a fifth a window.
	prev := a.limit.Load()
	for range 10 {
		got := window(a, 100, 30*time.Millisecond, 0, 200, int(prev))
		if got >= prev || float64(got) < 0.79*float64(prev) {
			t.Fatalf("queueing: limit %d after %d, want a shrink of at most a fifth", got, prev)
		}
		prev = got
	}

	// At the limit with a typical latency: it grows again.
	if got := window(a, 100, 10*time.Millisecond, 0, 200, int(prev)); got <= prev {
		t.Fatalf("healthy at the limit: limit %d after %d, want growth", got, prev)
	}
	prev = a.limit.Load()

	// A clipped burst (a refusal or two) with a slow window never shrinks it.
	if got := window(a, 1000, 30*time.Millisecond, 0, 2, int(prev)); got < prev {
		t.Fatalf("clipped burst: limit %d after %d, want no shrink", got, prev)
	}
	prev = a.limit.Load()

	// Failures with few requests in flight (database down): no change.
	if got := window(a, 5, 10*time.Millisecond, 100, 0, 3); got != prev {
		t.Fatalf("fast failures: limit %d after %d, want unchanged", got, prev)
	}
	// Failures with the limit half full (the pool timing out): halve.
	if got := window(a, 5, 10*time.Millisecond, 100, 0, int(prev)); got > prev/2+1 {
		t.Fatalf("overflow: limit %d after %d, want half", got, prev)
	}
	prev = a.limit.Load()

	// Overload over, latency typical, nothing refused: back up to the ceiling.
	for range 100 {
		window(a, 100, 10*time.Millisecond, 0, 0, 5)
	}
	if got := a.limit.Load(); got != 1024 {
		t.Fatalf("after the overload: limit %d, want back at 1024 (was %d)", got, prev)
	}

	// Never below the floor.
	for range 100 {
		window(a, 100, time.Second, 0, 500, 1024)
	}
	if got := a.limit.Load(); got != admissionMinLimit {
		t.Fatalf("floor: limit %d, want %d", got, admissionMinLimit)
	}
}

func TestAdmissionAcquire(t *testing.T) {
	a := newAdmission(admissionMinLimit)
	for i := range admissionMinLimit {
		if !a.acquire() {
			t.Fatalf("request %d refused below the limit", i+1)
		}
	}
	if a.acquire() {
		t.Fatal("request over the limit admitted")
	}
	a.release(time.Now(), true)
	if !a.acquire() {
		t.Fatal("request refused after a release")
	}
	if got := a.refused.Load(); got != 1 {
		t.Fatalf("refused %d, want 1", got)
	}
}

func TestLatencyBuckets(t *testing.T) {
	prev := time.Duration(0)
	for _, d := range []time.Duration{time.Microsecond, 5 * time.Microsecond, 100 * time.Microsecond,
		time.Millisecond, 7 * time.Millisecond, 250 * time.Millisecond, 2 * time.Second} {
		v := latBucketValue(latBucket(d))
		if v > d || float64(v) < 0.75*float64(d) || v < prev {
			t.Errorf("%v: bucket value %v", d, v)
		}
		prev = v
	}
	if got := latBucket(time.Hour); got != latBuckets-1 {
		t.Errorf("an hour: bucket %d, want the last", got)
	}
}

func TestAdmissionCollector(t *testing.T) {
	s := &Server{adm: newAdmission(64)}
	s.adm.acquire()
	ch := make(chan prometheus.Metric, 8)
	s.AdmissionCollector().Collect(ch)
	close(ch)
	got := map[string]float64{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		v := pb.GetGauge().GetValue() + pb.GetCounter().GetValue()
		got[m.Desc().String()] = v
	}
	if len(got) != 3 {
		t.Fatalf("collected %d metrics, want 3", len(got))
	}
	for desc, v := range got {
		switch {
		case strings.Contains(desc, "storefront_admission_limit") && v != 64,
			strings.Contains(desc, "storefront_admission_in_flight") && v != 1,
			strings.Contains(desc, "storefront_admission_refused_total") && v != 0:
			t.Errorf("%s = %v", desc, v)
		}
	}
	if (&Server{}).AdmissionCollector() != nil {
		t.Error("collector without shedding")
	}
}

// TestAdmissionAfterValidation checks that a request the limiter would
// refuse still gets its 400 when its input is malformed: only a valid
// database-backed request takes part in admission control.
func TestAdmissionAfterValidation(t *testing.T) {
	dbCfg := postgres.DefaultConfig()
	dbCfg.DSN = pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, dbCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ShedMaxInFlight = admissionMinLimit
	s := New(cfg, Services{Users: db, Products: db, Inventory: db, Health: db}, nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		db.Close()
	})
	base := "http://" + ln.Addr().String()
	get := func(path string) int {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	for range admissionMinLimit { // the limit is reached
		if !s.adm.acquire() {
			t.Fatal("refused below the limit")
		}
	}
	for path, want := range map[string]int{
		"/users/abc":                 400,
		"/products/0":                400,
		"/inventory/-1":              400,
		"/products?ids=1,,2":         400,
		"/products":                  400,
		"/products/by-sku/a%00b":     400,
		"/users/1":                   503,
		"/products?ids=1":            503,
		"/products/by-sku/SKU-0001X": 503,
	} {
		if got := get(path); got != want {
			t.Errorf("%s at the limit: status %d, want %d", path, got, want)
		}
	}
	if got := s.adm.inFlight.Load(); got != admissionMinLimit {
		t.Errorf("in flight %d after the refusals, want %d", got, admissionMinLimit)
	}
	for range admissionMinLimit {
		s.adm.release(time.Now(), true)
	}
	if got := get("/users/1"); got != 200 {
		t.Errorf("/users/1 below the limit: status %d, want 200", got)
	}
}
