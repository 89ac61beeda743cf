package faults

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The suite's client is a strict open-model load generator: requests leave
// at their intended times whatever the server does, every request is
// recorded with its own outcome, and nothing is retried. loadgen's engine
// (internal/load) sends a request again on a fresh connection when a reused
// keep-alive connection turns out to be closed, as browsers do; here that
// very event is the failure scenario 1 must count, so this client does not
// hide it. Per-request records also let the suite split latency by status
// (admitted versus refused under overload) and time recovery to the
// millisecond.

// Outcome kinds of one request.
const (
	okResponse  = iota // a complete HTTP response (any status)
	errRefused         // the connection was refused: the request never left
	errDial            // any other dial failure (timeout): never left
	errClosed          // the server closed or reset the connection before any response byte
	errTimeout         // no complete response within the client timeout
	errBroken          // the connection broke in the middle of a response
	errProtocol        // the response was not valid HTTP/1.1
	numKinds
)

var kindNames = [numKinds]string{"ok", "refused", "dial", "closed_before_response", "timeout", "broken_response", "protocol"}

// sample is one request.
type sample struct {
	intended   time.Duration // offset from the run's start
	sent       time.Duration // -1 when the request never left
	done       time.Duration
	status     int
	kind       uint8
	retryAfter bool
	reused     bool // sent on a keep-alive connection used before
}

// latency is measured from the intended send time (coordinated omission
// corrected).
func (s *sample) latency() time.Duration { return s.done - s.intended }

// loadSpec describes one run.
type loadSpec struct {
	addr     string // host:port
	rate     float64
	duration time.Duration
	conns    int           // cap on requests in flight
	timeout  time.Duration // per request, from the actual send
	path     func(r *rand.Rand) string
	// start, when set, receives the run's start time (offset zero).
	start chan<- time.Time
}

// loadResult is a finished run.
type loadResult struct {
	spec    loadSpec
	start   time.Time
	samples []sample // in intended order; samples never dispatched are dropped
	unsent  int      // due but never dispatched before the end (every connection busy)
}

// runLoad sends spec.rate requests a second for spec.duration (or until ctx
// ends) and returns every request's record.
func runLoad(ctx context.Context, spec loadSpec) *loadResult {
	if spec.conns == 0 {
		spec.conns = 64
	}
	if spec.timeout == 0 {
		spec.timeout = 3 * time.Second
	}
	total := int(spec.rate * spec.duration.Seconds())
	res := &loadResult{spec: spec, samples: make([]sample, total)}
	dispatched := make([]bool, total)
	tickets := make(chan int)
	start := time.Now()
	res.start = start
	if spec.start != nil {
		spec.start <- start
	}
	var wg sync.WaitGroup
	for i := range spec.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &loadWorker{spec: &spec, start: start, rng: rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))}
			defer w.close()
			for n := range tickets {
				w.do(&res.samples[n], time.Duration(float64(n)/spec.rate*float64(time.Second)))
			}
		}()
	}
	// Dispatch every request that is due, then sleep until the next one:
	// one timer per gap, not one per request.
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	n := 0
pace:
	for n < total {
		if time.Since(start) >= spec.duration {
			// The run is over: whatever is still due never left (every
			// connection was busy).
			res.unsent += total - n
			break
		}
		due := min(total, int(time.Since(start).Seconds()*spec.rate)+1)
		for ; n < due; n++ {
			select {
			case tickets <- n:
				dispatched[n] = true
				continue
			default:
			}
			timer.Reset(min(spec.timeout, max(spec.duration-time.Since(start), time.Millisecond)))
			select {
			case tickets <- n:
				dispatched[n] = true
			case <-ctx.Done():
				break pace
			case <-timer.C:
				if time.Since(start) >= spec.duration {
					continue pace // the outer loop counts the rest as unsent
				}
				// Every connection has been busy for a whole timeout: the
				// server has stopped answering; keep the schedule moving.
				res.unsent++
			}
		}
		if n >= total {
			break
		}
		next := time.Duration(float64(n) / spec.rate * float64(time.Second))
		timer.Reset(max(next-time.Since(start), 50*time.Microsecond))
		select {
		case <-timer.C:
		case <-ctx.Done():
			break pace
		}
	}
	close(tickets)
	wg.Wait()
	kept := res.samples[:0]
	for n := range res.samples {
		if dispatched[n] {
			kept = append(kept, res.samples[n])
		}
	}
	res.samples = kept
	return res
}

// loadWorker owns one connection at a time.
type loadWorker struct {
	spec  *loadSpec
	start time.Time
	rng   *rand.Rand
	conn  net.Conn
	br    *bufio.Reader
	used  bool
	req   []byte
}

