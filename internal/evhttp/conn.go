//go:build linux

package evhttp

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"storefront/internal/rawio"
)

const (
	// maxPendingOut is how many response bytes a connection may have
	// waiting for its client to read them before the server stops reading
	// its requests: a client that pipelines requests and never reads the
	// answers must not make the server buffer them without bound.
	maxPendingOut = 64 << 10
	// lingerTimeout bounds how long a connection closing after an error
	// response waits for its client to stop sending: closing a socket with
	// unread bytes makes the kernel send a reset, which can destroy the
	// response before the client has read it.
	lingerTimeout = time.Second
	lingerMax     = 1 << 20 // bytes discarded at most while lingering
)

// conn is one client connection. Its state is guarded by mu: the loop
// reads and parses under it, and the goroutine answering a request writes
// the response under it. The handler itself runs without it.
type conn struct {
	srv    *Server
	loop   *loop
	fd     int
	remote net.Addr

	// deadline is when the connection's current wait times out (monotonic
	// nanoseconds since the server's epoch; 0: none, while a request is
	// being served). Atomic so that the loop's sweep can scan it unlocked.
	deadline atomic.Int64

	mu           sync.Mutex
	x            Exchange
	req          request
	in           *chunk // bytes read and not yet served (a partial request, pipelined ones); nil when none
	scanFrom     int    // how much of in the head search has covered
	reqStarted   bool   // in holds the start of a request
	skippedEmpty bool   // an empty line before the next request was skipped
	continued    bool   // the current request's "100 Continue" has been sent
	out          *chunk // response bytes not yet written; nil when none
	outPos       int
	writeStalled bool // the socket stopped taking out; the write deadline runs
	busy         bool // a request is being served
	dispatching  bool // the loop is inside the handler: it flushes afterwards
	readPending  bool // bytes may be waiting in the socket (read after the response)
	peerClosed   bool // the client shut its side: read on to the end of the stream, no edge will come
	eof          bool // the end of the stream was read
	closeAfter   bool // close once out is written
	lingering    bool // half-closed, discarding input until the client closes
	overLimit    bool // refused for being over MaxConns: counted in srv.overLimit
	lingered     int
	closed       bool
}

// onReadable serves what the socket has, unless a request is in progress.
func (c *conn) onReadable(l *loop, hup bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hup {
		c.peerClosed = true
	}
	switch {
	case c.closed:
		return
	case c.lingering:
		c.lingerLocked()
		return
	case c.busy || c.closeAfter || c.backedUpLocked():
		c.readPending = true
		return
	}
	c.readPending = false
	if c.in != nil {
		c.serveBufferedLocked(l)
	}
	// With edge-triggered events the socket must be read until it is
	// drained (EAGAIN, a short read or its end), or the next edge may
	// never come: if a request goes asynchronous first, the rest is read
	// after its response.
	drained := false
	for !c.closed && !c.busy && !c.closeAfter && !c.eof && !c.backedUpLocked() {
		n, err := rawio.Read(c.fd, l.scratch)
		if n <= 0 {
			switch err {
			case nil: // the client shut its side: answer what it sent, then close
				c.eof = true
			case unix.EAGAIN:
			case unix.EINTR:
				continue
			default: // a broken connection
				c.closeLocked()
				return
			}
			drained = true
			break
		}
		if c.in != nil {
			c.in.b = append(c.in.b, l.scratch[:n]...)
			c.serveBufferedLocked(l)
		} else {
			used := c.serveLocked(l, l.scratch[:n])
			if rest := l.scratch[used:n]; len(rest) > 0 && !c.closed && !c.closeAfter {
				c.in = c.srv.chunks.get()
				c.in.b = append(c.in.b, rest...)
			}
		}
		if n < len(l.scratch) && !c.peerClosed {
			drained = true // a short read emptied the socket; the next bytes bring a new edge
			break
		}
	}
	if !drained && !c.closed {
		c.readPending = true
	}
	c.flushLocked(l)
	c.closeIfDoneLocked()
}

