package rawio

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestTimestampReader: bytes read well after they arrived come with the
// time they arrived, not the time they were read.
func TestTimestampReader(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	f, err := client.(*net.TCPConn).File() // a blocking duplicate of the descriptor
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	if err := EnableRxTimestamps(fd); err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}

	var r TimestampReader
	buf := make([]byte, 16)
	if n, rx, err := r.Read(fd, buf); n != -1 || rx != 0 || err != syscall.EAGAIN {
		t.Errorf("nothing to read: %d, %d, %v; want EAGAIN", n, rx, err)
	}
	// The kernel turns timestamping on for the whole machine a little after
	// the first socket asks: until then segments arrive without a time.
	for i := 0; ; i++ {
		if _, err := server.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		if _, rx, _ := r.Read(fd, buf); rx != 0 {
			break
		}
		if i == 200 {
			t.Fatal("no receive timestamps after a second")
		}
	}
	sent := time.Now()
	if _, err := server.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	n, rx, err := r.Read(fd, buf)
	read := time.Now()
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:max(n, 0)], err)
	}
	arrived := time.Unix(0, rx)
	if arrived.Before(sent.Add(-time.Millisecond)) || read.Sub(arrived) < 40*time.Millisecond {
		t.Errorf("arrived %v after the write, %v before the read; want about 0 and 50ms", arrived.Sub(sent), read.Sub(arrived))
	}

	server.Close()
	if n, _, err := r.Read(fd, buf); n != 0 || err != nil {
		t.Errorf("after the peer's close: %d, %v; want 0 (EOF)", n, err)
	}
	if n, rx, err := r.Read(fd, nil); n != 0 || rx != 0 || err != nil {
		t.Errorf("empty buffer: %d, %d, %v", n, rx, err)
	}
}

// TestSleep: it sleeps about as long as asked.
func TestSleep(t *testing.T) {
	// A signal ends a sleep early (the runtime's preemption signal can
	// come at any time): one of a few tries must sleep its time.
	var slept []time.Duration
	for range 5 {
		start := time.Now()
		Sleep(2 * time.Millisecond)
		d := time.Since(start)
		if d > time.Second {
			t.Fatalf("slept %v for 2ms", d)
		}
		if d >= time.Millisecond {
			slept = nil
			break
		}
		slept = append(slept, d)
	}
	if slept != nil {
		t.Errorf("slept %v for 2ms", slept)
	}
	Sleep(-time.Second) // returns at once
}
