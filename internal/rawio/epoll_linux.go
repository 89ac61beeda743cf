package rawio

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EpollPoll is epoll_wait(2) with a zero timeout: the events ready now,
// without waiting.
func EpollPoll(epfd int, events []unix.EpollEvent) (n int, err error) {
	if len(events) == 0 {
		return 0, nil
	}
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
