package postgres_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"storefront/internal/pgtest"
	"storefront/internal/postgres"
)

// freezingProxy forwards TCP connections to the PostgreSQL of dsn until it
// is frozen; from then on it accepts connections and reads what clients
// send, but forwards nothing either way, like a server that stopped
// (SIGSTOP, a hung host).
type freezingProxy struct {
	ln     net.Listener
	dsn    string
	mu     sync.Mutex
	frozen bool
}

func newFreezingProxy(t *testing.T, dsn string) *freezingProxy {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	upstream := fmt.Sprintf("%s/.s.PGSQL.%d", cfg.Host, cfg.Port)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &freezingProxy{ln: ln}
	p.dsn = fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", ln.Addr().(*net.TCPAddr).Port, cfg.User, cfg.Database)
	var conns []net.Conn
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			conns = append(conns, client)
			p.mu.Unlock()
			if p.isFrozen() {
				go func() { _, _ = io.Copy(io.Discard, client) }()
				continue
			}
			server, err := net.Dial("unix", upstream)
			if err != nil {
				client.Close()
				continue
			}
			go p.forward(server, client)
			go p.forward(client, server)
		}
	}()
	return p
}

func (p *freezingProxy) isFrozen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen
}

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// forward copies src to dst until the proxy freezes, then swallows src.
func (p *freezingProxy) forward(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if p.isFrozen() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// TestCloseWithinBoundsAHungServer: with the server hung while a query was
// cancelled, closing the pool waits for the cancel request pgx sends (up
// to 15 s); CloseWithin gives up after its bound instead.
func TestCloseWithinBoundsAHungServer(t *testing.T) {
	proxy := newFreezingProxy(t, pgtest.NewDatabase(t))
	cfg := postgres.DefaultConfig()
	cfg.DSN, cfg.Coalesce, cfg.MaxConns = proxy.dsn, false, 2
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if !func() bool { // a working database closes at once
		db2, err := postgres.Open(ctx, cfg, nil)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return db2.CloseWithin(5 * time.Second)
	}() {
		t.Fatal("a pool of a working database did not close within 5 s")
	}

	proxy.freeze()
	qctx, qcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = db.Pool().Exec(qctx, "SELECT 1")
	qcancel()
	if err == nil {
		t.Fatal("a query through a frozen proxy succeeded")
	}
	start := time.Now()
	closed := db.CloseWithin(500 * time.Millisecond)
	took := time.Since(start)
	if closed || took > 5*time.Second {
		t.Fatalf("CloseWithin(500ms) of a hung server: closed %v after %v; want false, well before pgx's 15 s", closed, took)
	}
}