// closeIfDoneLocked closes a connection whose client has shut its side
// once nothing is left to answer.
func (c *conn) closeIfDoneLocked() {
	if c.eof && !c.closed && !c.busy && c.out == nil {
		c.closeLocked()
	}
}

// serveBufferedLocked serves the requests in c.in and keeps the rest.
func (c *conn) serveBufferedLocked(l *loop) {
	in := c.in
	used := c.serveLocked(l, in.b)
	if c.closed {
		return // closeLocked dropped in
	}
	in.b = in.b[:copy(in.b, in.b[used:])]
	if len(in.b) == 0 || c.closeAfter {
		c.srv.chunks.put(in)
		c.in = nil
	}
}

// serveLocked parses and serves the requests at the start of b, one at a
// time, until one is answered asynchronously, b runs out or the
// connection is to close. It returns how many bytes it consumed.
func (c *conn) serveLocked(l *loop, b []byte) int {
	cfg := &c.srv.cfg
	used := 0
	for used < len(b) && !c.busy && !c.closeAfter && !c.closed && !c.backedUpLocked() {
		// RFC 9112 2.2: one empty line before a request line is ignored
		// (some clients send a CRLF after a body); a second one is a
		// malformed request, answered at once rather than waited on.
		if c.scanFrom == 0 && !c.reqStarted && b[used] == '\r' && used+1 == len(b) {
			return used // a CR alone: its LF may be in the next read
		}
		if c.scanFrom == 0 && !c.reqStarted && (b[used] == '\n' || (b[used] == '\r' && b[used+1] == '\n')) {
			if c.skippedEmpty {
				c.refuseLocked(refuseMalformed)
				return len(b)
			}
			if b[used] == '\r' {
				used++
			}
			used++
			c.skippedEmpty = true
			continue
		}
		rest := b[used:]
		h := headEnd(rest, c.scanFrom)
		if h < 0 || h > cfg.MaxHeaderBytes {
			if len(rest) > cfg.MaxHeaderBytes || h > cfg.MaxHeaderBytes {
				c.refuseRequestLocked(refuseHeaders, nil, bytes.HasPrefix(rest, headRequestLine))
				return len(b)
			}
			c.scanFrom = len(rest)
			c.startRequestLocked()
			return used
		}
		c.scanFrom = 0
		switch st := parseRequest(rest, h, cfg.MaxBodyBytes, &c.req); st {
		case parsed:
			c.reqStarted = false
			c.skippedEmpty = false
			c.continued = false
			if !c.writeStalled {
				c.deadline.Store(0)
			}
			c.x.load(&c.req)
			used += c.req.length
			c.dispatchLocked(false, refusal{})
		case incomplete:
			// The head is whole, the body is not. RFC 9110 10.1.1: a
			// client that expects 100-continue may wait for it before
			// sending the body; nothing in the head can decide the
			// answer here (the handler does not read bodies), so it
			// gets one at once.
			if c.req.expectContinue && !c.continued {
				c.continued = true
				if c.out == nil {
					c.out = c.srv.chunks.get()
				}
				c.out.b = append(c.out.b, "HTTP/1.1 100 Continue\r\n\r\n"...)
			}
			c.startRequestLocked()
			return used
		default:
			// parseRequest set the request id only if it read the
			// whole head: the refusal carries it then.
			c.refuseRequestLocked(refusalOf(st), c.req.requestID, bytes.Equal(c.req.method, methodHead))
			return len(b)
		}
	}
	return used
}

// backedUpLocked reports whether too many response bytes wait for the
// client; it tries to write them first.
func (c *conn) backedUpLocked() bool {
	if c.out == nil || len(c.out.b)-c.outPos < maxPendingOut {
		return false
	}
	c.flushLocked(c.loop)
	return !c.closed && c.out != nil && len(c.out.b)-c.outPos >= maxPendingOut
}

// startRequestLocked arms the read timeout when a request starts to arrive.
func (c *conn) startRequestLocked() {
	if !c.reqStarted {
		c.reqStarted = true
		c.deadline.Store(c.srv.now() + int64(c.srv.cfg.ReadTimeout))
	}
}

