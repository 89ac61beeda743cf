package load

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// totals adds up a recording.
type totals struct {
	sent, late, responses int64
	errors                map[string]int64
	statuses              map[int]int64
}

func sumUp(tb testing.TB, rec *Recording) totals {
	tb.Helper()
	t := totals{errors: map[string]int64{}, statuses: map[int]int64{}}
	var perInterval int64
	for _, iv := range rec.Intervals {
		t.sent += iv.Sent
		t.late += iv.LateSends
		perInterval += iv.Responses
	}
	for k, n := range rec.Statuses {
		t.statuses[k] += n
		t.responses += n
	}
	for k, n := range rec.Errors {
		t.errors[k] += n
	}
	if perInterval != t.responses {
		tb.Errorf("responses: %d in the intervals' stats, %d in the totals", perInterval, t.responses)
	}
	return t
}

func newOKServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestClosedModel(t *testing.T) {
	srv, hits := newOKServer(t)
	rec, err := Run(context.Background(), Config{Target: srv.URL, Duration: 2 * time.Second, Connections: 4})
	if err != nil {
		t.Fatal(err)
	}
	tot := sumUp(t, rec)
	if rec.Meta.Model != "closed" || len(rec.Intervals) != 2 {
		t.Errorf("model %q, %d intervals; want closed, 2", rec.Meta.Model, len(rec.Intervals))
	}
	if tot.sent < 100 || tot.responses != tot.sent || tot.statuses[200] != tot.sent || len(tot.errors) != 0 {
		t.Errorf("sent %d, responses %d, statuses %v, errors %v", tot.sent, tot.responses, tot.statuses, tot.errors)
	}
	if hits.Load() < tot.sent {
		t.Errorf("server saw %d requests, generator recorded %d", hits.Load(), tot.sent)
	}
	if !rec.Corrected.Equals(rec.Uncorrected) || rec.Corrected.TotalCount() != tot.responses {
		t.Error("closed model: corrected and uncorrected latency differ")
	}
	for _, iv := range rec.Intervals {
		if iv.Corrected != iv.Uncorrected || iv.Corrected.Count != iv.Responses {
			t.Errorf("closed model: interval percentiles %+v and %+v for %d responses", iv.Corrected, iv.Uncorrected, iv.Responses)
		}
		if d := iv.End.Sub(iv.Start); d < 900*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("interval of %v", d)
		}
	}
}

// openEngines are the open model's engines; the open-model tests run on
// each (the loops with two of them, to cover a split schedule).
var openEngines = []struct {
	name   string
	engine string
	loops  int
}{{"loops", EngineLoops, 0}, {"two-loops", EngineLoops, 2}, {"goroutines", EngineGoroutines, 0}}

// forEachEngine runs test once per open-model engine, with cfg's Engine
// and Loops set accordingly.
func forEachEngine(t *testing.T, test func(t *testing.T, with func(Config) Config)) {
	for _, eng := range openEngines {
		t.Run(eng.name, func(t *testing.T) {
			test(t, func(c Config) Config {
				c.Engine, c.Loops = eng.engine, eng.loops
				return c
			})
		})
	}
}

func TestOpenModelCountsAndWarmup(t *testing.T) {
	forEachEngine(t, testOpenModelCountsAndWarmup)
}

func testOpenModelCountsAndWarmup(t *testing.T, with func(Config) Config) {
	srv, hits := newOKServer(t)
	cfg := with(Config{Target: srv.URL, Rate: 200, Warmup: 500 * time.Millisecond, Duration: 1500 * time.Millisecond, Connections: 8})
	rec, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tot := sumUp(t, rec)
	// Exactly the measured part of the schedule, none dropped, warm-up excluded.
	if tot.sent != 300 || tot.responses != 300 {
		t.Errorf("sent %d, responses %d; want 300 each", tot.sent, tot.responses)
	}
	if h := hits.Load(); h != 400 {
		t.Errorf("server saw %d requests, want 100 warm-up + 300", h)
	}
	if rec.Meta.Model != "open" || rec.Meta.Engine != cfg.Engine || rec.Meta.Warmup != cfg.Warmup || rec.Meta.Duration != cfg.Duration {
		t.Errorf("meta %+v", rec.Meta)
	}
	if first := rec.Intervals[0].Start; first.Sub(rec.Meta.Started) != 0 {
		t.Errorf("first interval starts %v after Meta.Started", first.Sub(rec.Meta.Started))
	}
}

