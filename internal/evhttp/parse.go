package evhttp

import (
	"bytes"
)

// request is one parsed request head, as slices of the bytes it was parsed
// from: valid only until those bytes are reused.
type request struct {
	method    []byte
	target    []byte // path and query, as sent
	requestID []byte // the X-Request-ID header, if any; set only once the whole head is parsed
	http10    bool
	close     bool // the client asked to close after this request
	keepAlive bool // an HTTP/1.0 client asked to keep the connection
	// expectContinue: an HTTP/1.1 client sent "Expect: 100-continue" and
	// may wait for an interim 100 response before it sends the body.
	expectContinue bool
	length         int // bytes of the whole request, head and body
}

// parseStatus is what parsing a buffer found.
type parseStatus int

const (
	parsed     parseStatus = iota // a whole request is in the buffer
	incomplete                    // more bytes are needed
	// The rest are answered with an error and the connection is closed.
	malformed          // 400
	headersTooLarge    // 431
	bodyTooLarge       // 413
	versionUnsupported // 505
	notImplemented     // 501: a transfer coding other than chunked
	hostMissing        // 400: HTTP/1.1 without a Host header, or two of them
	hostInvalid        // 400: a Host value that is not a host and port
)

var (
	hdrContentLength    = []byte("content-length")
	hdrTransferEncoding = []byte("transfer-encoding")
	hdrConnection       = []byte("connection")
	hdrRequestID        = []byte("x-request-id")
	hdrHost             = []byte("host")
	hdrExpect           = []byte("expect")
	token100Continue    = []byte("100-continue")
	methodOptions       = []byte("OPTIONS")
	methodHead          = []byte("HEAD")
	headRequestLine     = []byte("HEAD ")
	tokenClose          = []byte("close")
	tokenKeepAlive      = []byte("keep-alive")
	tokenChunked        = []byte("chunked")
	http11              = []byte("HTTP/1.1")
	http10              = []byte("HTTP/1.0")
)

// headEnd returns the length of the request head in b (through the blank
// line that ends it), or -1 when b does not hold a whole head yet. from is
// where a previous call on a prefix of b stopped looking, so that a head
// arriving a byte at a time is scanned once, not once per byte. Lines may
// end in CRLF or a bare LF.
func headEnd(b []byte, from int) int {
	from = max(from-3, 0)
	for {
		i := bytes.IndexByte(b[from:], '\n')
		if i < 0 {
			return -1
		}
		i += from
		// A blank line: "\n\n" or "\n\r\n".
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
		if i+2 >= len(b) {
			return -1 // the blank line may still be on its way
		}
		from = i + 1
	}
}

// parseRequest parses the request at the start of b, whose head is
// headLen bytes long (headEnd's result). maxBody bounds the body.
func parseRequest(b []byte, headLen, maxBody int, r *request) parseStatus {
	*r = request{}
	head := b[:headLen]
	line, rest := nextLine(head)
	// Request line: method SP target SP version.
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		return malformed
	}
	r.method = line[:sp]
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return malformed
	}
	r.target = line[:sp]
	version := line[sp+1:]
	for _, c := range r.target {
		if c <= ' ' || c == 0x7f {
			return malformed
		}
	}
	if !validTarget(r.method, r.target) {
		return malformed
	}
	switch {
	case bytes.Equal(version, http11):
	case bytes.Equal(version, http10):
		r.http10 = true
	case len(version) == 8 && bytes.HasPrefix(version, []byte("HTTP/")) && isDigit(version[5]) && version[6] == '.' && isDigit(version[7]):
		// RFC 9112 2.3: a later HTTP/1.x is answered as 1.1, the highest
		// minor version this server speaks; other major versions are not.
		if version[5] != '1' {
			return versionUnsupported
		}
	default:
		return malformed
	}

	// The request id is kept only once every header line has been parsed:
	// a request refused before that has none (its head is not trusted),
	// one refused after it (Host, framing, body size) carries it.
	var requestID []byte
	length, chunked, sawLength, hosts := 0, false, false, 0
	for len(rest) > 0 {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break // the blank line
		}
		colon := bytes.IndexByte(line, ':')
		// No obsolete line folding, no space before the colon.
		if colon <= 0 || !isToken(line[:colon]) {
			return malformed
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return malformed
			}
		}
		switch {
		case equalFold(name, hdrContentLength):
			n, ok := parseLength(value)
			if !ok || (sawLength && n != length) {
				return malformed
			}
			length, sawLength = n, true
		case equalFold(name, hdrTransferEncoding):
			// Only chunked, once: a second Transfer-Encoding line is the
			// same as "chunked, chunked" on one (RFC 9110 5.3), which
			// RFC 9112 7 forbids.
			if !equalFold(value, tokenChunked) || chunked {
				return notImplemented
			}
			chunked = true
		case equalFold(name, hdrConnection):
			if hasToken(value, tokenClose) {
				r.close = true
			}
			if hasToken(value, tokenKeepAlive) {
				r.keepAlive = true
			}
		case equalFold(name, hdrRequestID):
			requestID = value
		case equalFold(name, hdrHost):
			// RFC 9112 3.2: a Host value that is not a valid host[:port]
			// is answered 400, as a missing one is.
			if !validHost(value) {
				return hostInvalid
			}
			hosts++
		case equalFold(name, hdrExpect):
			r.expectContinue = equalFold(value, token100Continue)
		}
	}
	r.requestID = requestID
	// RFC 9112 3.2: an HTTP/1.1 request has exactly one Host header; no
	// request has two.
	if hosts > 1 || (hosts == 0 && !r.http10) {
		return hostMissing
	}
	if chunked && sawLength {
		return malformed // request smuggling shape: refuse
	}
	// RFC 9112 6.1: chunked framing from an HTTP/1.0 client is faulty;
	// answer, then close.
	if r.http10 && (!r.keepAlive || chunked) {
		r.close = true
	}
	// RFC 9110 10.1.1: an HTTP/1.0 client's expectation is ignored.
	r.expectContinue = r.expectContinue && !r.http10
	switch {
	case chunked:
		n, st := chunkedLength(b[headLen:], maxBody)
		if st != parsed {
			return st
		}
		r.length = headLen + n
	default:
		if length > maxBody {
			return bodyTooLarge
		}
		if len(b)-headLen < length {
			return incomplete
		}
		r.length = headLen + length
	}
	return parsed
}

