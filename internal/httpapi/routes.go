package httpapi

import (
	"bytes"
	"context"
	"time"

	"github.com/valyala/fasthttp"

	"storefront/internal/shop"
)

var (
	headerRequestID   = []byte("X-Request-ID")
	headerRetryAfter  = []byte("Retry-After")
	headerAllow       = []byte("Allow")
	retryAfterSeconds = []byte("1")
	allowGetHead      = []byte("GET, HEAD")
	contentTypeJSON   = []byte("application/json")

	prefixUsers       = []byte("/users/")
	prefixProductSKU  = []byte("/products/by-sku/")
	prefixProducts    = []byte("/products/")
	pathProducts      = []byte("/products")
	prefixInventory   = []byte("/inventory/")
	pathHealthz       = []byte("/healthz")
	pathReadyz        = []byte("/readyz")
	pathStatic        = []byte("/_bench/static")
	argIDs            = []byte("ids")
	bodyHealthy       = []byte(`{"status":"ok"}`)
	bodyReady         = []byte(`{"status":"ready"}`)
	maxSKULen         = 64
	readinessDeadline = time.Second
)

// handle is the whole public API: route on the path by hand (no router
// framework, nothing allocated), check the method, call the domain, encode.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	s.metrics.inFlight.Add(1)
	s.setRequestID(ctx)

	route, param := matchRoute(ctx.Path(), s.cfg.StaticRoute)
	switch {
	case route == routeUnknown:
		s.writeError(ctx, fasthttp.StatusNotFound, "no such route")
	case !ctx.IsGet() && !ctx.IsHead():
		ctx.Response.Header.SetBytesKV(headerAllow, allowGetHead)
		s.writeError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed; use GET or HEAD")
	default:
		s.serveRoute(ctx, route, param)
	}

	if s.closing.Load() {
		ctx.SetConnectionClose()
	}
	status := ctx.Response.StatusCode()
	elapsed := time.Since(start)
	s.metrics.observe(route, status, elapsed)
	s.metrics.inFlight.Add(-1)
	if n := s.cfg.AccessLogEvery; n > 0 && s.reqSeq.Add(1)%uint64(n) == 0 {
		s.logger.Info("request", "request_id", string(ctx.Response.Header.PeekBytes(headerRequestID)),
			"method", string(ctx.Method()), "path", string(ctx.Path()), "status", status,
			"duration_ms", float64(elapsed.Microseconds())/1000, "remote", ctx.RemoteAddr().String())
	}
}

// matchRoute maps a path to a route and its parameter (id or SKU).
func matchRoute(path []byte, static bool) (route, []byte) {
	switch {
	case bytes.HasPrefix(path, prefixUsers):
		return routeUser, path[len(prefixUsers):]
	case bytes.HasPrefix(path, prefixProductSKU):
		return routeProductBySKU, path[len(prefixProductSKU):]
	case bytes.HasPrefix(path, prefixProducts):
		return routeProduct, path[len(prefixProducts):]
	case bytes.Equal(path, pathProducts):
		return routeProducts, nil
	case bytes.HasPrefix(path, prefixInventory):
		return routeInventory, path[len(prefixInventory):]
	case bytes.Equal(path, pathHealthz):
		return routeHealthz, nil
	case bytes.Equal(path, pathReadyz):
		return routeReadyz, nil
	case static && bytes.Equal(path, pathStatic):
		return routeStatic, nil
	}
	return routeUnknown, nil
}

