package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"storefront/internal/httpapi"
	"storefront/internal/pgtest"
	"storefront/internal/postgres"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestMain(m *testing.M) { flag.Parse(); os.Exit(pgtest.Main(m)) }

// startAPI serves the real API over a fresh clone of the seeded database on
// a real loopback socket and returns its base URL.
func startAPI(t testing.TB, mutate func(*httpapi.Config)) string {
	t.Helper()
	return startAPIOn(t, pgtest.NewDatabase(t), mutate)
}

// startAPIOn is startAPI over the database of dsn.
func startAPIOn(t testing.TB, dsn string, mutate func(*httpapi.Config)) string {
	t.Helper()
	dbCfg := postgres.DefaultConfig()
	dbCfg.DSN = dsn
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, dbCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.DefaultConfig()
	cfg.StaticRoute = true
	if mutate != nil {
		mutate(&cfg)
	}
	srv := httpapi.New(cfg, httpapi.Services{Users: db, Products: db, Inventory: db, Health: db}, nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		db.Close()
	})
	return "http://" + ln.Addr().String()
}

// scenario is one request and what must come back.
type scenario struct {
	name    string
	method  string
	path    string
	headers map[string]string
	body    string
	status  int
	golden  bool              // compare the body with testdata/<name>.golden
	json    map[string]any    // fields the JSON body must have (subset)
	header  map[string]string // response headers that must match
}

func (sc scenario) run(t *testing.T, base string) {
	t.Helper()
	method := sc.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if sc.body != "" {
		body = strings.NewReader(sc.body)
	}
	req, err := http.NewRequest(method, base+sc.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range sc.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != sc.status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, sc.status, got)
	}
	if method != http.MethodHead {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var v map[string]any
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatalf("body is not a JSON object: %v: %s", err, got)
		}
		for k, want := range sc.json {
			if fmt.Sprint(v[k]) != fmt.Sprint(want) {
				t.Errorf("%s = %v, want %v (body %s)", k, v[k], want, got)
			}
		}
		if resp.StatusCode >= 300 {
			checkErrorBody(t, resp, v)
		}
	}
	rid := resp.Header.Get("X-Request-ID")
	if rid == "" {
		t.Error("no X-Request-ID in the response")
	}
	if want, ok := sc.headers["X-Request-ID"]; ok && validID.MatchString(want) && rid != want {
		t.Errorf("X-Request-ID %q, want the caller's %q", rid, want)
	}
	for k, want := range sc.header {
		if g := resp.Header.Get(k); g != want {
			t.Errorf("header %s = %q, want %q", k, g, want)
		}
	}
	if sc.golden {
		compareGolden(t, sc.name, got)
	}
}

var validID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// checkErrorBody enforces the error model on every non-2xx response.
func checkErrorBody(t *testing.T, resp *http.Response, v map[string]any) {
	t.Helper()
	if len(v) != 3 {
		t.Errorf("error body has fields %v, want error, code, request_id", v)
	}
	if msg, _ := v["error"].(string); msg == "" {
		t.Error("error body without a message")
	}
	if code, _ := v["code"].(float64); int(code) != resp.StatusCode {
		t.Errorf("code %v, status %d", v["code"], resp.StatusCode)
	}
	if rid, _ := v["request_id"].(string); rid != resp.Header.Get("X-Request-ID") || !validID.MatchString(rid) {
		t.Errorf("request_id %q, header %q", rid, resp.Header.Get("X-Request-ID"))
	}
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", strings.NewReplacer("/", "_", " ", "_").Replace(name)+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Errorf("body differs from %s:\n got %s\nwant %s", path, got, want)
	}
}

