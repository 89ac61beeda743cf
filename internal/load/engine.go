package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// engine runs one configured run. Times are offsets from base, read from
// the monotonic clock.
type engine struct {
	cfg    Config
	target *url.URL
	reqs   *requestSet
	dialer *dialer
	pacer  Pacer         // nil in the closed model
	warmup time.Duration // offset where the measured part starts
	end    time.Duration // offset where the schedule ends
	base   time.Time
	rec    *recorder
	// loopTarget is the resolved target of the open model's event loops;
	// nil when it uses connection goroutines.
	loopTarget *loopTarget

	tickets chan ticket   // open model: pacer -> workers
	stop    atomic.Bool   // closed model: stop sending
	giveUp  chan struct{} // open model: stop dispatching overdue requests
	unsent  atomic.Int64  // measured requests that were due but never left
}

// ticket is one scheduled request of the open model.
type ticket struct {
	n  int64
	at time.Duration // intended send time
}

// worker is one connection and the goroutine that owns it.
type worker struct {
	id   int
	conn *httpConn
	gen  *generator
	buf  []byte
	seq  uint64 // closed model: requests sent by this worker
}

func newEngine(cfg Config) (*engine, error) {
	u, err := parseTarget(cfg.Target)
	if err != nil {
		return nil, err
	}
	var extra []header
	for _, h := range cfg.Headers {
		name, value, err := ParseHeader(h)
		if err != nil {
			return nil, err
		}
		extra = append(extra, header{name, value})
	}
	reqs, err := compileRequests(u, cfg.Scenario, extra)
	if err != nil {
		return nil, err
	}
	d, err := newDialer(u)
	if err != nil {
		return nil, err
	}
	e := &engine{cfg: cfg, target: u, reqs: reqs, dialer: d, warmup: cfg.Warmup, giveUp: make(chan struct{})}
	switch {
	case len(cfg.Stages) > 0:
		main := StagedPacer{Stages: cfg.Stages}
		e.pacer = newWithWarmup(ConstantPacer{Freq: cfg.Stages[0].Target, Length: cfg.Warmup}, main)
	case cfg.Rate > 0:
		main := ConstantPacer{Freq: cfg.Rate, Length: cfg.Duration}
		e.pacer = newWithWarmup(ConstantPacer{Freq: cfg.Rate, Length: cfg.Warmup}, main)
	}
	if e.pacer != nil {
		e.end = e.pacer.Duration()
		if cfg.Engine != EngineGoroutines {
			e.loopTarget = newLoopTarget(d.addr, d.tls != nil)
		}
		if cfg.Engine == EngineLoops && e.loopTarget == nil {
			return nil, fmt.Errorf("engine %s: event loops need Linux, an http:// target that resolves and two processors or more; use --engine %s", EngineLoops, EngineGoroutines)
		}
	} else {
		e.end = cfg.Warmup + cfg.Duration
	}
	e.rec = newRecorder(cfg.Connections, e.pacer == nil)
	return e, nil
}

func (e *engine) now() time.Duration { return time.Since(e.base) }

func (e *engine) meta() Meta {
	m := Meta{
		Target:         e.target.Redacted(), // a password in the URL stays out of the report files
		Model:          "closed",
		TargetRate:     e.cfg.Rate,
		Stages:         e.cfg.StagesSpec,
		Connections:    e.cfg.Connections,
		SendResolution: e.cfg.SendResolution,
		Duration:       e.end - e.warmup,
		Warmup:         e.warmup,
		Host:           e.cfg.Host,
		Started:        e.base.Add(e.warmup),
	}
	if e.pacer != nil {
		m.Model = "open"
		m.Engine = EngineGoroutines
		if e.loopTarget != nil {
			m.Engine = EngineLoops
		}
		if m.TargetRate == 0 && m.Duration > 0 {
			// Staged runs: the mean scheduled rate of the measured part
			// (the warm-up excluded), so that rate>= SLOs and the
			// achieved/target ratio mean the same as for --rate.
			m.TargetRate = float64(Count(e.pacer)-e.countBefore(e.warmup)) / m.Duration.Seconds()
		}
	}
	if e.cfg.Scenario != nil {
		m.Scenario = e.cfg.Scenario.Name
	}
	return m
}

