package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"storefront/internal/pgembed"
	"storefront/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// binary builds the real storefront binary once per test run.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "storefront-bin-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "storefront")
	out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return path, nil
})

func buildBinary(t *testing.T) string {
	t.Helper()
	path, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listeningLine = regexp.MustCompile(`msg="storefront listening" addr=(\S+)`)

// listeningAddr waits for the "storefront listening" line in logs and
// returns the address it names. The server listens on port 0, so no other
// process can take its port between a test choosing one and the server
// binding it.
func listeningAddr(t *testing.T, logs *syncBuffer, exited <-chan error, timeout time.Duration) string {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := listeningLine.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-exited:
			t.Fatalf("storefront exited during start: %v\n%s", err, logs.String())
		default:
		}
	}
	t.Fatalf("storefront did not log its address within %v:\n%s", timeout, logs.String())
	return ""
}

// startServe starts bin serve on 127.0.0.1:0 without an admin listener,
// with extra flags, its stderr gathered; exited receives its Wait. The
// process is killed when the test ends, unless it has exited by then.
func startServe(t *testing.T, bin string, extra ...string) (*exec.Cmd, *syncBuffer, <-chan error) {
	t.Helper()
	return startCommand(t, exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--admin-addr", ""}, extra...)...))
}

// startCommand is startServe for a command of the caller's making.
func startCommand(t *testing.T, cmd *exec.Cmd) (*exec.Cmd, *syncBuffer, <-chan error) {
	t.Helper()
	stderr := new(syncBuffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1) // for the test
	waited := make(chan struct{}) // for the cleanup
	go func() {
		exited <- cmd.Wait()
		close(waited)
	}()
	t.Cleanup(func() {
		select {
		case <-waited:
		default:
			_ = cmd.Process.Kill()
			<-waited
		}
	})
	return cmd, stderr, exited
}

func waitHTTP(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer within %s", url, timeout)
}

// TestServeEmbeddedDefault starts the program as `serve` does without a
// DSN: a private PostgreSQL from an empty data directory, migrated and
// seeded, answering /users/1, and again after its PostgreSQL is killed. A
// second program on the same data directory is refused; a restart finds the
// data again.
func TestServeEmbeddedDefault(t *testing.T) {
	// libpq's variables, meant for some other server, do not reach the
	// private one's connections.
	t.Setenv("PGSERVICE", "nosuch")
	t.Setenv("PGTARGETSESSIONATTRS", "standby")
	t.Setenv("PGOPTIONS", "-c statement_timeout=1")
	cfg := embeddedServeConfig(t)
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.DemoUsers, cfg.DemoProducts = 2000, 200
	cfg.DB.MinConns, cfg.DB.MaxConns = 2, 210
	ctx := context.Background()

	m := NewMain(cfg, nil)
	m.logger = newLogger(Config{LogLevel: "warn", LogFormat: "text"})
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	var u struct {
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
	}
	getJSON(t, "http://"+m.Addr()+"/users/1", 200, &u)
	if u.UserID != 1 || u.Username == "" {
		t.Fatalf("/users/1 = %+v", u)
	}
	// A pool larger than the private server's default 200 connections
	// has them, and 20 to spare.
	var maxConns string
	if err := m.db.Pool().QueryRow(ctx, "SHOW max_connections").Scan(&maxConns); err != nil || maxConns != "230" {
		t.Errorf("max_connections with --pool-max-conns 210: %q, %v; want 230", maxConns, err)
	}
	resp, err := http.Get("http://" + m.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`storefront_http_requests_total{route="/users/{id}",status="200"} 1`, "storefront_db_pool_connections", "storefront_http_request_duration_seconds_bucket"} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// A private PostgreSQL that dies is restarted: lookups answer again.
	pg := m.pg.PID()
	if err := syscall.Kill(pg, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + m.Addr() + "/users/1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 && m.pg.PID() != pg {
			break
		}
		if resp.StatusCode != 200 && resp.StatusCode != 503 {
			t.Fatalf("/users/1 while PostgreSQL restarts: %d, want 503 or 200", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/users/1 still %d a minute after killing PostgreSQL (pid %d)", resp.StatusCode, pg)
		}
	}
	select {
	case err := <-m.Done():
		t.Fatalf("the program gave up after one PostgreSQL death: %v", err)
	default:
	}

	second := NewMain(cfg, m.logger)
	err = second.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second serve on the same data dir: err = %v, want an 'in use' error", err)
	}
	_ = second.Close(ctx)

	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}

	again := NewMain(cfg, m.logger)
	if err := again.Run(ctx); err != nil {
		t.Fatal(err)
	}
	defer again.Close(ctx)
	getJSON(t, "http://"+again.Addr()+"/users/1", 200, &u)
}

