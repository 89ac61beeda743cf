package pgembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// These tests run real clusters: two initdb runs and a dozen starts, about
// ten seconds in all. They need the PostgreSQL server binaries installed.

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// tempDataDir returns a data directory the server's OS user can reach.
func tempDataDir(t *testing.T) string {
	t.Helper()
	dir, cleanup, err := MkdirTemp("pgembed-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return dir
}

func startServer(t *testing.T, ctx context.Context, cfg Config) *Server {
	t.Helper()
	if _, err := FindBinDir(); err != nil {
		t.Skip(err)
	}
	began := time.Now()
	srv, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started in %v, pid %d, socket dir %s", time.Since(began).Round(time.Millisecond), srv.PID(), srv.SocketDir())
	t.Cleanup(func() { srv.Stop(context.Background()) })
	return srv
}

func queryString(t *testing.T, ctx context.Context, dsn, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// processGone reports whether pid has exited; a zombie waiting for init
// to reap it has.
func processGone(pid int) bool {
	return !alive(pid)
}

func TestFindBinDir(t *testing.T) {
	dir, err := FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bin dir %s", dir)
	const debian15 = "/usr/lib/postgresql/15/bin"
	if isServerBinDir(debian15) && !isServerBinDir("/usr/bin") && dir != debian15 {
		t.Errorf("FindBinDir = %s, want %s", dir, debian15)
	}
}

func TestCompareVersions(t *testing.T) {
	dirs := []string{"/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/x/bin"}
	var newest string
	for _, d := range dirs {
		if newest == "" || compareVersions(versionOf(d), versionOf(newest)) > 0 {
			newest = d
		}
	}
	if newest != "/usr/lib/postgresql/16/bin" {
		t.Errorf("newest = %s", newest)
	}
	if compareVersions(versionOf(dirs[1]), versionOf(dirs[0])) <= 0 {
		t.Error("15 must sort after 9.6")
	}
}

func TestQuoting(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/x":    "/tmp/x",
		"/a b":      `'/a b'`,
		`it's`:      `'it\'s'`,
		"":          "''",
		`back\they`: `'back\\they'`,
	} {
		if got := quoteDSN(in); got != want {
			t.Errorf("quoteDSN(%q) = %s, want %s", in, got, want)
		}
	}
	if got := quoteConf(`a'b\c`); got != `'a''b\\c'` {
		t.Errorf("quoteConf = %s", got)
	}
}

// TestServer walks one cluster through its life: first start, queries over
// pgx and psql, template cloning, settings, restarts, a refused second
// start, stop, restart from disk, and a start that fails.
func TestServer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := tempDataDir(t)
	cfg := Config{
		DataDir:   dir,
		Ephemeral: true,
		Logger:    testLogger(t),
		Settings:  map[string]string{"work_mem": "8MB"},
	}
	srv := startServer(t, ctx, cfg)

	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("select 1 over pgx", func(t *testing.T) {
		if got := queryString(t, ctx, srv.DSN("postgres"), "SELECT 1::text"); got != "1" {
			t.Errorf("SELECT 1 = %q", got)
		}
	})

	step("psql takes the DSN", func(t *testing.T) {
		psql := filepath.Join(srv.BinDir(), "psql")
		if !isExecutable(psql) {
			psql = "psql"
		}
		out, err := exec.CommandContext(ctx, psql,
			"--no-psqlrc", "-At", "-d", srv.DSN("postgres"), "-c", "SELECT current_user").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != Superuser {
			t.Errorf("psql: %v: %s", err, out)
		}
	})

	step("shared memory", func(t *testing.T) {
		sm, err := srv.SharedMemory(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", sm)
		reserved, supported := meminfoHugePages(t)
		if !supported {
			if sm.HugePages || sm.HugePagesNeeded != 0 {
				t.Errorf("no huge pages in this kernel, yet %+v", sm)
			}
			return
		}
		// 128MB of shared_buffers (Ephemeral) and some more, in 2 MB pages.
		if sm.HugePagesNeeded < 64 {
			t.Errorf("HugePagesNeeded = %d, want at least 64", sm.HugePagesNeeded)
		}
		if reserved == 0 && sm.HugePages {
			t.Errorf("no huge pages reserved on this machine, yet HugePages is true")
		}
	})

	step("settings", func(t *testing.T) {
		for name, want := range map[string]string{
			"jit":                     "off",
			"huge_pages":              "try",
			"fsync":                   "off", // Ephemeral
			"listen_addresses":        "",
			"max_connections":         "200",
			"work_mem":                "8MB", // Config.Settings
			"server_encoding":         "UTF8",
			"lc_collate":              "C",
			"random_page_cost":        "1.1",
			"TimeZone":                "UTC",
			"logging_collector":       "off",
			"unix_socket_permissions": "0777",
		} {
			if got := queryString(t, ctx, srv.DSN("postgres"), "SHOW "+name); got != want {
				t.Errorf("SHOW %s = %q, want %q", name, got, want)
			}
		}
		fi, err := os.Stat(srv.clusterDir)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("cluster dir mode: %v %v", fi.Mode(), err)
		}
		if data, err := os.ReadFile(srv.LogFile()); err != nil || !strings.Contains(string(data), "ready to accept connections") {
			t.Errorf("log file lacks the ready line: %v", err)
		}
	})

	step("create database from template", func(t *testing.T) {
		if err := srv.CreateDatabase(ctx, "tmpl", ""); err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, srv.DSN("tmpl"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE product (id int PRIMARY KEY, name text); INSERT INTO product VALUES (1, 'ünïcödé')"); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		if err := srv.CreateDatabase(ctx, "Test Clone", "tmpl"); err != nil {
			t.Fatal(err)
		}
		if got := queryString(t, ctx, srv.DSN("Test Clone"), "SELECT upper(name) FROM product WHERE id = 1"); got != "ÜNÏCÖDÉ" {
			t.Errorf("clone holds %q", got)
		}
		if err := srv.CreateDatabase(ctx, "tmpl", ""); err == nil {
			t.Error("creating an existing database succeeded")
		}
		if err := srv.DropDatabase(ctx, "Test Clone"); err != nil {
			t.Error(err)
		}
	})

	step("restart fast and immediate", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		for _, mode := range []string{"fast", "immediate"} {
			old := srv.PID()
			if err := srv.Restart(ctx, mode); err != nil {
				t.Fatalf("restart %s: %v", mode, err)
			}
			if srv.PID() == old || !processGone(old) {
				t.Errorf("restart %s: pid %d -> %d, old one gone: %v", mode, old, srv.PID(), processGone(old))
			}
			if got := queryString(t, ctx, srv.DSN("tmpl"), "SELECT count(*)::text FROM product"); got != "1" {
				t.Errorf("after restart %s: %s rows", mode, got)
			}
		}
		if err := conn.Ping(ctx); err == nil {
			t.Error("a connection survived the restart")
		}
		if err := srv.Restart(ctx, "sideways"); err == nil {
			t.Error("restart with a bad mode succeeded")
		}
	})

	step("second start on the same dir fails", func(t *testing.T) {
		_, err := Start(ctx, cfg)
		if err == nil || !strings.Contains(err.Error(), "data directory "+dir+" is in use by another storefront/postgres (pid ") {
			t.Fatalf("second Start: %v", err)
		}
		t.Log(err)
		if got := queryString(t, ctx, srv.DSN("postgres"), "SELECT 1::text"); got != "1" {
			t.Error("first server hurt by the second start")
		}
	})

	step("stop is idempotent and leaves no process", func(t *testing.T) {
		pid := srv.PID()
		for range 2 {
			if err := srv.Stop(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if srv.PID() != 0 || !processGone(pid) {
			t.Errorf("after Stop: PID() = %d, postmaster gone: %v", srv.PID(), processGone(pid))
		}
		if err := srv.Restart(ctx, "fast"); err == nil {
			t.Error("restart of a stopped server succeeded")
		}
	})

	step("a bad setting fails the start with postgres's words", func(t *testing.T) {
		bad := cfg
		bad.Settings = map[string]string{"connection_pool_size": "10"}
		_, err := Start(ctx, bad)
		if err == nil || !strings.Contains(err.Error(), `unrecognized configuration parameter "connection_pool_size"`) {
			t.Fatalf("Start with a bad setting: %v", err)
		}
	})

	// Servers are started here, not in a step, so that they live until the
	// test ends rather than until the step does.
	srv = startServer(t, ctx, cfg)
	step("start again from disk", func(t *testing.T) {
		if got := queryString(t, ctx, srv.DSN("tmpl"), "SELECT name FROM product"); got != "ünïcödé" {
			t.Errorf("data after restart from disk: %q", got)
		}
	})

	crash(t, ctx, srv)
	srv = startServer(t, ctx, cfg)
	step("start over a crash", func(t *testing.T) {
		if got := queryString(t, ctx, srv.DSN("tmpl"), "SELECT name FROM product"); got != "ünïcödé" {
			t.Errorf("data after crash recovery: %q", got)
		}
		if err := srv.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// crash kills srv's postgres the way a power cut or the OOM killer would:
// every process of it at once, leaving postmaster.pid and the socket's lock
// file behind.
func crash(t *testing.T, ctx context.Context, srv *Server) {
	t.Helper()
	pid := srv.PID()
	if pid <= 0 {
		t.Fatalf("crash: server not running (pid %d)", pid) // kill(-0) would hit the test itself
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if pf, ok := readPidFile(srv.clusterDir); !ok || pf.pid != pid || !processGone(pid) {
		t.Fatalf("want a stale postmaster.pid of dead pid %d, have %+v (present: %v)", pid, pf, ok)
	}
}

// TestStaleSocketDirRemoved: a short socket directory that a killed
// server left under /tmp (its record still in the data directory) is
// removed by the next start; a clean stop removes the new one and the
// record.
func TestStaleSocketDirRemoved(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(tempDataDir(t), strings.Repeat("long-directory-name/", 5))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stale, err := os.MkdirTemp("/tmp", socketDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(stale)
	if err := os.WriteFile(filepath.Join(dir, socketDirRecord), []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, ctx, Config{DataDir: dir, Ephemeral: true, Logger: testLogger(t)})
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale socket dir %s still there: %v", stale, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, socketDirRecord)); err != nil || string(b) != srv.SocketDir() {
		t.Errorf("record %q (%v), want the socket dir in use %s", b, err, srv.SocketDir())
	}
	sockDir := srv.SocketDir()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{sockDir, filepath.Join(dir, socketDirRecord)} {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s still there after Stop: %v", path, err)
		}
	}
}

// TestCrashes covers what a killed program leaves behind: a postgres still
// running (refused clearly), and a stale postmaster.pid after a crash
// (started over it). Its data directory is too long for a socket path, and
// it listens on TCP too.
func TestCrashes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(tempDataDir(t), strings.Repeat("long-directory-name/", 5))
	cfg := Config{DataDir: dir, Ephemeral: true, Logger: testLogger(t), ListenTCP: "127.0.0.1"}
	srv := startServer(t, ctx, cfg)
	if srv.SocketDir() == srv.clusterDir || !strings.HasPrefix(srv.SocketDir(), "/tmp/") {
		t.Errorf("socket dir %s for a long data dir", srv.SocketDir())
	}
	sockDir := srv.SocketDir()
	// Trust authentication: only the server's user and root may reach it.
	if fi, err := os.Stat(sockDir); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("short socket dir %s has mode %v; want 0700", sockDir, fi.Mode().Perm())
	}
	host, port, _ := net.SplitHostPort(srv.TCPAddr())
	if got := queryString(t, ctx, "host="+host+" port="+port+" user=postgres dbname=postgres sslmode=disable", "SELECT 1::text"); got != "1" {
		t.Errorf("SELECT 1 over TCP = %q", got)
	}
	if got := queryString(t, ctx, srv.DSN("postgres"), "SHOW port"); got != port {
		t.Errorf("port %s, TCPAddr %s", got, srv.TCPAddr())
	}

	// A program killed without Stop drops its flock but not postgres.
	srv.mu.Lock()
	srv.lock.Close()
	srv.lock = nil
	srv.mu.Unlock()
	_, err := Start(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "is in use by another storefront/postgres (pid "+strconv.Itoa(srv.PID())+")") {
		t.Fatalf("Start beside a left-running postgres: %v", err)
	}
	t.Log(err)

	crash(t, ctx, srv)
	if _, err := os.Stat(sockDir); !os.IsNotExist(err) {
		t.Errorf("short socket dir %s not removed: %v", sockDir, err)
	}

	srv = startServer(t, ctx, cfg)
	if got := queryString(t, ctx, srv.DSN("postgres"), "SELECT 1::text"); got != "1" {
		t.Errorf("SELECT 1 = %q after crash recovery", got)
	}
}

// A data directory with a comma (and a space) in its path works: clients
// would read "host=/a b,c/pg" as two hosts, so the socket goes to a short
// private directory.
func TestCommaInDataDir(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(tempDataDir(t), "a b,c")
	srv := startServer(t, ctx, Config{DataDir: dir, Ephemeral: true, Logger: testLogger(t)})
	if strings.Contains(srv.SocketDir(), ",") {
		t.Errorf("socket dir %s", srv.SocketDir())
	}
	if got := queryString(t, ctx, srv.DSN("postgres"), "SELECT 1::text"); got != "1" {
		t.Errorf("SELECT 1 = %q", got)
	}
}

func TestNotTraversable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root runs postgres as another user")
	}
	if _, err := FindBinDir(); err != nil {
		t.Skip(err)
	}
	private := t.TempDir() // in a 0700 directory of root's
	_, err := Start(t.Context(), Config{DataDir: filepath.Join(private, "data")})
	if err == nil || !strings.Contains(err.Error(), filepath.Dir(private)+" (mode drwx------) is not traversable by user ") {
		t.Fatalf("Start under a 0700 dir: %v", err)
	}
}