// chunkedLength returns how many bytes of b the chunked body at its start
// takes, trailers included, once it is all there. The framing (size
// lines, extensions, trailers) may add at most 8 KB to maxBody.
func chunkedLength(b []byte, maxBody int) (int, parseStatus) {
	limit := maxBody + 8<<10
	if len(b) <= limit {
		return chunkedFraming(b, maxBody)
	}
	n, st := chunkedFraming(b[:limit], maxBody)
	if st == incomplete {
		st = bodyTooLarge
	}
	return n, st
}

// maxChunkLine bounds a chunk-size line, extensions included.
const maxChunkLine = 1024

func chunkedFraming(b []byte, maxBody int) (int, parseStatus) {
	pos, total := 0, 0
	for {
		// A chunk-size line (with its extensions) is short: a long one is
		// refused whether or not its end has arrived yet.
		i := bytes.IndexByte(b[pos:], '\n')
		if i > maxChunkLine || (i < 0 && len(b)-pos > maxChunkLine) {
			return 0, malformed
		}
		if i < 0 {
			return 0, incomplete
		}
		// RFC 9112 7.1: chunk lines end in CRLF. A bare LF is refused, as
		// net/http does: a proxy in front that reads it differently would
		// see another request in the body (request smuggling).
		if i == 0 || b[pos+i-1] != '\r' {
			return 0, malformed
		}
		line := b[pos : pos+i-1]
		if semi := bytes.IndexByte(line, ';'); semi >= 0 {
			line = line[:semi] // chunk extensions are ignored
		}
		// chunk-size is 1*HEXDIG, followed by optional whitespace before
		// an extension (RFC 9112 7.1.1), never preceded by any.
		size, ok := parseHex(trimTrailingOWS(line))
		if !ok {
			return 0, malformed
		}
		pos += i + 1
		if size == 0 {
			// Trailers, then a blank line.
			for {
				j := bytes.IndexByte(b[pos:], '\n')
				if j < 0 {
					return 0, incomplete
				}
				if j == 0 || b[pos+j-1] != '\r' {
					return 0, malformed
				}
				blank := j == 1
				// A trailer line is a header line: name, colon, value.
				if colon := bytes.IndexByte(b[pos:pos+j], ':'); !blank && (colon <= 0 || !isToken(b[pos:pos+colon])) {
					return 0, malformed
				}
				pos += j + 1
				if blank {
					return pos, parsed
				}
				if pos > maxBody+8<<10 {
					return 0, bodyTooLarge
				}
			}
		}
		total += size
		if total > maxBody {
			return 0, bodyTooLarge
		}
		// The data and its CRLF.
		if len(b)-pos < size+2 {
			return 0, incomplete
		}
		pos += size
		if b[pos] != '\r' || b[pos+1] != '\n' {
			return 0, malformed
		}
		pos += 2
	}
}

