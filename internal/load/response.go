package load

import (
	"bytes"
	"fmt"
)

// The parts of HTTP/1.x response parsing that both connection kinds share:
// the blocking client (client.go) reads a response from a bufio.Reader, the
// event loops (loop_linux.go) feed whatever bytes arrived to a
// responseReader.

// responseHead is what a response's status line and header say about how
// to read it.
type responseHead struct {
	status  int
	reuse   bool  // the connection may carry another request
	length  int64 // Content-Length, -1 when absent
	chunked bool
}

// parseStatusLine reads "HTTP/1.x NNN reason" (the line ending included or
// not): the status, and reuse as the version implies it (1.1 keeps the
// connection by default, 1.0 does not). A status is three digits from 100
// up: 000 to 099 is no status at all, and taking it for a 1xx interim
// response would leave the request waiting for another one until it timed
// out.
func parseStatusLine(line []byte) (responseHead, error) {
	h := responseHead{length: -1}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return h, &protocolError{fmt.Sprintf("bad status line %q", trimLine(line))}
	}
	for _, b := range line[9:12] {
		if b < '0' || b > '9' {
			return h, &protocolError{fmt.Sprintf("bad status line %q", trimLine(line))}
		}
		h.status = h.status*10 + int(b-'0')
	}
	if h.status < 100 {
		return h, &protocolError{fmt.Sprintf("status %03d below 100 in %q", h.status, trimLine(line))}
	}
	h.reuse = line[7] == '1'
	return h, nil
}

// field applies one header line ("Name: value", the line ending included or
// not) to h.
func (h *responseHead) field(line []byte) error {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return &protocolError{fmt.Sprintf("bad header line %q", trimLine(line))}
	}
	name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
	switch {
	case len(name) == 14 && equalFoldLower(name, headerContentLength):
		var length int64
		for _, b := range value {
			if b < '0' || b > '9' || length > 1<<40 {
				return &protocolError{fmt.Sprintf("bad Content-Length %q", value)}
			}
			length = length*10 + int64(b-'0')
		}
		if h.length >= 0 && h.length != length {
			// Which one frames the body? RFC 9112 §6.3: unrecoverable.
			return &protocolError{fmt.Sprintf("conflicting Content-Length headers %d and %d", h.length, length)}
		}
		h.length = length
	case len(name) == 17 && equalFoldLower(name, headerTransferEncoding):
		h.chunked = len(value) >= 7 && equalFoldLower(value[len(value)-7:], []byte("chunked"))
	case len(name) == 10 && equalFoldLower(name, headerConnection):
		if bytes.EqualFold(value, []byte("close")) {
			h.reuse = false
		} else if bytes.EqualFold(value, []byte("keep-alive")) {
			h.reuse = true
		}
	}
	return nil
}

// noBody reports a response that ends with its header.
func (h *responseHead) noBody(headOnly bool) bool {
	return headOnly || h.status < 200 || h.status == 204 || h.status == 304
}

// parseChunkSize reads the hexadecimal size at the start of a chunk-size
// line (extensions after it are ignored).
func parseChunkSize(line []byte) (int64, error) {
	var size int64
	digits := 0
	for _, b := range line {
		var v byte
		switch {
		case b >= '0' && b <= '9':
			v = b - '0'
		case b >= 'a' && b <= 'f':
			v = b - 'a' + 10
		case b >= 'A' && b <= 'F':
			v = b - 'A' + 10
		default:
			if digits == 0 {
				return 0, &protocolError{fmt.Sprintf("bad chunk size line %q", trimLine(line))}
			}
			return size, nil
		}
		size = size<<4 | int64(v)
		digits++
		if digits > 10 {
			return 0, &protocolError{"chunk too large"}
		}
	}
	if digits == 0 {
		return 0, &protocolError{fmt.Sprintf("bad chunk size line %q", trimLine(line))}
	}
	return size, nil
}

// isBlankLine reports "\r\n" or "\n".
func isBlankLine(line []byte) bool {
	return len(line) <= 2 && (len(line) == 1 || line[0] == '\r')
}

// maxResponseHeader bounds the header a responseReader gathers.
const maxResponseHeader = 64 << 10

// maxResponseLine bounds a chunk-size or trailer line.
const maxResponseLine = 4 << 10

// responseState is where a responseReader is in its response.
type responseState uint8

const (
	inHeader    responseState = iota
	inBody                    // remain bytes of a Content-Length body
	inChunkSize               // a chunk-size line
	inChunkData               // remain bytes of chunk data
	inChunkEnd                // the line ending after chunk data
	inTrailer                 // trailer lines, up to an empty one
	inBodyToEOF               // a body without length: it ends with the connection
	responseDone
)

