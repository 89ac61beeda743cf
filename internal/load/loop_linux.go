//go:build linux

package load

import (
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"storefront/internal/rawio"
)

// The open model's event loops. Each loop owns a share of the connections
// and of the schedule (request n goes to loop n mod loops) and does all of
// their work on one goroutine: it sends every due request on an idle
// connection, waits in epoll until the next request is due or a response
// arrives, reads and parses responses and records them. One goroutine per
// connection fed by a pacer goroutine costs a hand-off between threads and
// a sleep for every request; on a machine shared with the server under
// test, that was about half of all CPU at half the server's maximum rate.
//
// Waits of up to loopSpinWait are epoll_pwait2 calls that keep the
// goroutine's processor (rawio.EpollWait), so that a request leaves within
// microseconds of its time; longer ones, until about a millisecond before,
// are blocking epoll_pwait2 calls that hand the processor back
// (rawio.EpollBlock), like the other engine's pacer. A loop therefore holds
// a processor while the schedule is dense, which is why there are fewer
// loops than processors. The epoll descriptor is never registered with
// the runtime's poller: that would wake an idle runtime thread at every
// response arriving while the loop sleeps, for nothing (at 30,000 static
// requests a second, a fifth of the loop's CPU).

const (
	// loopSpinWait is the longest wait a loop spends in epoll_pwait2
	// holding its processor; longer ones hand it back.
	loopSpinWait = 2 * time.Millisecond
	// loopSweepEvery is how often a busy loop looks for requests past
	// their timeout.
	loopSweepEvery = 5 * time.Millisecond
	// loopMaxPark bounds a park, so that a cancelled run is noticed.
	loopMaxPark = 100 * time.Millisecond
	// loopReadBuffer is a loop's read buffer, shared by its connections.
	loopReadBuffer = 64 << 10
)

// loopTarget is where the loops connect: the target's address, resolved
// once when the run is set up.
type loopTarget struct {
	domain int
	ip     net.IP
	port   int
}

// sockaddr returns the address for connect(2); each loop needs its own,
// since Connect writes into it.
func (t *loopTarget) sockaddr() unix.Sockaddr {
	if t.domain == unix.AF_INET {
		sa := &unix.SockaddrInet4{Port: t.port}
		copy(sa.Addr[:], t.ip)
		return sa
	}
	sa := &unix.SockaddrInet6{Port: t.port}
	copy(sa.Addr[:], t.ip)
	return sa
}

// newLoopTarget resolves addr for the loops; nil when the open model must
// use connection goroutines instead: https, a host name that does not
// resolve now, a single processor, a kernel without epoll_pwait2.
func newLoopTarget(addr string, tlsOn bool) *loopTarget {
	if tlsOn || runtime.GOMAXPROCS(0) < 2 {
		return nil
	}
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil
	}
	t := &loopTarget{domain: unix.AF_INET6, ip: ta.IP.To16(), port: ta.Port}
	if ip4 := ta.IP.To4(); ip4 != nil {
		t.domain, t.ip = unix.AF_INET, ip4
	}
	if !epollWaitWorks() {
		return nil
	}
	return t
}

// epollWaitWorks probes for epoll_pwait2 (Linux 5.11).
func epollWaitWorks() bool {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	defer unix.Close(epfd)
	var ev [1]unix.EpollEvent
	_, err = rawio.EpollWait(epfd, ev[:], 0)
	return err == nil
}

// loopCount is the number of loops a run with conns connections uses on
// procs processors when asked for requested (0: half the processors).
// A loop holds its processor while requests are due often, so one
// processor stays for the rest of the program. Every loop sends an equal
// share of the schedule on its own connections only, so every loop must
// hold as many: the count is rounded down to a divisor of conns (with 6
// connections, 4 loops would hold 2, 2, 1 and 1, and the last two would
// send their share at half the others' pace).
func loopCount(requested, conns, procs int) int {
	n := requested
	if n <= 0 {
		n = procs / 2
	}
	n = max(1, min(n, conns, procs-1))
	for conns%n != 0 {
		n--
	}
	return n
}

// loopConn is one connection of a loop and the request it carries.
type loopConn struct {
	id     int // the worker index: its counters in the recorder
	fd     int // -1 while not connected
	state  loopConnState
	reused bool // the connection carried a request before this one
	gen    *generator

	req      []byte // the request being sent
	written  int
	headOnly bool
	intended time.Duration // offsets from the engine's base
	sent     time.Duration
	deadline time.Duration
	gotBytes bool  // some of the response arrived
	lastRx   int64 // when the kernel received the response's latest bytes (Unix ns; 0: unknown)
	retried  bool  // sent again on a fresh connection already
	waitsOut bool  // for EPOLLOUT: a connect under way, or a request only partly written
	resp     responseReader
}