func TestAPI(t *testing.T) {
	base := startAPI(t, nil)
	rid := map[string]string{"X-Request-ID": "test-req.1_A"}
	long := strings.Repeat("1,", 100) + "1"
	for _, sc := range []scenario{
		{name: "user", path: "/users/1", headers: rid, status: 200, golden: true},
		{name: "user with escaping", path: fmt.Sprintf("/users/%d", firstWhere(t, "users", "user_id", `username ~ '[^a-z0-9._]' AND deleted_at IS NULL`)), headers: rid, status: 200, golden: true},
		{name: "product with escaping", path: fmt.Sprintf("/products/%d", firstWhere(t, "products", "product_id", `name ~ '["<>&]' AND deleted_at IS NULL`)), headers: rid, status: 200, golden: true},
		{name: "product", path: "/products/1", headers: rid, status: 200, golden: true},
		{name: "product by sku", path: "/products/by-sku/SKU-0000001-" + skuSuffix(t, base), headers: rid, status: 200, json: map[string]any{"product_id": 1}},
		{name: "product list", path: "/products?ids=3,1,999999,3", headers: rid, status: 200, golden: true},
		{name: "inventory", path: "/inventory/1", headers: rid, status: 200, golden: true},
		{name: "healthz", path: "/healthz", status: 200, json: map[string]any{"status": "ok"}},
		{name: "readyz", path: "/readyz", status: 200, json: map[string]any{"status": "ready"}},
		{name: "head user", method: http.MethodHead, path: "/users/1", status: 200},
		{name: "static route", path: "/_bench/static", status: 200, json: map[string]any{"user_id": 424242}},
		{name: "static user", path: "/_bench/static/user", status: 200, json: map[string]any{"user_id": 424242}},
		{name: "static product", path: "/_bench/static/product", status: 200, json: map[string]any{"product_id": 42424, "currency": "EUR"}},
		{name: "static inventory", path: "/_bench/static/inventory", status: 200, json: map[string]any{"product_id": 42424, "available": 53}},
		{name: "static of no route", path: "/_bench/static/order", status: 404},
		{name: "static prefix only", path: "/_bench/statics", status: 404},

		{name: "user not found", path: "/users/99999999", headers: rid, status: 404, golden: true},
		{name: "user soft-deleted", path: fmt.Sprintf("/users/%d", firstWhere(t, "users", "user_id", "deleted_at IS NOT NULL")), status: 404},
		{name: "product soft-deleted", path: fmt.Sprintf("/products/%d", firstWhere(t, "products", "product_id", "deleted_at IS NOT NULL")), status: 404},
		{name: "product not found", path: "/products/99999999", status: 404},
		{name: "sku not found", path: "/products/by-sku/NOPE", status: 404},
		{name: "inventory of unknown product", path: "/inventory/99999999", status: 404},

		{name: "id not numeric", path: "/users/abc", headers: rid, status: 400, golden: true},
		{name: "id zero", path: "/users/0", status: 400},
		{name: "id negative", path: "/users/-1", status: 400},
		{name: "id plus sign", path: "/users/+1", status: 400},
		{name: "id fraction", path: "/users/1.5", status: 400},
		{name: "id overflow", path: "/users/9223372036854775808", status: 400},
		{name: "id very long", path: "/users/" + strings.Repeat("9", 500), status: 400},
		{name: "id empty", path: "/users/", status: 400},
		{name: "id with sub-path", path: "/users/1/orders", status: 400},
		{name: "id sql metacharacters", path: "/users/1%27%20OR%201=1--", status: 400},
		{name: "product id bad", path: "/products/x1", status: 400},
		{name: "inventory id bad", path: "/inventory/-5", status: 400},
		{name: "ids missing", path: "/products", status: 400},
		{name: "ids empty", path: "/products?ids=", status: 400},
		{name: "ids malformed", path: "/products?ids=1,,2", status: 400,
			json: map[string]any{"error": "ids must not hold an empty entry (a leading comma, or two in a row)"}},
		{name: "ids leading comma", path: "/products?ids=,1", status: 400},
		{name: "id with leading zeros", path: "/users/00000000000000000001", status: 200, json: map[string]any{"user_id": 1}},
		{name: "ids trailing comma", path: "/products?ids=1,2,", status: 400},
		{name: "ids not numeric", path: "/products?ids=1,a", status: 400},
		{name: "ids too many", path: "/products?ids=" + long, status: 400},
		{name: "sku empty", path: "/products/by-sku/", status: 400,
			json: map[string]any{"error": "SKU must be non-empty UTF-8 text without NUL characters"}},
		{name: "sku with NUL", path: "/products/by-sku/SKU%00", status: 400},
		{name: "sku with invalid UTF-8", path: "/products/by-sku/SKU%FF", status: 400},
		{name: "sku long, not found", path: "/products/by-sku/" + strings.Repeat("S", 65), status: 404},
		{name: "sku with a control character, not found", path: "/products/by-sku/SKU%01", status: 404},
		{name: "unknown route", path: "/nope", status: 404},
		// An escaped slash is part of a segment: "/users%2F1" is not /users/1.
		{name: "escaped slash after the route's name", path: "/users%2F1", status: 404},
		{name: "escaped slashes in the sku route's prefix", path: "/products%2Fby-sku%2FSKU-0000001-" + skuSuffix(t, base), status: 404},
		{name: "escaped slash in the static route", path: "/_bench/static%2Fproduct", status: 404},
		{name: "escaped slash before the static route's kind", path: "/_bench%2Fstatic/user", status: 404},
		{name: "escaped unreserved letter", path: "/%75sers/1", status: 200, json: map[string]any{"user_id": 1}},
		{name: "root", path: "/", status: 404},
		{name: "wrong method", method: http.MethodPost, path: "/users/1", status: 405, header: map[string]string{"Allow": "GET, HEAD"}},
		{name: "wrong method delete", method: http.MethodDelete, path: "/products/1", status: 405, header: map[string]string{"Allow": "GET, HEAD"}},
		{name: "oversized headers", path: "/users/1", headers: map[string]string{"X-Big": strings.Repeat("a", 20<<10)}, status: 431},
		{name: "oversized body", method: http.MethodPost, path: "/users/1", body: strings.Repeat("b", 64<<10), status: 413},
		{name: "invalid request id replaced", path: "/users/1", headers: map[string]string{"X-Request-ID": "bad id with spaces"}, status: 200},
		{name: "too long request id replaced", path: "/users/1", headers: map[string]string{"X-Request-ID": strings.Repeat("a", 129)}, status: 200},
	} {
		t.Run(sc.name, func(t *testing.T) { sc.run(t, base) })
	}
}