// run drives the workers and collects intervals until the schedule is done
// (or ctx is cancelled) and every request in flight has completed.
func (e *engine) run(ctx context.Context) *Recording {
	e.base = time.Now()
	done := make(chan struct{})
	if e.pacer != nil && e.startLoops(done) { // moves base to when the loops are ready
		stopTimers := e.startStopping(ctx)
		defer stopTimers()
		return e.collect(ctx, done)
	}
	stopTimers := e.startStopping(ctx)
	defer stopTimers()
	e.tickets = make(chan ticket)
	var wg sync.WaitGroup
	for i := range e.cfg.Connections {
		w := &worker{id: i, gen: newGenerator(uint64(e.base.UnixNano()) + uint64(i)*0x9E3779B97F4A7C15)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if w.conn != nil {
					w.conn.close()
				}
			}()
			if e.pacer != nil {
				e.openWorker(w)
			} else {
				e.closedWorker(w)
			}
		}()
	}
	if e.pacer != nil {
		go e.pace(ctx)
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	return e.collect(ctx, done)
}

// startStopping arranges for sending to stop at the end of the schedule or
// when ctx is cancelled. In the open model, overdue requests may still be
// dispatched for one timeout after the end, then are counted as unsent.
func (e *engine) startStopping(ctx context.Context) (cancel func()) {
	var once sync.Once
	giveUp := func() { once.Do(func() { close(e.giveUp) }) }
	var end, grace *time.Timer
	if e.pacer == nil {
		end = time.AfterFunc(time.Until(e.base.Add(e.end)), func() { e.stop.Store(true) })
	} else {
		grace = time.AfterFunc(time.Until(e.base.Add(e.end+e.cfg.Timeout)), giveUp)
	}
	stop := context.AfterFunc(ctx, func() {
		e.stop.Store(true)
		giveUp()
	})
	return func() {
		stop()
		if end != nil {
			end.Stop()
		}
		if grace != nil {
			grace.Stop()
		}
	}
}

// pace dispatches the open model's requests at their intended times: a
// Go timer for gaps over 2 ms, then a nanosleep, so that requests leave
// one by one on schedule (up to the kernel's timer slack late) rather than
// in bursts per timer tick. When every worker is busy the send blocks; the
// request leaves as soon as a worker is free, and counts as late.
func (e *engine) pace(ctx context.Context) {
	defer close(e.tickets)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for n := int64(0); ; n++ {
		at, ok := e.pacer.Offset(n)
		if !ok {
			return
		}
		if !e.waitUntil(ctx, sendAt(at, e.cfg.SendResolution), timer) {
			e.countUnsent(n, e.now(), 0, 1)
			return
		}
		select {
		case e.tickets <- ticket{n: n, at: at}:
		case <-e.giveUp:
			cutoff := e.now()
			if ctx.Err() == nil {
				cutoff = e.end // the schedule ran out: everything was due
			}
			e.countUnsent(n, cutoff, 0, 1)
			return
		}
	}
}

// countUnsent counts the measured requests from n on that were due before
// cutoff: they could not leave because no connection came free. Only the
// requests index, index+stride, ... count: an event loop's share of the
// schedule (0 and 1 for the whole of it).
func (e *engine) countUnsent(n int64, cutoff time.Duration, index, stride int64) {
	// upTo(x) is how many of index, index+stride, ... are below x.
	upTo := func(x int64) int64 { return max(0, (x-index+stride-1)/stride) }
	first := max(n, e.countBefore(e.warmup))
	if last := e.countBefore(cutoff); last > first {
		e.unsent.Add(upTo(last) - upTo(first))
	}
}