func (w *loadWorker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

func (w *loadWorker) now() time.Duration { return time.Since(w.start) }

// do performs one request and fills s.
func (w *loadWorker) do(s *sample, intended time.Duration) {
	s.intended = intended
	s.sent = -1
	if w.conn == nil {
		c, err := net.DialTimeout("tcp", w.spec.addr, w.spec.timeout)
		if err != nil {
			s.done = w.now()
			s.kind = errDial
			if errors.Is(err, syscall.ECONNREFUSED) {
				s.kind = errRefused
			}
			if s.kind == errRefused {
				// A refused port answers at once; do not spin on it.
				time.Sleep(5 * time.Millisecond)
			}
			return
		}
		w.conn, w.used = c, false
		if w.br == nil {
			w.br = bufio.NewReaderSize(c, 8<<10)
		} else {
			w.br.Reset(c)
		}
	}
	w.req = append(w.req[:0], "GET "...)
	w.req = append(w.req, w.spec.path(w.rng)...)
	w.req = append(w.req, " HTTP/1.1\r\nHost: storefront\r\nUser-Agent: faults\r\n\r\n"...)
	s.reused = w.used
	w.used = true
	s.sent = w.now()
	_ = w.conn.SetDeadline(time.Now().Add(w.spec.timeout))
	if _, err := w.conn.Write(w.req); err != nil {
		s.done = w.now()
		s.kind = errClosed
		w.close()
		return
	}
	st, err := readResponse(w.br)
	s.done = w.now()
	s.status, s.retryAfter = st.status, st.retryAfter
	switch {
	case err == nil:
		s.kind = okResponse
		if st.close {
			w.close()
		}
		return
	case isTimeout(err):
		s.kind = errTimeout
	case st.gotBytes && errors.Is(err, errMalformed):
		s.kind = errProtocol
	case st.gotBytes:
		s.kind = errBroken
	default:
		s.kind = errClosed
	}
	w.close()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

var errMalformed = errors.New("malformed response")

// respHead is what the suite reads from a response.
type respHead struct {
	status     int
	retryAfter bool
	close      bool
	gotBytes   bool
	body       []byte // only when readResponseBody asks for it
}

// readResponse reads one response and discards its body.
func readResponse(br *bufio.Reader) (respHead, error) { return readResponseBody(br, false) }

// readResponseBody reads one HTTP/1.1 response (Content-Length bodies only,
// which is all storefront sends).
func readResponseBody(br *bufio.Reader, keepBody bool) (respHead, error) {
	var h respHead
	line, err := br.ReadSlice('\n')
	if len(line) > 0 {
		h.gotBytes = true
	}
	if err != nil {
		return h, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return h, errMalformed
	}
	h.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return h, errMalformed
	}
	length := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return h, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return h, errMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return h, errMalformed
			}
		case bytes.EqualFold(name, []byte("Retry-After")):
			h.retryAfter = len(value) > 0
		case bytes.EqualFold(name, []byte("Connection")):
			h.close = bytes.EqualFold(value, []byte("close"))
		}
	}
	if length < 0 {
		return h, errMalformed
	}
	if keepBody {
		h.body = make([]byte, length)
		_, err = io.ReadFull(br, h.body)
	} else {
		_, err = br.Discard(length)
	}
	return h, err
}

// pathMix returns a request path generator over ids known to exist: users,
// products and inventory in the proportions of a read-heavy store.
func pathMix(users, products []int64) func(*rand.Rand) string {
	return func(r *rand.Rand) string {
		switch x := r.IntN(10); {
		case x < 5:
			return "/users/" + strconv.FormatInt(users[r.IntN(len(users))], 10)
		case x < 8:
			return "/products/" + strconv.FormatInt(products[r.IntN(len(products))], 10)
		default:
			return "/inventory/" + strconv.FormatInt(products[r.IntN(len(products))], 10)
		}
	}
}

// stats summarises a set of samples.
type stats struct {
	Sent       int            `json:"sent"`
	Responses  int            `json:"responses"`
	Statuses   map[string]int `json:"statuses"`
	Errors     map[string]int `json:"errors,omitempty"`
	NoRetryAft int            `json:"503_without_retry_after,omitempty"`
	P50MS      float64        `json:"p50_ms"`
	P99MS      float64        `json:"p99_ms"`
	P99SentMS  float64        `json:"p99_from_send_ms"` // from the actual send: the server's part
	MaxMS      float64        `json:"max_ms"`
	RatePerS   float64        `json:"rate_per_s"`
}

// summarize counts the samples for which keep returns true (nil: all).
func summarize(ss []sample, keep func(*sample) bool) stats {
	st := stats{Statuses: map[string]int{}, Errors: map[string]int{}}
	var lat, fromSend []time.Duration
	var first, last time.Duration = -1, 0
	for i := range ss {
		s := &ss[i]
		if keep != nil && !keep(s) {
			continue
		}
		if s.sent >= 0 {
			st.Sent++
		}
		if first < 0 || s.intended < first {
			first = s.intended
		}
		last = max(last, s.intended)
		if s.kind != okResponse {
			st.Errors[kindNames[s.kind]]++
			continue
		}
		st.Responses++
		st.Statuses[strconv.Itoa(s.status)]++
		if s.status == 503 && !s.retryAfter {
			st.NoRetryAft++
		}
		lat = append(lat, s.latency())
		fromSend = append(fromSend, s.done-s.sent)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		st.P50MS = ms(pct(lat, 50))
		st.P99MS = ms(pct(lat, 99))
		st.MaxMS = ms(lat[len(lat)-1])
		slices.Sort(fromSend)
		st.P99SentMS = ms(pct(fromSend, 99))
	}
	if last > first {
		st.RatePerS = float64(st.Responses) / (last - first).Seconds()
	}
	return st
}

// failures counts requests that were not answered 2xx, by cause.
func (st stats) failures() int {
	n := 0
	for code, c := range st.Statuses {
		if code[0] != '2' {
			n += c
		}
	}
	for _, c := range st.Errors {
		n += c
	}
	return n
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (st stats) String() string {
	return fmt.Sprintf("sent=%d ok=%d statuses=%v errors=%v p50=%.1fms p99=%.1fms max=%.1fms",
		st.Sent, st.Responses, st.Statuses, st.Errors, st.P50MS, st.P99MS, st.MaxMS)
}

func sortDurations(d []time.Duration) { slices.Sort(d) }