// TestRunStreamsHlog: the interval log a run streams (Config.Hlog) reads
// back to the run's own recording: the same intervals, totals and
// percentiles, warm-up excluded.
func TestRunStreamsHlog(t *testing.T) {
	srv, _ := newOKServer(t)
	var buf bytes.Buffer
	hw := NewHlogWriter(&buf)
	cfg := Config{Target: srv.URL, Rate: 200, Warmup: 500 * time.Millisecond, Duration: 2 * time.Second, Connections: 8, Hlog: hw}
	rec, err := Run(context.Background(), cfg)
	if err != nil || hw.Err() != nil {
		t.Fatal(err, hw.Err())
	}
	log, err := ReadHlog(&buf)
	if err != nil {
		t.Fatal(err)
	}
	back := recordingOf(t, log)
	if len(back.Intervals) != len(rec.Intervals) || len(rec.Intervals) < 2 {
		t.Fatalf("%d intervals in the log, %d in the recording", len(back.Intervals), len(rec.Intervals))
	}
	for i, st := range back.Intervals {
		want := rec.Intervals[i]
		if st.Start.UnixMilli() != want.Start.UnixMilli() || st.Corrected != want.Corrected || st.Uncorrected != want.Uncorrected ||
			st.Sent != want.Sent || st.Responses != want.Responses {
			t.Errorf("interval %d: log %+v\nrecording %+v", i, st, want)
		}
	}
	got, want := Summarize(back), Summarize(rec)
	if got.Corrected != want.Corrected || got.Uncorrected != want.Uncorrected || got.Sent != 400 || got.Responses != want.Responses ||
		!got.Meta.Started.Equal(want.Meta.Started) || got.Meta.Warmup != cfg.Warmup {
		t.Errorf("log summarizes to %+v\nrecording to %+v", got, want)
	}
}

func TestStagedRun(t *testing.T) {
	srv, _ := newOKServer(t)
	stages, _ := ParseStages("1s:200,1s:0")
	rec, err := Run(context.Background(), Config{Target: srv.URL, Stages: stages, StagesSpec: "1s:200,1s:0", Connections: 8})
	if err != nil {
		t.Fatal(err)
	}
	tot := sumUp(t, rec)
	if tot.sent != 200 {
		t.Errorf("sent %d, want the integral of the ramps: 200", tot.sent)
	}
	if len(rec.Intervals) != 2 || rec.Meta.Stages != "1s:200,1s:0" {
		t.Errorf("%d intervals, meta %+v", len(rec.Intervals), rec.Meta)
	}
}

// TestOpenModelWindowIsTheSchedule: an open-model run's recorded window
// covers its whole schedule, not just up to the last request, which is due
// one gap before the end (or earlier, before a quiet stage at rate 0). The
// achieved rate of a server that answers everything is then the target.
func TestOpenModelWindowIsTheSchedule(t *testing.T) {
	forEachEngine(t, testOpenModelWindowIsTheSchedule)
}

func testOpenModelWindowIsTheSchedule(t *testing.T, with func(Config) Config) {
	srv, _ := newOKServer(t)
	stages, _ := ParseStages("1s:8,1s:0,2s:0")
	for _, c := range []struct {
		name string
		cfg  Config
		want time.Duration
	}{
		{"rate", Config{Target: srv.URL, Rate: 4, Duration: 2 * time.Second, Connections: 2}, 2 * time.Second},
		{"stages", Config{Target: srv.URL, Stages: stages, Connections: 2}, 4 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec, err := Run(context.Background(), with(c.cfg))
			if err != nil {
				t.Fatal(err)
			}
			sum := Summarize(rec)
			if sum.Responses != 8 || sum.DurationS < c.want.Seconds() || sum.RateRatio > 1 {
				t.Errorf("%d responses in a window of %.3f s: achieved %.2f/s, %s of the target %.2f/s; want 8 in at least %v",
					sum.Responses, sum.DurationS, sum.AchievedRate, formatPercent(sum.RateRatio), sum.TargetRate, c.want)
			}
			if n := int(c.want / IntervalLength); len(rec.Intervals) != n {
				t.Errorf("%d intervals, want %d", len(rec.Intervals), n)
			}
		})
	}
}

