//go:build linux

// Package evhttp is storefront's HTTP/1.1 server: a few epoll event loops
// instead of a goroutine per connection.
//
// Why: a goroutine per connection costs its stack and its buffers while
// the connection idles (about 20 KB with fasthttp, 10,000 idle keep-alive
// connections took 222 MB), and every request parks and wakes that
// goroutine twice (once for its bytes, once for its database answer). Here
// an idle connection is a small struct and a file descriptor; a request is
// read and parsed on an event loop, and its response may be written by
// whichever goroutine has the answer (for storefront, the one that ran the
// coalesced database query), so a request costs no goroutine hand-off at
// all.
//
// Scope: what a JSON lookup API needs, and no more. Requests are served in
// order on each connection, one at a time (pipelined requests wait their
// turn); bodies, with Content-Length or chunked, are read and discarded
// (they are bounded by MaxBodyBytes); responses carry a Content-Length.
// There is no TLS, no HTTP/2, no upgrade. Linux only.
package evhttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config tunes the server. Zero values are not defaults: use DefaultConfig
// and change what you need.
type Config struct {
	MaxHeaderBytes int           // request line plus headers; more get 431
	MaxBodyBytes   int           // larger bodies get 413
	ReadTimeout    time.Duration // from a request's first byte to its last; slower ones get 408
	WriteTimeout   time.Duration // a response the client does not take in this long closes the connection
	IdleTimeout    time.Duration // keep-alive connections idle longer are closed
	MaxConns       int           // more concurrent connections get 503 and are closed
	// Loops is the number of event loops; 0 means GOMAXPROCS.
	Loops int
	// CloseGrace is how long Shutdown lets idle keep-alive connections
	// bring one more request (answered with Connection: close) before it
	// closes them.
	CloseGrace time.Duration
	// OnDropped, when set, is called (on the accepting goroutine) for each
	// connection that could not be taken because the process is out of
	// descriptors or memory: the client sees its connection closed, or it
	// waits in the listen backlog.
	OnDropped func(err error)
}

// DefaultConfig returns workable defaults.
func DefaultConfig() Config {
	return Config{
		MaxHeaderBytes: 8 << 10,
		MaxBodyBytes:   4 << 10,
		ReadTimeout:    5 * time.Second,
		WriteTimeout:   5 * time.Second,
		IdleTimeout:    90 * time.Second,
		MaxConns:       20000,
		CloseGrace:     time.Second,
	}
}

// Handler serves requests.
type Handler interface {
	// Serve answers x by calling x.Respond exactly once, before returning
	// or later from any goroutine. It runs on an event loop: anything that
	// blocks (a query, a lock held for long) must happen on another
	// goroutine, which then responds.
	Serve(x *Exchange)
	// Refuse answers a request the server will not serve with status and
	// a short reason for the client: 400 (malformed, or an HTTP version or
	// transfer coding it does not speak), 408 (too slow), 413 (body too
	// large), 431 (headers too large) or 503 (too many connections). x has
	// no method or path; its RequestID is the request's X-Request-ID when
	// the request's head was parsed whole (a 413, a missing or repeated
	// Host, bad chunked framing), empty otherwise. It must respond before
	// returning; the connection is closed afterwards.
	Refuse(x *Exchange, status int, reason string)
}

// Server is an HTTP/1.1 server on epoll event loops.
type Server struct {
	cfg     Config
	handler Handler
	epoch   time.Time // the monotonic clock's zero for deadlines

	loops []*loop
	next  atomic.Uint32 // round-robin loop choice
	conns atomic.Int64  // open connections
	// overLimit counts the connections in conns that only linger after a
	// 503 for being over MaxConns; they do not take a slot.
	overLimit atomic.Int64
	closing   atomic.Bool // responses say Connection: close
	stopping  atomic.Bool // Shutdown has begun
	stopped   atomic.Bool

	mu        sync.Mutex
	ln        net.Listener
	accepting sync.WaitGroup // Serve's accept loop, until it returns
	loopsDone sync.WaitGroup // the loop goroutines

	chunks chunkPool

	dateSec atomic.Int64
	date    atomic.Pointer[[]byte]
}

// NewServer returns a server; it does not listen yet.
func NewServer(cfg Config, h Handler) *Server {
	if cfg.Loops <= 0 {
		cfg.Loops = runtime.GOMAXPROCS(0)
	}
	return &Server{cfg: cfg, handler: h, epoch: time.Now()}
}

// Conns is the number of open connections.
func (s *Server) Conns() int { return int(s.conns.Load()) }

// Closing reports whether Shutdown has closed the listener.
func (s *Server) Closing() bool { return s.closing.Load() }

// now is the monotonic time in nanoseconds since the server was made.
func (s *Server) now() int64 { return int64(time.Since(s.epoch)) }

// Serve accepts connections on ln, which must be a TCP listener, until the
// listener is closed. It returns nil when Shutdown closed it.
//
// Accepting goes through the Go runtime (ln.Accept); each accepted socket
// is then duplicated out of its net.Conn into an event loop. That costs a
// few system calls per connection, not per request.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.ln != nil {
		s.mu.Unlock()
		return errors.New("evhttp: Serve called twice")
	}
	if s.stopping.Load() {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	if err := s.startLoops(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.accepting.Add(1)
	s.mu.Unlock()
	defer s.accepting.Done()

	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.stopping.Load() {
				return nil
			}
			if outOfResources(err) {
				s.dropped(err)
				time.Sleep(10 * time.Millisecond) // out of descriptors: let some close
				continue
			}
			if errors.Is(err, unix.ECONNABORTED) {
				continue
			}
			return err
		}
		fd, err := detach(nc)
		if err != nil {
			if outOfResources(err) {
				s.dropped(err)
			}
			continue // the connection is closed; its client retries
		}
		s.accept(fd, nc.RemoteAddr())
	}
}