func getJSON(t *testing.T, url string, status int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
}

// TestSIGTERMDrainsInFlight runs the real binary, holds its queries in
// flight behind a table lock, sends SIGTERM, and checks that /readyz turns
// 503 at once, every in-flight request is answered 200, and the process
// exits 0.
func TestSIGTERMDrainsInFlight(t *testing.T) {
	bin := buildBinary(t)
	dsn := pgtest.NewDatabase(t)
	cmd, stderr, exited := startServe(t, bin, "--dsn", dsn,
		"--statement-timeout", "10s", "--request-timeout", "15s", "--shutdown-delay", "2s", "--drain-timeout", "10s", "--log-level", "info")
	addr := listeningAddr(t, stderr, exited, 15*time.Second)
	base := "http://" + addr
	waitHTTP(t, base+"/healthz", 15*time.Second)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE users IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	const inFlight = 40
	results := make(chan string, inFlight)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: inFlight, DisableKeepAlives: true}}
	for i := range inFlight {
		go func() {
			resp, err := client.Get(fmt.Sprintf("%s/users/%d", base, i+1))
			if err != nil {
				results <- err.Error()
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- resp.Status
		}()
	}
	waitBlocked(t, conn, 5*time.Second)
	time.Sleep(100 * time.Millisecond) // every request has reached the server

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The process handles the signal when it next runs, which on a loaded
	// machine may take a while: /readyz is polled until it turns 503. The
	// listener stays open for the 2 s shutdown delay meanwhile.
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("/readyz during the shutdown delay: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after SIGTERM = %d, want 503", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitRefused(t, addr, 10*time.Second) // the listener is closed now; requests still wait on the lock
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	for range inFlight {
		select {
		case r := <-results:
			// A few seeded users are soft-deleted: 404 is an answer too.
			if r != "200 OK" && r != "404 Not Found" {
				t.Errorf("in-flight request: %s", r)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("in-flight request not answered")
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit within the drain deadline")
	}
}

// waitRefused waits until nothing accepts connections on addr any more.
func waitRefused(t *testing.T, addr string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
	}
	t.Fatalf("%s still accepts connections after %v", addr, timeout)
}

// waitBlocked waits until some storefront query waits on the table lock.
func waitBlocked(t *testing.T, conn *pgx.Conn, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var n int
		err := conn.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'storefront' AND wait_event_type = 'Lock'`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no storefront query ever waited on the lock")
}

// TestCommands drives migrate, seed and serve's schema check through the
// same entry point as the binary.
func TestCommands(t *testing.T) {
	dsn := pgtest.NewEmptyDatabase(t)
	runCmd := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	if code, _, errOut := runCmd("serve", "--dsn", dsn, "--addr", "127.0.0.1:0", "--admin-addr", ""); code != 1 || !strings.Contains(errOut, "storefront migrate") {
		t.Errorf("serve on an empty database: exit %d, %q; want 1 and a hint to migrate", code, errOut)
	}
	if code, out, errOut := runCmd("migrate", "--dsn", dsn); code != 0 || !strings.Contains(out, "applied migrations") {
		t.Fatalf("migrate: exit %d %q %q", code, out, errOut)
	}
	if code, out, _ := runCmd("migrate", "--dsn", dsn); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate: exit %d %q", code, out)
	}
	code, out, errOut := runCmd("seed", "--dsn", dsn, "--users", "500", "--products", "50", "--quiet")
	if code != 0 || !strings.Contains(out, "500 users") {
		t.Fatalf("seed: exit %d %q %q", code, out, errOut)
	}
	if code, out, _ := runCmd("seed", "--dsn", dsn, "--users", "500", "--products", "50", "--quiet"); code != 0 || !strings.Contains(out, " 0 users, 0 products") {
		t.Fatalf("second seed inserted rows: exit %d %q", code, out)
	}

	if code, out, _ := runCmd("version"); code != 0 || !strings.HasPrefix(out, "storefront ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	if code, out, errOut := runCmd("version", "--help"); code != 0 || out != "" || !strings.Contains(errOut, "Usage of storefront version") {
		t.Errorf("version --help: exit %d, stdout %q, stderr %q; want 0 and its usage", code, out, errOut)
	}

	// Usage errors found before any connection: exit 2, one line naming
	// the flag, no password.
	for _, args := range [][]string{
		{"serve", "--dsn", "postgres://u:secret@%zz/x"},
		{"migrate", "--dsn", "not a dsn"},
		{"seed", "--dsn", dsn, "--warehouses", "0"},
	} {
		code, _, errOut := runCmd(args...)
		flagName := args[len(args)-2]
		if code != 2 || !strings.Contains(errOut, flagName) || strings.Contains(errOut, "secret") || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("storefront %v: exit %d, stderr %q; want 2 and one line naming %s", args, code, errOut, flagName)
		}
	}

	// A DSN error that an environment variable caused names it.
	t.Setenv("PGPORT", "abc")
	if code, _, errOut := runCmd("serve", "--dsn", "postgres://app@127.0.0.1/shop"); code != 2 || !strings.Contains(errOut, "invalid port (the environment's PGPORT fills in") {
		t.Errorf("--dsn without a port, PGPORT=abc: exit %d, stderr %q", code, errOut)
	}
	os.Unsetenv("PGPORT")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "Usage"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"serve", "--pool-max-conns", "x"}, "pool-max-conns"},
		{[]string{"serve", "--log-level", "loud"}, "--log-level"},
		{[]string{"serve", "--pool-min-conns", "50", "--pool-max-conns", "10"}, "exceeds max"},
		{[]string{"serve", "--statement-timeout", "500us"}, "at least 1ms"},
		{[]string{"serve", "extra"}, `unexpected argument "extra"`},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"version", "--bogus"}, "bogus"},
		{[]string{"seed", "--dsn", dsn, "--users", "-1"}, "--users must not be negative (got -1)"},
		{[]string{"seed", "--dsn", dsn, "--products", "2000000", "--warehouses", "1000"}, "--products × --warehouses must be at most"},
		{[]string{"migrate", "--dsn", "postgres://nobody@127.0.0.1:1/x?connect_timeout=1"}, "unavailable"},
	} {
		code, _, errOut := runCmd(tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("storefront %v: exit %d, stderr %q; want non-zero and %q", tc.args, code, errOut, tc.want)
		}
		if code == 2 && strings.Count(strings.TrimSpace(errOut), "\n") > 2 && len(tc.args) > 0 {
			t.Errorf("storefront %v: usage error spans many lines: %q", tc.args, errOut)
		}
	}
}

// TestListenAddressFlags checks that a listen address that cannot be one
// is a usage error (exit 2, one line naming the flag), caught before a
// port is bound or a database started.
func TestListenAddressFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "nonsense"}, "--addr"},
		{[]string{"--addr", "127.0.0.1:99999"}, "--addr"},
		{[]string{"--addr", "127.0.0.1:8x"}, "--addr"},
		{[]string{"--admin-addr", "localhost"}, "--admin-addr"},
		{[]string{"--admin-addr", "127.0.0.1:-1"}, "--admin-addr"},
	} {
		args := append([]string{"serve", "--dsn", "postgres://nobody@127.0.0.1:1/x?connect_timeout=1",
			"--addr", "127.0.0.1:0", "--admin-addr", ""}, tc.args...)
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), tc.want) || strings.Count(strings.TrimSpace(errOut.String()), "\n") > 0 {
			t.Errorf("storefront %v: exit %d, stderr %q; want 2 and one line naming %s", args, code, errOut.String(), tc.want)
		}
	}
	for _, addr := range []string{":8080", "127.0.0.1:0", "[::1]:9090", "localhost:http"} {
		cfg := DefaultConfig()
		cfg.Addr, cfg.AdminAddr = addr, addr
		if err := cfg.Validate(); err != nil {
			t.Errorf("--addr and --admin-addr %q: %v", addr, err)
		}
	}
	cfg := DefaultConfig()
	cfg.AdminAddr = ""
	if err := cfg.Validate(); err != nil {
		t.Errorf("an empty --admin-addr (disabled): %v", err)
	}
}

// TestEnvironmentConfig checks that STOREFRONT_* variables fill flags and
// that flags win.
func TestEnvironmentConfig(t *testing.T) {
	cfg := DefaultConfig()
	fs := newServeFlagSet(&cfg)
	env := map[string]string{"STOREFRONT_POOL_MAX_CONNS": "33", "STOREFRONT_ADDR": ":1111", "STOREFRONT_COALESCE": "false"}
	if err := fs.Parse([]string{"--addr", ":2222"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if cfg.DB.MaxConns != 33 || cfg.Addr != ":2222" || cfg.DB.Coalesce {
		t.Errorf("got max conns %d, addr %q, coalesce %v", cfg.DB.MaxConns, cfg.Addr, cfg.DB.Coalesce)
	}
	env = map[string]string{"STOREFRONT_DRAIN_TIMEOUT": "soon"}
	if err := applyEnv(newServeFlagSet(&cfg), func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil || !strings.Contains(err.Error(), "STOREFRONT_DRAIN_TIMEOUT") {
		t.Errorf("bad env value: %v", err)
	}
	for name, want := range map[string]string{
		"STOREFRONT_SHED":           `STOREFRONT_SHED="x": want true or false`,
		"STOREFRONT_MAX_CONNS":      `STOREFRONT_MAX_CONNS="x": want an integer`,
		"STOREFRONT_READ_TIMEOUT":   `STOREFRONT_READ_TIMEOUT="x": want a duration such as 250ms, 5s or 1m`,
		"STOREFRONT_POOL_MAX_CONNS": `STOREFRONT_POOL_MAX_CONNS="x": not an integer: "x"`,
	} {
		err := applyEnv(newServeFlagSet(&cfg), func(k string) (string, bool) { return "x", k == name })
		if err == nil || err.Error() != want {
			t.Errorf("%s=x: %v, want %q", name, err, want)
		}
	}
}

// TestPoolFlagsWholeNumbers checks that the int32 pool flags take a whole
// integer or nothing: "1e3" is not 1, "12abc" is not 12.
func TestPoolFlagsWholeNumbers(t *testing.T) {
	for _, bad := range []string{"1e3", "12abc", "5 6", "3000000000", ""} {
		cfg := DefaultConfig()
		fs := newServeFlagSet(&cfg)
		fs.SetOutput(io.Discard)
		if err := fs.Parse([]string{"--pool-max-conns", bad}); err == nil {
			t.Errorf("--pool-max-conns %q accepted as %d", bad, cfg.DB.MaxConns)
		}
	}
	cfg := DefaultConfig()
	if err := newServeFlagSet(&cfg).Parse([]string{"--pool-min-conns", "7", "--pool-max-conns", "32"}); err != nil || cfg.DB.MinConns != 7 || cfg.DB.MaxConns != 32 {
		t.Errorf("min 7, max 32: %v, got %d, %d", err, cfg.DB.MinConns, cfg.DB.MaxConns)
	}
}

// TestServeEmbeddedCompletesInterruptedSeeding restarts the private
// PostgreSQL over a first start whose seeding was cut short after the users
// were committed but before the products and inventory were: the next start
// finishes the demo data set.
func TestServeEmbeddedCompletesInterruptedSeeding(t *testing.T) {
	cfg := embeddedServeConfig(t)
	cfg.DemoUsers, cfg.DemoProducts = 300, 100
	ctx := context.Background()
	logger := newLogger(Config{LogLevel: "warn", LogFormat: "text"})

	m := NewMain(cfg, logger)
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, m.pg.DSN(embeddedDatabase))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "DELETE FROM inventory; DELETE FROM products")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}

	again := NewMain(cfg, logger)
	if err := again.Run(ctx); err != nil {
		t.Fatal(err)
	}
	defer again.Close(ctx)
	conn, err = pgx.Connect(ctx, again.pg.DSN(embeddedDatabase))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var products, inventory int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM inventory)").Scan(&products, &inventory); err != nil {
		t.Fatal(err)
	}
	if products != cfg.DemoProducts || inventory == 0 {
		t.Errorf("after the restart: %d products, %d inventory rows; want %d products and their stock", products, inventory, cfg.DemoProducts)
	}
}

// TestSIGTERMWhileSeeding: a stop asked for while the first start seeds
// its demo data is not a failure: exit status 0, and the log says that
// serving never began.
func TestSIGTERMWhileSeeding(t *testing.T) {
	bin := buildBinary(t)
	cfg := embeddedServeConfig(t)
	cmd, stderr, exited := startServe(t, bin, "--data-dir", cfg.DataDir, "--demo-users", "20000000", "--log-level", "info")
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(stderr.String(), "seeding demo data"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no seeding within 60s:\n%s", stderr.String())
		}
	}
	time.Sleep(200 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v, want status 0\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
	if !strings.Contains(stderr.String(), "stopped before serving") {
		t.Errorf("the log does not say serving never began:\n%s", stderr.String())
	}
}

// TestDemoSizeLimits checks that demo data sizes the seeder refuses are
// refused with the flags, before a database is started.
func TestDemoSizeLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DemoUsers = 200_000_000
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--demo-users") {
		t.Errorf("--demo-users 200000000: %v", err)
	}
	cfg = DefaultConfig()
	cfg.DemoUsers, cfg.DemoProducts = 100_000_000, 100_000_000
	if err := cfg.Validate(); err != nil {
		t.Errorf("the largest demo data set: %v", err)
	}
}

// embeddedServeConfig is serve's default configuration on a fresh data
// directory (removed when the test ends), listening on a free loopback port
// with no admin listener.
func embeddedServeConfig(t *testing.T) Config {
	t.Helper()
	dir, cleanup, err := pgembed.MkdirTemp("storefront-serve-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	cfg := DefaultConfig()
	cfg.Addr, cfg.AdminAddr = "127.0.0.1:0", ""
	cfg.DataDir = filepath.Join(dir, "data")
	return cfg
}

// With --log-format json every line on stderr is a JSON object, the
// welcome included, so a log collector can read the stream line by line.
func TestServeJSONLogsOnly(t *testing.T) {
	bin := buildBinary(t)
	dsn := pgtest.NewDatabase(t)
	cmd, stderr, exited := startServe(t, bin, "--dsn", dsn, "--log-format", "json", "--log-level", "info", "--shutdown-delay", "0s")
	var ready bool
	for deadline := time.Now().Add(15 * time.Second); !ready && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ready = strings.Contains(stderr.String(), `"msg":"storefront is ready"`)
	}
	if !ready {
		t.Fatalf("no ready line within 15s:\n%s", stderr.String())
	}
	// SIGHUP (a closed terminal) stops as gracefully as SIGTERM.
	_ = cmd.Process.Signal(syscall.SIGHUP)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20s of SIGHUP")
	}
	checkJSONLines(t, stderr.String())
	for _, want := range []string{`"msg":"stopped cleanly"`, `"drain_timeout":"10s"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("no %s in the log (durations are strings, as in the text format):\n%s", want, stderr.String())
		}
	}
}

