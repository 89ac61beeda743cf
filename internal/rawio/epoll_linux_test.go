package rawio

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestEpollWait and TestEpollBlock: each waits out its timeout when nothing is ready (to well
// under a millisecond's precision, which epoll_wait could not give), and
// returns at once with the event when something is.
func TestEpollWait(t *testing.T) { testEpollWaits(t, EpollWait) }

func TestEpollBlock(t *testing.T) { testEpollWaits(t, EpollBlock) }

func testEpollWaits(t *testing.T, wait func(int, []unix.EpollEvent, time.Duration) (int, error)) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(epfd)
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		t.Fatal(err)
	}
	var events [4]unix.EpollEvent

	const timeout = 300 * time.Microsecond
	start := time.Now()
	n, err := wait(epfd, events[:], timeout)
	for err == unix.EINTR { // a runtime signal
		n, err = wait(epfd, events[:], timeout)
	}
	if waited := time.Since(start); err != nil || n != 0 || waited < timeout {
		t.Errorf("nothing ready: n %d, err %v after %v; want 0 after at least %v", n, err, waited, timeout)
	}

	if _, err := Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	n, err = wait(epfd, events[:], time.Hour)
	if err != nil || n != 1 || events[0].Fd != int32(efd) {
		t.Errorf("eventfd readable: n %d, err %v, fd %d", n, err, events[0].Fd)
	}
	if n, err := wait(epfd, nil, time.Hour); n != 0 || err != nil {
		t.Errorf("no room for events: %d, %v", n, err)
	}
}