// TestStagedRunTargetRateWithWarmup: a staged run's target rate is the
// mean of its measured schedule; the warm-up, at the first stage's rate,
// is not part of it.
func TestStagedRunTargetRateWithWarmup(t *testing.T) {
	srv, _ := newOKServer(t)
	stages, _ := ParseStages("1s:200")
	rec, err := Run(context.Background(), Config{Target: srv.URL, Stages: stages, StagesSpec: "1s:200",
		Warmup: time.Second, Connections: 8})
	if err != nil {
		t.Fatal(err)
	}
	sum := Summarize(rec)
	if sum.Sent != 100 || sum.TargetRate != 100 || sum.RateRatio < 0.99 {
		t.Errorf("sent %d, target %.1f/s, achieved %.1f/s (%s); want 100 sent, a target of 100/s, all of it achieved",
			sum.Sent, sum.TargetRate, sum.AchievedRate, formatPercent(sum.RateRatio))
	}
}

func TestScenarioRun(t *testing.T) {
	var users, missing atomic.Int64
	var badID atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/users/"):
			users.Add(1)
			if id := strings.TrimPrefix(r.URL.Path, "/users/"); len(id) != 1 || id < "1" || id > "5" {
				badID.Store(true)
			}
			if r.Header.Get("X-Request-ID") == "" {
				badID.Store(true)
			}
		default:
			missing.Add(1)
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	sc, err := ParseScenario([]byte(`
headers: {X-Request-ID: "{uuid}"}
requests:
  - {weight: 3, path: "/users/{id}", params: {id: {min: 1, max: 5}}}
  - {weight: 1, path: /missing}
`))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := Run(context.Background(), Config{Target: srv.URL, Rate: 400, Duration: time.Second, Connections: 4, Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	tot := sumUp(t, rec)
	if tot.statuses[200]+tot.statuses[404] != 400 || badID.Load() {
		t.Errorf("statuses %v, bad id or header seen: %v", tot.statuses, badID.Load())
	}
	if f := float64(users.Load()) / 400; f < 0.65 || f > 0.85 {
		t.Errorf("users drawn %.2f of the time, want 0.75", f)
	}
}

// TestUnsentAreCounted: a server that never answers and 2 connections; the
// requests that never found a free connection are reported as unsent, so
// sent + unsent is the whole schedule.
func TestUnsentAreCounted(t *testing.T) {
	forEachEngine(t, testUnsentAreCounted)
}

func testUnsentAreCounted(t *testing.T, with func(Config) Config) {
	ln := silentServer(t)
	rec, err := Run(context.Background(), with(Config{Target: "http://" + ln.Addr().String(), Rate: 100, Duration: time.Second,
		Connections: 2, Timeout: 300 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	tot := sumUp(t, rec)
	if tot.sent+tot.errors[ErrUnsent] != 100 {
		t.Errorf("sent %d + unsent %d, want 100", tot.sent, tot.errors[ErrUnsent])
	}
	if tot.errors[ErrTimeout] != tot.sent || tot.sent < 4 || tot.late == 0 {
		t.Errorf("sent %d, late %d, errors %v: want every sent request timed out, most late", tot.sent, tot.late, tot.errors)
	}
	// Timed-out requests are in the latency histograms, at >= the timeout.
	h := rec.Uncorrected
	if h.TotalCount() != tot.sent || h.Min() < 290_000 {
		t.Errorf("timeouts recorded %d, min %dµs", h.TotalCount(), h.Min())
	}
}

func TestCancel(t *testing.T) {
	forEachEngine(t, testCancel)
}

func testCancel(t *testing.T, with func(Config) Config) {
	srv, _ := newOKServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	var cancelledAt atomic.Int64 // since start; a busy machine fires the timer late
	time.AfterFunc(1200*time.Millisecond, func() {
		cancelledAt.Store(int64(time.Since(start)))
		cancel()
	})
	rec, err := Run(ctx, with(Config{Target: srv.URL, Rate: 100, Duration: time.Minute, Connections: 4}))
	if err != context.Canceled {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	at := time.Duration(cancelledAt.Load())
	if d := time.Since(start); d > at+2*time.Second {
		t.Errorf("run took %v after a cancel at %v", d, at)
	}
	// The run's clock starts a little after start: the cancel falls in
	// the interval it started, or (at a whole second) the next.
	if want := int(at/time.Second) + 1; rec == nil || len(rec.Intervals) < want-1 || len(rec.Intervals) > want {
		t.Fatalf("want the %d intervals recorded before the cancel at %v, got %+v", want, at, rec)
	}
	tot := sumUp(t, rec)
	want := int64(100 * at.Seconds())
	if tot.sent < want*8/10 || tot.sent > want*12/10+5 || tot.responses != tot.sent {
		t.Errorf("sent %d, responses %d, want about %d (100/s until the cancel at %v)", tot.sent, tot.responses, want, at)
	}
}

// TestLongPlannedRun: a run planned for years (stopped with its context,
// as a soak test is) starts without setting aside memory for every
// interval it might record.
func TestLongPlannedRun(t *testing.T) {
	srv, _ := newOKServer(t)
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"closed", Config{Target: srv.URL, Connections: 1}},
		{"open", Config{Target: srv.URL, Rate: 50, Connections: 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			c.cfg.Duration = 100 * 365 * 24 * time.Hour
			rec, err := Run(ctx, c.cfg)
			if err != context.DeadlineExceeded || rec == nil || len(rec.Intervals) < 1 || len(rec.Intervals) > 2 {
				t.Fatalf("err %v, recording %+v", err, rec)
			}
			if tot := sumUp(t, rec); tot.responses == 0 || tot.responses != tot.sent {
				t.Errorf("sent %d, responses %d", tot.sent, tot.responses)
			}
		})
	}
}

// TestTinyRate: a rate below one request per run sends the first request
// only, and the run ends on time.
func TestTinyRate(t *testing.T) {
	forEachEngine(t, func(t *testing.T, with func(Config) Config) {
		srv, hits := newOKServer(t)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		rec, err := Run(ctx, with(Config{Target: srv.URL, Rate: 1e-11, Duration: 500 * time.Millisecond, Connections: 2}))
		if err != nil {
			t.Fatalf("%v after %d requests", err, hits.Load())
		}
		if tot := sumUp(t, rec); tot.sent != 1 || tot.responses != 1 || hits.Load() != 1 {
			t.Errorf("sent %d, responses %d, server saw %d; want 1", tot.sent, tot.responses, hits.Load())
		}
	})
}

// TestUnusualStatusCodes: a status code is three digits from 100; one above
// 599 is counted under its own code, not as status 0.
func TestUnusualStatusCodes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, with func(Config) Config) {
		addr := cannedServer(t, 0, "HTTP/1.1 799 Unusual\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		rec, err := Run(context.Background(), with(Config{Target: "http://" + addr + "/", Rate: 10, Duration: 500 * time.Millisecond, Connections: 2}))
		if err != nil {
			t.Fatal(err)
		}
		if tot := sumUp(t, rec); tot.statuses[799] != 5 || len(tot.statuses) != 1 || len(tot.errors) != 0 {
			t.Errorf("statuses %v, errors %v; want 5 responses of status 799", tot.statuses, tot.errors)
		}
	})
}

func TestErrorKinds(t *testing.T) {
	forEachEngine(t, testErrorKinds)
}

func testErrorKinds(t *testing.T, with func(Config) Config) {
	refused := closedPort(t)
	cases := []struct {
		name   string
		target string
		want   string
	}{
		{"refused", "http://" + refused, ErrConnectRefused},
		{"timeout", "http://" + silentServer(t).Addr().String(), ErrTimeout},
		{"reset", "http://" + resettingServer(t, true).Addr().String(), ErrReset},
		{"eof", "http://" + resettingServer(t, false).Addr().String(), ErrEOF},
		{"protocol", "http://" + garbageServer(t).Addr().String(), ErrProtocol},
		{"dns", "http://no-such-host.invalid/", ErrDNS},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := with(Config{Target: c.target, Rate: 20, Duration: 500 * time.Millisecond,
				Connections: 20, Timeout: 200 * time.Millisecond})
			if c.want == ErrDNS && cfg.Engine == EngineLoops {
				// The loops resolve the target once, before the run.
				if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--engine goroutines") {
					t.Errorf("loops on a name that does not resolve: %v, want an error naming the other engine", err)
				}
				cfg.Engine = ""
			}
			rec, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			tot := sumUp(t, rec)
			if tot.sent != 10 || tot.errors[c.want] != 10 {
				t.Errorf("sent %d, errors %v; want 10 %s", tot.sent, tot.errors, c.want)
			}
		})
	}
}

