package load

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
)

// requestSet is a scenario compiled for one target: request templates and
// their cumulative weights.
type requestSet struct {
	tmpls []*requestTemplate
	cum   []float64 // cum[i] = weight of tmpls[0..i]
}

// requestTemplate is one request compiled to byte runs and slots, so that
// building a request is appending, with no parsing and no allocation.
type requestTemplate struct {
	name     string
	static   []byte // the whole request when it has no placeholders
	head     []part // request line and headers, without Content-Length and the final CRLF
	body     []part
	hasBody  bool
	samplers []sampler // one per param, in the order of part.param
	headOnly bool      // HEAD: the response has no body
}

type partKind uint8

const (
	partLiteral partKind = iota
	partParam
	partUUID
	partSeq
)

type part struct {
	kind  partKind
	lit   []byte
	param int
}

// header is a request header in the order it is sent.
type header struct{ name, value string }

// compileRequests compiles sc (nil: a GET of the target URL) with the extra
// headers, which override headers of the same name in the scenario.
func compileRequests(target *url.URL, sc *Scenario, extra []header) (*requestSet, error) {
	if sc == nil {
		sc = &Scenario{Requests: []RequestSpec{{Weight: 1}}}
	}
	set := &requestSet{}
	var total float64
	for i, spec := range sc.Requests {
		t, err := compileRequest(target, sc.Headers, spec, extra)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i+1, err)
		}
		total += spec.Weight
		set.tmpls = append(set.tmpls, t)
		set.cum = append(set.cum, total)
	}
	return set, nil
}

func compileRequest(target *url.URL, common map[string]string, spec RequestSpec, extra []header) (*requestTemplate, error) {
	method := spec.Method
	if method == "" {
		method = "GET"
	}
	uri := target.RequestURI()
	if spec.Path != "" {
		uri = strings.TrimSuffix(target.EscapedPath(), "/") + spec.Path
		// The target's query string (say, an API key) goes with every
		// request, after the scenario path's own.
		if q := target.RawQuery; q != "" {
			sep := "?"
			if strings.Contains(spec.Path, "?") {
				sep = "&"
			}
			uri += sep + q
		}
	}
	t := &requestTemplate{name: spec.Name, headOnly: method == "HEAD"}
	if t.name == "" {
		t.name = method + " " + spec.Path
	}
	params := map[string]int{}
	for _, name := range sortedKeys(spec.Params) {
		s, err := newSampler(spec.Params[name])
		if err != nil {
			return nil, fmt.Errorf("param %s: %w", name, err)
		}
		params[name] = len(t.samplers)
		t.samplers = append(t.samplers, s)
	}

	headers := []header{{"Host", target.Host}}
	if target.User != nil {
		// user:password@ in the target is HTTP basic authentication, as
		// curl sends it; an Authorization header of the scenario or of
		// --header replaces it.
		pw, _ := target.User.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(target.User.Username() + ":" + pw))
		headers = append(headers, header{"Authorization", "Basic " + cred})
	}
	set := func(name, value string) {
		for i := range headers {
			if strings.EqualFold(headers[i].name, name) {
				headers[i].value = value
				return
			}
		}
		headers = append(headers, header{name, value})
	}
	for _, k := range sortedKeys(common) {
		set(k, common[k])
	}
	for _, k := range sortedKeys(spec.Headers) {
		set(k, spec.Headers[k])
	}
	for _, h := range extra {
		set(h.name, h.value)
	}

	var err error
	add := func(dst []part, text string) []part {
		for _, p := range splitTemplate(text) {
			switch {
			case p.name == "":
				dst = appendLiteral(dst, p.lit)
			case p.name == "uuid":
				dst = append(dst, part{kind: partUUID})
			case p.name == "seq":
				dst = append(dst, part{kind: partSeq})
			default:
				idx, ok := params[p.name]
				if !ok {
					err = fmt.Errorf("placeholder {%s} is not a param", p.name)
				}
				dst = append(dst, part{kind: partParam, param: idx})
			}
		}
		return dst
	}
	t.head = appendLiteral(t.head, method+" ")
	t.head = add(t.head, uri)
	t.head = appendLiteral(t.head, " HTTP/1.1\r\n")
	for _, h := range headers {
		if strings.EqualFold(h.name, "Content-Length") {
			continue // computed from the body
		}
		t.head = appendLiteral(t.head, h.name+": ")
		t.head = add(t.head, h.value)
		t.head = appendLiteral(t.head, "\r\n")
	}
	t.hasBody = spec.Body != "" || method == "POST" || method == "PUT" || method == "PATCH"
	t.body = add(nil, spec.Body)
	if err != nil {
		return nil, err
	}
	if literalOnly(t.head) && literalOnly(t.body) {
		// No placeholders: the request never changes. (Parameters the
		// request does not use are still drawn once, so build needs a
		// working generator.)
		t.static = t.build(nil, newGenerator(0))
	}
	return t, nil
}

