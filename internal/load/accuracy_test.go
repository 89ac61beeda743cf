package load

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// stallServer answers every request 1 ms after it arrives, except that a
// request arriving in the first 200 ms of each second (of the server's own
// clock) is held until that window closes, then answered 1 ms later: a
// server with a periodic stall, the case coordinated omission hides. It
// notes when it finished writing each response, by the request's
// X-Request-ID (the request's sequence number), so that a test can compute
// the true latency of every request from its intended send time.
type stallServer struct {
	ln    net.Listener
	start time.Time
	mu    sync.Mutex
	done  map[int64]time.Time
	wg    sync.WaitGroup
}

const (
	stallPeriod  = time.Second
	stallWindow  = 200 * time.Millisecond
	serviceDelay = time.Millisecond
)

func newStallServer(t *testing.T) *stallServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stallServer{ln: ln, start: time.Now(), done: map[int64]time.Time{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

// answered waits up to wait for n responses to be noted and returns a copy
// of the notes.
func (s *stallServer) answered(n int, wait time.Duration) map[int64]time.Time {
	deadline := time.Now().Add(wait)
	for {
		s.mu.Lock()
		if len(s.done) >= n || time.Now().After(deadline) {
			done := make(map[int64]time.Time, len(s.done))
			for k, v := range s.done {
				done[k] = v
			}
			s.mu.Unlock()
			return done
		}
		s.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *stallServer) url() string { return "http://" + s.ln.Addr().String() + "/" }

func (s *stallServer) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	for {
		seq := int64(-1)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
			if v, ok := strings.CutPrefix(line, "X-Request-ID: "); ok {
				seq, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
		arrival := time.Now()
		release := arrival
		if phase := arrival.Sub(s.start) % stallPeriod; phase < stallWindow {
			release = arrival.Add(stallWindow - phase)
		}
		time.Sleep(time.Until(release.Add(serviceDelay)))
		if _, err := c.Write(resp); err != nil {
			return
		}
		finished := time.Now()
		s.mu.Lock()
		s.done[seq] = finished
		s.mu.Unlock()
	}
}

// TestAccuracyOpenModel runs the open model at 1000 requests/s for 5 s
// against the stall server with 4 connections, few enough that during a
// stall the generator cannot keep sending: exactly the coordinated
// omission situation.
//
// Truth: the server knows when it answered request n and the schedule says
// when request n was meant to leave (start + n/rate), so every request's
// true latency is known without trusting the generator. The generator's
// corrected percentiles must match the truth within 2% plus 300 µs. The
// absolute part is the delivery of the response to the client (loopback
// and the wake-up of the reading goroutine on a 2-core machine shared with
// the server), which the truth, taken at the server, cannot contain; it
// matters only for the 1 ms percentiles.
//
// Independently of the server's notes, the analytic expectation is: 20% of
// requests arrive during a stall and wait for its end, a uniform spread of
// 1..201 ms, so the corrected p99 is about 191 ms (a little more because 4
// connections drain the backlog in a few tens of ms), while the uncorrected
// p99 is about 1 ms: only the 4 requests in flight per stall (0.4%) see it.
func TestAccuracyOpenModel(t *testing.T) {
	if testing.Short() {
		t.Skip("5 s accuracy run per engine")
	}
	forEachEngine(t, testAccuracyOpenModel)
}

func testAccuracyOpenModel(t *testing.T, with func(Config) Config) {
	srv := newStallServer(t)
	rate := int64(1000)
	if raceEnabled {
		rate = 250 // the instrumented generator and server cannot keep 1000/s on 2 cores
	}
	cfg := with(Config{
		Target:      srv.url(),
		Rate:        float64(rate),
		Duration:    5 * time.Second,
		Timeout:     2 * time.Second,
		Connections: 4,
		Headers:     []string{"X-Request-ID: {seq}"},
	})
	rec, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	corrected, uncorrected := rec.Corrected, rec.Uncorrected
	var sent, late, errs int64
	for _, iv := range rec.Intervals {
		sent += iv.Sent
		late += iv.LateSends
		errs += iv.TransportErrors
	}
	if sent != 5*rate || errs != 0 || corrected.TotalCount() != 5*rate {
		t.Fatalf("sent %d, errors %d, recorded %d; want %d sent, 0 errors, all recorded", sent, errs, corrected.TotalCount(), 5*rate)
	}

	// The last responses may reach the client before the server has noted them.
	done := srv.answered(int(5*rate), time.Second)
	truth := NewHistogram()
	for n := int64(0); n < 5*rate; n++ {
		finished, ok := done[n]
		if !ok {
			t.Fatalf("server never answered request %d", n)
		}
		at, _ := ConstantPacer{Freq: cfg.Rate, Length: cfg.Duration}.Offset(n)
		us, _ := clampUS(finished.Sub(rec.Meta.Started.Add(at)))
		truth.RecordValue(us)
	}

	// Delivery slack, see above; the race detector makes the client's read
	// path several times slower, hence more slack under it.
	slackUS := 300.0
	if raceEnabled {
		slackUS = 5000
	}
	t.Logf("late sends %d of %d", late, sent)
	t.Logf("%-6s %12s %12s %12s", "", "truth", "corrected", "uncorrected")
	for _, q := range []float64{50, 75, 90, 99, 99.9, 100} {
		want, got := truth.ValueAtQuantile(q), corrected.ValueAtQuantile(q)
		t.Logf("p%-5v %10.3fms %10.3fms %10.3fms", q, ms(want), ms(got), ms(uncorrected.ValueAtQuantile(q)))
		if diff := abs(got - want); float64(diff) > 0.02*float64(want)+slackUS {
			t.Errorf("corrected p%v = %.3f ms, truth %.3f ms: off by more than 2%% + %.1f ms", q, ms(got), ms(want), slackUS/1000)
		}
	}

	if raceEnabled {
		return // 250/s under the race detector: the analytic figures below are for 1000/s
	}
	// Whatever the machine: the stall shows in the corrected p99, the
	// uncorrected p99 misses it (coordinated omission), and each stall holds
	// back the ~196 requests that find no free connection.
	cp99, up99 := corrected.ValueAtQuantile(99), uncorrected.ValueAtQuantile(99)
	if cp99 < 185_000 {
		t.Errorf("corrected p99 = %.1f ms, want the 200 ms stall to show (>= 185 ms)", ms(cp99))
	}
	if up99 > cp99/5 {
		t.Errorf("uncorrected p99 = %.1f ms, corrected %.1f ms: want the uncorrected one to miss the stall", ms(up99), ms(cp99))
	}
	if late < 5*150 {
		t.Errorf("late sends = %d, want at least 5 × 150", late)
	}
	// The exact analytic figures assume a machine that serves 1000
	// requests/s in about 1 ms each, so that 4 connections drain a stall's
	// backlog in tens of ms. Squeezed by other processes it may not (the
	// truth's own p99 then exceeds the analytic one); the truth comparison
	// above still holds then, and is the point of the test.
	if tp99 := truth.ValueAtQuantile(99); tp99 > 215_000 {
		t.Logf("machine too busy for the analytic figures: true p99 %.1f ms", ms(tp99))
		return
	}
	if cp99 > 215_000 {
		t.Errorf("corrected p99 = %.1f ms, want about 191 ms (185..215)", ms(cp99))
	}
	if up99 > 20_000 {
		t.Errorf("uncorrected p99 = %.1f ms, want a few ms at most", ms(up99))
	}
	// More are late while 4 connections drain the backlog, how many depends
	// on the server's real service time (1 ms asked of its timer, up to 2 ms
	// delivered), but never most of them.
	if late > sent/2 {
		t.Errorf("late sends = %d, want at most half of %d", late, sent)
	}
}

func ms(us int64) float64 { return float64(us) / 1000 }

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
