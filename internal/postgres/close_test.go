package postgres_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"storefront/internal/pgtest"
)

// freezingProxy forwards TCP connections to the PostgreSQL of dsn until it
// is frozen; from then on it accepts connections and reads what clients
// send, but forwards nothing either way, like a server that stopped
// (SIGSTOP, a hung host).
type freezingProxy struct {
	dsn    string
	mu     sync.Mutex
	frozen bool
	conns  []net.Conn
}

func newFreezingProxy(t *testing.T, dsn string) *freezingProxy {
	t.Helper()
	p := &freezingProxy{}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	p.dsn = listenProxy(t, dsn, func(client net.Conn, upstream string) {
		p.mu.Lock()
		p.conns = append(p.conns, client)
		p.mu.Unlock()
		if p.isFrozen() {
			go func() { _, _ = io.Copy(io.Discard, client) }()
			return
		}
		server, err := net.Dial("unix", upstream)
		if err != nil {
			client.Close()
			return
		}
		go p.forward(server, client)
		go p.forward(client, server)
	})
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db := openThrough(t, ctx, proxy.dsn)
	if !openThrough(t, ctx, proxy.dsn).CloseWithin(5 * time.Second) {
		t.Fatal("a pool of a working database did not close within 5 s")
	}

	proxy.freeze()
	qctx, qcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := db.Pool().Exec(qctx, "SELECT 1")
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
