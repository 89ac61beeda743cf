package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"storefront/internal/pgembed"
	"storefront/internal/postgres"
	"storefront/internal/seed"
)

// Data set: enough rows that lookups are not all cached in one page, small
// enough to seed in about a second.
const (
	seedUsers    = 20_000
	seedProducts = 2_000
	database     = "storefront"
)

// env is what every scenario shares: the built binary and one PostgreSQL
// cluster listening on loopback TCP (so toxiproxy can stand in between).
var env struct {
	bin      string
	dir      string
	pg       *pgembed.Server
	pgCfg    pgembed.Config
	users    []int64 // live user ids
	products []int64 // live product ids
}

func TestMain(m *testing.M) {
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults: setup:", err)
		teardown()
		os.Exit(1)
	}
	if code == 0 {
		code = m.Run()
	}
	if err := writeSummary(); err != nil {
		fmt.Fprintln(os.Stderr, "faults: summary:", err)
		code = 1
	}
	teardown()
	os.Exit(code)
}

func setup() (int, error) {
	raiseFileLimit()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var err error
	env.dir, _, err = pgembed.MkdirTemp("storefront-faults-")
	if err != nil {
		return 0, err
	}
	env.bin = filepath.Join(env.dir, "storefront")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", env.bin, "storefront/cmd/storefront").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build: %v\n%s", err, out)
	}
	env.pgCfg = pgembed.Config{
		DataDir:   filepath.Join(env.dir, "data"),
		Ephemeral: true,
		ListenTCP: "127.0.0.1",
		Settings:  map[string]string{"max_connections": "200", "shared_buffers": "128MB"},
	}
	env.pg, err = pgembed.Start(ctx, env.pgCfg)
	if err != nil {
		return 0, err
	}
	// Restarts after a Stop must come back on the same port.
	_, port, _ := net.SplitHostPort(env.pg.TCPAddr())
	env.pgCfg.Port, _ = strconv.Atoi(port)
	if err := env.pg.CreateDatabase(ctx, database, ""); err != nil {
		return 0, err
	}
	pool, err := pgxpool.New(ctx, tcpDSN())
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		return 0, err
	}
	if _, err := seed.Run(ctx, pool, seed.Config{Users: seedUsers, Products: seedProducts, Warehouses: 3, Seed: 11}); err != nil {
		return 0, err
	}
	if env.users, err = ids(ctx, pool, `SELECT user_id FROM users WHERE deleted_at IS NULL`); err != nil {
		return 0, err
	}
	if env.products, err = ids(ctx, pool, `SELECT product_id FROM products WHERE deleted_at IS NULL`); err != nil {
		return 0, err
	}
	return 0, nil
}

func teardown() {
	if env.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = env.pg.Stop(ctx)
		cancel()
	}
	if env.dir != "" {
		os.RemoveAll(env.dir)
	}
}

func ids(ctx context.Context, pool *pgxpool.Pool, sql string) ([]int64, error) {
	rows, err := pool.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// tcpDSN reaches the cluster over loopback TCP.
func tcpDSN() string { return dsnFor(env.pg.TCPAddr()) }

// dsnFor is the storefront database's DSN at addr (the cluster, or a proxy
// in front of it).
func dsnFor(addr string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", pgembed.Superuser, addr, database)
}

// raiseFileLimit lifts the soft open-file limit to the hard one: the
// hostile-clients scenario holds thousands of connections, and the server
// processes inherit the limit.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// result is one scenario's line of the report.
type result struct {
	Name    string         `json:"name"`
	Load    string         `json:"load"`
	Figures map[string]any `json:"figures"`
	Pass    bool           `json:"pass"`
	Notes   []string       `json:"failures,omitempty"`
}

var results struct {
	sync.Mutex
	list []result
}

// report prints the scenario's one line and keeps it for the summary.
func report(t *testing.T, r result) {
	t.Helper()
	r.Pass = !t.Failed()
	results.Lock()
	results.list = append(results.list, r)
	results.Unlock()
	keys := make([]string, 0, len(r.Figures))
	for k := range r.Figures {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var figs []string
	for _, k := range keys {
		figs = append(figs, fmt.Sprintf("%s=%v", k, r.Figures[k]))
	}
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Printf("FAULT %-28s | %s | %s | %s\n", r.Name, r.Load, strings.Join(figs, " "), verdict)
}

// writeSummary writes every scenario's result as JSON.
func writeSummary() error {
	results.Lock()
	defer results.Unlock()
	if len(results.list) == 0 {
		return nil
	}
	dir := os.Getenv("FAULTS_OUT")
	if dir == "" {
		dir = "results"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pass := true
	for _, r := range results.list {
		pass = pass && r.Pass
	}
	out := struct {
		Suite    string    `json:"suite"`
		Started  time.Time `json:"written"`
		CPUs     int       `json:"cpus"`
		Pass     bool      `json:"pass"`
		Results  []result  `json:"scenarios"`
		GoVer    string    `json:"go"`
		Platform string    `json:"platform"`
	}{suiteName, time.Now().UTC(), runtime.NumCPU(), pass, results.list, runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "summary-"+suiteName+".json")
	fmt.Println("FAULT summary written to", path)
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func pgxConnect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, env.pg.DSN(database))
}