// literalOnly reports whether parts hold no placeholder.
func literalOnly(parts []part) bool {
	for _, p := range parts {
		if p.kind != partLiteral {
			return false
		}
	}
	return true
}

func appendLiteral(dst []part, s string) []part {
	if n := len(dst); n > 0 && dst[n-1].kind == partLiteral {
		dst[n-1].lit = append(dst[n-1].lit, s...)
		return dst
	}
	return append(dst, part{kind: partLiteral, lit: []byte(s)})
}

// pick draws a template by weight.
func (s *requestSet) pick(r *rand.Rand) *requestTemplate {
	if len(s.tmpls) == 1 {
		return s.tmpls[0]
	}
	x := r.Float64() * s.cum[len(s.cum)-1]
	for i, c := range s.cum {
		if x < c {
			return s.tmpls[i]
		}
	}
	return s.tmpls[len(s.tmpls)-1]
}

// generator is a worker's source of placeholder values. It is not safe for
// concurrent use; each worker owns one.
type generator struct {
	rng  *rand.Rand
	seq  uint64  // the value of {seq} for the request being built
	vals []int64 // drawn params of the request being built
	body []byte  // scratch for bodies with placeholders
}

func newGenerator(seed uint64) *generator {
	return &generator{rng: rand.New(rand.NewPCG(seed, seed^0x5851F42D4C957F2D))}
}

// build appends the request to dst. Parameters are drawn once per request,
// so a parameter used twice has the same value in both places.
func (t *requestTemplate) build(dst []byte, g *generator) []byte {
	if t.static != nil {
		return append(dst, t.static...)
	}
	g.vals = g.vals[:0]
	for _, s := range t.samplers {
		g.vals = append(g.vals, s.sample(g.rng))
	}
	dst = g.appendParts(dst, t.head)
	if t.hasBody {
		g.body = g.appendParts(g.body[:0], t.body)
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(g.body)), 10)
		dst = append(dst, "\r\n\r\n"...)
		return append(dst, g.body...)
	}
	return append(dst, "\r\n"...)
}

func (g *generator) appendParts(dst []byte, parts []part) []byte {
	for i := range parts {
		p := &parts[i]
		switch p.kind {
		case partLiteral:
			dst = append(dst, p.lit...)
		case partParam:
			dst = strconv.AppendInt(dst, g.vals[p.param], 10)
		case partSeq:
			dst = strconv.AppendUint(dst, g.seq, 10)
		case partUUID:
			dst = g.appendUUID(dst)
		}
	}
	return dst
}

// appendUUID appends a random (version 4) UUID without allocating.
func (g *generator) appendUUID(dst []byte) []byte {
	const hex = "0123456789abcdef"
	var b [16]byte
	hi, lo := g.rng.Uint64(), g.rng.Uint64()
	for i := 0; i < 8; i++ {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[c>>4], hex[c&0x0f])
	}
	return dst
}
