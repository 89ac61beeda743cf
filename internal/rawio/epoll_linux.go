package rawio

import (
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EpollPoll is epoll_pwait(2) with a zero timeout and no signal mask (as
// epoll_wait, which not every architecture has): the events ready now,
// without waiting.
func EpollPoll(epfd int, events []unix.EpollEvent) (n int, err error) {
	if len(events) == 0 {
		return 0, nil
	}
	r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// EpollWait is epoll_pwait2(2): the events ready within timeout, which it
// honours to the nanosecond (epoll_wait counts whole milliseconds). The
// calling goroutine keeps its processor while it waits, so timeout should
// be short: a millisecond or two. It returns EINTR when a signal arrives,
// the runtime's preemption signal included, and ENOSYS on kernels before
// 5.11.
func EpollWait(epfd int, events []unix.EpollEvent, timeout time.Duration) (n int, err error) {
	if len(events) == 0 {
		return 0, nil
	}
	ts := unix.NsecToTimespec(max(int64(timeout), 0))
	r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT2, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(unsafe.Pointer(&ts)), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// EpollBlock is epoll_pwait2(2) as a blocking system call: the calling
// goroutine's processor is handed to other goroutines while it waits, as
// for any blocking call, so timeout may be long. It returns EINTR when a
// signal arrives.
func EpollBlock(epfd int, events []unix.EpollEvent, timeout time.Duration) (n int, err error) {
	if len(events) == 0 {
		return 0, nil
	}
	ts := unix.NsecToTimespec(max(int64(timeout), 0))
	r, _, e := syscall.Syscall6(unix.SYS_EPOLL_PWAIT2, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(unsafe.Pointer(&ts)), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