// TestParentDeath checks that a program killed without Stop takes its
// postgres with it (the parent-death signal), and that the next Start on
// the same directory then succeeds. The program is this test binary,
// re-run as a child that starts a durable cluster and exits at once.
func TestParentDeath(t *testing.T) {
	if dir := os.Getenv("PGEMBED_TEST_CHILD_DIR"); dir != "" {
		srv, err := Start(context.Background(), Config{DataDir: dir})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("pid:", srv.PID())
		os.Exit(0) // no Stop
	}
	if _, err := FindBinDir(); err != nil {
		t.Skip(err)
	}
	t.Parallel()
	ctx := t.Context()
	dir := tempDataDir(t)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestParentDeath$")
	cmd.Env = append(os.Environ(), "PGEMBED_TEST_CHILD_DIR="+dir)
	out, err := cmd.CombinedOutput()
	var pid int
	if _, serr := fmt.Sscanf(string(out), "pid: %d", &pid); err != nil || serr != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	srv := startServer(t, ctx, Config{DataDir: dir, Logger: testLogger(t)})
	if !processGone(pid) {
		t.Errorf("postgres %d of the dead child still runs", pid)
	}
	if got := queryString(t, ctx, srv.DSN("postgres"), "SHOW fsync"); got != "on" {
		t.Errorf("durable cluster has fsync=%s", got)
	}
}