type loopConnState uint8

const (
	connIdle       loopConnState = iota
	connConnecting               // a non-blocking connect is under way
	connBusy                     // writing the request or reading the response
)

// eventLoop is one loop.
type eventLoop struct {
	e      *engine
	domain int
	addr   unix.Sockaddr // the target
	index  int64         // this loop sends requests index, index+stride, ...
	stride int64

	epfd int
	// stamps is a socket that only keeps receive timestamps on for the
	// run: the kernel turns them on for the whole machine when the first
	// socket asks and off when the last one closes, and with connections
	// that close after every response (Connection: close) it would do so
	// over and over, patching its own code each time.
	stamps int

	all    []*loopConn // this loop's connections
	conns  []*loopConn // by descriptor
	idle   []*loopConn // connected and idle, most recently used last
	closed []*loopConn // idle without a connection
	busy   int
	// waitingOut counts connections waiting for EPOLLOUT; while there are
	// any, the loop waits in epoll rather than sleeping, since nothing
	// would note when their connect or write could go on.
	waitingOut int

	next    int64 // the next request of this loop's share of the schedule
	nextAt  time.Duration
	pending bool // next is scheduled (it may be waiting for a connection)

	events    [512]unix.EpollEvent
	more      bool // the last poll filled events: more may be ready
	rbuf      []byte
	rx        rawio.TimestampReader
	lastSweep time.Duration
}

func newEventLoop(e *engine, index, stride int64, ids []int) (*eventLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	l := &eventLoop{e: e, domain: e.loopTarget.domain, addr: e.loopTarget.sockaddr(), index: index, stride: stride, epfd: epfd,
		rbuf: make([]byte, loopReadBuffer), next: index - stride}
	l.stamps = -1
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
		_ = rawio.EnableRxTimestamps(fd)
		l.stamps = fd
	}
	for _, id := range ids {
		l.all = append(l.all, &loopConn{id: id, fd: -1,
			gen: newGenerator(uint64(e.base.UnixNano()) + uint64(id)*0x9E3779B97F4A7C15)})
	}
	l.closed = append(l.closed, l.all...)
	return l, nil
}

// runLoops runs the open model on event loops and returns when every loop
// is done.
func (e *engine) runLoops(loops []*eventLoop, ready chan<- struct{}, begin <-chan struct{}, done chan<- struct{}) {
	finished := make(chan struct{}, len(loops))
	for _, l := range loops {
		go func() {
			l.run(ready, begin)
			finished <- struct{}{}
		}()
	}
	for range loops {
		<-finished
	}
	close(done)
}

// startLoops starts the loops of an open-model run, which close done when
// they are finished; false when the run must use connection goroutines.
func (e *engine) startLoops(done chan<- struct{}) bool {
	if e.loopTarget == nil {
		return false
	}
	n := loopCount(e.cfg.Loops, e.cfg.Connections, runtime.GOMAXPROCS(0))
	loops := make([]*eventLoop, 0, n)
	for k := range n {
		var ids []int
		for id := k; id < e.cfg.Connections; id += n {
			ids = append(ids, id)
		}
		l, err := newEventLoop(e, int64(k), int64(n), ids)
		if err != nil {
			for _, l := range loops {
				l.shutdown()
			}
			e.loopTarget = nil // the recording names the engine that ran
			return false
		}
		loops = append(loops, l)
	}
	// The schedule starts once every loop is on its own thread, plus
	// loopStartLead for the loops to wake and sleep until it: a loop still
	// starting when its first request is due would make that request late,
	// and its start-up part of the request's latency.
	ready, begin := make(chan struct{}, n), make(chan struct{})
	go e.runLoops(loops, ready, begin, done)
	for range n {
		<-ready
	}
	e.base = time.Now().Add(loopStartLead)
	close(begin)
	return true
}

// loopStartLead is how long after the loops are ready their schedule
// starts: enough for a parked thread to wake on a busy machine.
const loopStartLead = 10 * time.Millisecond

// advance moves to this loop's next scheduled request.
func (l *eventLoop) advance() {
	l.next += l.stride
	l.nextAt, l.pending = l.e.pacer.Offset(l.next)
}