// TestServeJSONFatalError: with JSON logs, a database that cannot be
// reached ends serve with exit status 1 and a JSON line saying why, and
// nothing else on stderr.
func TestServeJSONFatalError(t *testing.T) {
	bin := buildBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, stderr, exited := startServe(t, bin, "--dsn", "postgres://app@"+addr+"/shop?sslmode=disable&connect_timeout=2", "--log-format", "json")
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("exit: %v, want status 1\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s")
	}
	checkJSONLines(t, stderr.String())
	if !strings.Contains(stderr.String(), `"msg":"storefront serve failed"`) || !strings.Contains(stderr.String(), "database unreachable") {
		t.Errorf("no JSON line naming the failure:\n%s", stderr.String())
	}
}

func checkJSONLines(t *testing.T, out string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not a JSON line: %q", line)
		}
	}
}

// TestDroppedConnectionsAreCounted: a server out of file descriptors
// (ulimit -n 64) closes the connections it cannot take, says so in its log
// and counts them in storefront_http_connections_dropped_total, and goes on
// serving the others.
func TestDroppedConnectionsAreCounted(t *testing.T) {
	bin := buildBinary(t)
	dsn := pgtest.NewDatabase(t)
	cmd := exec.Command("sh", "-c", `ulimit -n 64 && exec "$0" "$@"`, bin, "serve", "--addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--dsn", dsn, "--pool-max-conns", "2", "--log-level", "info")
	_, stderr, exited := startCommand(t, cmd)
	addr := listeningAddr(t, stderr, exited, 15*time.Second)
	admin := regexp.MustCompile(`admin_addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(stderr.String())
	if admin == nil {
		t.Fatalf("no admin address in the log:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "open-files limit is below what --max-conns needs") {
		t.Errorf("no warning at start that 64 open files cannot hold --max-conns connections:\n%s", stderr.String())
	}
	waitHTTP(t, "http://"+addr+"/healthz", 15*time.Second)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 100 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	// The server takes some, drops the rest: it has no descriptors left.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "client connection dropped"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no warning about dropped connections after %d connections:\n%s", len(conns), stderr.String())
		}
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	time.Sleep(200 * time.Millisecond) // the server sees them closed
	resp, err := http.Get("http://" + admin[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^storefront_http_connections_dropped_total (\d+)$`).FindSubmatch(metrics)
	if m == nil || string(m[1]) == "0" {
		t.Fatalf("storefront_http_connections_dropped_total: %q", m)
	}
	getJSON(t, "http://"+addr+"/users/1", 200, new(map[string]any))
}

