// Package httpapi is storefront's HTTP room: the public listener (on the
// evhttp event loops), routing, request ids, id parsing, JSON encoding, and
// the single mapping from domain errors to HTTP statuses. It also serves
// the admin listener (metrics, pprof) with net/http.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"storefront/internal/evhttp"
	"storefront/internal/shop"
)

// Config tunes the public listener.
type Config struct {
	ReadTimeout    time.Duration // whole request (headers and body); cuts slow clients
	WriteTimeout   time.Duration
	IdleTimeout    time.Duration // keep-alive connections idle longer are closed
	RequestTimeout time.Duration // deadline for the lookups behind one request
	MaxHeaderBytes int           // larger request headers get 431
	MaxBodyBytes   int           // larger request bodies get 413
	MaxConns       int           // concurrent connections served; more are refused
	// EventLoops is the number of event loops serving connections; 0 means
	// one per CPU (GOMAXPROCS); at most maxEventLoops.
	EventLoops int
	// StaticRoute enables GET /_bench/static/{user,product,inventory}
	// (/_bench/static is the user), in-memory JSON responses of the shape
	// and size of each database-backed answer, used to measure the HTTP
	// cost alone.
	StaticRoute bool
	// AccessLogEvery logs one request in N at info level; 0 disables the
	// access log (the default: logging every request costs more than
	// serving it).
	AccessLogEvery int
	// Shed turns on admission control of the database-backed routes: an
	// adaptive limit on requests in flight (admission.go); requests over it
	// get an immediate 503 with Retry-After.
	Shed bool
	// ShedMaxInFlight is where the adaptive limit starts, and its ceiling.
	ShedMaxInFlight int
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		ReadTimeout:    5 * time.Second,
		WriteTimeout:   5 * time.Second,
		IdleTimeout:    90 * time.Second,
		RequestTimeout: 2 * time.Second,
		MaxHeaderBytes: 8 << 10,
		MaxBodyBytes:   4 << 10,
		MaxConns:       20000,

		Shed:            true,
		ShedMaxInFlight: 1024,
	}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, msg string) {
		if !ok {
			errs = append(errs, errors.New(msg))
		}
	}
	check(c.ReadTimeout > 0, "read timeout must be > 0")
	check(c.WriteTimeout > 0, "write timeout must be > 0")
	check(c.IdleTimeout > 0, "idle timeout must be > 0")
	check(c.RequestTimeout > 0, "request timeout must be > 0")
	check(c.MaxHeaderBytes >= 1024, "max header bytes must be >= 1024")
	check(c.MaxBodyBytes >= 0, "max body bytes must be >= 0")
	check(c.MaxConns > 0, "max connections must be > 0")
	check(c.EventLoops >= 0 && c.EventLoops <= maxEventLoops, fmt.Sprintf("event loops must be between 0 and %d", maxEventLoops))
	check(c.AccessLogEvery >= 0, "access log sampling must be >= 0")
	check(!c.Shed || c.ShedMaxInFlight >= admissionMinLimit, fmt.Sprintf("shed max in-flight must be >= %d", admissionMinLimit))
	return errors.Join(errs...)
}

// maxEventLoops bounds Config.EventLoops: each loop takes two descriptors
// and a 64 KB read buffer, and loops beyond the CPUs only take turns.
const maxEventLoops = 256

// Services are the domain services the API serves.
type Services struct {
	Users     shop.UserService
	Products  shop.ProductService
	Inventory shop.InventoryService
	Health    shop.HealthChecker
}

// Server is the public API server.
type Server struct {
	cfg     Config
	svc     Services
	logger  *slog.Logger
	metrics *Metrics
	ids     *requestIDs
	http    *evhttp.Server

	bufs     bufPool
	draining atomic.Bool
	adm      *admission // nil when shedding is off
	reqSeq   atomic.Uint64
	static   staticBodies
	// lastDropLog is when a dropped connection was last logged (Unix
	// nanoseconds): at most one warning per dropLogEvery.
	lastDropLog atomic.Int64
}

// dropLogEvery spaces the warnings about dropped connections.
const dropLogEvery = 10 * time.Second

