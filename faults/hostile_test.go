package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowlorisSlackMS is how far, in ms, the p99 under slowloris may exceed
// the baseline's even when that is more than 20 % (see its use).
const slowlorisSlackMS = 2

// Scenario 6: hostile clients while normal load runs. Slowloris connections
// are cut at the read timeout without hurting the others; oversized headers
// get 431, oversized bodies 413; malformed requests of every kind never get
// a 500, never crash the server, and it keeps serving.
func TestHostileClients(t *testing.T) {
	const readTimeout = 5 * time.Second // storefront's default --read-timeout
	srv := startServer(t, serverOpts{})
	paths := pathMix(env.users, env.products)
	rate := params.hostileRate
	ctx := context.Background()

	// Baseline: the normal load alone.
	base := summarize(runLoad(ctx, loadSpec{addr: srv.addr, rate: rate, duration: 3 * time.Second, conns: 64, path: paths}).samples, nil)

	// Normal load for the whole hostile part.
	hostileFor := readTimeout + 4*time.Second + time.Duration(params.malformed/2000)*time.Second
	done := make(chan *loadResult, 1)
	starts := make(chan time.Time, 1)
	go func() {
		done <- runLoad(ctx, loadSpec{addr: srv.addr, rate: rate, duration: hostileFor, conns: 64, path: paths, start: starts})
	}()
	loadStart := <-starts

	// Slowloris: every connection sends a request line and then one header
	// byte a second, never finishing. Each must be closed by the server at
	// about the read timeout.
	slow := slowloris(t, srv.addr, params.slowloris, readTimeout+3*time.Second)

	// Oversized headers and body.
	bigHeader := exchange(t, srv.addr, "GET /users/1 HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 16<<10)+"\r\n\r\n")
	bigBody := exchange(t, srv.addr, "GET /users/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n"+strings.Repeat("b", 10000))
	mustf(t, bigHeader.status == 431, "oversized headers: status %d, want 431", bigHeader.status)
	mustf(t, bigBody.status == 413, "oversized body: status %d, want 413", bigBody.status)

	// Malformed requests.
	mal := malformed(t, srv.addr, params.malformed)

	normal := <-done
	during := summarize(normal.samples, nil)
	// Others' latency while every slow connection is held: from the last
	// one opened to the first one cut.
	from, to := slow.lastOpened.Sub(loadStart), slow.firstOpened.Add(readTimeout).Sub(loadStart)
	if to-from < time.Second {
		from, to = 0, readTimeout
	}
	slowloris := summarize(normal.samples, func(s *sample) bool { return s.intended >= from && s.intended < to })
	code, _ := srv.get(srv.addr, "/healthz")

	checkAnswers(t, "normal load", normal.samples, answerBound)
	mustf(t, during.failures() <= allowedFailures(during.Sent), "normal requests failed during the hostile traffic: %v", during)
	mustf(t, slow.cutLate == 0 && slow.open == 0, "slowloris: %d connections not cut by %v, %d still open", slow.cutLate, readTimeout+time.Second, slow.open)
	mustf(t, mal.status5xx == 0, "malformed requests answered 5xx: %d (%v), e.g. %q", mal.status5xx, mal.statuses, mal.example)
	mustf(t, mal.notJSON == 0, "malformed requests answered with a body that is not JSON: %d, e.g. %q", mal.notJSON, mal.example)
	mustf(t, mal.leaks == 0, "responses naming internals: %d, e.g. %q", mal.leaks, mal.example)
	mustf(t, code == 200, "/healthz after the hostile traffic: %d", code)
	mustf(t, !srv.logContains("panic"), "the server logged a panic")
	select {
	case <-srv.exited:
		t.Errorf("storefront died: %v", srv.exitErr)
	default:
	}
	p99Ratio := slowloris.P99MS / max(base.P99MS, 0.001)
	if full {
		// Within 20 % of the baseline, or within slowlorisSlackMS of it:
		// with a baseline p99 of 4-5 ms on two cores, the slowloris
		// client's own 5,000 writes a second on those cores move the p99
		// by 1-2 ms (measured: 4.2 -> 6.0 ms), which says nothing about
		// slow connections hurting the others.
		mustf(t, p99Ratio <= 1.2 || slowloris.P99MS-base.P99MS <= slowlorisSlackMS,
			"p99 under slowloris %.1f ms vs baseline %.1f ms: more than 20 %% and %.0f ms above it", slowloris.P99MS, base.P99MS, float64(slowlorisSlackMS))
	}
	report(t, result{
		Name: "6 hostile-clients",
		Load: fmt.Sprintf("%s normal load; %d slowloris conns; oversized header and body; %d malformed requests", fmtRate(rate), params.slowloris, params.malformed),
		Figures: map[string]any{
			"baseline_p99_ms":        base.P99MS,
			"slowloris_p99_ms":       slowloris.P99MS,
			"slowloris_p99_ratio":    round1(p99Ratio),
			"normal_failed":          during.failures(),
			"slow_opened":            slow.opened,
			"slow_open_ms":           ms(slow.lastOpened.Sub(slow.firstOpened)),
			"slow_cut_p50_ms":        ms(slow.cutP50),
			"slow_cut_max_ms":        ms(slow.cutMax),
			"oversized_header":       bigHeader.status,
			"oversized_body":         bigBody.status,
			"malformed_statuses":     mal.statuses,
			"malformed_closed":       mal.closed,
			"malformed_5xx":          mal.status5xx,
			"malformed_not_json":     mal.notJSON,
			"malformed_leaks":        mal.leaks,
			"healthz_after":          code,
			"malformed_requests_per": fmt.Sprintf("%.0f/s", mal.rate),
		},
	})
}

// slowResult is what happened to the slowloris connections.
type slowResult struct {
	firstOpened, lastOpened time.Time
	opened, open, cutLate   int
	cutP50, cutMax          time.Duration
}

// slowloris opens n slow connections and waits up to wait for the server
// to close them.
func slowloris(t *testing.T, addr string, n int, wait time.Duration) slowResult {
	t.Helper()
	var (
		mu   sync.Mutex
		cuts []time.Duration
		res  slowResult
		wg   sync.WaitGroup
	)
	deadline := time.Now().Add(wait)
	sem := make(chan struct{}, 200) // dial in parallel, not all at once
	for i := range n {
		sem <- struct{}{}
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		<-sem
		if err != nil {
			t.Errorf("slowloris dial %d: %v", i, err)
			break
		}
		res.opened++
		if res.firstOpened.IsZero() {
			res.firstOpened = time.Now()
		}
		res.lastOpened = time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			opened := time.Now()
			if _, err := c.Write([]byte("GET /users/1 HTTP/1.1\r\nHost: x\r\nX-Slow: ")); err != nil {
				return
			}
			buf := make([]byte, 512)
			for {
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				_, err := c.Read(buf)
				if err == nil || !isTimeout(err) {
					// The server answered (408) or closed: cut.
					mu.Lock()
					cuts = append(cuts, time.Since(opened))
					mu.Unlock()
					return
				}
				if time.Now().After(deadline) {
					mu.Lock()
					res.open++
					mu.Unlock()
					return
				}
				if _, err := c.Write([]byte("a")); err != nil {
					mu.Lock()
					cuts = append(cuts, time.Since(opened))
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(cuts) > 0 {
		sortDurations(cuts)
		res.cutP50, res.cutMax = pct(cuts, 50), cuts[len(cuts)-1]
	}
	for _, c := range cuts {
		if c > 5*time.Second+1500*time.Millisecond {
			res.cutLate++
		}
	}
	return res
}

// exchange sends raw on a fresh connection and reads one response.
func exchange(t *testing.T, addr, raw string) respHead {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte(raw))
	h, err := readResponseBody(bufio.NewReader(c), true)
	if err != nil && h.status == 0 {
		t.Errorf("no response to a %d-byte request: %v", len(raw), err)
	}
	return h
}

// malResult counts the answers to malformed requests.
type malResult struct {
	statuses  map[int]int
	closed    int // connection closed without a response (allowed)
	status5xx int
	notJSON   int
	leaks     int // bodies naming internals (SQL state, driver, panic)
	example   string
	rate      float64
}

// malformed sends n malformed requests over a few connections, redialing
// whenever the server closes one.
func malformed(t *testing.T, addr string, n int) malResult {
	t.Helper()
	res := malResult{statuses: map[int]int{}}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			var c net.Conn
			var br *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for next.Add(1) <= int64(n) {
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp", addr, 2*time.Second); err != nil {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					br = bufio.NewReader(c)
				}
				// Well-formed requests are answered in milliseconds; an
				// incomplete one is held until the read timeout, which is not
				// what this part measures.
				_ = c.SetDeadline(time.Now().Add(time.Second))
				req := badRequest(rng)
				_, werr := c.Write(req)
				h, err := readResponseBody(br, true)
				mu.Lock()
				if h.status != 0 && err == nil {
					res.statuses[h.status]++
					if h.status >= 500 && !(h.status == 503 && h.retryAfter) {
						res.status5xx++
						if res.example == "" {
							res.example = string(req)
						}
					}
					if leaky(h.body) {
						res.leaks++
						if res.example == "" {
							res.example = string(req) + " -> " + string(h.body)
						}
					}
					if !json.Valid(h.body) {
						res.notJSON++
						if res.example == "" {
							res.example = string(req) + " -> " + string(h.body)
						}
					}
				} else {
					res.closed++
				}
				mu.Unlock()
				if err != nil || werr != nil || h.close {
					c.Close()
					c = nil
				}
			}
		}()
	}
	wg.Wait()
	res.rate = float64(n) / time.Since(start).Seconds()
	return res
}