// TestValidationNamesFlags gives every serve flag the packages validate an
// unusable value and checks that the message starts with that flag.
func TestValidationNamesFlags(t *testing.T) {
	for flagName, value := range map[string]string{
		"pool-min-conns": "-2", "pool-max-conns": "0", "pool-acquire-timeout": "0s", "statement-timeout": "0s",
		"pool-max-conn-lifetime": "0s", "pool-max-conn-lifetime-jitter": "-1s", "coalesce-max-batch": "0",
		"coalesce-mode": "batch", "coalesce-in-flight": "0", "coalesce-queries": "-1",
		"read-timeout": "0s", "write-timeout": "0s", "idle-timeout": "0s", "request-timeout": "0s",
		"max-header-bytes": "10", "max-body-bytes": "-1", "max-conns": "0", "event-loops": "100000",
		"access-log-every": "-1", "shed-max-inflight": "1",
	} {
		cfg := DefaultConfig()
		fs := newServeFlagSet(&cfg)
		if err := fs.Parse([]string{"--" + flagName + "=" + value}); err != nil {
			t.Fatalf("--%s=%s: %v", flagName, value, err)
		}
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "--"+flagName+" ") {
			t.Errorf("--%s=%s: %v; want a message starting with the flag", flagName, value, err)
		}
	}
	// Two at once: one line each.
	cfg := DefaultConfig()
	fs := newServeFlagSet(&cfg)
	_ = fs.Parse([]string{"--pool-min-conns=5", "--pool-max-conns=3", "--idle-timeout=0s"})
	if err := cfg.Validate(); err == nil || err.Error() != "--pool-min-conns (5) exceeds max (3)\n--idle-timeout must be > 0" {
		t.Errorf("two problems: %q", err)
	}
}