// TestRequestIDGenerated checks that an id is generated when the caller
// sends none or a malformed one, and that ids differ.
func TestRequestIDGenerated(t *testing.T) {
	base := startAPI(t, nil)
	seen := map[string]bool{}
	for _, h := range []string{"", "bad id", strings.Repeat("x", 200)} {
		req, _ := http.NewRequest(http.MethodGet, base+"/users/1", nil)
		if h != "" {
			req.Header.Set("X-Request-ID", h)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		id := resp.Header.Get("X-Request-ID")
		if !validID.MatchString(id) || id == h || seen[id] {
			t.Errorf("generated id %q for caller id %q", id, h)
		}
		seen[id] = true
	}
}

// TestRawGarbage sends malformed HTTP on a raw socket: a 400 in the error
// model, never a 500, and the server keeps serving.
func TestRawGarbage(t *testing.T) {
	base := startAPI(t, func(c *httpapi.Config) { c.ReadTimeout = time.Second })
	addr := strings.TrimPrefix(base, "http://")
	for _, raw := range []string{
		"\x00\x01\x02garbage\r\n\r\n",
		"GET /users/1 HTTP/1.1\r\nHost\r\n\r\n",
		"GET /users/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /users/1 HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
	} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = c.Write([]byte(raw))
		reply, _ := io.ReadAll(c)
		c.Close()
		if bytes.HasPrefix(reply, []byte("HTTP/1.1 5")) {
			t.Errorf("%q: got a 5xx: %s", raw, reply)
		}
	}
	resp, err := http.Get(base + "/users/1")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("server stopped serving after garbage: %v", err)
	}
	resp.Body.Close()
}

