//go:build linux

package evhttp

import (
	"strconv"
)

// Exchange is one request and its response. The server reuses it for the
// connection's next request as soon as Respond returns: a handler must not
// touch it, or keep any slice it returned, after Respond.
type Exchange struct {
	c *conn

	// State is the handler's own per-connection state: it survives from
	// one request on a connection to the next (nil on a new connection).
	State any

	buf                            []byte // the request's method, path, query and id
	method, path, query, requestID [2]int // [start, end) in buf
	hdr                            []byte // response header lines the handler added
	escapedSlash                   int    // where in Path the first byte decoded from %2F is; -1: none
	head                           bool
	close                          bool // the response closes the connection
	keepAlive10                    bool // an HTTP/1.0 client asked for keep-alive
}

// load copies what the handler may ask about r out of the read buffer, so
// that the buffer can be reused while the request is served.
func (x *Exchange) load(r *request) {
	x.buf = x.buf[:0]
	x.method = x.appendField(r.method)
	path, query := splitTarget(r.target)
	start := len(x.buf)
	x.buf, x.escapedSlash = appendUnescapedPath(x.buf, path)
	if x.escapedSlash >= 0 {
		x.escapedSlash -= start
	}
	x.path = [2]int{start, len(x.buf)}
	x.query = x.appendField(query)
	x.requestID = x.appendField(r.requestID)
	x.head = string(r.method) == "HEAD"
	x.close = r.close
	x.keepAlive10 = r.http10 && !r.close
}

func (x *Exchange) appendField(b []byte) [2]int {
	start := len(x.buf)
	x.buf = append(x.buf, b...)
	return [2]int{start, len(x.buf)}
}

// reset forgets the request and response, keeping the buffers and State.
func (x *Exchange) reset() {
	x.buf, x.hdr = x.buf[:0], x.hdr[:0]
	x.method, x.path, x.query, x.requestID = [2]int{}, [2]int{}, [2]int{}, [2]int{}
	x.head, x.close, x.keepAlive10 = false, false, false
	x.escapedSlash = -1
}

// Method is the request method, e.g. GET.
func (x *Exchange) Method() []byte { return x.buf[x.method[0]:x.method[1]] }

// IsGet reports whether the method is GET.
func (x *Exchange) IsGet() bool { return string(x.Method()) == "GET" }

// IsHead reports whether the method is HEAD (the response then has no body).
func (x *Exchange) IsHead() bool { return x.head }

// Path is the request path with its %XX escapes decoded ("*" for
// "OPTIONS *", the only other target the server lets through).
func (x *Exchange) Path() []byte { return x.buf[x.path[0]:x.path[1]] }

// EscapedSlash is the index in Path of the first '/' the client sent
// escaped, as %2F; -1 when there is none. Such a slash is part of a path
// segment, not a separator between two: a router matching a prefix of
// Path must not match one that holds it.
func (x *Exchange) EscapedSlash() int { return x.escapedSlash }

// RequestID is the X-Request-ID header as sent (empty if none).
func (x *Exchange) RequestID() []byte { return x.buf[x.requestID[0]:x.requestID[1]] }

// QueryArg returns the value of the first query parameter called name,
// decoded, and whether the parameter is present at all ("?ids" and
// "?ids=" both are). The value is valid until the next QueryArg or
// Respond.
func (x *Exchange) QueryArg(name string) ([]byte, bool) {
	raw, ok := queryValue(x.buf[x.query[0]:x.query[1]], []byte(name))
	if !ok {
		return nil, false
	}
	end := x.requestID[1]
	x.buf = appendUnescaped(x.buf[:end], raw, true)
	return x.buf[end:], true
}

// RemoteAddr is the client's address, e.g. "127.0.0.1:54321".
func (x *Exchange) RemoteAddr() string {
	if x.c.remote == nil {
		return ""
	}
	return x.c.remote.String()
}

// AddHeader adds a response header line. name and value must be valid
// header text (the handler's own constants, or values it checked).
func (x *Exchange) AddHeader(name, value []byte) {
	x.hdr = append(x.hdr, name...)
	x.hdr = append(x.hdr, ": "...)
	x.hdr = append(x.hdr, value...)
	x.hdr = append(x.hdr, "\r\n"...)
}

// Respond sends the response: status, an optional Content-Type, the
// headers added so far and body (omitted for HEAD, its length still
// announced). It may be called from any goroutine, once per request.
func (x *Exchange) Respond(status int, contentType, body []byte) {
	x.c.respond(status, contentType, body)
}

// appendResponse appends the whole response to dst.
func (x *Exchange) appendResponse(dst []byte, status int, contentType, body []byte, closing bool) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, reason(status)...)
	dst = append(dst, "\r\nDate: "...)
	dst = append(dst, x.c.srv.httpDate()...)
	dst = append(dst, "\r\n"...)
	if len(contentType) > 0 {
		dst = append(dst, "Content-Type: "...)
		dst = append(dst, contentType...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, x.hdr...)
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	switch {
	case closing:
		dst = append(dst, "\r\nConnection: close\r\n\r\n"...)
	case x.keepAlive10:
		dst = append(dst, "\r\nConnection: keep-alive\r\n\r\n"...)
	default:
		dst = append(dst, "\r\n\r\n"...)
	}
	if !x.head {
		dst = append(dst, body...)
	}
	return dst
}

// reason is the reason phrase of the statuses this server sends.
func reason(status int) string {
	switch status {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 413:
		return "Request Entity Too Large"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 503:
		return "Service Unavailable"
	}
	return "Status"
}
