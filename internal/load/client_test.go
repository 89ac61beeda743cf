package load

import (
	"bufio"
	"context"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// cannedServer answers each request with the next of responses, written in
// pieces of at most chunk bytes (0: whole) to exercise partial reads.
func cannedServer(t *testing.T, chunk int, responses ...string) string {
	ln := serveConns(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for _, resp := range responses {
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if line == "\r\n" {
					break
				}
			}
			for len(resp) > 0 {
				n := len(resp)
				if chunk > 0 && n > chunk {
					n = chunk
				}
				if _, err := c.Write([]byte(resp[:n])); err != nil {
					return
				}
				resp = resp[n:]
				if chunk > 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}
		// Hold the connection open; the client decides whether to reuse it.
		br.ReadByte()
	})
	return ln.Addr().String()
}

func TestResponseParsing(t *testing.T) {
	big := strings.Repeat("x", 100_000)
	cases := []struct {
		name     string
		resp     string
		headOnly bool
		status   int
		reuse    bool
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 200, true},
		{"big body", "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + big, false, 200, true},
		{"chunked", "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n", false, 201, true},
		{"connection close", "HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false, 503, false},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 200, false},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", false, 200, true},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\n", false, 204, true},
		{"head", "HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n", true, 200, true},
		{"interim 100", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false, 200, true},
		{"long header", "HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("y", 40_000) + "\r\nContent-Length: 2\r\n\r\nok", false, 200, true},
	}
	for _, c := range cases {
		for _, chunk := range []int{0, 7} {
			if chunk > 0 && len(c.resp) > 1000 {
				continue
			}
			resp := c.resp
			addr := cannedServer(t, chunk, resp, resp)
			u, _ := url.Parse("http://" + addr)
			d, _ := newDialer(u)
			conn, err := d.dial(context.Background(), time.Now().Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			rounds := 1
			if c.reuse {
				rounds = 2 // the connection must be usable again
			}
			for i := 0; i < rounds; i++ {
				status, reuse, err := conn.roundTrip(req, c.headOnly, time.Now().Add(2*time.Second))
				if err != nil || status != c.status || reuse != c.reuse {
					t.Errorf("%s (chunk %d) round %d: status %d reuse %v err %v; want %d %v", c.name, chunk, i+1, status, reuse, err, c.status, c.reuse)
				}
			}
			conn.close()
		}
	}
}

// A response without Content-Length or chunking runs to the close.
func TestResponseUntilClose(t *testing.T) {
	ln := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if line, err := br.ReadString('\n'); err != nil || line == "\r\n" {
				break
			}
		}
		c.Write([]byte("HTTP/1.1 200 OK\r\n\r\nbody until close"))
		c.Close()
	})
	u, _ := url.Parse("http://" + ln.Addr().String())
	d, _ := newDialer(u)
	conn, err := d.dial(context.Background(), time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.close()
	status, reuse, err := conn.roundTrip([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false, time.Now().Add(time.Second))
	if status != 200 || reuse || err != nil {
		t.Errorf("status %d reuse %v err %v", status, reuse, err)
	}
}

func TestMalformedResponses(t *testing.T) {
	for _, resp := range []string{
		"HTTP/2 200\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 000 Zero\r\n\r\n",
		"HTTP/1.1 099 Below 100\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	} {
		addr := cannedServer(t, 0, resp)
		u, _ := url.Parse("http://" + addr)
		d, _ := newDialer(u)
		conn, err := d.dial(context.Background(), time.Now().Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = conn.roundTrip([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false, time.Now().Add(time.Second))
		if ClassifyError(err) != ErrProtocol {
			t.Errorf("%q: error %v, classified %s; want protocol", resp, err, ClassifyError(err))
		}
		conn.close()
	}
}
