//go:build linux

package evhttp

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
)

// FuzzParseRequest feeds arbitrary bytes to the request parser: it must
// not panic, must agree with itself when the bytes arrive one at a time,
// and, where net/http also accepts the request, must read the same method,
// target and length.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		"GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /products?ids=1,2 HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\nConnection: close\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET /a HTTP/1.0\n\n",
		"GET http://h/p?q HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n Folded: x\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	const maxHeader, maxBody = 1024, 256
	f.Fuzz(func(t *testing.T, b []byte) {
		h := headEnd(b, 0)
		// Byte by byte, resuming where the previous call stopped.
		inc := -1
		for n := 1; n <= len(b); n++ {
			from := 0
			if n > 1 {
				from = n - 1
			}
			if inc = headEnd(b[:n], from); inc >= 0 {
				break
			}
		}
		if inc != h {
			t.Fatalf("head end %d at once, %d byte by byte", h, inc)
		}
		if h < 0 || h > maxHeader {
			return
		}
		var r request
		st := parseRequest(b, h, maxBody, &r)
		if st != parsed {
			return
		}
		if r.length < h || r.length > len(b) {
			t.Fatalf("length %d outside [%d, %d]", r.length, h, len(b))
		}
		if !isToken(r.method) || len(r.target) == 0 {
			t.Fatalf("parsed method %q target %q", r.method, r.target)
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return // net/http is stricter in places (Host, methods)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		if req.Method != string(r.method) || req.RequestURI != string(r.target) {
			t.Fatalf("net/http read %s %s, we read %s %s", req.Method, req.RequestURI, r.method, r.target)
		}
		// RFC 9112 6.1: Transfer-Encoding from an HTTP/1.0 client means
		// faulty framing. net/http ignores the header; we read the chunked
		// body and close the connection after answering, so no request
		// follows for the two to disagree on.
		// (net/http also deletes the header, so look at the bytes.)
		if req.ProtoMinor == 0 && bytes.Contains(bytes.ToLower(b[:h]), []byte("\ntransfer-encoding:")) {
			if !r.close {
				t.Fatalf("HTTP/1.0 with Transfer-Encoding must close the connection")
			}
			return
		}
		if len(req.TransferEncoding) == 0 && int(req.ContentLength) != r.length-h && !(req.ContentLength == -1 && r.length == h) {
			t.Fatalf("net/http read a %d-byte body, we read %d", req.ContentLength, r.length-h)
		}
		_ = body
	})
}
