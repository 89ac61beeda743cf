// Package pgtest gives test binaries a real PostgreSQL: one private cluster
// per test binary (started with pgembed, exactly as `storefront serve`
// starts its own), a template database migrated and seeded once, and a
// fresh database cloned from it for every test.
//
// Fuzzing: `go test -fuzz` runs the test binary as a coordinator that
// starts worker processes of the same binary (with -test.fuzzworker) and
// waits for each to answer before it fuzzes. A cluster of its own in every
// worker (initdb, migrations, seeding) is slow enough on a busy machine to
// spoil that start. So the coordinator, once it has started its cluster,
// names its socket in the environment variable FuzzClusterEnv, which the
// workers inherit (internal/fuzz starts them with the environment the
// coordinator has when fuzzing begins); a worker whose parent process set
// it clones its databases from the coordinator's template instead of
// starting a cluster. A fuzz target therefore takes its database before it
// calls f.Fuzz. Only the process that started a cluster stops it.
package pgtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"storefront/internal/pgembed"
	"storefront/internal/postgres"
	"storefront/internal/seed"
)

// Data set of the template database: small enough to seed in a second,
// with soft-deleted rows (about 1%) and strings that need JSON escaping.
const (
	Users      = 3000
	Products   = 600
	Warehouses = 3
	Seed       = 7
	template   = "storefront_template"
)

// FuzzClusterEnv is the environment variable through which a fuzz
// coordinator hands its cluster to its workers: "<pid>:<port>:<socket
// dir>", pid being the coordinator's. It counts only in a fuzz worker whose
// parent has that pid; anywhere else a value (say, left in a shell) is
// removed from the environment and ignored.
const FuzzClusterEnv = "STOREFRONT_PGTEST_FUZZ_CLUSTER"

// Cluster is a private PostgreSQL with a migrated, seeded template.
type Cluster struct {
	Server *pgembed.Server // nil in a fuzz worker, which uses its coordinator's cluster
	socket pgembed.Socket
	dir    string
	next   atomic.Int64
}

var (
	once    sync.Once
	shared  *Cluster
	initErr error
)

// Main runs m's tests with a cluster started on first use and stopped after
// the last test. Use it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	if !flag.Parsed() {
		flag.Parse() // m.Run would; the testing flags say whether this is a fuzz worker
	}
	if _, err := inherited(); err != nil && !errors.Is(err, errNotInherited) {
		fmt.Fprintf(os.Stderr, "pgtest: ignoring %s: %v\n", FuzzClusterEnv, err)
		os.Unsetenv(FuzzClusterEnv)
	}
	code := m.Run()
	if shared != nil && shared.Server != nil {
		os.Unsetenv(FuzzClusterEnv)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := shared.Server.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stopping PostgreSQL:", err)
		}
		os.RemoveAll(shared.dir)
	}
	return code
}

// Get returns the test binary's cluster, starting it on first use; in a
// fuzz worker, the coordinator's.
func Get(t testing.TB) *Cluster {
	t.Helper()
	once.Do(func() { shared, initErr = open() })
	if initErr != nil {
		t.Fatalf("pgtest: %v", initErr)
	}
	return shared
}

func open() (*Cluster, error) {
	socket, err := inherited()
	switch {
	case err == nil:
		return attach(socket)
	case !errors.Is(err, errNotInherited):
		os.Unsetenv(FuzzClusterEnv)
	}
	c, err := start()
	if err != nil {
		return nil, err
	}
	if flagValue("test.fuzz") != "" && flagValue("test.fuzzworker") != "true" {
		// A fuzz coordinator: its workers are started after this, with
		// the environment as it is then.
		os.Setenv(FuzzClusterEnv, fmt.Sprintf("%d:%d:%s", os.Getpid(), c.socket.Port, c.socket.Dir))
	}
	return c, nil
}

var errNotInherited = errors.New("not set")

// inherited returns the socket named by FuzzClusterEnv if this process is
// a fuzz worker started by the process that set it, errNotInherited if the
// variable is unset, or why its value does not apply here.
func inherited() (pgembed.Socket, error) {
	v, ok := os.LookupEnv(FuzzClusterEnv)
	if !ok {
		return pgembed.Socket{}, errNotInherited
	}
	fields := strings.SplitN(v, ":", 3)
	if len(fields) != 3 {
		return pgembed.Socket{}, fmt.Errorf("%q is not <pid>:<port>:<socket dir>", v)
	}
	pid, err1 := strconv.Atoi(fields[0])
	port, err2 := strconv.Atoi(fields[1])
	if err1 != nil || err2 != nil || !filepath.IsAbs(fields[2]) {
		return pgembed.Socket{}, fmt.Errorf("%q is not <pid>:<port>:<socket dir>", v)
	}
	if flagValue("test.fuzzworker") != "true" {
		return pgembed.Socket{}, errors.New("set, but this process is not a fuzz worker")
	}
	if pid != os.Getppid() {
		return pgembed.Socket{}, fmt.Errorf("set by process %d, not by this fuzz worker's coordinator (%d)", pid, os.Getppid())
	}
	return pgembed.Socket{Dir: fields[2], Port: port}, nil
}

// flagValue is the value of the testing flag name, "" if it is not defined.
func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// attach uses the coordinator's cluster after checking that it answers.
func attach(socket pgembed.Socket) (*Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, socket.DSN("postgres"))
	if err != nil {
		return nil, fmt.Errorf("the fuzz coordinator's PostgreSQL (%s=%s): %w", FuzzClusterEnv, os.Getenv(FuzzClusterEnv), err)
	}
	conn.Close(ctx)
	return &Cluster{socket: socket}, nil
}

func start() (*Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, _, err := pgembed.MkdirTemp("storefront-test-")
	if err != nil {
		return nil, err
	}
	srv, err := pgembed.Start(ctx, pgembed.Config{
		DataDir:   filepath.Join(dir, "data"),
		Ephemeral: true,
		Settings:  map[string]string{"max_connections": "300", "shared_buffers": "128MB"},
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &Cluster{Server: srv, socket: srv.Socket(), dir: dir}
	if err := c.buildTemplate(ctx); err != nil {
		_ = srv.Stop(context.Background())
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) buildTemplate(ctx context.Context) error {
	if err := c.socket.CreateDatabase(ctx, template, ""); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, c.socket.DSN(template))
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrating template: %w", err)
	}
	if _, err := seed.Run(ctx, pool, seed.Config{Users: Users, Products: Products, Warehouses: Warehouses, Seed: Seed}); err != nil {
		return fmt.Errorf("seeding template: %w", err)
	}
	return nil
}

// NewDatabase clones the template into a fresh database for t and returns
// its DSN. The database is dropped when t ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, "t", template)
}

// NewEmptyDatabase creates a database without schema for t.
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, "e", "")
}

func createDatabase(t testing.TB, prefix, from string) string {
	t.Helper()
	c := Get(t)
	name := fmt.Sprintf("%s%d_%d", prefix, os.Getpid(), c.next.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.socket.CreateDatabase(ctx, name, from); err != nil {
		t.Fatalf("pgtest: creating database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.socket.DropDatabase(ctx, name)
	})
	return c.socket.DSN(name)
}