// countBefore returns the number of scheduled requests intended before d.
func (e *engine) countBefore(d time.Duration) int64 {
	before := func(n int64) bool {
		at, ok := e.pacer.Offset(n)
		return ok && at < d
	}
	hi := int64(1)
	for before(hi) {
		hi *= 2
	}
	lo := int64(0)
	for lo < hi {
		mid := lo + (hi-lo)/2
		if before(mid) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// waitUntil returns when offset at is reached, or false if the run was
// stopped first.
func (e *engine) waitUntil(ctx context.Context, at time.Duration, timer *time.Timer) bool {
	for {
		rem := at - e.now()
		switch {
		case rem <= 0:
			return true
		case rem > 2*time.Millisecond:
			timer.Reset(rem - time.Millisecond)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return false
			}
		default:
			// Let the workers just handed tickets run first: they wait in
			// this P's run queue, which no other P may take while this
			// thread sleeps in a system call holding the P. Then sleep
			// the rest: the kernel's timer slack (about 50 µs) makes the
			// request that late at most, which its corrected latency
			// includes. (Spinning to the microsecond instead cost a
			// quarter of a core at 23,000 requests/s, and delayed the
			// workers it competed with: p50 2.8 ms against 0.36 ms for a
			// static route.)
			runtime.Gosched()
			if rem = at - e.now(); rem > 0 {
				shortSleep(rem)
			}
		}
		if ctx.Err() != nil {
			return false
		}
	}
}

func (e *engine) openWorker(w *worker) {
	for t := range e.tickets {
		e.exchange(w, uint64(t.n), t.at, true)
	}
}

func (e *engine) closedWorker(w *worker) {
	n := uint64(e.cfg.Connections)
	for !e.stop.Load() {
		// {seq} is unique without a shared counter: worker i sends i, i+n, i+2n...
		if !e.exchange(w, w.seq*n+uint64(w.id), -1, false) {
			// Could not connect: back off briefly rather than spin on a
			// refused port, counting millions of errors a second.
			time.Sleep(10 * time.Millisecond)
		}
		w.seq++
	}
}

// exchange sends one request and records its outcome. intended is the
// request's intended send time in the open model, -1 in the closed model,
// where it is the actual send. It returns false if no connection could be
// made.
func (e *engine) exchange(w *worker, seq uint64, intended time.Duration, open bool) bool {
	tmpl := e.reqs.pick(w.gen.rng)
	w.gen.seq = seq
	w.buf = tmpl.build(w.buf[:0], w.gen)

	c := &e.rec.counters[w.id]
	sent := e.now()
	if intended < 0 {
		intended = sent
	}
	part := measured
	if intended < e.warmup {
		part = warm
	}
	c.busy.Store(true)
	c.sent[part].Add(1)
	if open && sent-sendAt(intended, e.cfg.SendResolution) > LateThreshold {
		c.late[part].Add(1)
	}
	status, dialed, err := e.roundTrip(w, tmpl, e.base.Add(sent+e.cfg.Timeout))
	done := e.now()
	c.busy.Store(false)

	o := outcome{part: part, status: status, corrected: done - intended, uncorrected: done - sent}
	if err != nil {
		o.status = 0
		o.err = classify(err)
		o.timedOut = o.err == kindTimeout
	}
	e.rec.record(w.id, o)
	return dialed
}

// roundTrip performs one request on w's connection, dialing when needed. A
// reused connection that the server had already closed (an idle keep-alive
// timeout) is dialed again once, as browsers and HTTP libraries do.
func (e *engine) roundTrip(w *worker, tmpl *requestTemplate, deadline time.Time) (status int, dialed bool, err error) {
	for attempt := 0; ; attempt++ {
		if w.conn != nil && w.conn.br.Buffered() > 0 {
			// Bytes nobody asked for (a second response to one request):
			// they would pass for this request's response. As the event
			// loops do, the connection is dropped for a fresh one.
			w.conn.close()
			w.conn = nil
		}
		fresh := w.conn == nil
		if fresh {
			w.conn, err = e.dialer.dial(context.Background(), deadline)
			if err != nil {
				w.conn = nil
				return 0, false, err
			}
		}
		var reuse bool
		status, reuse, err = w.conn.roundTrip(w.buf, tmpl.headOnly, deadline)
		if err != nil || !reuse {
			w.conn.close()
			w.conn = nil
		}
		if err == nil || fresh || attempt > 0 || !staleConn(err) {
			return status, true, err
		}
	}
}

// staleConn reports an error that a server's close of an idle keep-alive
// connection produces on the next request: the first read finds the
// connection closed or reset, or the write finds it closed (EPIPE) or
// reset.
func staleConn(err error) bool {
	var (
		se *staleError
		oe *net.OpError
	)
	return errors.As(err, &se) || errors.Is(err, syscall.EPIPE) ||
		(errors.As(err, &oe) && oe.Op == "write" && errors.Is(err, syscall.ECONNRESET))
}

// collect rotates intervals at every IntervalLength (and at the end of the
// warm-up) until done is closed, then closes the last interval. Unless ctx
// is cancelled, the intervals run to the end of the schedule at least: an
// open-model schedule's last request is due one gap before its end (or
// further, before a quiet stage), and a window that stopped there would
// overstate the achieved rate. Each closed measured interval goes to the
// interval log (if any) and into the Recording, which keeps its stats but
// not its histograms.
func (e *engine) collect(ctx context.Context, done <-chan struct{}) *Recording {
	rec := &Recording{Meta: e.meta()}
	// The stats of the planned intervals, allocated once (about 200 bytes
	// each); the last interval may run past the schedule, hence the spare.
	// A run planned for longer than a day (a soak test stopped by hand)
	// grows them as it goes instead of setting aside memory for years.
	rec.Intervals = make([]IntervalStats, 0, min(int64((e.end-e.warmup)/IntervalLength), maxPreallocatedIntervals)+2)
	if e.cfg.Hlog != nil {
		e.cfg.Hlog.WriteHeader(rec.Meta, rec.Meta.Started) // an error is kept by the writer
	}
	col := newCollector(e.rec)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	total := e.end
	finished := done // nil once done is closed early, with the schedule still running
	var prev time.Duration
	for {
		next := prev + IntervalLength
		part := measured
		if prev < e.warmup {
			next = min(next, e.warmup)
			part = warm
		}
		final := false
		if next >= e.end && part == measured {
			<-done // the last interval runs until the last response
			if rem := time.Until(e.base.Add(e.end)); rem > 0 && ctx.Err() == nil {
				timer.Reset(rem) // and to the end of the schedule
				select {
				case <-timer.C:
				case <-ctx.Done():
				}
			}
			final = true
		} else {
			timer.Reset(time.Until(e.base.Add(next)))
			select {
			case <-timer.C:
			case <-finished:
				if ctx.Err() != nil {
					final = true
					break
				}
				finished = nil // nothing more is due before the end of the schedule
				select {
				case <-timer.C:
				case <-ctx.Done():
					final = true
				}
			}
		}
		if final {
			next = e.now()
			col.unsent = e.unsent.Load()
		}
		iv := col.rotate(e.base.Add(prev), e.base.Add(next), part)
		if part == measured {
			keepInterval(rec, e.cfg.Hlog, iv)
		}
		if e.cfg.Progress != nil {
			e.cfg.Progress(Progress{Interval: iv, Warmup: part == warm, Elapsed: next, Total: total})
		}
		if final {
			return rec
		}
		prev = next
	}
}

// maxPreallocatedIntervals bounds the intervals' stats that collect
// allocates before the run: a day's worth, about 17 MB.
const maxPreallocatedIntervals = 24 * 3600

// keepInterval keeps what a run keeps of a closed measured interval: the
// whole of it in the interval log hw (if any), its stats and its share of
// the totals in rec. iv's histograms are not retained.
func keepInterval(rec *Recording, hw *HlogWriter, iv Interval) {
	if hw != nil {
		hw.WriteInterval(iv) // an error is kept by the writer
	}
	// Cannot fail: the recorder clamps values into NewHistogram's range.
	_ = rec.Add(iv)
}

// staleError marks a connection found closed before any byte of the
// response arrived.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// markStale wraps errors of the first read of a response that mean the
// server had closed the connection.
func markStale(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, os.ErrClosed) {
		return &staleError{err}
	}
	return err
}