// outOfResources reports an error that says the process or the system
// has run out of descriptors or memory.
func outOfResources(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) || errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM)
}

func (s *Server) dropped(err error) {
	if s.cfg.OnDropped != nil {
		s.cfg.OnDropped(err)
	}
}

// detach takes a connection's socket out of the Go runtime: it returns a
// duplicate descriptor (non-blocking, close-on-exec) and closes nc, which
// leaves the socket open through the duplicate.
func detach(nc net.Conn) (int, error) {
	defer nc.Close()
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("evhttp: connection %T has no file descriptor", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(orig uintptr) {
		fd, derr = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// accept sets a new connection up and hands it to a loop.
func (s *Server) accept(fd int, remote net.Addr) {
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15)
	l := s.loops[s.next.Add(1)%uint32(len(s.loops))]
	c := &conn{srv: s, loop: l, fd: fd, remote: remote}
	c.x.c = c
	if s.conns.Add(1)-s.overLimit.Load() > int64(s.cfg.MaxConns) {
		// Over the limit: answer 503. Closing at once would make the
		// kernel reset the connection when the client's request arrives
		// after the close, and a reset can fail the client's write or
		// (on some stacks) destroy the 503 before it is read; so the
		// connection lingers in a loop (about lingerTimeout at most,
		// discarding input) until the client closes. It takes no slot
		// meanwhile. Only overLimitLingerers at once; the rest are
		// closed at once.
		c.mu.Lock()
		defer c.mu.Unlock()
		if s.overLimit.Add(1) > int64(overLimitLingerers(s.cfg.MaxConns)) || l.add(c) != nil {
			s.overLimit.Add(-1)
			c.refuseLocked(refuseConnections)
			c.closeLocked()
			return
		}
		c.overLimit = true
		c.refuseLocked(refuseConnections)
		return
	}
	c.deadline.Store(s.now() + int64(s.cfg.IdleTimeout))
	if err := l.add(c); err != nil {
		c.mu.Lock()
		c.closeLocked()
		c.mu.Unlock()
	}
}

// overLimitLingerers is how many connections over maxConns may linger
// after their 503: an eighth of the limit, at least 16 and at most 1024.
func overLimitLingerers(maxConns int) int {
	return min(max(maxConns/8, 16), 1024)
}

func (s *Server) startLoops() error {
	for range s.cfg.Loops {
		l, err := newLoop(s)
		if err != nil {
			for _, l := range s.loops {
				l.stop()
			}
			s.loops = nil
			return err
		}
		s.loops = append(s.loops, l)
	}
	for _, l := range s.loops {
		s.loopsDone.Add(1)
		go func() {
			defer s.loopsDone.Done()
			l.run()
		}()
	}
	return nil
}

// Shutdown closes the listener, then:
//  1. from then on every response carries Connection: close, and idle
//     keep-alive connections get CloseGrace to bring one more request
//     (closing one at once could lose a request its client is sending at
//     that moment: the client sees the connection close before any byte of
//     a response, and cannot know whether the request was seen);
//  2. the connections still idle are closed;
//  3. requests in flight are answered (their connections close after).
//
// When ctx ends first, every connection is closed at once and Shutdown
// returns an error. The event loops stop in both cases.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopping.Store(true) // under mu: Serve either sees it or has stored ln
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	// A connection accepted just before the close is registered before
	// the counting below starts.
	s.accepting.Wait()
	// Only now: a client told to close before the listener was closed
	// could reconnect into the accept queue and be reset with it.
	s.closing.Store(true)
	defer s.stopLoops()

	wait := func(d time.Duration) bool { // until no connection is open, d passes or ctx ends
		timer := time.NewTimer(d)
		defer timer.Stop()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for s.conns.Load() > 0 {
			select {
			case <-tick.C:
			case <-timer.C:
				return false
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	if wait(s.cfg.CloseGrace) {
		return nil
	}
	s.eachConn(func(c *conn) { // idle ones: no request in progress or partly received
		if !c.busy && c.out == nil && !c.lingering && !c.reqStarted && c.in == nil {
			c.closeLocked()
		}
	})
	if wait(time.Hour) {
		return nil
	}
	n := s.conns.Load()
	s.eachConn(func(c *conn) { c.closeLocked() })
	return fmt.Errorf("%d connections still open: %w", n, ctx.Err())
}

// eachConn calls f on every registered connection, with its lock held.
func (s *Server) eachConn(f func(*conn)) {
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	for _, l := range loops {
		for _, c := range l.snapshot() {
			c.mu.Lock()
			if !c.closed {
				f(c)
			}
			c.mu.Unlock()
		}
	}
}

// stopLoops stops the loops and, once they have returned, closes their
// descriptors: nothing can use them any more.
func (s *Server) stopLoops() {
	if s.stopped.Swap(true) {
		return
	}
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	for _, l := range loops {
		l.wakeUp()
	}
	s.loopsDone.Wait()
	for _, l := range loops {
		l.stop()
	}
}

// httpDate returns the Date header's value, made once a second.
func (s *Server) httpDate() []byte {
	now := time.Now()
	if sec := now.Unix(); sec != s.dateSec.Load() || s.date.Load() == nil {
		d := now.UTC().AppendFormat(make([]byte, 0, 32), "Mon, 02 Jan 2006 15:04:05 GMT")
		s.date.Store(&d)
		s.dateSec.Store(sec)
		return d
	}
	return *s.date.Load()
}