// A responseReader follows one response through a connection's bytes as
// they arrive, in pieces of any size: the header is gathered (up to
// maxResponseHeader) and parsed, the body is counted off and not kept.
// Interim 1xx responses are skipped. The zero value is not ready: call
// reset before each response.
type responseReader struct {
	headOnly bool // the request was a HEAD
	state    responseState
	head     responseHead
	remain   int64  // bytes left of the body or of the chunk
	buf      []byte // the header, or the chunk-size or trailer line, so far
}

// reset readies r for the response to a new request.
func (r *responseReader) reset(headOnly bool) {
	r.headOnly = headOnly
	r.state = inHeader
	r.head = responseHead{}
	r.remain = 0
	r.buf = r.buf[:0]
}

// done reports a complete response; head then holds its status and whether
// the connection may be reused.
func (r *responseReader) done() bool { return r.state == responseDone }

// feed consumes p up to the end of the response and returns how many bytes
// that took: fewer than len(p) only when the response is done (or on error).
func (r *responseReader) feed(p []byte) (int, error) {
	n := 0
	for n < len(p) && r.state != responseDone {
		var (
			k   int
			err error
		)
		switch r.state {
		case inHeader:
			k, err = r.feedHeader(p[n:])
		case inBody, inChunkData:
			k = int(min(r.remain, int64(len(p)-n)))
			r.remain -= int64(k)
			if r.remain == 0 {
				if r.state == inBody {
					r.state = responseDone
				} else {
					r.state = inChunkEnd
				}
			}
		case inBodyToEOF:
			k = len(p) - n
		default: // a line: chunk size, chunk end, trailer
			k, err = r.feedLine(p[n:])
		}
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// eof tells r that the connection ended; it reports whether that completed
// the response (a body without length), which then does not leave the
// connection reusable.
func (r *responseReader) eof() bool {
	if r.state == inBodyToEOF {
		r.state = responseDone
		r.head.reuse = false
	}
	return r.state == responseDone
}

// feedHeader gathers header bytes from p until the blank line that ends
// the header, then parses it. Only the header's bytes are kept.
func (r *responseReader) feedHeader(p []byte) (int, error) {
	prev := len(r.buf)
	// at returns byte k of r.buf followed by p.
	at := func(k int) byte {
		if k < prev {
			return r.buf[k]
		}
		return p[k-prev]
	}
	for i := 0; i < len(p); {
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			break
		}
		k := prev + i + j // the '\n' in r.buf followed by p
		i += j + 1
		if k >= 1 && (at(k-1) == '\n' || (k >= 2 && at(k-1) == '\r' && at(k-2) == '\n')) {
			if k+1 > maxResponseHeader {
				return i, &protocolError{"response header too long"}
			}
			r.buf = append(r.buf, p[:i]...)
			err := r.parseHeader(r.buf)
			if cap(r.buf) > 4<<10 {
				r.buf = nil // an unusually large header: do not keep its buffer
			} else {
				r.buf = r.buf[:0]
			}
			return i, err
		}
	}
	if prev+len(p) > maxResponseHeader {
		return len(p), &protocolError{"response header too long"}
	}
	r.buf = append(r.buf, p...)
	return len(p), nil
}

// parseHeader parses a whole header and decides how the body is read.
func (r *responseReader) parseHeader(hdr []byte) error {
	line, rest, _ := bytes.Cut(hdr, []byte("\n"))
	h, err := parseStatusLine(line)
	if err != nil {
		return err
	}
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			break
		}
		if err := h.field(line); err != nil {
			return err
		}
	}
	r.head = h
	switch {
	case h.status < 200 && h.status != 101:
		r.state = inHeader // 1xx interim response: the real one follows
	case h.noBody(r.headOnly):
		r.state = responseDone
		r.head.reuse = h.reuse && h.status != 101 // 101: the connection now speaks another protocol
	case h.chunked:
		r.state = inChunkSize
	case h.length == 0:
		r.state = responseDone
	case h.length > 0:
		r.state, r.remain = inBody, h.length
	default:
		r.state = inBodyToEOF
	}
	return nil
}

// feedLine gathers one line of the chunked framing and acts on it.
func (r *responseReader) feedLine(p []byte) (int, error) {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		r.buf = append(r.buf, p...)
		if len(r.buf) > maxResponseLine {
			return len(p), &protocolError{"chunk framing line too long"}
		}
		return len(p), nil
	}
	line := append(r.buf, p[:i+1]...)
	r.buf = line[:0]
	switch r.state {
	case inChunkSize:
		size, err := parseChunkSize(line)
		if err != nil {
			return i + 1, err
		}
		if size == 0 {
			r.state = inTrailer
		} else {
			r.state, r.remain = inChunkData, size
		}
	case inChunkEnd:
		if len(line) > 2 {
			return i + 1, &protocolError{"chunk longer than its size"}
		}
		r.state = inChunkSize
	case inTrailer:
		if isBlankLine(line) {
			r.state = responseDone
		}
	}
	return i + 1, nil
}
