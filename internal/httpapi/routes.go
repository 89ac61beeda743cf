package httpapi

import (
	"bytes"
	"context"
	"time"

	"storefront/internal/evhttp"
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
	readinessDeadline = time.Second
)

// handler adapts the Server to the event loops' interface.
type handler struct{ s *Server }

// exchange is the API's side of one connection's current request; it
// lives in the evhttp.Exchange's State and is reused for the connection's
// next request, so serving a request allocates nothing.
type exchange struct {
	s        *Server
	x        *evhttp.Exchange
	route    route
	start    time.Time
	admitted time.Time // when admission control let the request in; zero: it did not take part
	rid      []byte    // the response's request id
}

func (h handler) exchange(x *evhttp.Exchange) *exchange {
	e, _ := x.State.(*exchange)
	if e == nil {
		e = &exchange{s: h.s, x: x}
		x.State = e
	}
	e.start = time.Now()
	e.route = routeUnknown
	e.admitted = time.Time{}
	h.s.metrics.inFlight.Add(1)
	return e
}

// Serve is the whole public API: route on the path by hand (no router
// framework, nothing allocated), check the method, then answer at once
// (static routes, bad input), hand a point lookup to the domain's
// asynchronous service, whose reply writes the response, or run a
// blocking query on its own goroutine. It runs on an event loop and never
// blocks.
func (h handler) Serve(x *evhttp.Exchange) {
	e := h.exchange(x)
	e.setRequestID(x.RequestID())
	path := x.Path()
	route, param := matchRoute(path, h.s.cfg.StaticRoute)
	if esc := x.EscapedSlash(); esc >= 0 && (esc < len(path)-len(param) || route == routeStatic) {
		// A %2F in the route's own part of the path: "/users%2F1" is
		// one segment, not /users/1 (a SKU may hold one: it is data).
		// The static route's parameter is path too ("/product").
		route, param = routeUnknown, nil
	}
	e.route = route
	switch {
	case string(path) == "*":
		// "OPTIONS *" (the parser lets "*" through for OPTIONS only): a
		// ping of the server itself, answered as net/http does.
		x.AddHeader(headerAllow, allowGetHead)
		e.respond(statusOK, nil, nil)
	case route == routeUnknown:
		e.writeError(statusNotFound, "no such route")
	case !x.IsGet() && !x.IsHead():
		x.AddHeader(headerAllow, allowGetHead)
		e.writeError(statusMethodNotAllowed, "method not allowed; use GET or HEAD")
	default:
		e.serveRoute(route, param)
	}
}

// Refuse answers what the event loop could not read as a request, in the
// same error model as every other failure. The caller's request id is
// echoed when the event loop parsed the request's head whole; otherwise
// one is generated.
func (h handler) Refuse(x *evhttp.Exchange, status int, reason string) {
	e := h.exchange(x)
	e.setRequestID(x.RequestID())
	e.writeError(status, reason)
}

// finish records the request and sends its response, a JSON body. The
// exchange belongs to the connection's next request as soon as Respond
// returns.
func (e *exchange) finish(status int, body []byte) {
	e.respond(status, contentTypeJSON, body)
}

// respond is finish for any content type (none: nil).
func (e *exchange) respond(status int, contentType, body []byte) {
	s := e.s
	if !e.admitted.IsZero() {
		s.adm.release(e.admitted, status < 500)
	}
	elapsed := time.Since(e.start)
	s.metrics.observe(e.route, status, elapsed)
	s.metrics.inFlight.Add(-1)
	if n := s.cfg.AccessLogEvery; n > 0 && s.reqSeq.Add(1)%uint64(n) == 0 {
		s.logger.Info("request", "request_id", string(e.rid), "method", string(e.x.Method()),
			"path", string(e.x.Path()), "status", status,
			"duration_ms", float64(elapsed.Microseconds())/1000, "remote", e.x.RemoteAddr())
	}
	e.x.Respond(status, contentType, body)
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
	case static && bytes.HasPrefix(path, pathStatic) && staticKind(path[len(pathStatic):]) >= 0:
		return routeStatic, path[len(pathStatic):]
	}
	return routeUnknown, nil
}

// staticKind maps kind, the rest of a path after /_bench/static, to the
// index of its in-memory response in staticBodies; -1 when it names none.
func staticKind(kind []byte) int {
	switch string(kind) {
	case "", "/user":
		return staticUser
	case "/product":
		return staticProduct
	case "/inventory":
		return staticStock
	}
	return -1
}

