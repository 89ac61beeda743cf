package load

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"
)

// A minimal HTTP/1.1 keep-alive client: one connection per worker, the
// request written with one write, the response parsed in place from a
// bufio.Reader (status line, Content-Length, chunked, Connection: close) and
// its body discarded. It does just what a load generator needs, at a small
// fraction of net/http's CPU per request, which on a machine shared with
// the server under test is the difference that matters.

// readBufferSize bounds nothing: longer header lines are read in pieces.
const readBufferSize = 16 << 10

// dialer opens connections to the target.
type dialer struct {
	addr string // host:port
	tls  *tls.Config
}

func newDialer(target *url.URL) (*dialer, error) {
	d := &dialer{}
	port := target.Port()
	switch target.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		d.tls = &tls.Config{ServerName: target.Hostname()}
	default:
		return nil, fmt.Errorf("target %q: scheme must be http or https", target.String())
	}
	if target.Hostname() == "" {
		return nil, fmt.Errorf("target %q: no host", target.String())
	}
	d.addr = net.JoinHostPort(target.Hostname(), port)
	return d, nil
}

// dial connects (and for https shakes hands) before deadline.
func (d *dialer) dial(ctx context.Context, deadline time.Time) (*httpConn, error) {
	nd := net.Dialer{Deadline: deadline}
	nc, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, err
	}
	if d.tls != nil {
		tc := tls.Client(nc, d.tls)
		hctx, cancel := context.WithDeadline(ctx, deadline)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	c := &httpConn{nc: nc}
	var rd io.Reader = nc
	if tc, ok := nc.(*net.TCPConn); ok {
		if raw, err := newRawConnIO(tc); err == nil {
			c.raw = raw
			rd = raw
		}
	}
	c.br = bufio.NewReaderSize(rd, readBufferSize)
	return c, nil
}

// httpConn is one keep-alive connection. Not safe for concurrent use.
type httpConn struct {
	nc  net.Conn
	raw *rawConnIO // nil for TLS
	br  *bufio.Reader
}

func (c *httpConn) close() { c.nc.Close() }

// roundTrip writes req and reads the whole response before deadline. It
// returns the status code and whether the connection may be reused. After
// an error the connection must be closed.
func (c *httpConn) roundTrip(req []byte, headOnly bool, deadline time.Time) (status int, reuse bool, err error) {
	if err := c.nc.SetDeadline(deadline); err != nil {
		return 0, false, err
	}
	if c.raw != nil && c.br.Buffered() == 0 {
		c.raw.writeOnRead(req) // the first read of the response writes it
	} else if _, err := c.nc.Write(req); err != nil {
		return 0, false, err
	}
	for {
		status, reuse, err = c.readResponse(headOnly)
		if err != nil || status >= 200 || status == 101 {
			return status, reuse, err
		}
		// 1xx interim response (100 Continue, 103 Early Hints): the real one follows.
	}
}

var (
	headerContentLength    = []byte("content-length")
	headerTransferEncoding = []byte("transfer-encoding")
	headerConnection       = []byte("connection")
)

// readResponse parses one response and discards its body.
func (c *httpConn) readResponse(headOnly bool) (status int, reuse bool, err error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return 0, false, &protocolError{"status line too long"}
		}
		if len(line) == 0 {
			err = markStale(err)
		}
		return 0, false, err
	}
	h, err := parseStatusLine(line)
	if err != nil {
		return 0, false, err
	}
	size := len(line) // the head so far, bounded as the event loops bound it
	for {
		line, err = c.br.ReadSlice('\n')
		size += len(line)
		for err == bufio.ErrBufferFull && size <= maxResponseHeader { // an overlong header line: skip the rest of it
			var rest []byte
			rest, err = c.br.ReadSlice('\n')
			size += len(rest)
		}
		if size > maxResponseHeader {
			return 0, false, &protocolError{"response header too long"}
		}
		if err != nil {
			return 0, false, err
		}
		if isBlankLine(line) {
			break // end of headers
		}
		if err := h.field(line); err != nil {
			return 0, false, err
		}
	}
	switch {
	case h.noBody(headOnly):
		return h.status, h.reuse && h.status != 101, nil // 101: the connection now speaks another protocol
	case h.chunked:
		return h.status, h.reuse, c.discardChunked()
	case h.length >= 0:
		_, err = c.br.Discard(int(h.length))
		return h.status, h.reuse, err
	}
	// No length: the body runs to the end of the connection.
	if _, err := io.Copy(io.Discard, c.br); err != nil {
		return 0, false, err
	}
	return h.status, false, nil
}

// discardChunked reads a chunked body and its trailers.
func (c *httpConn) discardChunked() error {
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, err := parseChunkSize(line)
		if err != nil {
			return err
		}
		if size == 0 {
			for { // trailers, up to the empty line
				line, err := c.br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if isBlankLine(line) {
					return nil
				}
			}
		}
		if _, err := c.br.Discard(int(size)); err != nil {
			return err
		}
		if line, err = c.br.ReadSlice('\n'); err != nil {
			return err
		}
		if len(line) > 2 {
			return &protocolError{"chunk longer than its size"}
		}
	}
}

// equalFoldLower compares b with lower, which must be lower-case ASCII.
func equalFoldLower(b, lower []byte) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func trimLine(b []byte) []byte {
	if len(b) > 64 {
		b = b[:64]
	}
	return bytes.TrimRight(b, "\r\n")
}
