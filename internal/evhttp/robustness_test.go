//go:build linux

package evhttp

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Tests of the server's limits and framing edge cases.

// limitsHandler: /big answers 16 MB at once, /hold answers after 2 s from
// another goroutine, anything else answers a body of small bytes at once.
type limitsHandler struct{ small int }

func (h limitsHandler) Serve(x *Exchange) {
	switch p := string(x.Path()); {
	case p == "/big":
		x.Respond(200, nil, bytes.Repeat([]byte("x"), 16<<20))
	case p == "/hold":
		go func() {
			time.Sleep(2 * time.Second)
			x.Respond(200, nil, []byte("held"))
		}()
	default:
		x.Respond(200, nil, bytes.Repeat([]byte("s"), h.small))
	}
}

func (limitsHandler) Refuse(x *Exchange, status int, reason string) {
	x.Respond(status, nil, []byte(reason))
}

// A write deadline armed while an earlier response was backed up ends with
// that response: it must not close the connection while its next request
// is being served.
func TestWriteDeadlineEndsWithItsResponse(t *testing.T) {
	_, addr := start(t, limitsHandler{}, func(c *Config) { c.WriteTimeout = 300 * time.Millisecond })
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10) })
	}}
	c, err := d.Dial("tcp", addr) // a small window, so that the 16 MB response backs up
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /hold HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the send buffer fills: EAGAIN arms the write deadline
	r := bufio.NewReader(c)
	for i, want := range []int{16 << 20, 4} {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || n != int64(want) {
			t.Fatalf("response %d: %d bytes, %v", i, n, err)
		}
	}
}