func TestCheckTarget(t *testing.T) {
	srv, _ := newOKServer(t)
	if err := CheckTarget(context.Background(), srv.URL, time.Second); err != nil {
		t.Errorf("reachable: %v", err)
	}
	err := CheckTarget(context.Background(), "http://"+closedPort(t), time.Second)
	if err == nil || !strings.Contains(err.Error(), "connect_refused") {
		t.Errorf("refused: %v", err)
	}
	for _, bad := range []string{"", "ftp://x/", "http://", "::"} {
		if err := CheckTarget(context.Background(), bad, time.Second); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Target: "http://127.0.0.1:1/"}
	ok.SetDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"negative rate":   func(c *Config) { c.Rate = -1 },
		"huge rate":       func(c *Config) { c.Rate = 2e7 },
		"rate and stages": func(c *Config) { c.Rate = 1; c.Stages = []Stage{{time.Second, 1}} },
		"zero duration":   func(c *Config) { c.Duration = 0 },
		"negative warmup": func(c *Config) { c.Warmup = -time.Second },
		"zero timeout":    func(c *Config) { c.Timeout = 0 },
		"no connections":  func(c *Config) { c.Connections = 0 },
		"bad header":      func(c *Config) { c.Headers = []string{"no colon"} },
		"closed loops":    func(c *Config) { c.Loops = 2 },
		"closed engine":   func(c *Config) { c.Engine = EngineLoops },
		"bad placeholder": func(c *Config) { c.Headers = []string{"X-Id: {nope}"} },
		// The schedule's end plus one timeout of grace must fit in a Duration.
		"endless duration": func(c *Config) { c.Rate = 10; c.Duration = math.MaxInt64 - time.Second },
		"endless warmup":   func(c *Config) { c.Warmup = math.MaxInt64 - 10*time.Second },
		"endless timeout":  func(c *Config) { c.Timeout = math.MaxInt64 - time.Second },
		"endless stages": func(c *Config) {
			c.Duration = 0
			c.Stages = []Stage{{math.MaxInt64 / 2, 1}, {math.MaxInt64 / 2, 1}, {math.MaxInt64 / 2, 1}}
		},
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// closedPort returns an address where nothing listens.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// serveConns accepts connections and hands each to handle until the test ends.
func serveConns(t *testing.T, handle func(net.Conn)) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln
}

