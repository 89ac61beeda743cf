//go:build linux || freebsd || netbsd || openbsd

package load

import (
	"syscall"
	"time"
)

// shortSleep sleeps for about d, which is below a couple of milliseconds.
// The Go timer would wake up to a millisecond late when the process is idle
// (it waits in the network poller with millisecond resolution); nanosleep
// blocks only this thread, the runtime hands the P to another one, and the
// kernel's high-resolution timer wakes it within tens of microseconds.
func shortSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	syscall.Nanosleep(&ts, nil)
}
