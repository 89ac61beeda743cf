package load

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// responseSamples are responses as servers send them, each followed by the
// start of what the connection carries next, which a parser must not take.
var responseSamples = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokNEXT",
	"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\nNEXT",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\nNEXT",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nxNEXT",
	"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nNEXT",
	"HTTP/1.1 304 Not Modified\r\n\r\nNEXT",
	"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabcNEXT",
	"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcNEXT",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabcNEXT",
	"HTTP/1.1 200 OK\n\nthe body runs to the end of the connection",
	"HTTP/1.1 200 OK\nContent-Length: 4\n\nbareNEXT",
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nNEXT",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	"HTTP/1.1 200 OK\r\nContent-Length: x1\r\n\r\n",
	"HTTP/1.1 2x0 OK\r\n\r\n",
	"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	"SSH-2.0-OpenSSH_9.2\r\n",
	"",
	"HTTP/1.1 099 Below 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nNEXT",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nokNEXT",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nokNEXT",
}

// Repeated Content-Length headers that agree frame the body; ones that
// disagree are a protocol error at once, not a wait for a body that may
// never come.
func TestConflictingContentLength(t *testing.T) {
	same := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nokNEXT")
	if p := parseBuffered(same, false); !p.ok || p.consumed != len(same)-4 {
		t.Errorf("agreeing lengths: %+v", p)
	}
	conflict := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nokNEXT")
	if p := parseBuffered(conflict, false); p.ok {
		t.Errorf("conflicting lengths accepted: %+v", p)
	}
	var r responseReader
	r.reset(false)
	if _, err := r.feed(conflict); err == nil {
		t.Error("conflicting lengths accepted by the streaming reader")
	}
}

// parsed is what a parser made of a response.
type parsed struct {
	ok       bool
	status   int
	reuse    bool
	consumed int
}

// parseBuffered parses in with the blocking client's parser, skipping 1xx
// responses as roundTrip does.
func parseBuffered(in []byte, headOnly bool) parsed {
	rd := bytes.NewReader(in)
	c := &httpConn{br: bufio.NewReaderSize(rd, readBufferSize)}
	for {
		status, reuse, err := c.readResponse(headOnly)
		if err != nil {
			return parsed{}
		}
		if status >= 200 || status == 101 {
			return parsed{ok: true, status: status, reuse: reuse, consumed: len(in) - rd.Len() - c.br.Buffered()}
		}
	}
}

// parseStreamed feeds in to a responseReader in pieces of the given sizes
// (cycled), then tells it the connection ended.
func parseStreamed(in []byte, headOnly bool, pieces []int) parsed {
	var r responseReader
	r.reset(headOnly)
	used := 0
	for i := 0; used < len(in) && !r.done(); i++ {
		size := max(pieces[i%len(pieces)], 1)
		end := min(used+size, len(in))
		n, err := r.feed(in[used:end])
		if err != nil {
			return parsed{}
		}
		if n < end-used && !r.done() {
			return parsed{consumed: -1} // took less without finishing: a bug
		}
		used += n
	}
	if !r.done() && !r.eof() {
		return parsed{}
	}
	return parsed{ok: true, status: r.head.status, reuse: r.head.reuse, consumed: used}
}

// TestResponseReaderMatchesClient: every sample, cut into pieces of every
// size, parses as the blocking client parses it whole.
func TestResponseReaderMatchesClient(t *testing.T) {
	for _, s := range responseSamples {
		for _, headOnly := range []bool{false, true} {
			want := parseBuffered([]byte(s), headOnly)
			for size := 1; size <= len(s)+1; size++ {
				if got := parseStreamed([]byte(s), headOnly, []int{size}); got != want {
					t.Errorf("%q head=%v in pieces of %d: %+v, client %+v", s, headOnly, size, got, want)
					break
				}
			}
		}
	}
	// Spot checks of what the samples mean.
	for _, c := range []struct {
		in   string
		want parsed
	}{
		{responseSamples[0], parsed{true, 200, true, len(responseSamples[0]) - 4}},
		{responseSamples[4], parsed{true, 201, true, len(responseSamples[4]) - 4}},
		{responseSamples[7], parsed{true, 200, false, len(responseSamples[7]) - 4}},
		{responseSamples[10], parsed{true, 200, false, len(responseSamples[10])}},
		{responseSamples[13], parsed{}},
	} {
		if got := parseStreamed([]byte(c.in), false, []int{7}); got != c.want {
			t.Errorf("%q: %+v, want %+v", c.in, got, c.want)
		}
	}
}

// FuzzResponseReader: any bytes, in any pieces, parse as the blocking
// client parses them.
func FuzzResponseReader(f *testing.F) {
	for i, s := range responseSamples {
		f.Add([]byte(s), []byte{byte(i + 1), 3, 17}, i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, in, cuts []byte, headOnly bool) {
		if len(in) > 8<<10 {
			return // the client reads headers in 16 KiB pieces; the reader bounds them at 64 KiB
		}
		pieces := []int{len(in) + 1}
		if len(cuts) > 0 {
			pieces = pieces[:0]
			for _, c := range cuts {
				pieces = append(pieces, int(c))
			}
		}
		want := parseBuffered(in, headOnly)
		if got := parseStreamed(in, headOnly, pieces); got != want {
			t.Errorf("%q head=%v pieces %v: %+v, client %+v", in, headOnly, pieces, got, want)
		}
	})
}

// Both engines' parsers bound a response's head alike: a long header line
// within the bound is fine, a head over it is a protocol error.
func TestResponseHeaderBound(t *testing.T) {
	long := "HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("a", 20<<10) + "\r\nContent-Length: 2\r\n\r\nokNEXT"
	huge := "HTTP/1.1 200 OK\r\nX-Huge: " + strings.Repeat("a", 100<<10) + "\r\nContent-Length: 2\r\n\r\nokNEXT"
	if p := parseBuffered([]byte(long), false); !p.ok || p.status != 200 {
		t.Errorf("20 KiB header, goroutine engine: %+v", p)
	}
	if p := parseStreamed([]byte(long), false, []int{1000}); !p.ok || p.status != 200 {
		t.Errorf("20 KiB header, event loops: %+v", p)
	}
	if p := parseBuffered([]byte(huge), false); p.ok {
		t.Errorf("100 KiB header accepted by the goroutine engine: %+v", p)
	}
	if p := parseStreamed([]byte(huge), false, []int{1000}); p.ok {
		t.Errorf("100 KiB header accepted by the event loops: %+v", p)
	}
}