// silentServer reads requests and never answers (holding the connection
// until the client gives up).
func silentServer(t *testing.T) net.Listener {
	return serveConns(t, func(c net.Conn) {
		defer c.Close()
		io.Copy(io.Discard, c)
	})
}

// resettingServer reads one request's head, then closes the connection:
// with a reset (SO_LINGER 0) or with a plain FIN.
func resettingServer(t *testing.T, reset bool) net.Listener {
	return serveConns(t, func(c net.Conn) {
		readRequestHead(bufio.NewReader(c))
		if reset {
			c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
	})
}

// readRequestHead reads one request's line and headers and returns the
// request line.
func readRequestHead(br *bufio.Reader) (string, error) {
	first, err := br.ReadString('\n')
	for line := first; err == nil && line != "\r\n"; {
		line, err = br.ReadString('\n')
	}
	return first, err
}

// garbageServer answers every request with something that is not HTTP.
func garbageServer(t *testing.T) net.Listener {
	return serveConns(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			if _, err := readRequestHead(br); err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-OpenSSH\r\n\r\n"))
		}
	})
}

// TestPacerDispatchesOnSchedule: with free workers, requests leave one by
// one at their intended times, not in bursts per timer tick: a pacer that
// released every request due in a tick (1 ms for the Go timer of an idle
// process, 10 ms for wrk2's batches) would be half a tick late at the
// median. The bound, 250 µs, holds on a busy 2-core machine; the tail is
// left alone, as the operating system may deschedule the pacer for
// milliseconds there, after which the overdue requests rightly leave at once.
func TestPacerDispatchesOnSchedule(t *testing.T) {
	const rate = 2000
	e := &engine{pacer: ConstantPacer{Freq: rate, Length: time.Second}, end: time.Second, giveUp: make(chan struct{})}
	e.base = time.Now()
	e.tickets = make(chan ticket)
	go e.pace(context.Background())
	var lateness []time.Duration
	for tk := range e.tickets {
		lateness = append(lateness, e.now()-tk.at)
	}
	if len(lateness) != rate {
		t.Fatalf("dispatched %d, want %d", len(lateness), rate)
	}
	slices.Sort(lateness)
	median := lateness[len(lateness)/2]
	t.Logf("dispatch lateness: median %v, p90 %v, p99 %v, max %v", median,
		lateness[len(lateness)*9/10], lateness[len(lateness)*99/100], lateness[len(lateness)-1])
	if lateness[0] < 0 {
		t.Errorf("a request was dispatched %v early", -lateness[0])
	}
	if median > 250*time.Microsecond {
		t.Errorf("median lateness %v, want under 250µs", median)
	}
}