// TestOptionsAsterisk: "OPTIONS *" asks about the server itself; it gets
// 200 with Allow and no body, as from net/http. "*" with any other method
// is a malformed request.
func TestOptionsAsterisk(t *testing.T) {
	base := startAPI(t, nil)
	addr := strings.TrimPrefix(base, "http://")
	for _, tc := range []struct {
		method string
		status int
	}{{"OPTIONS", 200}, {"GET", 400}} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(c, "%s * HTTP/1.1\r\nHost: x\r\n\r\n", tc.method)
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: tc.method})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("%s *: status %d, want %d (%s)", tc.method, resp.StatusCode, tc.status, body)
		}
		if tc.status == 200 && (resp.Header.Get("Allow") != "GET, HEAD" || len(body) != 0 || resp.ContentLength != 0) {
			t.Fatalf("OPTIONS *: Allow %q, body %q, length %d; want GET, HEAD and no body", resp.Header.Get("Allow"), body, resp.ContentLength)
		}
	}
}

// readRaw reads one response from r and checks it against the error model
// (when it is an error); it returns the status and the X-Request-ID.
func readRaw(t *testing.T, r *bufio.Reader) (int, string) {
	t.Helper()
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var v map[string]any
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatalf("body is not a JSON object: %v: %s", err, got)
		}
		checkErrorBody(t, resp, v)
	}
	return resp.StatusCode, resp.Header.Get("X-Request-ID")
}

// TestRefusalRequestID checks the request id of requests the event loop
// refuses: the caller's valid id is echoed when the request's headers were
// read whole, and an id is generated otherwise, never one left from an
// earlier request on the connection.
func TestRefusalRequestID(t *testing.T) {
	base := startAPI(t, func(c *httpapi.Config) { c.ReadTimeout = 300 * time.Millisecond; c.MaxHeaderBytes = 1024 })
	addr := strings.TrimPrefix(base, "http://")
	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		return c, bufio.NewReader(c)
	}
	for _, tc := range []struct {
		name, req string
		status    int
		echo      bool // the id sent is the one answered
	}{
		{"body too large", "POST / HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\nContent-Length: 100000\r\n\r\n", 413, true},
		{"missing host", "GET /users/1 HTTP/1.1\r\nX-Request-ID: abc\r\n\r\n", 400, true},
		{"repeated host", "GET /users/1 HTTP/1.1\r\nHost: x\r\nHost: y\r\nX-Request-ID: abc\r\n\r\n", 400, true},
		{"invalid id", "POST / HTTP/1.1\r\nHost: x\r\nX-Request-ID: bad id\r\nContent-Length: 100000\r\n\r\n", 413, false},
		{"too long id", "GET /users/1 HTTP/1.1\r\nX-Request-ID: " + strings.Repeat("a", 129) + "\r\n\r\n", 400, false},
		{"headers too large", "GET /users/1 HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\nX-Big: " + strings.Repeat("a", 2000) + "\r\n\r\n", 431, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, r := dial(t)
			if _, err := io.WriteString(c, tc.req); err != nil {
				t.Fatal(err)
			}
			status, rid := readRaw(t, r)
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			if echoed := strings.Contains(tc.req, "X-Request-ID: "+rid+"\r\n"); echoed != tc.echo {
				t.Fatalf("X-Request-ID %q: echoed %v, want %v", rid, echoed, tc.echo)
			}
		})
	}

	first := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: first\r\n\r\n"
	for _, tc := range []struct {
		name, second string
		status       int
		pipelined    bool
	}{
		{"slow after an earlier request", "GET /users/1 HTTP/1.1\r\nHost: x\r\n", 408, false},
		{"slow pipelined", "GET /users/1 HTTP/1.1\r\nHost: x\r\n", 408, true},
		{"headers too large after an earlier request", "GET /users/1 HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000), 431, false},
		{"headers too large pipelined", "GET /users/1 HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000), 431, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, r := dial(t)
			send := first
			if tc.pipelined {
				send += tc.second
			}
			if _, err := io.WriteString(c, send); err != nil {
				t.Fatal(err)
			}
			if status, rid := readRaw(t, r); status != 200 || rid != "first" {
				t.Fatalf("first request: %d %q", status, rid)
			}
			if !tc.pipelined {
				if _, err := io.WriteString(c, tc.second); err != nil {
					t.Fatal(err)
				}
			}
			status, rid := readRaw(t, r)
			if status != tc.status || rid == "first" {
				t.Fatalf("second request: %d %q, want %d with a fresh id", status, rid, tc.status)
			}
		})
	}
}

