package httpapi

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

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

// benchHandle drives the handler the way fasthttp does for each request,
// from parallel goroutines, so the coalescer sees concurrent lookups.
// Reported allocations are per request through the whole path: routing,
// the lookup (coalescer and pgx), encoding.
func benchHandle(b *testing.B, s *Server, path func(i int) string) {
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		i := 0
		for pb.Next() {
			i++
			ctx.Request.Reset()
			ctx.Response.Reset()
			ctx.Request.SetRequestURI(path(i))
			s.handle(&ctx)
			if sc := ctx.Response.StatusCode(); sc != 200 && sc != 404 {
				b.Fatalf("status %d: %s", sc, ctx.Response.Body())
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
