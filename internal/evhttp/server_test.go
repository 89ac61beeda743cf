//go:build linux

package evhttp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// echo answers /sync/... on the loop, /async/... from another goroutine
// after a short wait, and echoes the path, the ids query parameter and
// the request id.
type echo struct {
	served atomic.Int64
	hold   chan struct{} // when not nil, /hold waits for it to close
}

func (e *echo) Serve(x *Exchange) {
	e.served.Add(1)
	ids, hasIDs := x.QueryArg("ids")
	body := fmt.Sprintf("%s %s ids=%q/%v rid=%q", x.Method(), x.Path(), ids, hasIDs, x.RequestID())
	x.AddHeader([]byte("X-Test"), []byte("yes"))
	switch {
	case strings.HasPrefix(string(x.Path()), "/async"):
		go func() {
			time.Sleep(time.Millisecond)
			x.Respond(200, []byte("text/plain"), []byte(body))
		}()
	case strings.HasPrefix(string(x.Path()), "/hold") && e.hold != nil:
		go func() {
			<-e.hold
			x.Respond(200, []byte("text/plain"), []byte(body))
		}()
	default:
		x.Respond(200, []byte("text/plain"), []byte(body))
	}
}

func (e *echo) Refuse(x *Exchange, status int, reason string) {
	x.Respond(status, []byte("text/plain"), []byte(fmt.Sprintf("refused %d: %s rid=%q", status, reason, x.RequestID())))
}