// TestSKUsTheSchemaAllows: sku is any non-empty text to the schema, written
// by other services; a product is found by every SKU PostgreSQL can hold,
// slashes, control characters and length included.
func TestSKUsTheSchemaAllows(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	skus := []string{"AB/12", "/lead", "TAB\tX", "NEL\u0085X", strings.Repeat("S", 65), strings.Repeat("é", 600)}
	ids := make([]int64, len(skus))
	for i, sku := range skus {
		if err := conn.QueryRow(context.Background(), `UPDATE products SET sku = $1
			WHERE product_id = (SELECT product_id FROM products WHERE deleted_at IS NULL ORDER BY 1 OFFSET $2 LIMIT 1)
			RETURNING product_id`, sku, i).Scan(&ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	base := startAPIOn(t, dsn, nil)
	for i, sku := range skus {
		sc := scenario{name: fmt.Sprintf("sku %.20q", sku), path: "/products/by-sku/" + url.PathEscape(sku), status: 200,
			json: map[string]any{"product_id": ids[i], "sku": sku}}
		t.Run(sc.name, func(t *testing.T) { sc.run(t, base) })
	}
	(scenario{name: "unescaped slash", path: "/products/by-sku/AB/12", status: 200, json: map[string]any{"product_id": ids[0]}}).run(t, base)
}

// TestStaticBodiesMatchAnswerSizes: each benchmark-only static response is
// within a fifth of the average size of the answers of the route it stands
// in for, over the seeded data (the same generator as the benchmark's), so
// that bench-compare compares the database's share and not response sizes.
func TestStaticBodiesMatchAnswerSizes(t *testing.T) {
	base := startAPI(t, nil)
	size := func(path string) (int, bool) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return len(body), resp.StatusCode == http.StatusOK
	}
	for _, route := range []struct{ static, answers string }{
		{"/_bench/static/user", "/users/%d"},
		{"/_bench/static/product", "/products/%d"},
		{"/_bench/static/inventory", "/inventory/%d"},
	} {
		static, ok := size(route.static)
		if !ok {
			t.Fatalf("%s: not 200", route.static)
		}
		total, n := 0, 0
		for id := 1; id <= 300; id++ {
			if s, ok := size(fmt.Sprintf(route.answers, id)); ok {
				total, n = total+s, n+1
			}
		}
		if n < 250 {
			t.Fatalf("%s: only %d of 300 answered 200", route.answers, n)
		}
		avg := float64(total) / float64(n)
		if r := float64(static) / avg; r < 0.8 || r > 1.2 {
			t.Errorf("%s is %d bytes; %s answers average %.0f (ratio %.2f)", route.static, static, route.answers, avg, r)
		} else {
			t.Logf("%s: %d bytes; %s answers average %.0f", route.static, static, route.answers, avg)
		}
	}
}