// TestErrorLines: pgx's attempts to connect join their "failed to connect"
// line, once each, a refused TLS handshake last; other lines stay.
func TestErrorLines(t *testing.T) {
	msg := "unavailable: database unreachable: failed to connect to `user=app database=shop`:\n" +
		"\t127.0.0.1:5432 (127.0.0.1): tls error: server refused TLS connection\n" +
		"\t127.0.0.1:5432 (127.0.0.1): failed SASL auth: FATAL: password authentication failed for user \"app\" (SQLSTATE 28P01)\n" +
		"\t127.0.0.1:5432 (127.0.0.1): failed SASL auth: FATAL: password authentication failed for user \"app\" (SQLSTATE 28P01)\n" +
		"--pool-max-conns must be > 0\n--pool-max-conns must be > 0\n--read-timeout must be > 0"
	want := []string{
		"unavailable: database unreachable: failed to connect to `user=app database=shop`: " +
			"127.0.0.1:5432 (127.0.0.1): failed SASL auth: FATAL: password authentication failed for user \"app\" (SQLSTATE 28P01); " +
			"127.0.0.1:5432 (127.0.0.1): tls error: server refused TLS connection",
		"--pool-max-conns must be > 0",
		"--read-timeout must be > 0",
	}
	if got := errorLines(msg); !slices.Equal(got, want) {
		t.Errorf("errorLines:\n got %q\nwant %q", got, want)
	}
}
