package rawio

import (
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EnableRxTimestamps asks the kernel to note when each segment arriving on
// the socket fd was received (SO_TIMESTAMPNS), for TimestampReader.
func EnableRxTimestamps(fd int) error {
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
}

// A TimestampReader reads sockets with recvmsg(2) and returns, with the
// bytes, the time the kernel received the last of them: when the response
// reached this machine, however late the reader got to it. It owns the
// call's buffers, so that reading allocates nothing; one reader serves any
// number of sockets, one call at a time.
type TimestampReader struct {
	msg unix.Msghdr
	iov unix.Iovec
	oob [64]byte
}

// Read is recvmsg(2) on a non-blocking socket: n is -1 on error, rx the
// receive time in Unix nanoseconds, 0 when the kernel gave none (the
// socket's timestamps are off, or nothing was read).
func (r *TimestampReader) Read(fd int, p []byte) (n int, rx int64, err error) {
	if len(p) == 0 {
		return 0, 0, nil
	}
	r.iov.Base = &p[0]
	r.iov.SetLen(len(p))
	r.msg.Iov = &r.iov
	r.msg.Iovlen = 1
	r.msg.Control = &r.oob[0]
	r.msg.SetControllen(len(r.oob))
	r.msg.Flags = 0
	got, _, e := syscall.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&r.msg)), 0)
	r.iov.Base = nil // do not keep p alive
	if e != 0 {
		return -1, 0, e
	}
	return int(got), r.timestamp(), nil
}

// timestamp finds SCM_TIMESTAMPNS among the control messages.
func (r *TimestampReader) timestamp() int64 {
	ctl := r.oob[:min(int(r.msg.Controllen), len(r.oob))]
	for len(ctl) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctl[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(ctl) {
			return 0
		}
		data := ctl[unix.CmsgLen(0):h.Len]
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			return ts.Nano()
		}
		next := unix.CmsgSpace(int(h.Len) - unix.CmsgLen(0))
		if next > len(ctl) {
			return 0
		}
		ctl = ctl[next:]
	}
	return 0
}

// Sleep is clock_nanosleep(2) on the monotonic clock. The calling
// goroutine keeps its processor while it sleeps, so d should be short: a
// millisecond or two. A signal (the runtime's preemption signal included)
// ends it early.
func Sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	ts := unix.NsecToTimespec(int64(d))
	syscall.RawSyscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
}

// PreciseTimers makes the calling thread's timers expire on time rather
// than up to the default slack (50 µs) late (prctl PR_SET_TIMERSLACK); the
// goroutine should be locked to its thread.
func PreciseTimers() error {
	return unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
}