// validTarget reports whether target is a request target this server
// answers (RFC 9112 3.2): a path (origin form), an http or https URL
// (absolute form), or "*" for OPTIONS. The authority form is CONNECT's,
// which a server that is not a proxy does not serve.
func validTarget(method, target []byte) bool {
	switch {
	case len(target) > 0 && target[0] == '/':
		return true
	case len(target) == 1 && target[0] == '*':
		return bytes.Equal(method, methodOptions)
	default:
		_, ok := absolutePath(target)
		return ok
	}
}

// absolutePath returns what follows the authority of an absolute-form
// target ("http://host:8080/users/1?x" gives "/users/1?x", and
// "http://host?x" gives "?x"), and false when target is not an http or
// https URL.
func absolutePath(target []byte) ([]byte, bool) {
	for _, scheme := range [...]string{"http://", "https://"} {
		if len(target) >= len(scheme) && equalFold(target[:len(scheme)], []byte(scheme)) {
			rest := target[len(scheme):]
			end := bytes.IndexAny(rest, "/?#")
			if end < 0 {
				end = len(rest)
			}
			return rest[end:], true
		}
	}
	return nil, false
}

// splitTarget splits a valid request target (validTarget) into its path
// and raw query. An absolute-form target is reduced to its path ("/" when
// it has none). The fragment, if a client sent one, is dropped.
func splitTarget(target []byte) (path, query []byte) {
	if len(target) > 0 && target[0] != '/' && target[0] != '*' {
		target, _ = absolutePath(target)
	}
	if i := bytes.IndexByte(target, '#'); i >= 0 {
		target = target[:i]
	}
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		target, query = target[:i], target[i+1:]
	}
	if len(target) == 0 {
		target = []byte("/")
	}
	return target, query
}

// appendUnescapedPath appends path with its %XX escapes decoded, and
// returns where in dst the first byte decoded from %2F lies (-1: none).
// An escaped slash is data, not a separator (RFC 3986 2.2): a router
// must not let it stand for one.
func appendUnescapedPath(dst, path []byte) ([]byte, int) {
	slash := -1
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '%' && i+2 < len(path) && isHex(path[i+1]) && isHex(path[i+2]) {
			c = unhex(path[i+1])<<4 | unhex(path[i+2])
			if c == '/' && slash < 0 {
				slash = len(dst)
			}
			i += 2
		}
		dst = append(dst, c)
	}
	return dst, slash
}

// appendUnescaped appends s with its %XX escapes decoded (and, when plus
// is set, '+' as a space, as in a query). A malformed escape is kept as
// it is.
func appendUnescaped(dst, s []byte, plus bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			dst = append(dst, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		case c == '+' && plus:
			dst = append(dst, ' ')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// queryValue returns the raw value of the first parameter called name in
// a raw query, and whether it is there at all ("ids" and "ids=" both are).
func queryValue(query, name []byte) ([]byte, bool) {
	for len(query) > 0 {
		pair := query
		if i := bytes.IndexByte(query, '&'); i >= 0 {
			pair, query = query[:i], query[i+1:]
		} else {
			query = nil
		}
		key, value := pair, []byte(nil)
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			key, value = pair[:i], pair[i+1:]
		}
		if bytes.Equal(key, name) {
			return value, true
		}
	}
	return nil, false
}

func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return trimTrailingOWS(b)
}

func trimTrailingOWS(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// validHost reports whether a Host value may be a host and optional port:
// the characters of a registered name, an IP literal in brackets or a
// port, as net/http checks them. The value may be empty (RFC 9112 3.2).
func validHost(v []byte) bool {
	for _, c := range v {
		if c >= 0x80 || !hostChars[c] {
			return false
		}
	}
	return true
}

var hostChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!$%&'()*+,-.:;=[]_~" {
		t[c] = true
	}
	return t
}()

// parseLength parses a Content-Length: decimal digits only, bounded.
func parseLength(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func parseHex(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if !isHex(c) {
			return 0, false
		}
		n = n<<4 | int(unhex(c))
	}
	return n, true
}

// hasToken reports whether the comma-separated list v holds token,
// ignoring case.
func hasToken(v, token []byte) bool {
	for len(v) > 0 {
		item := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if equalFold(trimOWS(item), token) {
			return true
		}
	}
	return false
}

// equalFold compares ASCII case-insensitively; lower must be lower case.
func equalFold(b, lower []byte) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case isDigit(c):
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// isToken reports whether b is an RFC 9110 token (a method or header name).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChars[c] {
			return false
		}
	}
	return true
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
