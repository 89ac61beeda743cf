//go:build unix

// Package rawio reads and writes non-blocking descriptors with raw system
// calls: calls that do not tell the Go scheduler that the goroutine entered
// the kernel.
//
// The ordinary entry costs more than the call itself when the process is
// moderately busy: every entry wakes the runtime's monitor thread (sysmon)
// if it was asleep, and sysmon then polls every 20 µs for a millisecond, and
// a call that lasts over 20 µs (a write to a loopback socket runs the
// receiver's side of TCP too) has its processor handed to another thread.
// At 10,000 requests/s this was about 15 % of storefront's CPU. A read or
// write on a non-blocking descriptor returns at once (data or EAGAIN), so
// nothing is lost by keeping the processor meanwhile; waiting for
// readiness is left to the runtime's network poller, as for any net.Conn.
package rawio

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Read is read(2) on a non-blocking descriptor; n is -1 on error.
func Read(fd int, p []byte) (n int, err error) {
	return rw(syscall.SYS_READ, fd, p)
}

// Write is write(2) on a non-blocking descriptor; n is -1 on error.
func Write(fd int, p []byte) (n int, err error) {
	return rw(syscall.SYS_WRITE, fd, p)
}

func rw(trap uintptr, fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	r, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Conn is a stream connection whose Read and Write are raw system calls,
// waiting for readiness in the runtime's poller (deadlines included) like
// the net.Conn it wraps, which serves every other method.
//
// Like a net.Conn, a Conn may be read by one goroutine while another
// writes; two concurrent Reads (or Writes) are not supported.
type Conn struct {
	net.Conn
	rc  syscall.RawConn
	net string

	rbuf   []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	wbuf    []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

// Wrap returns c with raw reads and writes, or c itself when it exposes no
// descriptor (a TLS connection, a pipe).
func Wrap(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	rw := &Conn{Conn: c, rc: rc, net: c.LocalAddr().Network()}
	rw.readFn = rw.readOnce
	rw.writeFn = rw.writeSome
	return rw
}

// Read implements io.Reader.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	n, rerr := c.rn, c.rerr
	c.rbuf, c.rerr = nil, nil
	switch {
	case err != nil: // deadline exceeded, or closed
		return 0, c.opError("read", err)
	case rerr != nil:
		return 0, c.opError("read", rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readOnce reads once; false (EAGAIN) makes the poller wait for data.
func (c *Conn) readOnce(fd uintptr) bool {
	for {
		n, err := Read(int(fd), c.rbuf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			c.rerr = err
		default:
			c.rn = n
		}
		return true
	}
}

// Write implements io.Writer: all of p, or an error.
func (c *Conn) Write(p []byte) (int, error) {
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	n, werr := c.wn, c.werr
	c.wbuf, c.werr = nil, nil
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case werr != nil:
		return n, c.opError("write", werr)
	}
	return n, nil
}

// writeSome writes what the socket takes; false (EAGAIN with bytes left)
// makes the poller wait until it takes more.
func (c *Conn) writeSome(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, err := Write(int(fd), c.wbuf[c.wn:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			c.werr = err
			return true
		}
		c.wn += n
	}
	return true
}

// opError wraps err the way net.Conn does, so that callers' checks (a
// timeout, a closed connection) see what they would have seen.
func (c *Conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return err
	}
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: c.net, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