// TestLargeRequestBody: a request larger than the socket buffer is written
// in several pieces (the partial-write path of the raw connection).
func TestLargeRequestBody(t *testing.T) {
	const size = 8 << 20
	var bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n, _ := io.Copy(io.Discard, r.Body); n != size {
			bad.Add(1)
		}
	}))
	defer srv.Close()
	sc := &Scenario{Requests: []RequestSpec{{Weight: 1, Method: "POST", Path: "/upload", Body: strings.Repeat("x", size)}}}
	forEachEngine(t, func(t *testing.T, with func(Config) Config) {
		bad.Store(0)
		rec, err := Run(context.Background(), with(Config{Target: srv.URL, Rate: 10, Duration: 500 * time.Millisecond, Connections: 2,
			Timeout: 10 * time.Second, Scenario: sc}))
		if err != nil {
			t.Fatal(err)
		}
		if tot := sumUp(t, rec); tot.statuses[200] != 5 || bad.Load() != 0 {
			t.Errorf("statuses %v, errors %v, bodies cut short %d", tot.statuses, tot.errors, bad.Load())
		}
	})
}

// TestStatusBelow100IsProtocolError: a status line with a code from 000 to
// 099 is a malformed response on both engines, not a 1xx interim response
// after which the request waits for another one until it times out.
func TestStatusBelow100IsProtocolError(t *testing.T) {
	forEachEngine(t, func(t *testing.T, with func(Config) Config) {
		for _, code := range []string{"000", "099"} {
			addr := cannedServer(t, 0, "HTTP/1.1 "+code+" Odd\r\nContent-Length: 0\r\n\r\n")
			rec, err := Run(context.Background(), with(Config{Target: "http://" + addr + "/", Rate: 10, Duration: 500 * time.Millisecond,
				Connections: 2, Timeout: 300 * time.Millisecond}))
			if err != nil {
				t.Fatal(err)
			}
			if tot := sumUp(t, rec); tot.errors[ErrProtocol] != 5 || len(tot.errors) != 1 || len(tot.statuses) != 0 {
				t.Errorf("status %s: statuses %v, errors %v; want 5 protocol errors", code, tot.statuses, tot.errors)
			}
		}
	})
}

