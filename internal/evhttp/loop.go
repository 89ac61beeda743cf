//go:build linux

package evhttp

import (
	"encoding/binary"
	"errors"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"storefront/internal/rawio"
)

const (
	// sweepEvery is how often a loop looks for connections past their
	// deadline: the timeouts are seconds, so a quarter second is precise
	// enough, and scanning 10,000 connections costs well under a
	// millisecond.
	sweepEvery = 250 * time.Millisecond
	// scratchSize is the loop's read buffer: what one read can take.
	scratchSize = 64 << 10
)

// loop is one event loop: an epoll set, the connections registered in it,
// and an eventfd other goroutines use to hand it a connection back.
//
// The loop never blocks in epoll_wait. The epoll descriptor is itself
// registered with the Go runtime's network poller (an epoll set is
// readable while it has events), and the loop asks for events without
// waiting, parking in the runtime when there are none. A goroutine blocked
// in epoll_wait would hold its P in a system call: with every P held so,
// goroutines woken by the runtime's poller (the database client's
// replies) wait for sysmon, up to 10 ms.
type loop struct {
	srv    *Server
	epfd   int
	epoll  *os.File // epfd, registered with the runtime's poller
	raw    syscall.RawConn
	wakeFd int

	mu      sync.Mutex
	conns   map[int32]*conn
	woken   []*conn // connections with buffered requests to serve
	expired []*conn // scratch for sweep

	scratch   []byte
	events    [256]unix.EpollEvent
	lastSweep int64

	// pollFn is pollEvents bound once, so that wait does not allocate a
	// closure per call; it leaves its results in polled and pollErr.
	pollFn  func(fd uintptr) bool
	polled  int
	pollErr error
}

func newLoop(s *Server) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wfd)}); err != nil {
		unix.Close(epfd)
		unix.Close(wfd)
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wfd)
		return nil, err
	}
	f := os.NewFile(uintptr(epfd), "epoll") // non-blocking: pollable
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(wfd)
		return nil, err
	}
	l := &loop{srv: s, epfd: epfd, epoll: f, raw: raw, wakeFd: wfd, conns: make(map[int32]*conn), scratch: make([]byte, scratchSize)}
	l.pollFn = l.pollEvents
	return l, nil
}

// add registers c. Edge-triggered: every event means "something changed",
// and a reader drains the socket (or remembers that it did not).
func (l *loop) add(c *conn) error {
	l.mu.Lock()
	l.conns[int32(c.fd)] = c
	l.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(c.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		l.remove(c)
		return err
	}
	return nil
}

// remove forgets c; it must happen before c's descriptor is closed, since
// the number may be reused by the next accepted connection at once.
func (l *loop) remove(c *conn) {
	l.mu.Lock()
	if l.conns[int32(c.fd)] == c {
		delete(l.conns, int32(c.fd))
	}
	l.mu.Unlock()
}

func (l *loop) lookup(fd int32) *conn {
	l.mu.Lock()
	c := l.conns[fd]
	l.mu.Unlock()
	return c
}

func (l *loop) snapshot() []*conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := make([]*conn, 0, len(l.conns))
	for _, c := range l.conns {
		cs = append(cs, c)
	}
	return cs
}

// wake hands c back to the loop: it has buffered requests to serve.
func (l *loop) wake(c *conn) {
	l.mu.Lock()
	l.woken = append(l.woken, c)
	l.mu.Unlock()
	l.wakeUp()
}

func (l *loop) wakeUp() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = rawio.Write(l.wakeFd, one[:])
}

func (l *loop) stop() {
	l.epoll.Close()
	unix.Close(l.wakeFd)
}

// wait returns the next events, parking in the runtime's poller while
// there are none, and n = 0 when the sweep is due.
func (l *loop) wait() (n int, err error) {
	err = l.raw.Read(l.pollFn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		_ = l.epoll.SetReadDeadline(time.Now().Add(sweepEvery))
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return l.polled, l.pollErr
}

// pollEvents asks for events without blocking; false parks wait in the
// runtime's poller until the epoll descriptor is readable.
func (l *loop) pollEvents(fd uintptr) bool {
	for {
		l.polled, l.pollErr = rawio.EpollPoll(int(fd), l.events[:])
		if l.pollErr != unix.EINTR {
			return l.polled > 0 || l.pollErr != nil
		}
	}
}

// run is the loop itself, until the server stops (the server closes its
// descriptors afterwards). A failing epoll wait, which should not happen,
// ends the loop and closes its connections: nothing would serve them or
// sweep their deadlines any more.
func (l *loop) run() {
	var woken []*conn
	_ = l.epoll.SetReadDeadline(time.Now().Add(sweepEvery))
	for !l.srv.stopped.Load() {
		n, err := l.wait()
		if err != nil {
			l.closeAll()
			return
		}
		for i := range n {
			ev := &l.events[i]
			if int(ev.Fd) == l.wakeFd {
				var buf [8]byte
				_, _ = rawio.Read(l.wakeFd, buf[:])
				l.mu.Lock()
				woken, l.woken = l.woken, woken[:0]
				l.mu.Unlock()
				for _, c := range woken {
					c.onReadable(l, false)
				}
				clear(woken)
				continue
			}
			c := l.lookup(ev.Fd)
			if c == nil {
				continue
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				c.onReadable(l, ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0)
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				c.onWritable(l)
			}
		}
		if now := l.srv.now(); now-l.lastSweep >= int64(sweepEvery) {
			l.lastSweep = now
			l.sweep(now)
		}
	}
}

// closeAll closes every connection of the loop.
func (l *loop) closeAll() {
	for _, c := range l.snapshot() {
		c.mu.Lock()
		c.closeLocked()
		c.mu.Unlock()
	}
}

// sweep enforces deadlines: a connection idle too long is closed, a
// request arriving too slowly gets 408, a response the client does not
// take, or a closing connection that does not go away, is dropped.
func (l *loop) sweep(now int64) {
	l.mu.Lock()
	for _, c := range l.conns {
		if d := c.deadline.Load(); d != 0 && d < now {
			l.expired = append(l.expired, c)
		}
	}
	expired := l.expired
	l.mu.Unlock()
	for _, c := range expired {
		c.onDeadline(l, now)
	}
	clear(expired)
	l.expired = expired[:0]
}
