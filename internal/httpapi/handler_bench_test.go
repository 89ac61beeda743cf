package httpapi

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"storefront/internal/pgtest"
	"storefront/internal/postgres"
)

// benchServer is the real handler over a clone of the seeded database.
func benchServer(b *testing.B, coalesce bool) *Server {
	b.Helper()
	cfg := postgres.DefaultConfig()
	cfg.DSN = pgtest.NewDatabase(b)
	cfg.Coalesce = coalesce
	// A benchmark measures cost, not failure: a busy machine must not turn
	// slow lookups into 503s.
	cfg.AcquireTimeout, cfg.StatementTimeout = 10*time.Second, 10*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	hc := DefaultConfig()
	hc.StaticRoute = true
	hc.Shed = false
	hc.RequestTimeout = 30 * time.Second
	return New(hc, Services{Users: db, Products: db, Inventory: db, Health: db}, nil, nil)
}

// benchHandle serves requests through the real server on loopback TCP,
// from 32 keep-alive connections at once, so the coalescer sees
// concurrent lookups. Time and allocations per request cover the whole
// path, the clients' side included: parsing, routing, the lookup
// (coalescer and pgx), encoding, and the socket I/O.
func benchHandle(b *testing.B, s *Server, path func(i int) string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(ln)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	b.ReportAllocs()
	b.SetParallelism(16) // 16 × GOMAXPROCS connections
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		var req []byte
		i := 0
		for pb.Next() {
			i++
			req = append(append(append(req[:0], "GET "...), path(i)...), " HTTP/1.1\r\nHost: bench\r\n\r\n"...)
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				b.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 && resp.StatusCode != 404 {
				b.Errorf("status %d: %s", resp.StatusCode, body)
				return
			}
		}
	})
}

func userPath(i int) string { return "/users/" + strconv.Itoa(1+i%pgtest.Users) }

func BenchmarkHandleStatic(b *testing.B) {
	s := benchServer(b, true)
	benchHandle(b, s, func(int) string { return "/_bench/static" })
}

func BenchmarkHandleUserCoalesced(b *testing.B) {
	benchHandle(b, benchServer(b, true), userPath)
}

func BenchmarkHandleUserUncoalesced(b *testing.B) {
	benchHandle(b, benchServer(b, false), userPath)
}
