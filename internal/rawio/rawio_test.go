//go:build unix

package rawio_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"storefront/internal/rawio"
)

// pair returns both ends of a loopback TCP connection, the first wrapped.
func pair(t *testing.T) (wrapped, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := <-accepted
	if p == nil {
		t.Fatal("accept failed")
	}
	w := rawio.Wrap(c)
	if _, ok := w.(*rawio.Conn); !ok {
		t.Fatalf("Wrap(%T) = %T, want *rawio.Conn", c, w)
	}
	t.Cleanup(func() { w.Close(); p.Close() })
	return w, p
}

// A payload far larger than the socket buffers makes Write wait for the
// peer (EAGAIN) and Read come back for more, both ways.
func TestConnCarriesLargePayloadsBothWays(t *testing.T) {
	w, p := pair(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(payload)
		errc <- err
	}()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(p, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("peer received other bytes than written")
	}

	go func() {
		_, err := p.Write(payload)
		errc <- err
	}()
	clear(got)
	if _, err := io.ReadFull(w, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("read other bytes than the peer wrote")
	}
}

func TestConnReadHonoursDeadline(t *testing.T) {
	w, _ := pair(t)
	if err := w.SetReadDeadline(time.Now().Add(30 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := w.Read(make([]byte, 10))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline: %v is not a timeout net.Error", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("Read returned after %v", waited)
	}
}

func TestConnReadsEOFWhenPeerCloses(t *testing.T) {
	w, p := pair(t)
	if _, err := p.Write([]byte("last")); err != nil {
		t.Fatal(err)
	}
	p.Close()
	got, err := io.ReadAll(w)
	if err != nil || string(got) != "last" {
		t.Fatalf("ReadAll = %q, %v; want \"last\", nil", got, err)
	}
	if n, err := w.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestConnClosedFailsWithErrClosed(t *testing.T) {
	w, _ := pair(t)
	w.Close()
	if _, err := w.Read(make([]byte, 4)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
	}
}

func TestConnWriteToResetPeerFails(t *testing.T) {
	w, p := pair(t)
	if tc, ok := p.(*net.TCPConn); ok {
		tc.SetLinger(0) // close with a reset
	}
	p.Close()
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		_, err = w.Write([]byte("after the reset"))
		time.Sleep(time.Millisecond)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write to a reset peer: %v, want a write *net.OpError", err)
	}
}

func TestWrapLeavesConnsWithoutDescriptor(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := rawio.Wrap(a); got != a {
		t.Fatalf("Wrap(net.Pipe end) = %T, want it unchanged", got)
	}
}
