//go:build unix

package load

import (
	"io"
	"net"
	"os"
	"syscall"

	"storefront/internal/rawio"
)

// rawConnIO reads a TCP connection through its raw file descriptor to save
// one system call per request. net.Conn.Read always tries read(2) first and
// waits for readiness only when that fails with EAGAIN; right after a
// request is written the response cannot be there yet, so the first read is
// wasted: a quarter of the client's system calls. Instead the request is
// written from inside RawConn.Read, after the poller's readiness flag has
// been reset, and the goroutine then waits for readiness before it reads.
// (Writing it before RawConn.Read would race: the reset could erase the
// readiness of a response that had already arrived.)
type rawConnIO struct {
	rc      syscall.RawConn
	nc      net.Conn
	fn      func(fd uintptr) bool // r.io, bound once so that Read does not allocate
	pending []byte                // request to write at the start of the next Read
	buf     []byte
	n       int
	err     error
	op      string
}

func newRawConnIO(c *net.TCPConn) (*rawConnIO, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &rawConnIO{rc: rc, nc: c}
	r.fn = r.io
	return r, nil
}

// writeOnRead arranges for req to be written by the next Read. The caller
// must make sure that the next Read happens (no data buffered above it).
func (r *rawConnIO) writeOnRead(req []byte) { r.pending = req }

func (r *rawConnIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r.buf, r.n, r.err, r.op = p, 0, nil, "read"
		err := r.rc.Read(r.fn)
		r.buf = nil
		if err != nil {
			r.pending = nil
			return 0, err // deadline exceeded or connection closed
		}
		if r.err != nil {
			r.pending = nil
			return 0, &net.OpError{Op: r.op, Net: "tcp", Err: os.NewSyscallError(r.op, r.err)}
		}
		if r.pending != nil {
			// Partial write (a large request and a full socket buffer):
			// finish it the ordinary way, then read the ordinary way.
			rest := r.pending
			r.pending = nil
			if _, err := r.nc.Write(rest); err != nil {
				return 0, err
			}
			continue
		}
		if r.n == 0 {
			return 0, io.EOF
		}
		return r.n, nil
	}
}

// io is the RawConn.Read callback; false means "wait until readable, then
// call again".
func (r *rawConnIO) io(fd uintptr) bool {
	if r.pending != nil {
		n, err := rawio.Write(int(fd), r.pending)
		switch {
		case err == syscall.EINTR:
			return r.io(fd)
		case err == syscall.EAGAIN:
			return true // left in pending for Read to finish
		case err != nil:
			r.err, r.op = err, "write"
			return true
		case n < len(r.pending):
			r.pending = r.pending[n:]
			return true
		}
		r.pending = nil
		return false // the response cannot be there yet: wait first
	}
	n, err := rawio.Read(int(fd), r.buf)
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return false
	}
	if err != nil {
		r.err = err
		return true
	}
	r.n = n
	return true
}