// staticBodies are the benchmark-only in-memory responses, indexed by
// staticKind: one answer of each database-backed route, as large as that
// route's average answer in the benchmark data (users about 110 bytes,
// products and stock about 260).
type staticBodies [3][]byte

// Indexes into staticBodies.
const (
	staticUser = iota
	staticProduct
	staticStock
)

func newStaticBodies() staticBodies {
	return staticBodies{
		staticUser: appendUser(nil, &shop.User{ID: 424242, Username: "static.user42", Email: "static.user42@example.com",
			LastActive: time.Unix(1795785518, 160000000)}),
		staticProduct: appendProduct(nil, &shop.Product{ID: 42424, SKU: "SKU-0042424-ST", Name: "Static Bench Lamp",
			Description: "Static bench lamp from our Home & Garden range. A customer favourite for years.",
			PriceCents:  4999, Currency: "EUR", Category: "Home & Garden", UpdatedAt: time.Unix(1765535227, 0)}),
		staticStock: appendStock(nil, &shop.Stock{ProductID: 42424, Warehouses: []shop.WarehouseStock{
			{WarehouseID: 1, Warehouse: "FRA1", OnHand: 42, Reserved: 3},
			{WarehouseID: 2, Warehouse: "IAD1", OnHand: 6, Reserved: 0},
			{WarehouseID: 3, Warehouse: "SIN1", OnHand: 9, Reserved: 1}}}),
	}
}

// New returns a server; it does not listen yet.
func New(cfg Config, svc Services, logger *slog.Logger, metrics *Metrics) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if metrics == nil {
		metrics = NewMetrics()
	}
	s := &Server{cfg: cfg, svc: svc, logger: logger, metrics: metrics, ids: newRequestIDs()}
	if cfg.Shed {
		s.adm = newAdmission(cfg.ShedMaxInFlight)
	}
	if cfg.StaticRoute {
		s.static = newStaticBodies()
		metrics.withStaticRoute()
	}
	s.http = evhttp.NewServer(evhttp.Config{
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		ReadTimeout:    cfg.ReadTimeout,
		WriteTimeout:   cfg.WriteTimeout,
		IdleTimeout:    cfg.IdleTimeout,
		MaxConns:       cfg.MaxConns,
		Loops:          cfg.EventLoops,
		CloseGrace:     idleCloseGrace,
		OnDropped:      s.connectionDropped,
	}, handler{s})
	return s
}

// connectionDropped counts a connection the server could not take (out of
// descriptors or memory) and warns, at most once per dropLogEvery.
func (s *Server) connectionDropped(err error) {
	n := s.metrics.dropped.Add(1)
	now := time.Now().UnixNano()
	last := s.lastDropLog.Load()
	if now-last < int64(dropLogEvery) || !s.lastDropLog.CompareAndSwap(last, now) {
		return
	}
	s.logger.Warn("client connection dropped: out of file descriptors or memory; raise the open-files limit (ulimit -n) or lower --max-conns",
		"err", err.Error(), "dropped_total", n)
}

// Serve accepts connections on ln until Shutdown. It returns nil after a
// clean shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.http.Serve(ln)
}

// StartDraining makes /readyz answer 503 so load balancers stop sending new
// work; requests are still served.
func (s *Server) StartDraining() { s.draining.Store(true) }

// Shutdown stops accepting, lets in-flight requests finish until ctx ends,
// then closes every connection. See shutdown.go for the order.
func (s *Server) Shutdown(ctx context.Context) error {
	s.StartDraining()
	if err := s.http.Shutdown(ctx); err != nil {
		return fmt.Errorf("drain deadline passed with requests in flight: %w", err)
	}
	return nil
}

// bufPool recycles encode buffers.
type bufPool struct{ p sync.Pool }

// buffer is one response's encode buffer.
type buffer struct{ b []byte }

func (p *bufPool) get() *buffer {
	if b, ok := p.p.Get().(*buffer); ok {
		return b
	}
	return &buffer{b: make([]byte, 0, 1024)}
}

func (p *bufPool) put(b *buffer) {
	if cap(b.b) <= 64<<10 { // do not keep rare huge buffers alive
		p.p.Put(b)
	}
}