// badRequest returns one hostile request, cycling through kinds.
func badRequest(r *rand.Rand) []byte {
	longID := strings.Repeat("9", 1+r.IntN(5000))
	switch r.IntN(12) {
	case 0: // random bytes
		b := make([]byte, 1+r.IntN(300))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return append(b, "\r\n\r\n"...)
	case 1: // broken request lines
		lines := []string{"GET\r\n\r\n", "GET /users/1\r\n\r\n", "GET /users/1 HTTP/9.9\r\n\r\n", " / HTTP/1.1\r\n\r\n",
			"G\x00T /users/1 HTTP/1.1\r\nHost: x\r\n\r\n", "GET /users/1 HTTP/1.1\r\nNoColonHeader\r\n\r\n",
			"GET /users/1 HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
			"GET /users/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
			"GET /users/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
			"\r\n\r\n", "GET /users/1 HTTP/1.1\nHost: x\n\n", "GET http://evil/users/1 HTTP/1.1\r\nHost: x\r\n\r\n",
			"POST /users/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", "DELETE /products/1 HTTP/1.1\r\nHost: x\r\n\r\n"}
		return []byte(lines[r.IntN(len(lines))])
	case 2: // bad UTF-8 and control bytes in the path
		return []byte("GET /users/\xff\xfe\xfd HTTP/1.1\r\nHost: x\r\n\r\n")
	case 3: // dot-dot paths
		ps := []string{"/users/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/products/..%2f..%2f", "/inventory/./../users/1", "/../readyz"}
		return get(ps[r.IntN(len(ps))])
	case 4: // SQL metacharacters
		ps := []string{"/users/1'%20OR%20'1'='1", "/products/by-sku/';DROP%20TABLE%20users;--", "/products?ids=1,2);--",
			"/products/by-sku/%27%22%5C%00", "/inventory/1;SELECT%20pg_sleep(10)", "/products/by-sku/" + strings.Repeat("%25", 30)}
		return get(ps[r.IntN(len(ps))])
	case 5: // very long ids
		ps := []string{"/users/" + longID, "/products/-" + longID, "/inventory/" + longID, "/products?ids=" + strings.Repeat("1,", 1+r.IntN(2000))}
		return get(ps[r.IntN(len(ps))])
	case 6: // odd but valid ids
		ids := []string{"0", "-1", "9223372036854775807", "9223372036854775808", "1e3", "0x10", "+1", "%31", " 1", "1.0"}
		return get("/users/" + strings.ReplaceAll(ids[r.IntN(len(ids))], " ", "%20"))
	case 7: // hostile headers
		return []byte("GET /users/1 HTTP/1.1\r\nHost: x\r\nX-Request-ID: " + strings.Repeat("\xff", 200) + "\r\nAccept: \x01\x02\r\n\r\n")
	case 8: // many headers
		var b strings.Builder
		b.WriteString("GET /users/1 HTTP/1.1\r\nHost: x\r\n")
		for i := range 50 + r.IntN(500) {
			b.WriteString("X-H" + strconv.Itoa(i) + ": v\r\n")
		}
		b.WriteString("\r\n")
		return []byte(b.String())
	case 9: // unknown and odd methods
		ms := []string{"PUT", "PATCH", "OPTIONS", "TRACE", "CONNECT", "BREW", "get", strings.Repeat("X", 100)}
		return []byte(ms[r.IntN(len(ms))] + " /users/1 HTTP/1.1\r\nHost: x\r\n\r\n")
	case 10: // query string noise
		return get("/products?ids=" + strings.Repeat("%", r.IntN(10)) + "&ids=1&&=&ids[]=2")
	default: // a normal request now and then
		return get("/users/" + strconv.Itoa(1+r.IntN(seedUsers)))
	}
}

// leaky reports a response whose error message names storefront's
// internals (the request id is random and may spell anything).
func leaky(body []byte) bool {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	for _, w := range []string{"sqlstate", "pgx", "postgres", "goroutine", "panic", "runtime error", "storefront/internal"} {
		if strings.Contains(strings.ToLower(e.Error), w) {
			return true
		}
	}
	return false
}

func get(path string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
}
