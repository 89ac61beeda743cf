package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"storefront/internal/httpapi"
	"storefront/internal/pgtest"
	"storefront/internal/postgres"
)

// TestAdminListener checks the admin listener's /readyz (200 while the
// database answers; 503 with Retry-After once it does not) and that
// /metrics exports the static route's series only when that route is
// served.
func TestAdminListener(t *testing.T) {
	for _, static := range []bool{false, true} {
		dbCfg := postgres.DefaultConfig()
		dbCfg.DSN = pgtest.NewDatabase(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		db, err := postgres.Open(ctx, dbCfg, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		cfg := httpapi.DefaultConfig()
		cfg.StaticRoute = static
		metrics := httpapi.NewMetrics()
		reg := prometheus.NewRegistry()
		reg.MustRegister(metrics)
		srv := httpapi.New(cfg, httpapi.Services{Users: db, Products: db, Inventory: db, Health: db}, nil, metrics)
		admin := httptest.NewServer(srv.AdminHandler(reg))

		get := func(path string) (*http.Response, string) {
			t.Helper()
			resp, err := http.Get(admin.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp, string(body)
		}
		if resp, body := get("/readyz"); resp.StatusCode != 200 || body != `{"status":"ready"}` {
			t.Errorf("/readyz with the database up: %d %s", resp.StatusCode, body)
		}
		_, body := get("/metrics")
		if got := strings.Contains(body, `route="/_bench/static"`); got != static {
			t.Errorf("static route served: %v; its series in /metrics: %v", static, got)
		}
		if !strings.Contains(body, `storefront_http_request_duration_seconds_count{route="/users/{id}"} 0`) {
			t.Errorf("/metrics lacks the users route's latency series:\n%s", body)
		}

		db.Close()
		resp, body := get("/readyz")
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || body != `{"status":"database unreachable"}` {
			t.Errorf("/readyz with the database closed: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		admin.Close()
	}
}

// TestAdminSwitchWhileStarting: before Set, /healthz is 200 and everything
// else 503 "starting" with Retry-After; after Set, the handler given
// answers.
func TestAdminSwitchWhileStarting(t *testing.T) {
	var sw httpapi.AdminSwitch
	srv := httptest.NewServer(&sw)
	defer srv.Close()
	check := func(path string, status int, body string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status || string(got) != body {
			t.Errorf("GET %s: %d %s, want %d %s", path, resp.StatusCode, got, status, body)
		}
		if status == 503 && resp.Header.Get("Retry-After") != "1" {
			t.Errorf("GET %s: 503 without Retry-After", path)
		}
	}
	check("/healthz", 200, `{"status":"ok"}`)
	check("/readyz", 503, `{"status":"starting"}`)
	check("/metrics", 503, `{"status":"starting"}`)

	sw.Set(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "full") }))
	check("/readyz", 200, "full")
}
