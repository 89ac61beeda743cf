//go:build linux

package evhttp

import (
	"encoding/binary"
	"sync"
	"time"

	"golang.org/x/sys/unix"
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
type loop struct {
	srv    *Server
	epfd   int
	wakeFd int

	mu      sync.Mutex
	conns   map[int32]*conn
	woken   []*conn // connections with buffered requests to serve
	expired []*conn // scratch for sweep

	scratch   []byte
	events    [256]unix.EpollEvent
	lastSweep int64
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
	return &loop{srv: s, epfd: epfd, wakeFd: wfd, conns: make(map[int32]*conn), scratch: make([]byte, scratchSize)}, nil
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
	_, _ = unix.Write(l.wakeFd, one[:])
}

func (l *loop) stop() {
	unix.Close(l.epfd)
	unix.Close(l.wakeFd)
}

// run is the loop itself, until the server stops.
func (l *loop) run() {
	defer l.stop()
	var woken []*conn
	for !l.srv.stopped.Load() {
		n, err := unix.EpollWait(l.epfd, l.events[:], int(sweepEvery/time.Millisecond))
		if err != nil && err != unix.EINTR {
			return
		}
		for i := range max(n, 0) {
			ev := &l.events[i]
			if int(ev.Fd) == l.wakeFd {
				var buf [8]byte
				_, _ = unix.Read(l.wakeFd, buf[:])
				l.mu.Lock()
				woken, l.woken = l.woken, woken[:0]
				l.mu.Unlock()
				for _, c := range woken {
					c.onReadable(l)
				}
				clear(woken)
				continue
			}
			c := l.lookup(ev.Fd)
			if c == nil {
				continue
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				c.onReadable(l)
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