// A client that pipelines requests and never reads the answers: the
// server stops reading its requests once maxPendingOut bytes of answers
// wait, and closes the connection about WriteTimeout after the socket
// stopped taking bytes, whatever the client keeps sending.
func TestUnreadResponsesAreBounded(t *testing.T) {
	s, addr := start(t, limitsHandler{small: 2048}, func(c *Config) { c.WriteTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := strings.Repeat("GET /s HTTP/1.1\r\nHost: x\r\n\r\n", 250)
	maxPending := 0
	for range 40 { // up to 10,000 requests over about 2 s, no answer read
		if _, err := io.WriteString(c, req); err != nil {
			break // the server closed the connection: expected
		}
		s.mu.Lock()
		loops := s.loops
		s.mu.Unlock()
		for _, l := range loops {
			for _, cn := range l.snapshot() {
				cn.mu.Lock()
				if cn.out != nil {
					maxPending = max(maxPending, len(cn.out.b)-cn.outPos)
				}
				cn.mu.Unlock()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The answer that crossed the bound may be whole.
	if limit := maxPendingOut + 4096; maxPending > limit {
		t.Fatalf("%d bytes of answers buffered for a client that reads none (bound %d)", maxPending, limit)
	}
	waitFor(t, func() bool { return s.Conns() == 0 })
}

// The chunked-body parser bounds the framing around the data too: a
// trailer line without its LF, or long chunk extensions, get 413 instead
// of being buffered without limit.
func TestChunkedFramingIsBounded(t *testing.T) {
	_, addr := start(t, limitsHandler{small: 1}, func(c *Config) { c.MaxBodyBytes = 100 })
	t.Run("endless trailer", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ")
			_, _ = io.WriteString(c, strings.Repeat("a", 4<<20)) // 4 MB, 40,000 times MaxBodyBytes
		}()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(b), "HTTP/1.1 413") {
			t.Fatalf("4 MB of trailer for a 100-byte body limit: got %q, want 413", b)
		}
	})
	t.Run("long extensions", func(t *testing.T) {
		var req strings.Builder
		req.WriteString("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
		for range 90 { // 90 bytes of data, 90 KB of framing
			req.WriteString("1;" + strings.Repeat("e", 1000) + "\r\nz\r\n")
		}
		req.WriteString("0\r\n\r\n")
		if got := raw(t, addr, req.String()); !strings.HasPrefix(got, "HTTP/1.1 413") {
			t.Fatalf("90 KB body for a 100-byte limit: got %.40q, want 413", got)
		}
	})
}

// Serve after Shutdown (or racing with it: Shutdown before Serve stored
// the listener) returns at once instead of accepting with stopped loops.
func TestServeAfterShutdownReturns(t *testing.T) {
	s := NewServer(DefaultConfig(), limitsHandler{})
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		ln.Close()
		<-done
		t.Fatal("Serve after Shutdown did not return")
	}
}

// RFC 9112 §2.2: a server SHOULD ignore at least one empty line before a
// request-line (clients have sent a CRLF after a POST body).
func TestEmptyLineBeforeRequestIsIgnored(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	// Two empty lines are a malformed request, answered at once.
	begun := time.Now()
	if got := raw(t, addr, "\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 400") || time.Since(begun) > time.Second {
		t.Fatalf("two empty lines: %q after %v", got, time.Since(begun))
	}
	got := raw(t, addr, "POST /sync/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\r\nGET /sync/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if strings.Count(got, "HTTP/1.1 200") != 2 {
		t.Fatalf("got %q", got)
	}
}

// RFC 9112 §6.1: an HTTP/1.0 request with Transfer-Encoding has faulty
// framing: the server MUST close the connection after it (an HTTP/1.0
// intermediary may have framed it differently).
// The CRLF a client sends after a body may arrive split: a CR in one
// read, its LF in the next. That is still the one empty line to ignore.
func TestEmptyLineSplitAcrossReads(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, part := range []string{
		"POST /sync/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
		"\r",
		"\nGET /sync/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	} {
		if _, err := io.WriteString(c, part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // each part in a read of its own
	}
	b, _ := io.ReadAll(c)
	if got := string(b); strings.Count(got, "HTTP/1.1 200") != 2 {
		t.Fatalf("want two 200s, got %q", got)
	}
}

func TestHTTP10ChunkedRequestCloses(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	got := raw(t, addr, "POST /sync/a HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /sync/b HTTP/1.0\r\n\r\n")
	if strings.Contains(got, "/sync/b") {
		t.Fatalf("a second request was served after an HTTP/1.0 chunked one: %q", got)
	}
}

// Serving stops while a response is backed up. When the flush that ends
// onReadable then empties it, the EPOLLOUT event that the client's reading
// queued finds nothing left to write, and must still serve the requests
// left buffered instead of leaving them to the idle timeout. The test puts
// a connection of a loop that is not running in that state and delivers
// the event.
func TestWritableEventResumesBufferedRequests(t *testing.T) {
	s := NewServer(DefaultConfig(), limitsHandler{small: 16})
	l, err := newLoop(s)
	if err != nil {
		t.Fatal(err)
	}
	defer l.stop()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	// FileConn holds its own copy of the descriptor. fds[1] is closed
	// through its *os.File, never with unix.Close: the File's finalizer
	// would close the number again later, by then another test's socket.
	f := os.NewFile(uintptr(fds[1]), "client")
	client, err := net.FileConn(f)
	f.Close()
	if err != nil {
		unix.Close(fds[0])
		t.Fatal(err)
	}
	defer client.Close()
	c := &conn{srv: s, loop: l, fd: fds[0]}
	c.x.c = c
	s.conns.Add(1)
	if err := l.add(c); err != nil {
		t.Fatal(err)
	}
	defer func() {
		c.mu.Lock()
		c.closeLocked()
		c.mu.Unlock()
	}()

	c.mu.Lock() // what onReadable leaves: whole requests buffered, nothing to write, no read pending
	c.in = s.chunks.get()
	c.in.b = append(c.in.b, strings.Repeat("GET /s HTTP/1.1\r\nHost: x\r\n\r\n", 2)...)
	c.mu.Unlock()
	c.onWritable(l)

	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(client)
	for i := range 2 {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("response %d to the buffered requests: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || len(body) != 16 {
			t.Fatalf("response %d: %d, %d bytes", i, resp.StatusCode, len(body))
		}
	}
}

// A request partly received when Shutdown's CloseGrace ends is not cut off
// with the idle connections: it is answered once it is complete.
func TestShutdownKeepsPartlyReceivedRequest(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CloseGrace = 100 * time.Millisecond
	s := NewServer(cfg, &echo{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /sync/partial HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		started := false
		s.eachConn(func(cn *conn) { started = started || cn.reqStarted })
		return started
	})

	shut := shutdownAsync(s)
	waitFor(t, s.Closing)
	time.Sleep(3 * cfg.CloseGrace)
	if _, err := io.WriteString(c, "\r\n"); err != nil {
		t.Fatalf("the rest of the request: %v", err)
	}
	readClosing200(t, c, "request partly received at the end of CloseGrace")
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