// refusal is the status and reason a request that cannot be served gets.
// Bad input is a 4xx, even where RFC 9110 allows a 501 or 505: to a
// client, both say "fix the request".
type refusal struct {
	status int
	reason string
}

var (
	refuseMalformed   = refusal{400, "malformed HTTP request"}
	refuseVersion     = refusal{400, "HTTP version not supported; use HTTP/1.1"}
	refuseCoding      = refusal{400, "transfer coding not supported; send Content-Length or chunked"}
	refuseHost        = refusal{400, "Host header missing or repeated; send exactly one"}
	refuseHostValue   = refusal{400, "Host header is not a host name or address with an optional port"}
	refuseHeaders     = refusal{431, "request headers too large"}
	refuseBody        = refusal{413, "request body too large"}
	refuseSlow        = refusal{408, "request not received in time"}
	refuseConnections = refusal{503, "too many connections, retry later"}
)

func refusalOf(st parseStatus) refusal {
	switch st {
	case headersTooLarge:
		return refuseHeaders
	case bodyTooLarge:
		return refuseBody
	case versionUnsupported:
		return refuseVersion
	case notImplemented:
		return refuseCoding
	case hostMissing:
		return refuseHost
	case hostInvalid:
		return refuseHostValue
	default:
		return refuseMalformed
	}
}

// dispatchLocked runs the handler (or, when refuse, the refusal) without
// the lock. A response given meanwhile is left in out for the caller to
// flush.
func (c *conn) dispatchLocked(refuse bool, r refusal) {
	c.busy = true
	c.dispatching = true
	c.mu.Unlock()
	if refuse {
		c.srv.handler.Refuse(&c.x, r.status, r.reason)
	} else {
		c.srv.handler.Serve(&c.x)
	}
	c.mu.Lock()
	c.dispatching = false
}

// refuseLocked answers an unusable request with status and closes the
// connection once the answer is written. The refusal has no request id:
// nothing of the request it answers was parsed, and c.req may still
// describe an earlier request on the connection.
func (c *conn) refuseLocked(r refusal) { c.refuseRequestLocked(r, nil, false) }

// refuseRequestLocked is refuseLocked for a request whose X-Request-ID,
// requestID, was parsed (it is copied into the Exchange), or whose method
// is known to be HEAD (the refusal then has no body, RFC 9110 9.3.2).
func (c *conn) refuseRequestLocked(r refusal, requestID []byte, head bool) {
	c.x.reset()
	c.x.requestID = c.x.appendField(requestID)
	c.x.head = head
	c.x.close = true
	c.closeAfter = true // no more requests are read from this connection
	c.reqStarted = false
	c.dispatchLocked(true, r)
	if c.busy { // Refuse must respond before returning
		c.busy = false
		c.closeLocked()
		return
	}
	c.flushLocked(c.loop)
}

// respond queues a response (Exchange.Respond) and, unless the loop is
// inside the handler and will do it, writes it out.
func (c *conn) respond(status int, contentType, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.busy {
		return // a second Respond for one request: ignored
	}
	c.busy = false
	if c.closed {
		c.x.reset()
		return
	}
	closing := c.x.close || c.srv.closing.Load()
	if c.out == nil {
		c.out = c.srv.chunks.get()
	}
	c.out.b = c.x.appendResponse(c.out.b, status, contentType, body, closing)
	c.x.reset()
	if closing {
		c.closeAfter = true
	}
	if c.dispatching {
		return
	}
	c.flushLocked(c.loop)
	if !c.closed && !c.closeAfter && (c.readPending || c.in != nil) {
		c.loop.wake(c)
		return
	}
	c.closeIfDoneLocked()
}