// A target with user:password@ sends HTTP basic authentication on every
// request, in both models, an explicit Authorization header wins, and the
// password stays out of the recording's meta (and so of the report files).
func TestTargetUserinfoIsBasicAuth(t *testing.T) {
	var good, bad, overridden atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, ok := r.BasicAuth()
		switch {
		case r.Header.Get("Authorization") == "Bearer tok":
			overridden.Add(1)
		case ok && user == "shop user" && pw == "p@ss:word":
			good.Add(1)
		default:
			bad.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)
	target := strings.Replace(srv.URL, "http://", "http://shop%20user:p%40ss%3Aword@", 1)

	check := func(t *testing.T, rec *Recording, err error, counter *atomic.Int64) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		tot := sumUp(t, rec)
		if tot.responses == 0 || bad.Load() != 0 || counter.Load() != tot.responses {
			t.Errorf("responses %d: %d with the expected credentials, %d without", tot.responses, counter.Load(), bad.Load())
		}
		if strings.Contains(rec.Meta.Target, "p%40ss") || !strings.Contains(rec.Meta.Target, "shop%20user:xxxxx@") {
			t.Errorf("recorded target %q: want the password redacted", rec.Meta.Target)
		}
	}
	t.Run("closed", func(t *testing.T) {
		good.Store(0)
		rec, err := Run(context.Background(), Config{Target: target, Duration: time.Second, Connections: 2})
		check(t, rec, err, &good)
	})
	forEachEngine(t, func(t *testing.T, with func(Config) Config) {
		good.Store(0)
		rec, err := Run(context.Background(), with(Config{Target: target, Rate: 200, Duration: time.Second, Connections: 4}))
		check(t, rec, err, &good)
	})
	t.Run("header wins", func(t *testing.T) {
		rec, err := Run(context.Background(), Config{Target: target, Duration: time.Second, Connections: 2, Headers: []string{"Authorization: Bearer tok"}})
		check(t, rec, err, &overridden)
	})
}

// The achieved rate is over the schedule, not over the window that also
// holds the wait for the last responses: a server that answers every
// request in 400 ms keeps up with any rate.
func TestAchievedRateLeavesOutTheDrain(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond)
	}))
	t.Cleanup(srv.Close)
	rec, err := Run(context.Background(), Config{Target: srv.URL, Rate: 20, Duration: 2 * time.Second, Connections: 20})
	if err != nil {
		t.Fatal(err)
	}
	sum := Summarize(rec)
	if sum.Responses != 40 || sum.DurationS < 2.3 {
		t.Fatalf("%d responses in a window of %.2f s; want 40 in about 2.4 s", sum.Responses, sum.DurationS)
	}
	if sum.RateRatio < 0.99 || sum.RateRatio > 1.01 {
		t.Errorf("achieved %.2f/s of %.0f/s (%.3f); want the target", sum.AchievedRate, sum.TargetRate, sum.RateRatio)
	}
}

// Messages about a target that does not work keep its password out.
func TestTargetErrorsMaskThePassword(t *testing.T) {
	for _, target := range []string{
		"ftp://alice:s3cr3t@127.0.0.1:1/",
		"http://alice:s3cr3t@127.0.0.1:1/%zz",
		"http://alice:s3cr3t@/x",
		"alice:s3cr3t@127.0.0.1:1",
	} {
		c := Config{Target: target}
		c.SetDefaults()
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: accepted", target)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "alice") {
			t.Errorf("%s: %v", target, err)
		}
	}
	if got := maskPassword("http://u@h:1/p@q"); got != "http://u@h:1/p@q" {
		t.Errorf("no password: %q", got)
	}
}

// Errors of the generator's own machine (out of descriptors or local
// ports) are not blamed on the target: kind "local", with a warning in the
// text report.
func TestLocalErrorsAreNamed(t *testing.T) {
	for _, err := range []error{
		&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.EMFILE)},
		&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EADDRNOTAVAIL)},
		os.NewSyscallError("accept4", syscall.ENFILE),
	} {
		if got := ClassifyError(err); got != ErrLocal {
			t.Errorf("%v: %s, want %s", err, got, ErrLocal)
		}
	}
	sum := Summary{Errors: map[string]int64{ErrLocal: 7}, TransportErrors: 7, Failures: 7, FailureRatio: 1, Statuses: map[int]int64{}}
	var b strings.Builder
	if err := sum.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "warning: 7 requests failed on this machine") || !strings.Contains(b.String(), "local: 7") {
		t.Errorf("report:\n%s", b.String())
	}
}