func (s *Server) serveRoute(ctx *fasthttp.RequestCtx, r route, param []byte) {
	admittedAt, ok := s.admit(ctx, r)
	if !ok {
		return
	}
	defer s.admitted(ctx, admittedAt)
	switch r {
	case routeHealthz:
		s.writeJSON(ctx, bodyHealthy)
		return
	case routeReadyz:
		s.serveReadyz(ctx)
		return
	case routeStatic:
		s.writeJSON(ctx, s.static)
		return
	case routeProducts:
		s.serveProducts(ctx)
		return
	case routeProductBySKU:
		s.serveProductBySKU(ctx, param)
		return
	}

	id, err := parseID(param)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	buf := s.bufs.get()
	defer s.bufs.put(buf)
	rctx := s.requestContext(buf)
	switch r {
	case routeUser:
		u, err := s.svc.Users.User(rctx, id)
		if err != nil {
			s.fail(ctx, err)
			return
		}
		buf.b = appendUser(buf.b[:0], &u)
	case routeProduct:
		p, err := s.svc.Products.Product(rctx, id)
		if err != nil {
			s.fail(ctx, err)
			return
		}
		buf.b = appendProduct(buf.b[:0], &p)
	case routeInventory:
		st, err := s.svc.Inventory.Stock(rctx, id)
		if err != nil {
			s.fail(ctx, err)
			return
		}
		buf.b = appendStock(buf.b[:0], &st)
	}
	s.writeJSON(ctx, buf.b)
}

func (s *Server) serveProductBySKU(ctx *fasthttp.RequestCtx, sku []byte) {
	if !validSKU(sku) {
		s.fail(ctx, shop.Errorf(shop.EINVALID, "SKU must be 1-%d characters of UTF-8 text without '/'", maxSKULen))
		return
	}
	buf := s.bufs.get()
	defer s.bufs.put(buf)
	p, err := s.svc.Products.ProductBySKU(s.requestContext(buf), string(sku))
	if err != nil {
		s.fail(ctx, err)
		return
	}
	buf.b = appendProduct(buf.b[:0], &p)
	s.writeJSON(ctx, buf.b)
}

func (s *Server) serveProducts(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	if !args.Has("ids") {
		s.fail(ctx, shop.Errorf(shop.EINVALID, "query parameter ids is required, e.g. /products?ids=1,2,3"))
		return
	}
	ids, err := parseIDList(args.PeekBytes(argIDs))
	if err != nil {
		s.fail(ctx, err)
		return
	}
	buf := s.bufs.get()
	defer s.bufs.put(buf)
	ps, err := s.svc.Products.Products(s.requestContext(buf), ids)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	var missing []int64
	for _, id := range ids {
		if !containsProduct(ps, id) && !containsID(missing, id) {
			missing = append(missing, id)
		}
	}
	buf.b = appendProducts(buf.b[:0], ps, missing)
	s.writeJSON(ctx, buf.b)
}

func (s *Server) serveReadyz(ctx *fasthttp.RequestCtx) {
	if s.draining.Load() {
		s.writeError(ctx, fasthttp.StatusServiceUnavailable, "shutting down")
		return
	}
	rctx, cancel := context.WithTimeout(context.Background(), readinessDeadline)
	defer cancel()
	if err := s.svc.Health.Ping(rctx); err != nil {
		s.fail(ctx, shop.Wrap(shop.EUNAVAILABLE, "database unreachable", err))
		return
	}
	s.writeJSON(ctx, bodyReady)
}

// setRequestID echoes a well-formed caller id or generates one.
func (s *Server) setRequestID(ctx *fasthttp.RequestCtx) {
	if id := ctx.Request.Header.PeekBytes(headerRequestID); validRequestID(id) {
		ctx.Response.Header.SetBytesKV(headerRequestID, id)
		return
	}
	var scratch [48]byte
	ctx.Response.Header.SetBytesKV(headerRequestID, s.ids.appendNext(scratch[:0]))
}

func (s *Server) writeJSON(ctx *fasthttp.RequestCtx, body []byte) {
	ctx.SetContentTypeBytes(contentTypeJSON)
	ctx.SetBody(body)
}

func containsProduct(ps []shop.Product, id int64) bool {
	for i := range ps {
		if ps[i].ID == id {
			return true
		}
	}
	return false
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