// run is the loop, until its share of the schedule is sent (or given up)
// and every request it sent is answered or timed out. It says when it is
// ready on ready, and starts its schedule once begin is closed.
func (l *eventLoop) run(ready chan<- struct{}, begin <-chan struct{}) {
	defer l.shutdown()
	// The loop's short sleeps should end on time: its thread is its own
	// and has no timer slack. (The goroutine keeps its processor while it
	// sleeps, so this costs no extra thread.)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = rawio.PreciseTimers()
	ready <- struct{}{}
	<-begin
	l.advance()
	for {
		now := l.e.now()
		l.dispatch(now)
		l.giveUp(now)
		if !l.pending && l.busy == 0 {
			return
		}
		if l.busy > 0 && now-l.lastSweep >= loopSweepEvery {
			l.lastSweep = now
			l.sweep(now)
		}
		n, err := l.wait(l.e.now()) // dispatching took time: sleep from now
		if err != nil {
			l.abandon(now, os.NewSyscallError("epoll_wait", err)) // cannot happen with a valid epoll descriptor
			return
		}
		for i := range n {
			ev := &l.events[i]
			if int(ev.Fd) >= len(l.conns) {
				continue
			}
			c := l.conns[ev.Fd]
			if c == nil || c.fd != int(ev.Fd) {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				l.onWritable(c)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && c.fd >= 0 {
				l.onReadable(c, ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0)
			}
		}
	}
}

// abandon ends the loop's part of the run after its epoll set failed:
// requests in flight fail with err, the rest of its schedule is unsent.
func (l *eventLoop) abandon(now time.Duration, err error) {
	for _, c := range l.all {
		if c.state != connIdle {
			c.retried = true // no second attempt
			l.fail(c, err)
		}
	}
	if l.pending {
		l.e.countUnsent(l.next, max(now, l.e.end), l.index, l.stride)
		l.pending = false
	}
}

// dispatch sends every request due by now that has a connection to go on.
// A request that finds none waits for the first one to come free: it
// leaves late, and its corrected latency counts the wait.
func (l *eventLoop) dispatch(now time.Duration) {
	for l.pending && sendAt(l.nextAt, l.e.cfg.SendResolution) <= now {
		c := l.takeIdle()
		if c == nil {
			return
		}
		l.start(c, now)
		l.advance()
		now = l.e.now() // a send takes microseconds: the next one is timed from here
	}
}

// giveUp stops this loop's schedule when the run is cancelled, or when
// requests are still waiting for a connection one timeout after the
// schedule's end; they are counted as unsent.
func (l *eventLoop) giveUp(now time.Duration) {
	if !l.pending {
		return
	}
	cutoff := time.Duration(-1)
	if l.e.stop.Load() {
		cutoff = now
	} else if l.nextAt <= now {
		select {
		case <-l.e.giveUp:
			cutoff = l.e.end
			if l.e.stop.Load() { // cancelled: giveUp closes after stop is set
				cutoff = now
			}
		default:
		}
	}
	if cutoff >= 0 {
		l.e.countUnsent(l.next, cutoff, l.index, l.stride)
		l.pending = false
	}
}

func (l *eventLoop) takeIdle() *loopConn {
	if n := len(l.idle); n > 0 {
		c := l.idle[n-1]
		l.idle = l.idle[:n-1]
		return c
	}
	if n := len(l.closed); n > 0 {
		c := l.closed[n-1]
		l.closed = l.closed[:n-1]
		return c
	}
	return nil
}

// start sends the loop's next request on c.
func (l *eventLoop) start(c *loopConn, now time.Duration) {
	e := l.e
	tmpl := e.reqs.pick(c.gen.rng)
	c.gen.seq = uint64(l.next)
	c.req = tmpl.build(c.req[:0], c.gen)
	c.written, c.headOnly = 0, tmpl.headOnly
	c.intended, c.sent, c.deadline = l.nextAt, now, now+e.cfg.Timeout
	c.gotBytes, c.retried, c.lastRx = false, false, 0
	c.resp.reset(tmpl.headOnly)
	c.state = connBusy
	l.busy++

	counters := &e.rec.counters[c.id]
	part := measured
	if c.intended < e.warmup {
		part = warm
	}
	counters.busy.Store(true)
	counters.sent[part].Add(1)
	if now-sendAt(c.intended, e.cfg.SendResolution) > LateThreshold {
		counters.late[part].Add(1)
	}
	if c.fd < 0 {
		l.connect(c)
		return
	}
	c.reused = true
	l.write(c)
}

// connect opens a non-blocking connection for c's request.
func (l *eventLoop) connect(c *loopConn) {
	c.reused = false
	fd, err := unix.Socket(l.domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.fail(c, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", err)})
		return
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // as net.Dial does
	_ = rawio.EnableRxTimestamps(fd)                                  // without them, a response's time is when it is read
	err = unix.Connect(fd, l.addr)
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		l.fail(c, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)})
		return
	}
	for fd >= len(l.conns) {
		l.conns = append(l.conns, nil)
	}
	l.conns[fd] = c
	c.fd = fd
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.fail(c, os.NewSyscallError("epoll_ctl", err))
		return
	}
	if err == nil {
		c.state = connBusy
		l.write(c)
		return
	}
	c.state = connConnecting
	l.setWaitsOut(c, true)
}