// A server that answers every request twice, in one write: the second
// answer, which nobody asked for, is not taken for the next request's, on
// either engine (the connection is dropped for a fresh one). One that
// arrives after the next request left cannot be told from its answer.
func TestUnrequestedResponseIsNotCounted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"+
						"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nno")
				}
			}()
		}
	}()
	target := "http://" + ln.Addr().String()
	check := func(t *testing.T, rec *Recording, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		tot := sumUp(t, rec)
		if tot.responses == 0 || tot.statuses[500] != 0 || tot.statuses[200] != tot.responses {
			t.Errorf("statuses %v: the unrequested 500s were counted", tot.statuses)
		}
	}
	t.Run("closed", func(t *testing.T) {
		rec, err := Run(context.Background(), Config{Target: target, Duration: time.Second, Connections: 2})
		check(t, rec, err)
	})
	forEachEngine(t, func(t *testing.T, with func(Config) Config) {
		rec, err := Run(context.Background(), with(Config{Target: target, Rate: 100, Duration: time.Second, Connections: 4}))
		check(t, rec, err)
	})
}

func TestSendAt(t *testing.T) {
	const r = 50 * time.Microsecond
	for _, tc := range []struct{ at, res, want time.Duration }{
		{0, r, 0}, {1, r, r}, {r, r, r}, {r + 1, r, 2 * r}, {123456, 0, 123456},
	} {
		if got := sendAt(tc.at, tc.res); got != tc.want {
			t.Errorf("sendAt(%v, %v) = %v, want %v", tc.at, tc.res, got, tc.want)
		}
	}
}

// TestSendResolutionGroupsSends: with --send-resolution, the requests due
// within a slot leave together at its end (the server sees bursts one slot
// apart, not a request every millisecond), they do not count as late, and their
// corrected latency counts the wait from their intended times: half a slot
// more than the uncorrected at the median.
func TestSendResolutionGroupsSends(t *testing.T) {
	const slot = 10 * time.Millisecond
	forEachEngine(t, func(t *testing.T, with func(Config) Config) {
		var mu sync.Mutex
		var arrivals []time.Time
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			mu.Unlock()
		}))
		defer srv.Close()
		rec, err := Run(context.Background(), with(Config{Target: srv.URL, Rate: 1000, Duration: time.Second,
			Connections: 64, SendResolution: slot}))
		if err != nil {
			t.Fatal(err)
		}
		tot := sumUp(t, rec)
		// Lateness counts from the slot's end: nine requests in ten wait
		// over 1 ms for it, and must not count as late. (Some may, on a
		// loaded machine: a burst leaves one request at a time, and the
		// goroutine engine hands each to a worker.)
		if tot.statuses[200] != 1000 || tot.late > 500 {
			t.Fatalf("statuses %v, errors %v, late %d; want 1000 answers, most not late", tot.statuses, tot.errors, tot.late)
		}
		mu.Lock()
		slices.SortFunc(arrivals, func(a, b time.Time) int { return a.Compare(b) })
		gaps := 0
		for i := 1; i < len(arrivals); i++ {
			if arrivals[i].Sub(arrivals[i-1]) > slot/2 {
				gaps++
			}
		}
		mu.Unlock()
		// 100 slots: 99 gaps between their bursts (a stalled machine may
		// split or merge some); a request a millisecond makes none.
		if gaps < 80 || gaps > 120 {
			t.Errorf("%d gaps over %v between arrivals, want about 99", gaps, slot/2)
		}
		wait := time.Duration(rec.Corrected.ValueAtQuantile(50)-rec.Uncorrected.ValueAtQuantile(50)) * time.Microsecond
		if wait < slot/4 || wait > slot*3/4 {
			t.Errorf("corrected p50 - uncorrected p50 = %v, want about half a slot (%v)", wait, slot/2)
		}
	})
}