func start(t *testing.T, h Handler, tune func(*Config)) (*Server, string) {
	t.Helper()
	cfg := DefaultConfig()
	if tune != nil {
		tune(&cfg)
	}
	s := NewServer(cfg, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

func get(t *testing.T, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestKeepAliveSyncAndAsync(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	for i := range 50 {
		path := "/sync/" + strconv.Itoa(i)
		if i%2 == 1 {
			path = "/async/" + strconv.Itoa(i)
		}
		status, body, hdr := get(t, c, "http://"+addr+path+"?ids=1%2C2+3&x=y")
		want := fmt.Sprintf(`GET %s ids="1,2 3"/true rid=""`, path)
		if status != 200 || body != want {
			t.Fatalf("%s: %d %q, want 200 %q", path, status, body, want)
		}
		if hdr.Get("X-Test") != "yes" || hdr.Get("Date") == "" || hdr.Get("Content-Type") != "text/plain" {
			t.Fatalf("headers: %v", hdr)
		}
	}
}

func TestPercentDecodedPath(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	_, body, _ := get(t, http.DefaultClient, "http://"+addr+"/sync/1%27%20OR%201=1--?ids")
	if want := `GET /sync/1' OR 1=1-- ids=""/true rid=""`; body != want {
		t.Fatalf("got %q, want %q", body, want)
	}
}

// raw sends req on a fresh connection and returns everything the server
// sends until it closes the connection or 2 s pass.
func raw(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestPipelinedRequestsAnswerInOrder(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	var req strings.Builder
	for i := range 20 {
		kind := "sync"
		if i%3 == 0 {
			kind = "async"
		}
		fmt.Fprintf(&req, "GET /%s/%d HTTP/1.1\r\nHost: x\r\nX-Request-ID: r%d\r\n\r\n", kind, i, i)
	}
	req.WriteString("GET /sync/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	got := raw(t, addr, req.String())
	r := bufio.NewReader(strings.NewReader(got))
	for i := range 21 {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("response %d: %v (all: %q)", i, err, got)
		}
		b, _ := io.ReadAll(resp.Body)
		want := fmt.Sprintf(`rid="r%d"`, i)
		if i == 20 {
			want = "/sync/last"
		}
		if !strings.Contains(string(b), want) {
			t.Fatalf("response %d is %q, want it to contain %q", i, b, want)
		}
	}
}

func TestRefusals(t *testing.T) {
	_, addr := start(t, &echo{}, func(c *Config) { c.MaxHeaderBytes = 1024; c.MaxBodyBytes = 100 })
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"garbage", "\x00\x01garbage\r\n\r\n", 400},
		{"header without colon", "GET / HTTP/1.1\r\nHost: x\r\nHost\r\n\r\n", 400},
		{"negative length", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400},
		{"two lengths", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"length and chunked", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"gzip coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
		{"http 2", "GET / HTTP/2.0\r\n\r\n", 400},
		{"big headers", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000) + "\r\n\r\n", 431},
		{"big headers unterminated", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000), 431},
		{"big body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + strings.Repeat("b", 101), 413},
		{"big chunked body", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n" + strings.Repeat("b", 101) + "\r\n0\r\n\r\n", 413},
		{"bad chunk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"no host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400},
		{"two hosts HTTP/1.0", "GET / HTTP/1.0\r\nHost: x\r\nhost: y\r\n\r\n", 400},
		// Chunk lines end in CRLF: a bare LF could frame the body
		// differently from a proxy in front.
		{"bare LF after chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400},
		{"bare LF after chunk data", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", 400},
		{"bare LF after last chunk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := raw(t, addr, tc.req)
			want := fmt.Sprintf("HTTP/1.1 %d ", tc.status)
			if !strings.HasPrefix(got, want) || !strings.Contains(got, "Connection: close") {
				t.Fatalf("got %q, want %q... with Connection: close", got, want)
			}
			if strings.Contains(tc.name, "host") && !strings.Contains(got, "Host header missing or repeated") {
				t.Fatalf("got %q, want the reason to name the Host header", got)
			}
		})
	}
}

// A refused request whose head was read whole (a body too large, a
// missing or repeated Host, bad chunked framing) has its X-Request-ID in
// the Exchange; one whose head was not (too large, cut short, malformed)
// has none.
func TestRefusalRequestID(t *testing.T) {
	_, addr := start(t, &echo{}, func(c *Config) { c.MaxHeaderBytes = 1024; c.MaxBodyBytes = 100 })
	for _, tc := range []struct {
		name, req string
		status    int
		rid       string
	}{
		{"big body", "POST / HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\nContent-Length: 100000\r\n\r\n", 413, "abc"},
		{"big chunked body", "POST / HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n" + strings.Repeat("b", 101) + "\r\n0\r\n\r\n", 413, "abc"},
		{"no host", "GET / HTTP/1.1\r\nX-Request-ID: abc\r\n\r\n", 400, "abc"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\nHost: y\r\n\r\n", 400, "abc"},
		{"bad chunk", "POST / HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "abc"},
		{"big headers", "GET / HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\nX-Big: " + strings.Repeat("a", 2000) + "\r\n\r\n", 431, ""},
		{"malformed header after the id", "GET / HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\nBad Header: y\r\n\r\n", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := raw(t, addr, tc.req)
			if want := fmt.Sprintf("HTTP/1.1 %d ", tc.status); !strings.HasPrefix(got, want) {
				t.Fatalf("got %q, want %q...", got, want)
			}
			if want := fmt.Sprintf("rid=%q", tc.rid); !strings.HasSuffix(got, want) {
				t.Fatalf("got %q, want it to end in %s", got, want)
			}
		})
	}
}

// A refusal of a connection's second request never carries the id of the
// first, whether the second arrived with the first or after its answer.
func TestRefusalHasNoStaleRequestID(t *testing.T) {
	_, addr := start(t, &echo{}, func(c *Config) { c.MaxHeaderBytes = 1024; c.ReadTimeout = 300 * time.Millisecond })
	first := "GET /sync/1 HTTP/1.1\r\nHost: x\r\nX-Request-ID: first\r\n\r\n"
	for _, tc := range []struct {
		name, second string
		status       int
		pipelined    bool
	}{
		{"slow", "GET /sync/2 HTTP/1.1\r\n", 408, false},
		{"slow pipelined", "GET /sync/2 HTTP/1.1\r\n", 408, true},
		{"big headers", "GET /sync/2 HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000), 431, false},
		{"big headers pipelined", "GET /sync/2 HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000), 431, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			r := bufio.NewReader(c)
			send := func(s string) {
				if _, err := io.WriteString(c, s); err != nil {
					t.Fatal(err)
				}
			}
			if tc.pipelined {
				send(first + tc.second)
			} else {
				send(first)
			}
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if !strings.HasSuffix(string(b), `rid="first"`) {
				t.Fatalf("first response %q", b)
			}
			if !tc.pipelined {
				send(tc.second)
			}
			resp, err = http.ReadResponse(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.HasSuffix(string(b), `rid=""`) {
				t.Fatalf("second response %d %q, want %d with no request id", resp.StatusCode, b, tc.status)
			}
		})
	}
}

func TestBodiesAreSkipped(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	req := "POST /sync/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /sync/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n" +
		"GET /sync/c HTTP/1.0\r\n\r\n"
	got := raw(t, addr, req)
	for _, want := range []string{"POST /sync/a", "POST /sync/b", "GET /sync/c"} {
		if !strings.Contains(got, want) {
			t.Fatalf("%q missing from %q", want, got)
		}
	}
	if strings.Count(got, "HTTP/1.1 200") != 3 {
		t.Fatalf("want 3 responses: %q", got)
	}
}

func TestHeadHasNoBody(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	got := raw(t, addr, "HEAD /sync/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 200") || !strings.HasSuffix(got, "\r\n\r\n") || !strings.Contains(got, "Content-Length: 32") {
		t.Fatalf("got %q", got)
	}
}

func TestHTTP10KeepAlive(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	got := raw(t, addr, "GET /sync/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /sync/2 HTTP/1.0\r\n\r\n")
	if strings.Count(got, "HTTP/1.1 200") != 2 || !strings.Contains(got, "Connection: keep-alive") || !strings.Contains(got, "Connection: close") {
		t.Fatalf("got %q", got)
	}
}

func TestSlowRequestGets408(t *testing.T) {
	_, addr := start(t, &echo{}, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(6 * time.Second))
	begun := time.Now()
	for _, part := range []string{"GET /sync", "/1 HTTP/1.1\r\nHost: x\r\n", "X-A: b\r\n"} {
		if _, err := io.WriteString(c, part); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.1 408") {
		t.Fatalf("got %q", b)
	}
	if d := time.Since(begun); d > 3*time.Second { // 300 ms, a sweep period, and a busy machine
		t.Fatalf("408 after %v", d)
	}
}

func TestIdleConnectionsClose(t *testing.T) {
	s, addr := start(t, &echo{}, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(6 * time.Second))
	begun := time.Now()
	b, _ := io.ReadAll(c)
	if len(b) != 0 || time.Since(begun) > 3*time.Second {
		t.Fatalf("got %q after %v", b, time.Since(begun))
	}
	waitFor(t, func() bool { return s.Conns() == 0 })
}

func TestTooManyConnections(t *testing.T) {
	s, addr := start(t, &echo{}, func(c *Config) { c.MaxConns = 2 })
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	waitFor(t, func() bool { return s.Conns() == 2 })
	if got := raw(t, addr, "GET /sync/1 HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 503") {
		t.Fatalf("third connection got %q", got)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	// The slots are free once the server's loops have seen the closes
	// (the refused third connection closes too, after its 503): a fixed
	// sleep could end first, and the next connection be refused again.
	waitFor(t, func() bool { return s.Conns() == 0 })
	if got := raw(t, addr, "GET /sync/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Fatalf("after the others closed: %q", got)
	}
}

// atLimit starts a server with MaxConns 1 and fills its one slot with a
// connection that the test closes when it likes (and cleanup anyway).
func atLimit(t *testing.T) (s *Server, addr string, held net.Conn) {
	t.Helper()
	s, addr = start(t, &echo{}, func(c *Config) { c.MaxConns = 1 })
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	waitFor(t, func() bool { return s.Conns() == 1 })
	return s, addr, held
}

// read503 reads c to its end and fails unless that is a 503 followed by a
// clean close.
func read503(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(c); err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 503") {
		t.Fatalf("%s: got %q, %v; want the 503 and a clean close", what, b, err)
	}
}

// TestTooManyConnectionsLateRequest: a client over the limit that sends
// its request only after the server has answered 503 is not reset: it can
// go on writing (the server lingers, discarding input, as nginx does)
// and reads the 503 and a clean close. A reset could cost a client its
// 503 (some stacks drop unread data on a reset) or fail its write. A
// client that stays silent is cut after lingerTimeout.
func TestTooManyConnectionsLateRequest(t *testing.T) {
	s, addr, _ := atLimit(t)
	for i := range 5 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the 503 and the FIN are sent by now
		if _, err := io.WriteString(c, "GET /sync/1 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatalf("try %d: write: %v", i, err)
		}
		time.Sleep(50 * time.Millisecond) // a reset, if any, has arrived
		// A connection closed at once would have answered the late
		// request with a reset, and this write would fail (EPIPE).
		if _, err := io.WriteString(c, "GET /sync/2 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatalf("try %d: second write: %v (the server reset the connection)", i, err)
		}
		read503(t, c, fmt.Sprintf("try %d", i))
		c.Close()
	}
	// A client over the limit that never closes is cut after lingerTimeout.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read503(t, c, "silent client")
	waitFor(t, func() bool { return s.Conns() == 1 })
}

// TestTooManyConnectionsLingerersTakeNoSlot: a connection lingering after
// its 503 does not count against MaxConns: once a served connection
// closes, a new one is served even while the refused one still lingers.
func TestTooManyConnectionsLingerersTakeNoSlot(t *testing.T) {
	s, addr, held := atLimit(t)
	silent, err := net.Dial("tcp", addr) // over the limit; never closes
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	read503(t, silent, "over the limit")
	held.Close()
	waitFor(t, func() bool { return s.Conns() == 1 }) // only the lingerer
	if got := raw(t, addr, "GET /sync/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Fatalf("a free slot while a refused connection lingers: %q", got)
	}
}

// TestTooManyConnectionsLingerersAreBounded: past overLimitLingerers,
// refused connections are closed at once instead of lingering, so a flood
// of connections that never close holds a bounded number of descriptors.
func TestTooManyConnectionsLingerersAreBounded(t *testing.T) {
	s, addr, _ := atLimit(t)
	bound := overLimitLingerers(1)
	for i := range bound + 10 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close() // none closes before the end of the test
		read503(t, c, fmt.Sprintf("connection %d over the limit", i))
	}
	// Within half the linger timeout (the last refusal may still be
	// closing), at most the bound lingers.
	for deadline := time.Now().Add(lingerTimeout / 2); s.Conns() > 1+bound; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open; want at most 1 served + %d lingering", s.Conns(), bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestShutdownAnswersInFlight: a request in flight at Shutdown is answered
// (with Connection: close), an idle keep-alive connection may bring one
// more request within the grace period, and Shutdown returns once all are
// closed.
func TestShutdownAnswersInFlight(t *testing.T) {
	e := &echo{hold: make(chan struct{})}
	s := NewServer(DefaultConfig(), e)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()

	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_, _ = io.WriteString(busy, "GET /hold/1 HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, func() bool { return e.served.Load() == 1 })

	shut := shutdownAsync(s)
	waitFor(t, s.Closing)
	_ = idle.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = io.WriteString(idle, "GET /sync/late HTTP/1.1\r\nHost: x\r\n\r\n")
	readClosing200(t, idle, "late request on an idle connection")
	close(e.hold)
	readClosing200(t, busy, "request in flight")
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

// shutdownAsync runs Shutdown (5 s at most) on a goroutine of its own and
// returns its result.
func shutdownAsync(s *Server) <-chan error {
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	return shut
}

// readClosing200 reads c to its end and fails unless that is a 200 that
// announces the close.
func readClosing200(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if b, _ := io.ReadAll(c); !strings.HasPrefix(string(b), "HTTP/1.1 200") || !strings.Contains(string(b), "Connection: close") {
		t.Fatalf("%s: %q", what, b)
	}
}

func TestConcurrentClients(t *testing.T) {
	s, addr := start(t, &echo{}, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			for i := range 200 {
				kind := "sync"
				if (g+i)%2 == 0 {
					kind = "async"
				}
				fmt.Fprintf(c, "GET /%s/%d-%d HTTP/1.1\r\nHost: x\r\n\r\n", kind, g, i)
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				if want := fmt.Sprintf("/%s/%d-%d ", kind, g, i); !strings.Contains(string(b), want) {
					errs <- fmt.Errorf("got %q, want %q", b, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Conns() == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// big answers every request with a body of n bytes, from another
// goroutine, so that the socket's send buffer fills and the rest of the
// response waits for EPOLLOUT.
type big struct{ n int }

func (b big) Serve(x *Exchange) {
	body := bytes.Repeat([]byte("0123456789abcdef"), b.n/16)
	go x.Respond(200, []byte("text/plain"), body)
}

func (big) Refuse(x *Exchange, status int, reason string) {
	x.Respond(status, nil, []byte(reason))
}

func TestLargeResponsesToASlowReader(t *testing.T) {
	const n = 4 << 20
	_, addr := start(t, big{n}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	// Two pipelined requests, then read slowly at first.
	if _, err := io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	r := bufio.NewReaderSize(c, 1024)
	for i := range 2 {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		got, err := io.Copy(io.Discard, iotest{r: resp.Body, pause: i == 0})
		if err != nil || got != n {
			t.Fatalf("response %d: %d of %d bytes, %v", i, got, n, err)
		}
	}
}

// iotest reads through r, pausing now and then when pause is set.
type iotest struct {
	r     io.Reader
	pause bool
}

func (s iotest) Read(p []byte) (int, error) {
	if s.pause && len(p) > 0 {
		time.Sleep(time.Microsecond * 50)
	}
	return s.r.Read(p)
}

func TestStuckReaderIsDisconnected(t *testing.T) {
	s, addr := start(t, big{16 << 20}, func(c *Config) { c.WriteTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Never read: the server must give up about WriteTimeout after the
	// socket stopped taking bytes.
	waitFor(t, func() bool { return s.Conns() == 0 })
}

// TestHalfClosedClient: a client that sends its requests and shuts its
// side gets every answer, and the server closes the connection right after
// the last one instead of waiting for the idle timeout (the end of the
// stream may arrive with the requests, in the same edge-triggered event).
func TestHalfClosedClient(t *testing.T) {
	s, addr := start(t, &echo{}, func(c *Config) { c.IdleTimeout = time.Minute })
	for i := range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		kind := []string{"sync", "async"}[i%2]
		if _, err := fmt.Fprintf(c, "GET /%s/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /%s/2 HTTP/1.1\r\nHost: x\r\n\r\n", kind, kind); err != nil {
			t.Fatal(err)
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatalf("%v after %q", err, b)
		}
		if strings.Count(string(b), "HTTP/1.1 200") != 2 {
			t.Fatalf("got %q", b)
		}
	}
	waitFor(t, func() bool { return s.Conns() == 0 })
}
