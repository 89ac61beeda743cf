package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"storefront/internal/httpapi"
	"storefront/internal/pgtest"
	"storefront/internal/postgres"
)

// FuzzHandler sends arbitrary requests (method, path, one header, body)
// through the real server and handler, over loopback TCP, with the seeded
// PostgreSQL behind them. Whatever comes in: no panic, no
// 5xx but 503, every body is JSON, and none names the internals.
func FuzzHandler(f *testing.F) {
	for _, seed := range []struct {
		method, path, name, value string
		body                      []byte
	}{
		{"GET", "/users/1", "Accept", "application/json", nil},
		{"HEAD", "/products/2", "X-Request-ID", "abc-123", nil},
		{"GET", "/products?ids=1,2,3", "", "", nil},
		{"GET", "/products/by-sku/%00%ff", "", "", nil},
		{"GET", "/inventory/99999999999999999999", "", "", nil},
		{"POST", "/users/1", "Content-Type", "application/json", []byte(`{"a":1}`)},
		{"GET", "/users/../readyz", "X-Request-ID", "\xff\xfe", nil},
		{"GET", "/products/by-sku/';DROP TABLE users;--", "", "", nil},
		{"GET\x00", "/healthz", "Content-Length", "-1", nil},
	} {
		f.Add(seed.method, seed.path, seed.name, seed.value, seed.body)
	}

	// Taken before f.Fuzz: under -fuzz this starts the coordinator's
	// cluster, which its workers then share (see pgtest), each with a
	// database and a small pool of its own: a worker sends one request at
	// a time.
	dbCfg := postgres.DefaultConfig()
	dbCfg.DSN = pgtest.NewDatabase(f)
	dbCfg.MinConns, dbCfg.MaxConns = 1, 4
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, dbCfg, nil)
	if err != nil {
		f.Fatal(err)
	}
	cfg := httpapi.DefaultConfig()
	cfg.ReadTimeout = 200 * time.Millisecond // an incomplete request is answered 408 at once
	srv := httpapi.New(cfg, httpapi.Services{Users: db, Products: db, Inventory: db, Health: db}, nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(ln)
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		db.Close()
	})

	f.Fuzz(func(t *testing.T, method, path, name, value string, body []byte) {
		var req strings.Builder
		fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: storefront\r\n", method, path)
		if name != "" {
			fmt.Fprintf(&req, "%s: %s\r\n", name, value)
		}
		if len(body) > 0 {
			fmt.Fprintf(&req, "Content-Length: %d\r\n", len(body))
		}
		req.WriteString("\r\n")
		req.Write(body)

		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(req.String())); err != nil {
			return // the server closed first: nothing to check
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
		if err != nil {
			return // closed without an answer: allowed for garbage
		}
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%q: status %d, body cut short: %v", req.String(), resp.StatusCode, err)
		}
		status := resp.StatusCode
		if status >= 500 && status != http.StatusServiceUnavailable {
			t.Fatalf("%q: status %d: %s", req.String(), status, got)
		}
		if b := got; len(b) > 0 && !json.Valid(b) {
			t.Fatalf("%q: status %d, body not JSON: %q", req.String(), status, b)
		}
		var e struct {
			Error string `json:"error"` // the request id is random and may spell anything
		}
		_ = json.Unmarshal(got, &e)
		for _, internal := range []string{"SQLSTATE", "pgx", "goroutine", "runtime error"} {
			if strings.Contains(e.Error, internal) {
				t.Fatalf("%q: status %d, error names internals: %q", req.String(), status, got)
			}
		}
	})
}