// setWaitsOut notes whether c waits for EPOLLOUT.
func (l *eventLoop) setWaitsOut(c *loopConn, v bool) {
	if c.waitsOut != v {
		c.waitsOut = v
		if v {
			l.waitingOut++
		} else {
			l.waitingOut--
		}
	}
}

// onWritable finishes a connect, or a request the socket did not take at
// once.
func (l *eventLoop) onWritable(c *loopConn) {
	switch {
	case c.state == connConnecting:
		soErr, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && soErr != 0 {
			err = syscall.Errno(soErr)
		}
		if err != nil {
			l.fail(c, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)})
			return
		}
		l.setWaitsOut(c, false)
		c.state = connBusy
		l.write(c)
	case c.state == connBusy && c.written < len(c.req):
		l.write(c)
	}
}

// write writes what the socket takes of c's request.
func (l *eventLoop) write(c *loopConn) {
	for c.written < len(c.req) {
		n, err := rawio.Write(c.fd, c.req[c.written:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			l.setWaitsOut(c, true) // EPOLLOUT continues
			return
		case err != nil:
			l.fail(c, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", err)})
			return
		}
		c.written += n
	}
	l.setWaitsOut(c, false)
}

// onReadable reads what arrived on c; peerDone means the peer has closed
// its side, so c is not reused after this response (edge-triggered epoll
// would not report that again).
func (l *eventLoop) onReadable(c *loopConn, peerDone bool) {
	for c.fd >= 0 {
		n, rx, err := l.rx.Read(c.fd, l.rbuf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return
		case err != nil && c.state == connIdle:
			l.drop(c) // reset while idle: no request to fail
			return
		case err != nil:
			var rerr error = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)}
			if err == syscall.ECONNRESET && !c.gotBytes {
				rerr = &staleError{rerr}
			}
			l.fail(c, rerr)
			return
		case n == 0:
			l.onEOF(c)
			return
		}
		if c.state == connIdle {
			// Bytes nobody asked for: the connection cannot be trusted
			// with the next request.
			l.drop(c)
			return
		}
		c.gotBytes = true
		if rx != 0 {
			c.lastRx = rx
		}
		used, perr := c.resp.feed(l.rbuf[:n])
		if perr != nil {
			l.fail(c, perr)
			return
		}
		if c.resp.done() {
			l.complete(c, c.resp.head.reuse && !peerDone && used == n && c.written == len(c.req), rx)
			return
		}
	}
}

// onEOF handles the peer's end of c.
func (l *eventLoop) onEOF(c *loopConn) {
	switch {
	case c.state == connIdle:
		l.drop(c) // an idle keep-alive connection the server closed
	case c.resp.eof():
		// A body that runs to the end of the connection: its last bytes'
		// receive time, not the loop's wake-up, is when it arrived.
		l.complete(c, false, c.lastRx)
	case !c.gotBytes:
		l.fail(c, &staleError{io.EOF})
	default:
		l.fail(c, io.ErrUnexpectedEOF)
	}
}

// complete records c's response, whose last bytes the kernel received at
// rx (Unix nanoseconds; 0 if unknown), and makes c idle. A response that
// arrived after the request's timeout, before the sweep got to it, is a
// timeout, as in the goroutine engine.
func (l *eventLoop) complete(c *loopConn, reuse bool, rx int64) {
	done := l.arrival(c, rx)
	if done >= c.deadline {
		l.fail(c, os.ErrDeadlineExceeded)
		return
	}
	l.record(c, outcome{status: c.resp.head.status, corrected: done - c.intended, uncorrected: done - c.sent})
	if !reuse {
		l.closeFd(c)
	}
	l.release(c)
}

// arrival converts a receive time from the kernel's wall clock to an
// offset on the engine's monotonic one, within [c.sent, now]; without
// one, the response arrived now.
func (l *eventLoop) arrival(c *loopConn, rx int64) time.Duration {
	now := time.Now()
	mono := now.Sub(l.e.base)
	if rx == 0 {
		return mono
	}
	return min(max(mono-time.Duration(now.UnixNano()-rx), c.sent), mono)
}