// meminfoHugePages reads HugePages_Total from /proc/meminfo, and whether
// the kernel has huge pages at all.
func meminfoHugePages(t *testing.T) (total int, supported bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "HugePages_Total:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("meminfo: %q", line)
			}
			return n, true
		}
	}
	return 0, false
}

func TestMapsHaveHugeSegment(t *testing.T) {
	for _, tc := range []struct {
		maps string
		want bool
	}{
		{"7f5d97200000-7f5db9e00000 rw-s 00000000 00:11 2467368                    /anon_hugepage (deleted)\n", true},
		{"7f900897c000-7f902b43e000 rw-s 00000000 00:01 1606                       /dev/zero (deleted)\n" +
			"7f902d81f000-7f902d820000 rw-s 00000000 00:01 229384                     /SYSV00510112 (deleted)\n", false},
		{"7f5d97200000-7f5db9e00000 rw-p 00000000 00:11 2467368                    /anon_hugepage (deleted)\n", false}, // private
		{"", false},
	} {
		got, err := mapsHaveHugeSegment(strings.NewReader(tc.maps))
		if err != nil || got != tc.want {
			t.Errorf("mapsHaveHugeSegment(%q) = %v, %v; want %v", tc.maps, got, err, tc.want)
		}
	}
}

// TestStalePidReused starts over a crash whose postmaster's pid now belongs
// to another live process of postgres's own user, as after a reboot: both
// postmaster.pid and the socket's lock file name that pid.
func TestStalePidReused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := Config{DataDir: tempDataDir(t), Ephemeral: true, Logger: testLogger(t)}
	srv := startServer(t, ctx, cfg)
	if srv.SocketDir() != srv.clusterDir {
		t.Fatalf("socket dir %s, want the cluster dir", srv.SocketDir())
	}
	crash(t, ctx, srv)

	// A process of the same user that is no postgres: postgres's own check
	// (kill(pid, 0)) takes it for a live postmaster.
	other := exec.Command("sleep", "60")
	other.Dir = "/"
	other.SysProcAttr = srv.sysProcAttr(0)
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	for _, name := range []string{"postmaster.pid", ".s.PGSQL.5432.lock"} {
		path := filepath.Join(srv.clusterDir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s after the crash: %v", name, err)
		}
		_, rest, _ := strings.Cut(string(data), "\n")
		if err := os.WriteFile(path, []byte(strconv.Itoa(other.Process.Pid)+"\n"+rest), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	srv = startServer(t, ctx, cfg)
	if got := queryString(t, ctx, srv.DSN("postgres"), "SELECT 1::text"); got != "1" {
		t.Errorf("SELECT 1 = %q", got)
	}
}

// TestStalePidOfAnotherUser starts, as an unprivileged user, over a crash
// whose postmaster's pid now belongs to a process of another user (root),
// which that user may neither signal nor inspect: it cannot be a postgres
// serving the cluster, and postgres itself takes the pid file for stale.
// The start runs in a child, this test binary re-run as postgres's user.
func TestStalePidOfAnotherUser(t *testing.T) {
	if dir := os.Getenv("PGEMBED_TEST_UNPRIVILEGED_DIR"); dir != "" {
		srv, err := Start(context.Background(), Config{DataDir: dir, Ephemeral: true})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		srv.Stop(context.Background())
		fmt.Println("started")
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the child as another user")
	}
	t.Parallel()
	ctx := t.Context()
	dir := tempDataDir(t)
	cfg := Config{DataDir: filepath.Join(dir, "data"), Ephemeral: true, Logger: testLogger(t)}
	srv := startServer(t, ctx, cfg)
	crash(t, ctx, srv)

	other := exec.Command("sleep", "60") // root's
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	pidFile := filepath.Join(srv.clusterDir, "postmaster.pid")
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(data), "\n")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(other.Process.Pid)+"\n"+rest), 0o600); err != nil {
		t.Fatal(err)
	}
	// The data directory becomes the unprivileged user's, as if it had
	// made it.
	for _, name := range []string{"data", "data/" + lockFile} {
		if err := chown(filepath.Join(dir, name), srv.user); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "pgembed.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "-test.run=^TestStalePidOfAnotherUser$")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "PGEMBED_TEST_UNPRIVILEGED_DIR="+cfg.DataDir)
	cmd.SysProcAttr = srv.sysProcAttr(0)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "started") {
		t.Fatalf("start as user %q over a pid file naming root's pid %d: %v: %s", srv.user.name, other.Process.Pid, err, out)
	}
}