// flushLocked writes out; what the socket does not take now waits for
// EPOLLOUT. Once everything is written the connection idles, or closes.
func (c *conn) flushLocked(l *loop) {
	if c.closed {
		return
	}
	progress := false
	for c.out != nil && c.outPos < len(c.out.b) {
		n, err := rawio.Write(c.fd, c.out.b[c.outPos:])
		if n > 0 {
			c.outPos += n
			progress = true
			continue
		}
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			// The client has WriteTimeout to take more bytes; a call
			// that wrote nothing does not extend it.
			if progress || !c.writeStalled {
				c.writeStalled = true
				c.deadline.Store(c.srv.now() + int64(c.srv.cfg.WriteTimeout))
			}
			return
		default:
			c.closeLocked()
			return
		}
	}
	c.writeStalled = false
	if c.out != nil {
		c.srv.chunks.put(c.out)
		c.out, c.outPos = nil, 0
	}
	switch {
	case c.busy:
		c.deadline.Store(0) // no timeout while the handler works
	case c.closeAfter:
		c.startLingerLocked()
	case c.reqStarted:
	default:
		c.deadline.Store(c.srv.now() + int64(c.srv.cfg.IdleTimeout))
	}
}

// onWritable resumes a response the socket could not take at once, then
// the requests that waited for it. It resumes them even when out is
// already empty: serving stops on a backed-up response, and the flush at
// the end of onReadable may empty out before this event, which the client
// taking bytes queued, arrives; without it, the requests left in in would
// wait for the idle timeout.
func (c *conn) onWritable(l *loop) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.out != nil {
		c.flushLocked(l)
	}
	if !c.closed && !c.busy && !c.closeAfter && (c.readPending || c.in != nil) {
		c.readPending = false
		c.mu.Unlock()
		c.onReadable(l, false)
		c.mu.Lock()
		return
	}
	c.closeIfDoneLocked()
}

// startLingerLocked half-closes the connection after its last response
// and waits (up to lingerTimeout) for the client to close its side,
// discarding what it still sends.
func (c *conn) startLingerLocked() {
	if c.lingering {
		return
	}
	c.lingering = true
	_ = unix.Shutdown(c.fd, unix.SHUT_WR)
	c.deadline.Store(c.srv.now() + int64(lingerTimeout))
	c.lingerLocked()
}

func (c *conn) lingerLocked() {
	var discard [2048]byte
	for {
		n, err := rawio.Read(c.fd, discard[:])
		switch {
		case n > 0:
			c.lingered += n
			if c.lingered > lingerMax {
				c.closeLocked()
				return
			}
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return
		default: // the client closed, or the connection broke
			c.closeLocked()
			return
		}
	}
}

// onDeadline acts on a connection whose deadline the sweep found passed.
func (c *conn) onDeadline(l *loop, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.deadline.Load(); c.closed || d == 0 || d >= now {
		return
	}
	if c.reqStarted && !c.busy && !c.closeAfter && c.out == nil {
		// A HEAD request cut short still gets no body (RFC 9110 9.3.2).
		c.refuseRequestLocked(refuseSlow, nil, c.in != nil && bytes.HasPrefix(c.in.b, headRequestLine))
		return
	}
	c.closeLocked()
}

// closeLocked closes the connection at once. A request still being served
// gets its response dropped.
func (c *conn) closeLocked() {
	if c.closed {
		return
	}
	c.closed = true
	c.deadline.Store(0)
	c.loop.remove(c) // before Close: the number is reused at once
	_ = unix.Close(c.fd)
	// overLimit first: accept counts conns - overLimit, and must never see
	// this connection gone from conns while still in overLimit (it would
	// count one slot free too many).
	if c.overLimit {
		c.srv.overLimit.Add(-1)
	}
	c.srv.conns.Add(-1)
	c.out, c.outPos = nil, 0
	c.in = nil
}

// chunk is a pooled buffer for a partial request or an unwritten
// response, so that an idle connection holds none.
type chunk struct{ b []byte }

const chunkSize = 4096

// chunkPool recycles chunks of chunkSize; larger ones are left to the GC.
type chunkPool struct{ p sync.Pool }

func (p *chunkPool) get() *chunk {
	if ch, ok := p.p.Get().(*chunk); ok {
		return ch
	}
	return &chunk{b: make([]byte, 0, chunkSize)}
}

func (p *chunkPool) put(ch *chunk) {
	if cap(ch.b) <= 4*chunkSize {
		ch.b = ch.b[:0]
		p.p.Put(ch)
	}
}
