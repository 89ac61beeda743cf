//go:build linux

package evhttp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Request targets (RFC 9112 3.2): a path, an http(s) URL whose path is
// what follows its authority, or "*" for OPTIONS; anything else is 400.
// A path hidden in an absolute URL's query is not its path.
func TestRequestTargets(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	for _, tc := range []struct {
		target, method string
		want           string // the echoed "METHOD path", or "400"
	}{
		{"/users/1", "GET", "GET /users/1"},
		{"http://host/users/1?x=1", "GET", "GET /users/1"},
		{"HTTPS://host:8443/users/1", "GET", "GET /users/1"},
		{"http://host", "GET", "GET /"},
		{"http://host?a=/users/1", "GET", "GET /"},
		{"http://host#/users/1", "GET", "GET /"},
		{"a?u=http://b/users/1", "GET", "400"},
		{"users/1", "GET", "400"},
		{"ftp://host/users/1", "GET", "400"},
		{"*", "GET", "400"},
		{"*", "OPTIONS", "OPTIONS *"},
		{"host:443", "CONNECT", "400"},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			got := raw(t, addr, tc.method+" "+tc.target+" HTTP/1.1\r\nHost: host\r\nConnection: close\r\n\r\n")
			if tc.want == "400" {
				if !strings.HasPrefix(got, "HTTP/1.1 400 ") {
					t.Fatalf("got %q, want 400", got)
				}
				return
			}
			if !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.Contains(got, "\r\n\r\n"+tc.want+" ids=") {
				t.Fatalf("got %q, want 200 echoing %q", got, tc.want)
			}
		})
	}
}

// A %2F is decoded in Path but reported by EscapedSlash, so that a router
// can tell it from a separator.
func TestEscapedSlash(t *testing.T) {
	for _, tc := range []struct {
		target, path string
		slash        int
	}{
		{"/users/1", "/users/1", -1},
		{"/users%2F1", "/users/1", 6},
		{"/a/b%2fc%2Fd", "/a/b/c/d", 4},
		{"/%75sers/1", "/users/1", -1},
		{"http://h/x%2F?y=%2F", "/x/", 2},
	} {
		var r request
		b := []byte("GET " + tc.target + " HTTP/1.1\r\nHost: h\r\n\r\n")
		if st := parseRequest(b, headEnd(b, 0), 0, &r); st != parsed {
			t.Fatalf("%s: parse status %d", tc.target, st)
		}
		var x Exchange
		x.load(&r)
		if string(x.Path()) != tc.path || x.EscapedSlash() != tc.slash {
			t.Errorf("%s: path %q escaped slash %d, want %q %d", tc.target, x.Path(), x.EscapedSlash(), tc.path, tc.slash)
		}
	}
}

// Refusals found in review: an invalid Host, Transfer-Encoding twice,
// chunk sizes with leading whitespace, trailer lines that are not header
// lines. Each gets 400 and a closed connection.
func TestConformanceRefusals(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	const chunkedHead = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	for _, tc := range []struct{ name, req string }{
		{"host with a space", "GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n"},
		{"host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"},
		{"two transfer-encoding lines", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"chunked twice on one line", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"},
		{"space before chunk size", chunkedHead + " 3\r\nabc\r\n0\r\n\r\n"},
		{"trailer without colon", chunkedHead + "0\r\nnot a header\r\n\r\n"},
		{"trailer with a space before the colon", chunkedHead + "0\r\nX : y\r\n\r\n"},
		{"http 3", "GET / HTTP/3.0\r\nHost: x\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := raw(t, addr, tc.req+"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
			if !strings.HasPrefix(got, "HTTP/1.1 400 ") || !strings.Contains(got, "Connection: close") || strings.Contains(got, "/second") {
				t.Fatalf("got %q, want 400, Connection: close, and nothing more served", got)
			}
			if strings.HasPrefix(tc.name, "host") && !strings.Contains(got, "Host header is not a host name") {
				t.Fatalf("got %q, want the reason to name the Host value", got)
			}
		})
	}
	// Accepted: an empty Host, an IPv6 literal with a port, whitespace
	// after a chunk size (before its extension), a proper trailer.
	for _, tc := range []struct{ name, req string }{
		{"empty host", "GET /a HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n"},
		{"ipv6 host", "GET /a HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n"},
		{"space after chunk size", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3 ;e=1\r\nabc\r\n0\r\nX-T: y\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := raw(t, addr, tc.req); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
				t.Fatalf("got %q, want 200", got)
			}
		})
	}
}