// TestParentDeathDuringInitdb checks that a program killed while initdb
// runs takes initdb with it. The program is this test binary, re-run as a
// child that starts a cluster; it is killed once initdb has begun writing.
func TestParentDeathDuringInitdb(t *testing.T) {
	if dir := os.Getenv("PGEMBED_TEST_INITDB_DIR"); dir != "" {
		Start(context.Background(), Config{DataDir: dir})
		os.Exit(0)
	}
	if _, err := FindBinDir(); err != nil {
		t.Skip(err)
	}
	t.Parallel()
	dir := tempDataDir(t)
	scratch := filepath.Join(dir, "pg.initdb")
	cmd := exec.Command(os.Args[0], "-test.run=^TestParentDeathDuringInitdb$")
	cmd.Env = append(os.Environ(), "PGEMBED_TEST_INITDB_DIR="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	initdb := func() int {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err == nil && strings.Contains(string(cmdline), "initdb\x00--pgdata="+scratch+"\x00") && alive(atoi(e.Name())) {
				return atoi(e.Name())
			}
		}
		return 0
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if entries, _ := os.ReadDir(scratch); len(entries) > 0 && initdb() != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("initdb never started writing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	time.Sleep(300 * time.Millisecond)
	if pid := initdb(); pid != 0 {
		t.Errorf("initdb %d of the killed program still runs", pid)
		for time.Now().Before(deadline) && initdb() != 0 { // leave nothing behind
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestTakenPortIsReplaced: a free TCP port that another program binds
// before postgres does makes Start try another; a port asked for is not
// replaced.
func TestTakenPortIsReplaced(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	picks := 0
	cfg := Config{DataDir: tempDataDir(t), Ephemeral: true, Logger: testLogger(t), ListenTCP: "127.0.0.1",
		pickPort: func(host string) (int, error) {
			picks++
			if picks == 1 {
				return takenPort, nil // as if it were bound right after being chosen
			}
			return freePort(host)
		}}
	srv := startServer(t, ctx, cfg)
	host, port, _ := net.SplitHostPort(srv.TCPAddr())
	if port == strconv.Itoa(takenPort) || picks != 2 {
		t.Fatalf("listening on %s after %d picks; port %d was taken", srv.TCPAddr(), picks, takenPort)
	}
	if got := queryString(t, ctx, "host="+host+" port="+port+" user=postgres dbname=postgres sslmode=disable", "SELECT 1::text"); got != "1" {
		t.Errorf("SELECT 1 over TCP = %q", got)
	}

	asked := Config{DataDir: tempDataDir(t), Ephemeral: true, Logger: testLogger(t), ListenTCP: "127.0.0.1", Port: takenPort}
	if srv, err := Start(ctx, asked); err == nil {
		srv.Stop(context.Background())
		t.Fatalf("Start on taken port %d asked for: no error", takenPort)
	} else if !errors.Is(err, errPortInUse) {
		t.Errorf("Start on taken port %d asked for: %v; want errPortInUse", takenPort, err)
	}
}

// TestReplacedPortStillFitsTheSocketPath: the socket file is named after
// the port, so a replacement port with more digits than the one taken
// makes a longer socket path. A data directory whose socket path just fits
// with the first port must get a short socket directory for the next,
// rather than a postgres that refuses the path as too long.
func TestReplacedPortStillFitsTheSocketPath(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	listen := func(from, to int) (net.Listener, int) {
		for p := from; p < to; p++ {
			if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
				return l, p
			}
		}
		t.Skipf("no free port in [%d, %d)", from, to)
		return nil, 0
	}
	taken, short := listen(9000, 10000) // four digits
	defer taken.Close()
	// The data directory is padded so that DataDir/pg/.s.PGSQL.<4 digits>
	// is exactly maxSocketPath bytes: one more digit does not fit.
	dir := tempDataDir(t)
	pad := maxSocketPath - len(socketPath(filepath.Join(dir, "x", "pg"), short))
	if pad < 0 {
		t.Skipf("temporary directory %s too long", dir)
	}
	dir = filepath.Join(dir, strings.Repeat("d", pad+1))
	if n := len(socketPath(filepath.Join(dir, "pg"), short)); n != maxSocketPath {
		t.Fatalf("socket path of %d bytes, want %d", n, maxSocketPath)
	}
	picks := 0
	cfg := Config{DataDir: dir, Ephemeral: true, Logger: testLogger(t), ListenTCP: "127.0.0.1",
		pickPort: func(host string) (int, error) {
			picks++
			if picks == 1 {
				return short, nil // as if it were bound right after being chosen
			}
			l, p := listen(20000, 30000) // five digits
			l.Close()
			return p, nil
		}}
	srv := startServer(t, ctx, cfg)
	if picks != 2 {
		t.Errorf("%d picks, want 2", picks)
	}
	if n := len(socketPath(srv.SocketDir(), srv.Socket().Port)); n > maxSocketPath {
		t.Errorf("socket path of %d bytes", n)
	}
	if got := queryString(t, ctx, srv.DSN("postgres"), "SELECT 1::text"); got != "1" {
		t.Errorf("SELECT 1 over the socket = %q", got)
	}
}

// TestStartWaitsForAPostgresAboutToStop: right after its owner died, a
// postmaster may not have handled its parent-death signal yet and still
// say "ready"; a Start in that moment waits for it to shut down instead
// of refusing the data directory as in use.
func TestStartWaitsForAPostgresAboutToStop(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := tempDataDir(t)
	old := startServer(t, ctx, Config{DataDir: dir, Ephemeral: true, Logger: testLogger(t)})
	// As after the owner's death: the data directory's lock is free, and
	// the postmaster's signal comes a little later.
	old.mu.Lock()
	old.lock.Close()
	old.lock = nil
	proc := old.proc
	old.mu.Unlock()
	signalled := make(chan struct{})
	go func() {
		defer close(signalled)
		time.Sleep(500 * time.Millisecond)
		_ = proc.cmd.Process.Signal(syscall.SIGINT)
	}()
	srv := startServer(t, ctx, Config{DataDir: dir, Ephemeral: true, Logger: testLogger(t)})
	<-signalled
	if !isClosed(proc.exited) {
		t.Errorf("the old postmaster %d still runs under the new one %d", proc.cmd.Process.Pid, srv.PID())
	}
	if got := queryString(t, ctx, srv.DSN("postgres"), "SELECT 1::text"); got != "1" {
		t.Errorf("SELECT 1 = %q", got)
	}
}

// TestSuperviseRestartsAKilledPostgres kills the postmaster under
// Supervise: a new one must take over the cluster with its data. Then,
// with a configuration postgres refuses, the next death must end the
// supervision with an error instead of a restart loop.
func TestSuperviseRestartsAKilledPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := startServer(t, ctx, Config{DataDir: tempDataDir(t), Ephemeral: true, Logger: testLogger(t)})
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	// The checkpoint puts the table on disk: throwaway clusters commit
	// asynchronously.
	for _, sql := range []string{"CREATE TABLE kept AS SELECT 'yes' AS v", "CHECKPOINT"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)
	failed := srv.Supervise()

	first := srv.PID()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var (
		got     string
		f       *os.File
		lastErr error
	)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if pid := srv.PID(); pid != 0 && pid != first {
			var conn *pgx.Conn
			if conn, lastErr = pgx.Connect(ctx, srv.DSN("postgres")); lastErr == nil {
				lastErr = conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&got)
				conn.Close(ctx)
				if lastErr == nil {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no postgres answered within a minute of killing pid %d: %v", first, lastErr)
		}
	}
	if got != "yes" {
		t.Errorf("data after the restart: %q", got)
	}

	// A postgres that cannot start: supervision gives up and says why.
	f, err = os.OpenFile(filepath.Join(srv.clusterDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "no_such_setting_for_this_test = 1")
	f.Close()
	if err := syscall.Kill(srv.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err, ok := <-failed:
		if !ok || err == nil || !strings.Contains(err.Error(), "restarting postgres") {
			t.Errorf("supervision ended with %v (open %v); want the failed restart", err, ok)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("supervision neither restarted postgres nor gave up")
	}
	if err := srv.Stop(ctx); err != nil {
		t.Errorf("Stop after supervision gave up: %v", err)
	}
	if _, ok := <-failed; ok {
		t.Error("the channel is still open after Stop")
	}
}

// A cluster directory that disappeared under a server (deleted by hand) is
// named as such when postgres is started again, not reported as a missing
// postgres binary.
func TestLaunchWithoutCluster(t *testing.T) {
	s := &Server{clusterDir: filepath.Join(t.TempDir(), "pg"), tail: &logTail{log: testLogger(t)}}
	err := s.launch(t.Context())
	if err == nil || !strings.Contains(err.Error(), "cluster directory "+s.clusterDir+" is gone") {
		t.Errorf("launch: %v", err)
	}
	// A cluster whose owner is no longer the user who runs postgres is
	// named as such, with the command that fixes it.
	if err := os.MkdirAll(s.clusterDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.clusterDir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.user = &osUser{name: "someone", uid: uint32(os.Getuid()) + 1}
	err = s.launch(t.Context())
	if err == nil || !strings.Contains(err.Error(), "chown -R someone "+s.clusterDir) {
		t.Errorf("launch over a cluster of another owner: %v", err)
	}
}

// TestStopWithFrozenServer: a postmaster and a backend that no longer run
// (SIGSTOP; a hung host) do not hold Stop for ever. The backend leads a
// process group of its own, so the group's SIGKILL misses it; it is found
// by the output pipe it holds and killed.
func TestStopWithFrozenServer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := startServer(t, ctx, Config{DataDir: tempDataDir(t), Ephemeral: true, Logger: testLogger(t), StopTimeout: time.Second})
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(backend, syscall.SIGKILL) })
	for _, pid := range []int{backend, srv.PID()} {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Stop still waiting a minute after postgres was frozen")
	}
	for deadline := time.Now().Add(5 * time.Second); !processGone(backend); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still there after Stop", backend)
		}
	}
}