func (e *exchange) serveRoute(r route, param []byte) {
	s := e.s
	switch r {
	case routeHealthz:
		e.finish(statusOK, bodyHealthy)
		return
	case routeReadyz:
		if s.draining.Load() {
			e.writeError(statusServiceUnavailable, "shutting down")
			return
		}
		go e.serveReadyz()
		return
	case routeStatic:
		e.finish(statusOK, s.static[staticKind(param)]) // matchRoute checked the kind
		return
	case routeProducts:
		raw, ok := e.x.QueryArg("ids")
		if !ok {
			e.fail(shop.Errorf(shop.EINVALID, "query parameter ids is required, e.g. /products?ids=1,2,3"))
			return
		}
		ids, err := parseIDList(raw)
		if err != nil {
			e.fail(err)
			return
		}
		if !e.admit() {
			return
		}
		go e.serveProducts(ids)
		return
	case routeProductBySKU:
		if !validSKU(param) {
			e.fail(shop.Errorf(shop.EINVALID, "SKU must be non-empty UTF-8 text without NUL characters"))
			return
		}
		if !e.admit() {
			return
		}
		go e.serveProductBySKU(string(param))
		return
	}

	id, err := parseID(param)
	if err != nil {
		e.fail(err)
		return
	}
	if !e.admit() {
		return
	}
	deadline := e.start.Add(s.cfg.RequestTimeout)
	switch r {
	case routeUser:
		s.svc.Users.UserAsync(id, deadline, userReply{e})
	case routeProduct:
		s.svc.Products.ProductAsync(id, deadline, productReply{e})
	case routeInventory:
		s.svc.Inventory.StockAsync(id, deadline, stockReply{e})
	}
}

// admit puts a database-backed request whose input is valid through
// admission control; a refused one is answered 503 at once. Malformed
// input is answered 400 before this: it never reaches the database, so it
// neither takes a slot nor counts as a latency sample.
func (e *exchange) admit() bool {
	a := e.s.adm
	if a == nil {
		return true
	}
	if !a.acquire() {
		e.writeError(statusServiceUnavailable, "server overloaded, retry later")
		return false
	}
	e.admitted = time.Now()
	return true
}

// The replies of the asynchronous lookups: each writes the response on the
// goroutine that has the answer. (One-pointer structs: passing them as an
// interface allocates nothing.)
type (
	userReply    struct{ e *exchange }
	productReply struct{ e *exchange }
	stockReply   struct{ e *exchange }
)

func (r userReply) Reply(u shop.User, err error) {
	if err != nil {
		r.e.fail(err)
		return
	}
	buf := r.e.s.bufs.get()
	buf.b = appendUser(buf.b[:0], &u)
	r.e.finish(statusOK, buf.b)
	r.e.s.bufs.put(buf)
}

func (r productReply) Reply(p shop.Product, err error) {
	if err != nil {
		r.e.fail(err)
		return
	}
	buf := r.e.s.bufs.get()
	buf.b = appendProduct(buf.b[:0], &p)
	r.e.finish(statusOK, buf.b)
	r.e.s.bufs.put(buf)
}

func (r stockReply) Reply(st shop.Stock, err error) {
	if err != nil {
		r.e.fail(err)
		return
	}
	buf := r.e.s.bufs.get()
	buf.b = appendStock(buf.b[:0], &st)
	r.e.finish(statusOK, buf.b)
	r.e.s.bufs.put(buf)
}

// requestContext is the context of a blocking lookup: the request's
// deadline.
func (e *exchange) requestContext() (context.Context, context.CancelFunc) {
	return context.WithDeadline(context.Background(), e.start.Add(e.s.cfg.RequestTimeout))
}

// serveProductBySKU runs on its own goroutine: the lookup blocks.
func (e *exchange) serveProductBySKU(sku string) {
	ctx, cancel := e.requestContext()
	defer cancel()
	p, err := e.s.svc.Products.ProductBySKU(ctx, sku)
	if err != nil {
		e.fail(err)
		return
	}
	buf := e.s.bufs.get()
	buf.b = appendProduct(buf.b[:0], &p)
	e.finish(statusOK, buf.b)
	e.s.bufs.put(buf)
}

// serveProducts runs on its own goroutine: the lookup blocks.
func (e *exchange) serveProducts(ids []int64) {
	ctx, cancel := e.requestContext()
	defer cancel()
	ps, err := e.s.svc.Products.Products(ctx, ids)
	if err != nil {
		e.fail(err)
		return
	}
	var missing []int64
	for _, id := range ids {
		if !containsProduct(ps, id) && !containsID(missing, id) {
			missing = append(missing, id)
		}
	}
	buf := e.s.bufs.get()
	buf.b = appendProducts(buf.b[:0], ps, missing)
	e.finish(statusOK, buf.b)
	e.s.bufs.put(buf)
}

// serveReadyz runs on its own goroutine: the ping blocks.
func (e *exchange) serveReadyz() {
	ctx, cancel := context.WithTimeout(context.Background(), readinessDeadline)
	defer cancel()
	if err := e.s.svc.Health.Ping(ctx); err != nil {
		e.fail(shop.Wrap(shop.EUNAVAILABLE, "database unreachable", err))
		return
	}
	e.finish(statusOK, bodyReady)
}

// setRequestID echoes a well-formed caller id or generates one.
func (e *exchange) setRequestID(id []byte) {
	if validRequestID(id) {
		e.rid = append(e.rid[:0], id...)
	} else {
		e.rid = e.s.ids.appendNext(e.rid[:0])
	}
	e.x.AddHeader(headerRequestID, e.rid)
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