// HTTP/1.2 and later 1.x are answered as HTTP/1.1 (RFC 9112 2.3).
func TestLaterMinorVersionIsServedAs11(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	got := raw(t, addr, "GET /a HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.Contains(got, "GET /a ") {
		t.Fatalf("got %q, want 200 from HTTP/1.1", got)
	}
}

// A long chunk extension is refused however its bytes arrive: at once,
// or with the line's end in a later read.
func TestLongChunkLineRefusedInAnyPacketing(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	head := "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;" + strings.Repeat("a", 1500)
	tail := "\r\nz\r\n0\r\n\r\n"
	if got := raw(t, addr, head+tail); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Fatalf("in one write: got %.60q, want 400", got)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.WriteString(c, head)
	time.Sleep(50 * time.Millisecond)
	_, _ = io.WriteString(c, tail)
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.1 400 ") {
		t.Fatalf("in two writes: got %.60q, want 400", b)
	}
}

// A refusal of a HEAD request has no body (RFC 9110 9.3.2), its length
// still announced.
func TestHeadRefusalHasNoBody(t *testing.T) {
	_, addr := start(t, &echo{}, func(c *Config) { c.MaxHeaderBytes = 1024; c.MaxBodyBytes = 100; c.ReadTimeout = 200 * time.Millisecond })
	for _, req := range []string{
		"HEAD /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab", // 408: the body never comes
		"HEAD /a HTTP/1.1\r\n\r\n",                                   // no Host
		"HEAD /a HTTP/1.1\r\nHost: x\r\nContent-Length: 9999\r\n\r\n",
		"HEAD /a HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000) + "\r\n\r\n",
	} {
		got := raw(t, addr, req)
		head, body, ok := strings.Cut(got, "\r\n\r\n")
		if !ok || !strings.HasPrefix(head, "HTTP/1.1 4") || body != "" || strings.Contains(head, "Content-Length: 0") {
			t.Errorf("%.40q: got %q, want a 4xx head announcing a length, and no body", req, got)
		}
	}
}

// Expect: 100-continue gets "100 Continue" once the head is in, before
// the body is sent (RFC 9110 10.1.1), then the final response; a client
// that sends the body anyway gets the same final response and no 100
// after it.
func TestExpectContinue(t *testing.T) {
	_, addr := start(t, &echo{}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(c)
	for i := range 2 {
		fmt.Fprintf(c, "POST /a%d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n", i)
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("request %d: got %q (%v), want a 100 Continue before the body", i, line, err)
		}
		if blank, _ := br.ReadString('\n'); blank != "\r\n" {
			t.Fatalf("request %d: 100 Continue followed by %q", i, blank)
		}
		_, _ = io.WriteString(c, "abc")
		if line, _ = br.ReadString('\n'); line != "HTTP/1.1 200 OK\r\n" {
			t.Fatalf("request %d: got %q after the body, want 200", i, line)
		}
		for line != "\r\n" {
			line, _ = br.ReadString('\n')
		}
		body := make([]byte, len(fmt.Sprintf("POST /a%d ids=\"\"/false rid=\"\"", i)))
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatal(err)
		}
	}
	// The body sent with the head: no interim response.
	got := raw(t, addr, "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nabc")
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("body with the head: got %q, want 200 alone", got)
	}
	// HTTP/1.0 clients' expectations are ignored.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(300 * time.Millisecond))
	_, _ = io.WriteString(c2, "POST /c HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
	if b, _ := io.ReadAll(c2); len(b) != 0 {
		t.Fatalf("HTTP/1.0 with Expect: got %q before the body, want nothing", b)
	}
}