// fail records c's request as failed with err, or sends it again on a new
// connection when a reused one turned out closed by the server before any
// of the response (an idle keep-alive timeout), once, as HTTP clients do.
func (l *eventLoop) fail(c *loopConn, err error) {
	if c.state != connConnecting && c.reused && !c.gotBytes && !c.retried && staleConn(err) {
		l.closeFd(c)
		c.retried = true
		c.written = 0
		c.resp.reset(c.headOnly)
		l.connect(c)
		return
	}
	now := l.e.now()
	o := outcome{corrected: now - c.intended, uncorrected: now - c.sent, err: classify(err)}
	o.timedOut = o.err == kindTimeout
	l.record(c, o)
	l.closeFd(c)
	l.release(c)
}

func (l *eventLoop) record(c *loopConn, o outcome) {
	o.part = measured
	if c.intended < l.e.warmup {
		o.part = warm
	}
	l.e.rec.record(c.id, o)
	l.e.rec.counters[c.id].busy.Store(false)
}

// release returns c, its request done, to the idle connections.
func (l *eventLoop) release(c *loopConn) {
	c.state = connIdle
	l.busy--
	if c.fd >= 0 {
		l.idle = append(l.idle, c)
	} else {
		l.closed = append(l.closed, c)
	}
}

// drop closes an idle connection.
func (l *eventLoop) drop(c *loopConn) {
	l.closeFd(c)
	for i, d := range l.idle {
		if d == c {
			l.idle = append(l.idle[:i], l.idle[i+1:]...)
			l.closed = append(l.closed, c)
			return
		}
	}
}

func (l *eventLoop) closeFd(c *loopConn) {
	l.setWaitsOut(c, false)
	if c.fd < 0 {
		return
	}
	l.conns[c.fd] = nil
	unix.Close(c.fd) // closing removes it from the epoll set
	c.fd = -1
}

// sweep fails the requests past their timeout.
func (l *eventLoop) sweep(now time.Duration) {
	for _, c := range l.all {
		if c.state != connIdle && now >= c.deadline {
			l.fail(c, os.ErrDeadlineExceeded)
		}
	}
}

// wait returns the events that arrive before the loop has something to
// do: the next request to send, the next sweep, or (parked) a bounded
// time, so that a cancelled run is noticed.
//
// While the next request is due within loopSpinWait and a connection is
// free for it, the loop sleeps until then, through arriving responses: the
// kernel notes when each arrived (SO_TIMESTAMPNS), so reading them when it
// wakes, just before it sends, loses no precision, and saves a wake-up per
// response. Otherwise it waits in epoll for responses.
func (l *eventLoop) wait(now time.Duration) (int, error) {
	if l.more {
		return l.poll()
	}
	timeout := loopMaxPark
	sendable := l.pending && (len(l.idle) > 0 || len(l.closed) > 0)
	sleep := sendable && l.waitingOut == 0
	if sendable {
		timeout = min(timeout, sendAt(l.nextAt, l.e.cfg.SendResolution)-now)
	}
	if l.busy > 0 {
		timeout = min(timeout, max(l.lastSweep+loopSweepEvery-now, 0))
	}
	switch {
	case timeout > loopSpinWait:
		return l.park(timeout - time.Millisecond)
	case sleep:
		rawio.Sleep(timeout)
		return l.poll()
	}
	n, err := rawio.EpollWait(l.epfd, l.events[:], timeout)
	if err == syscall.EINTR {
		return 0, nil
	}
	l.more = n == len(l.events)
	return n, err
}

// poll takes the events ready now.
func (l *eventLoop) poll() (int, error) {
	n, err := rawio.EpollPoll(l.epfd, l.events[:])
	if err == syscall.EINTR {
		return 0, nil
	}
	l.more = n == len(l.events)
	return n, err
}

// park waits for events at most d in a blocking system call, which hands
// the loop's processor to other goroutines meanwhile. (Registering the
// epoll descriptor with the runtime's poller instead would wake an idle
// thread of the runtime at every response that arrives while the loop
// sleeps or sends: each costs a context switch for nothing.)
func (l *eventLoop) park(d time.Duration) (int, error) {
	n, err := rawio.EpollBlock(l.epfd, l.events[:], d)
	if err == syscall.EINTR {
		return 0, nil
	}
	l.more = n == len(l.events)
	return n, err
}

// shutdown closes the loop's connections and epoll set.
func (l *eventLoop) shutdown() {
	for _, c := range l.conns {
		if c != nil {
			l.closeFd(c)
		}
	}
	unix.Close(l.epfd)
	if l.stamps >= 0 {
		unix.Close(l.stamps)
	}
}
