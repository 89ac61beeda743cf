// Package pgembed starts and stops a private PostgreSQL server from the
// binaries installed on the machine: `storefront serve` uses it when no DSN
// is given, and each test binary uses it for its one cluster.
//
// Layout under Config.DataDir:
//
//	storefront.lock      flock held while a Server owns the directory
//	storefront.socketdir the short socket directory under /tmp, while one is in use
//	pg/                  the cluster (PGDATA), mode 0700, owned by the server's OS user
//	pg/storefront.conf   tuned settings, rewritten on every start, included by postgresql.conf
//	pg/log/postgres.log  everything postgres writes to stderr
//
// The server listens on a Unix socket only, in pg/ itself, unless
// Config.ListenTCP is set. Authentication is trust: whoever can reach the
// socket is superuser, which is why the socket lives inside the 0700 cluster
// directory (root and the server's user get in, nobody else). When that
// path is too long for a socket address the socket moves to a fresh
// directory under /tmp, as private: mode 0700, owned by the server's user.
//
// initdb and postgres refuse to run as root, so a root process runs them as
// an unprivileged user (Config.OSUser, else "postgres", else a created
// system user "storefront-pg"), and every directory above the cluster must
// be traversable by that user. Tests therefore take their data directory
// from MkdirTemp, not t.TempDir, whose 0700 root-owned directory is not:
//
//	dir, cleanup, err := pgembed.MkdirTemp("storefront-test-")
//	...
//	srv, err := pgembed.Start(ctx, pgembed.Config{DataDir: dir, Ephemeral: true})
//	...
//	defer cleanup()
//	defer srv.Stop(ctx)
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
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Superuser is the database role initdb creates and DSN connects as.
const Superuser = "postgres"

// maxSocketPath is the longest socket path the kernel takes: sun_path is
// 108 bytes including the terminating NUL.
const maxSocketPath = 107

// Config says where and how to run the server. The zero value of every
// field but DataDir is a working default.
type Config struct {
	DataDir   string            // required; the cluster lives in DataDir/pg
	BinDir    string            // directory of initdb and postgres; default FindBinDir()
	OSUser    string            // user to run postgres as when we are root; see the package doc
	Port      int               // names the socket file .s.PGSQL.<Port>, and the TCP port with ListenTCP; default 5432, or a free port with ListenTCP
	ListenTCP string            // e.g. "127.0.0.1" to also listen on TCP there; pg_hba admits loopback clients only
	Settings  map[string]string // postgresql.conf settings that override pgembed's tuning (not port, listen_addresses, unix_socket_directories)
	Logger    *slog.Logger      // postgres's output goes here at debug level; nil discards

	StartTimeout time.Duration // how long postgres may take to accept connections (crash recovery included); default 30s
	StopTimeout  time.Duration // how long a fast shutdown may take before an immediate one; default 30s

	// Ephemeral is for throwaway clusters (tests): initdb skips fsync and
	// the server runs with fsync, synchronous_commit and full_page_writes
	// off. A crash of the machine may corrupt such a cluster.
	Ephemeral bool

	// pickPort chooses the TCP port when Port is 0 and ListenTCP is set;
	// nil: freePort. Replaced in tests.
	pickPort func(host string) (int, error)
}

// withDefaults returns a copy of c with defaults filled in and DataDir made
// absolute, or an error saying which field is wrong.
func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		return c, errors.New("pgembed: Config.DataDir is required")
	}
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return c, fmt.Errorf("pgembed: %w", err)
	}
	c.DataDir = dir
	if c.ListenTCP != "" && net.ParseIP(c.ListenTCP) == nil {
		return c, fmt.Errorf("pgembed: Config.ListenTCP %q is not an IP address", c.ListenTCP)
	}
	switch {
	case c.Port == 0 && c.ListenTCP != "":
		// 5432 may well be taken on TCP, by a system cluster or a sibling
		// test binary; a socket file in our own directory never is.
		if c.pickPort == nil {
			c.pickPort = freePort
		}
		if c.Port, err = c.pickPort(c.ListenTCP); err != nil {
			return c, err
		}
	case c.Port == 0:
		c.Port = 5432
	case c.Port < 1 || c.Port > 65535:
		return c, fmt.Errorf("pgembed: Config.Port %d is out of range", c.Port)
	}
	for name := range c.Settings {
		if !settingName.MatchString(name) {
			return c, fmt.Errorf("pgembed: Config.Settings: %q is not a setting name", name)
		}
		switch strings.ToLower(name) {
		case "port", "listen_addresses", "unix_socket_directories":
			// DSN and TCPAddr are built from the Config fields.
			return c, fmt.Errorf("pgembed: Config.Settings: set %s through Config.Port or Config.ListenTCP", name)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 30 * time.Second
	}
	return c, nil
}

// freePort asks the kernel for a TCP port free on host. Another program
// may take it before postgres binds it: start then tries another
// (portAttempts in all).
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("pgembed: finding a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Server is a running postgres owned by this process. Its methods are safe
// for concurrent use.
type Server struct {
	cfg        Config
	portChosen bool // cfg.Port was picked free, not asked for: another may replace it
	log        *slog.Logger
	binDir     string
	clusterDir string
	socketDir  string
	tmpSocket  bool    // socketDir is ours to remove
	user       *osUser // nil: postgres runs as ourselves
	tail       *logTail
	pid        atomic.Int64

	mu      sync.Mutex // serializes Restart, Stop and the fields below
	lock    *os.File   // flock on DataDir/storefront.lock
	proc    *process   // the running postmaster, nil when stopped
	stopped bool
}

// process is one run of the postmaster.
type process struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the postmaster has been reaped
	err     error         // its exit status, set before exited closes
	drained chan struct{} // closed when every process holding its stderr is gone
	pipeIno uint64        // the inode of that stderr pipe, to find who holds it
}

// Start initializes the cluster on first use, writes the tuned settings,
// starts postgres and returns once it accepts connections. The returned
// Server owns DataDir until Stop; another Start on the same DataDir fails.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	portChosen := cfg.Port == 0 && cfg.ListenTCP != ""
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:        cfg,
		portChosen: portChosen,
		log:        cfg.Logger,
		binDir:     cfg.BinDir,
		clusterDir: filepath.Join(cfg.DataDir, "pg"),
	}
	s.tail = &logTail{log: s.log}
	if s.binDir == "" {
		if s.binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	if !isServerBinDir(s.binDir) {
		return nil, fmt.Errorf("pgembed: %s does not hold both initdb and postgres", s.binDir)
	}
	if s.user, err = resolveOSUser(ctx, cfg.OSUser, s.log); err != nil {
		return nil, err
	}
	if err := mkdirMode(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("pgembed: %w", err)
	}
	if s.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

// start does Start's work once DataDir is locked.
func (s *Server) start(ctx context.Context) error {
	if err := checkTraversable(s.cfg.DataDir, s.user); err != nil {
		return err
	}
	if err := s.checkNotRunning(ctx); err != nil {
		return err
	}
	if err := s.initCluster(ctx); err != nil {
		return err
	}
	if err := s.chooseSocketDir(); err != nil {
		return err
	}
	logDir := filepath.Join(s.clusterDir, "log")
	if err := mkdirMode(logDir, 0o700); err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	if err := chown(logDir, s.user); err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	f, err := openLogFile(filepath.Join(logDir, "postgres.log"), s.user)
	if err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	s.tail.file = f
	return s.launchOnPort(ctx)
}

// launchOnPort writes the settings and launches postgres. When pgembed
// chose the TCP port and postgres finds it taken (a program bound it
// after it was chosen), it chooses another, portAttempts times in all.
func (s *Server) launchOnPort(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		conf := settings(&s.cfg, s.socketDir, memoryBytes())
		if err := writeConf(s.clusterDir, conf, s.user); err != nil {
			return fmt.Errorf("pgembed: writing settings: %w", err)
		}
		err := s.launch(ctx)
		if err == nil || !s.portChosen || attempt == portAttempts || !errors.Is(err, errPortInUse) {
			return err
		}
		taken := s.cfg.Port
		if s.cfg.Port, err = s.cfg.pickPort(s.cfg.ListenTCP); err != nil {
			return err
		}
		s.log.Warn("pgembed: the free TCP port chosen was taken before postgres bound it; trying another",
			"port", taken, "next", s.cfg.Port)
		// The socket file is named after the port: with more digits it
		// may no longer fit in the cluster directory. (A temporary socket
		// directory is short enough for any port.)
		if !s.tmpSocket {
			if err := s.chooseSocketDir(); err != nil {
				return err
			}
		}
	}
}

// portTaken reports whether something listens on host:port or holds it
// bound (postgres's own message may be in another language).
func portTaken(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	l.Close()
	return false
}

// stoppingGrace is how long checkNotRunning waits for a running
// postmaster of the cluster to start shutting down before it refuses to
// start: its owner's death signal reaches it within milliseconds, handled
// when it next runs (later on a loaded machine).
const stoppingGrace = 2 * time.Second

// portAttempts is how many free ports start tries when postgres finds the
// one chosen taken (by a program that bound it in between).
const portAttempts = 3

// errPortInUse is a postgres that exited during startup because its TCP
// port was taken.
var errPortInUse = errors.New("its TCP port is in use")

// checkNotRunning fails when a postgres from an earlier run (its owner
// killed before it could stop it) still serves the cluster. A server that
// is already shutting down is waited for: that is what a parent's death
// triggers, see launch.
func (s *Server) checkNotRunning(ctx context.Context) error {
	deadline := time.Now().Add(s.cfg.StopTimeout)
	// A postmaster whose owner has just died may not have handled its
	// parent-death signal yet, and still says "ready": it gets a moment
	// to start shutting down before it counts as left running.
	graceEnd := time.Now().Add(stoppingGrace)
	for {
		pf, ok := readPidFile(s.clusterDir)
		if !ok {
			return nil
		}
		pid := clusterProcess(s.clusterDir, pf)
		if pid == 0 {
			if alive(pf.pid) && pf.pid != os.Getpid() {
				// postgres would refuse to start, taking the unrelated process
				// that reused the pid for a running postmaster.
				s.log.Warn("pgembed: removing stale postmaster.pid whose pid now belongs to another program",
					"pid", pf.pid, "dir", s.clusterDir)
				if err := os.Remove(filepath.Join(s.clusterDir, "postmaster.pid")); err != nil {
					return fmt.Errorf("pgembed: %w", err)
				}
				// The socket's lock file in the cluster directory names the
				// same pid, and postgres would refuse it just the same.
				if err := removeSocketLocks(s.clusterDir, pf.pid); err != nil {
					return err
				}
			}
			// A dead pid is left for postgres, which checks it itself.
			return nil
		}
		now := time.Now()
		if (pf.status != "stopping" && now.After(graceEnd)) || now.After(deadline) {
			return inUseError(s.cfg.DataDir, pid, fmt.Sprintf(
				": a postgres left running by an earlier run; stop it with: kill -INT %d", pid))
		}
		s.log.Debug("pgembed: waiting for a postgres of an earlier run to finish shutting down", "pid", pid, "status", pf.status)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// initCluster runs initdb unless the cluster exists. initdb writes into a
// scratch directory that is renamed into place only on success, so an
// interrupted initdb never leaves a half-made cluster behind.
func (s *Server) initCluster(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.clusterDir, "PG_VERSION")); err == nil {
		return s.checkClusterDir()
	}
	if fi, err := os.Stat(s.clusterDir); err == nil && !fi.IsDir() {
		return fmt.Errorf("pgembed: %s, where the cluster goes, is a file, not a directory; move it away", s.clusterDir)
	}
	if entries, err := os.ReadDir(s.clusterDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("pgembed: %s is not empty but holds no PostgreSQL cluster (no PG_VERSION); move it away", s.clusterDir)
	}
	scratch := s.clusterDir + ".initdb"
	if err := os.RemoveAll(scratch); err != nil { // left by an interrupted run; we hold the lock
		return fmt.Errorf("pgembed: %w", err)
	}
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	if err := chown(scratch, s.user); err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	args := []string{
		"--pgdata=" + scratch,
		"--username=" + Superuser,
		"--auth=trust",
		"--encoding=UTF8",
		"--no-instructions",
	}
	// C collation: byte order, the fastest comparisons and stable across
	// glibc upgrades (no index rebuilds). C.UTF-8 character classes, when
	// installed, keep upper() and ILIKE right beyond ASCII.
	if hasCUTF8Locale(ctx) {
		args = append(args, "--locale=C.UTF-8", "--lc-collate=C")
	} else {
		args = append(args, "--locale=C")
	}
	if s.cfg.Ephemeral {
		args = append(args, "--no-sync")
	}
	began := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(s.binDir, "initdb"), args...)
	cmd.Dir = "/" // the child's cwd must be reachable after it drops root
	cmd.Env = childEnv()
	// If we die meanwhile, initdb dies too (its bootstrap postgres then
	// reads the end of its input and exits).
	cmd.SysProcAttr = s.sysProcAttr(syscall.SIGKILL)
	// initdb runs postgres in bootstrap mode below it: cancel them all.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := combinedOutputLocked(cmd)
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" {
			s.tail.add(line)
		}
	}
	if err != nil {
		os.RemoveAll(scratch)
		return fmt.Errorf("pgembed: initdb %s: %w; last output:%s", s.clusterDir, err, s.tail.last())
	}
	if err := os.Rename(scratch, s.clusterDir); err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	s.log.Info("pgembed: initialized cluster", "dir", s.clusterDir, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// checkClusterDir catches what postgres would otherwise refuse with a
// terser message: a cluster made by another user, or a loosened mode.
func (s *Server) checkClusterDir() error {
	fi, err := os.Stat(s.clusterDir)
	if err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	if s.user != nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != s.user.uid {
			return fmt.Errorf("pgembed: cluster %s is owned by uid %d, not by user %q (uid %d) who runs postgres; chown -R %s %s",
				s.clusterDir, st.Uid, s.user.name, s.user.uid, s.user.name, s.clusterDir)
		}
	}
	if perm := fi.Mode().Perm(); perm != 0o700 && perm != 0o750 {
		if err := os.Chmod(s.clusterDir, 0o700); err != nil {
			return fmt.Errorf("pgembed: %w", err)
		}
	}
	return nil
}

// chooseSocketDir puts the socket in the cluster directory unless the
// socket path would not fit in sun_path, or holds a comma (clients split a
// host on commas into a list of hosts, quoted or not); then it makes a
// short private one.
func (s *Server) chooseSocketDir() error {
	s.socketDir = s.clusterDir
	if len(socketPath(s.socketDir, s.cfg.Port)) <= maxSocketPath && !strings.Contains(s.socketDir, ",") {
		return nil
	}
	// One left by a server killed before it could remove it (SIGKILL,
	// a crash) is no one's now: this Server holds the data directory's
	// lock.
	s.removeRecordedSocketDir()
	dir, err := os.MkdirTemp("/tmp", socketDirPrefix)
	if err != nil {
		return fmt.Errorf("pgembed: socket directory: %w", err)
	}
	s.socketDir, s.tmpSocket = dir, true
	if err := os.WriteFile(filepath.Join(s.cfg.DataDir, socketDirRecord), []byte(dir), 0o644); err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	// Private like the cluster directory: whoever reaches the socket is
	// superuser (trust authentication). Its owner, the user who runs
	// postgres, and root get in.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	if err := chown(dir, s.user); err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	s.log.Debug("pgembed: data directory too long for a socket path, or with a comma; socket in a short private directory instead",
		"socket_dir", dir, "max_bytes", maxSocketPath)
	return nil
}

const (
	socketDirPrefix = "storefront-pg-"
	// socketDirRecord, in the data directory, names the short socket
	// directory in use, so that the next start can remove one a killed
	// server left behind.
	socketDirRecord = "storefront.socketdir"
)

// removeRecordedSocketDir removes the short socket directory the data
// directory's record names, and the record. Only a directory of ours
// (/tmp/storefront-pg-*) is removed, whatever the record says.
func (s *Server) removeRecordedSocketDir() {
	record := filepath.Join(s.cfg.DataDir, socketDirRecord)
	b, err := os.ReadFile(record)
	if err != nil {
		return
	}
	if dir := string(b); filepath.Dir(dir) == "/tmp" && strings.HasPrefix(filepath.Base(dir), socketDirPrefix) {
		os.RemoveAll(dir)
	}
	os.Remove(record)
}

func socketPath(dir string, port int) string {
	return filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(port))
}

// launch starts the postmaster and waits until it accepts connections.
func (s *Server) launch(ctx context.Context) error {
	s.tail.reset()
	// The cluster is the child's working directory: without it the start
	// fails as "fork/exec .../postgres: no such file or directory", which
	// blames the binary.
	if _, err := os.Stat(filepath.Join(s.clusterDir, "PG_VERSION")); err != nil {
		return fmt.Errorf("pgembed: the cluster directory %s is gone or incomplete: %w", s.clusterDir, err)
	}
	// Its owner may have changed under a running server, too: a restart
	// would fail as "fork/exec .../postgres: permission denied".
	if err := s.checkClusterDir(); err != nil {
		return err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	cmd := exec.Command(filepath.Join(s.binDir, "postgres"), "-D", s.clusterDir)
	cmd.Dir = s.clusterDir
	cmd.Env = childEnv()
	// Our own pipe, not an io.Writer: backends inherit stderr, and Wait
	// must not hang on them; drained tells when the last one is gone.
	cmd.Stdout, cmd.Stderr = pw, pw
	// If we die without Stop, the kernel sends the postmaster this signal
	// (fast shutdown: no orphans; immediate for throwaway clusters).
	deathSig := syscall.SIGINT
	if s.cfg.Ephemeral {
		deathSig = syscall.SIGQUIT
	}
	cmd.SysProcAttr = s.sysProcAttr(deathSig)
	p := &process{cmd: cmd, exited: make(chan struct{}), drained: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the forking thread exits, not
		// the process (go.dev/issue/27505). Fork on a locked thread that
		// lives exactly until the postmaster is reaped: the goroutine ends
		// still locked, which makes the runtime retire the thread then.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.exited)
	}()
	err = <-started
	pw.Close()
	if err != nil {
		pr.Close()
		return fmt.Errorf("pgembed: starting postgres: %w", err)
	}
	if fi, err := pr.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			p.pipeIno = st.Ino
		}
	}
	go func() {
		s.tail.copy(pr)
		pr.Close()
		close(p.drained)
	}()
	s.proc = p
	s.pid.Store(int64(cmd.Process.Pid))
	began := time.Now()
	if err := s.waitReady(ctx, p); err != nil {
		s.halt(context.Background(), syscall.SIGQUIT) // nothing to save in a server that never came up
		return err
	}
	s.log.Info("pgembed: postgres ready", "pid", cmd.Process.Pid, "socket_dir", s.socketDir,
		"took", time.Since(began).Round(time.Millisecond))
	return nil
}

// waitReady polls postmaster.pid, where the postmaster announces "ready"
// (as pg_ctl waits), then proves it with a connection.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	pid := p.cmd.Process.Pid
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		select {
		case <-p.exited:
			select { // the output explains the exit; let it arrive
			case <-p.drained:
			case <-time.After(time.Second):
			}
			last := s.tail.last()
			if s.cfg.ListenTCP != "" && (strings.Contains(last, "Address already in use") || portTaken(s.cfg.ListenTCP, s.cfg.Port)) {
				return fmt.Errorf("pgembed: postgres exited during startup (%v): %w; last output:%s", p.err, errPortInUse, last)
			}
			return fmt.Errorf("pgembed: postgres exited during startup (%v); last output:%s", p.err, last)
		case <-ctx.Done():
			return fmt.Errorf("pgembed: postgres not accepting connections after %v (%v, last try: %v); last output:%s",
				s.cfg.StartTimeout, ctx.Err(), lastErr, s.tail.last())
		case <-tick.C:
		}
		if pf, ok := readPidFile(s.clusterDir); !ok || pf.pid != pid || pf.status != "ready" {
			continue
		}
		if lastErr = s.ping(ctx); lastErr == nil {
			return nil
		}
	}
}

func (s *Server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// halt shuts the postmaster down with sig (SIGTERM smart, SIGINT fast,
// SIGQUIT immediate) and escalates to immediate after StopTimeout or when
// ctx ends, then to SIGKILL for the whole process group. It returns once
// the postmaster and all its children are gone. Callers hold s.mu or own s
// exclusively.
func (s *Server) halt(ctx context.Context, sig syscall.Signal) {
	p := s.proc
	if p == nil {
		return
	}
	defer func() {
		s.proc = nil
		s.pid.Store(0)
	}()
	pid := p.cmd.Process.Pid
	// The postmaster alone: it tells its children how to stop.
	p.cmd.Process.Signal(sig)
	timer := time.NewTimer(s.cfg.StopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
	case <-ctx.Done():
	}
	if !isClosed(p.exited) && sig != syscall.SIGQUIT {
		s.log.Warn("pgembed: postgres did not stop in time; immediate shutdown", "pid", pid)
		p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
	}
	if !isClosed(p.exited) {
		s.log.Warn("pgembed: postgres ignored immediate shutdown; killing its process group", "pid", pid)
		syscall.Kill(-pid, syscall.SIGKILL) // Setpgid made the postmaster the group leader
		<-p.exited
	}
	// Children of a postmaster that died badly may linger, holding the
	// pipe. A backend leads a process group of its own (PostgreSQL calls
	// setsid in every child), so one that is stopped or hung outlives the
	// group's SIGKILL: whoever still holds the pipe is killed by name.
	select {
	case <-p.drained:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		n := killPipeHolders(p.pipeIno)
		select {
		case <-p.drained:
		case <-time.After(5 * time.Second):
			s.log.Warn("pgembed: postgres processes still hold its output after SIGKILL; not waiting for them", "pid", pid, "killed", n)
		}
	}
}

// killPipeHolders sends SIGKILL to every other process with a descriptor
// of the pipe whose inode is ino (both ends share it), as /proc lists
// them, and returns how many it signalled.
func killPipeHolders(ino uint64) int {
	if ino == 0 {
		return 0
	}
	target := "pipe:[" + strconv.FormatUint(ino, 10) + "]"
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self, n := os.Getpid(), 0
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		fds, err := os.ReadDir("/proc/" + e.Name() + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink("/proc/" + e.Name() + "/fd/" + fd.Name()); err == nil && link == target {
				syscall.Kill(pid, syscall.SIGKILL)
				n++
				break
			}
		}
	}
	return n
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Stop shuts postgres down (fast: open transactions roll back, a
// checkpoint is written), escalating to an immediate shutdown (safe, but
// the next start runs crash recovery) after Config.StopTimeout or when ctx
// ends, and releases DataDir. It returns once no postgres process is left.
// Pass a live context: one already cancelled, such as a signal context
// after Ctrl-C, means an immediate shutdown. Stop is idempotent.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	s.halt(ctx, syscall.SIGINT)
	s.release()
	s.log.Info("pgembed: postgres stopped", "dir", s.clusterDir)
	return nil
}

// release gives back what Start took besides the process.
func (s *Server) release() {
	if s.tmpSocket {
		s.removeRecordedSocketDir()
		os.RemoveAll(s.socketDir)
		s.tmpSocket = false
	}
	s.tail.mu.Lock()
	if s.tail.file != nil {
		s.tail.file.Close()
		s.tail.file = nil
	}
	s.tail.mu.Unlock()
	if s.lock != nil {
		s.lock.Close() // drops the flock
		s.lock = nil
	}
}

// combinedOutputLocked is cmd.CombinedOutput forked on a locked thread that
// lives exactly until cmd is reaped, as launch does for the postmaster: the
// parent-death signal fires when the forking thread exits.
func combinedOutputLocked(cmd *exec.Cmd) ([]byte, error) {
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		out, err := cmd.CombinedOutput()
		done <- result{out, err}
	}()
	r := <-done
	return r.out, r.err
}

// Restart stops postgres the way pg_ctl restart -m mode does ("smart",
// "fast" or "immediate"; "" means fast) and starts it again on the same
// socket. After "immediate" the start runs crash recovery. Open
// connections are broken either way.
func (s *Server) Restart(ctx context.Context, mode string) error {
	sig, ok := map[string]syscall.Signal{
		"":          syscall.SIGINT,
		"fast":      syscall.SIGINT,
		"smart":     syscall.SIGTERM,
		"immediate": syscall.SIGQUIT,
	}[mode]
	if !ok {
		return fmt.Errorf("pgembed: restart mode %q is not smart, fast or immediate", mode)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("pgembed: restart of a stopped server")
	}
	s.halt(ctx, sig)
	return s.launch(ctx)
}

// Restarts that Supervise allows before it gives up on a postgres that
// keeps dying.
const (
	superviseMaxRestarts = 5
	superviseWindow      = time.Minute
)

// Supervise restarts postgres whenever it exits without Stop or Restart
// asking it to (killed, crashed): the start runs crash recovery, and
// clients reconnect as after any restart. It gives up when that start
// fails, or when postgres has died more than five times within a minute:
// the returned channel then receives why, and the server stays down until
// Stop. The channel is closed, without a value, when Stop ends the
// supervision. Call it once, after Start.
func (s *Server) Supervise() <-chan error {
	failed := make(chan error, 1)
	go s.supervise(failed)
	return failed
}

func (s *Server) supervise(failed chan<- error) {
	defer close(failed)
	var deaths []time.Time // within superviseWindow, oldest first
	for {
		s.mu.Lock()
		p, stopped := s.proc, s.stopped
		s.mu.Unlock()
		if stopped || p == nil {
			return // stopped, or a Restart that failed (its caller has the error)
		}
		<-p.exited

		s.mu.Lock()
		if s.stopped || s.proc != p {
			s.mu.Unlock()
			continue // Stop or Restart ended it on purpose
		}
		now := time.Now()
		for len(deaths) > 0 && now.Sub(deaths[0]) > superviseWindow {
			deaths = deaths[1:]
		}
		deaths = append(deaths, now)
		last := s.tail.last()
		s.halt(context.Background(), syscall.SIGQUIT) // reaps any backend left behind
		var err error
		if len(deaths) > superviseMaxRestarts {
			err = fmt.Errorf("pgembed: postgres exited (%v) %d times within %v; not restarting it again; last output:%s",
				p.err, len(deaths), superviseWindow, last)
		} else {
			s.log.Error("pgembed: postgres exited unexpectedly; restarting it", "err", p.err, "last_output", last)
			if err = s.launch(context.Background()); err != nil {
				err = fmt.Errorf("pgembed: restarting postgres after it exited (%v): %w", p.err, err)
			}
		}
		s.mu.Unlock()
		if err != nil {
			s.log.Error("pgembed: private PostgreSQL is down", "err", err)
			failed <- err
			return
		}
	}
}

// DSN returns a keyword/value connection string for dbname over the Unix
// socket, understood by pgx and psql alike.
func (s *Server) DSN(dbname string) string { return s.Socket().DSN(dbname) }

// Socket is where the server listens, for clients that outlive this
// Server value or live in another process.
func (s *Server) Socket() Socket { return Socket{Dir: s.socketDir, Port: s.cfg.Port} }

// Socket is the Unix socket of a server, possibly one another process
// owns: all a superuser client needs, nothing to stop or restart it with.
type Socket struct {
	Dir  string // directory of the socket file (libpq's host)
	Port int    // names the socket file .s.PGSQL.<Port>
}

// DSN returns a keyword/value connection string for dbname through the
// socket, as superuser.
func (k Socket) DSN(dbname string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		quoteDSN(k.Dir), k.Port, Superuser, quoteDSN(dbname))
}

// quoteDSN quotes a keyword/value connection string value when it needs it.
func quoteDSN(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`+"\t\n") {
		return v
	}
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "'" + strings.ReplaceAll(v, "'", `\'`) + "'"
}

// SocketDir is the directory of the server's Unix socket (libpq's host).
func (s *Server) SocketDir() string { return s.socketDir }

// BinDir is the directory of the PostgreSQL binaries in use; psql,
// pg_dump and friends of the same version live there too.
func (s *Server) BinDir() string { return s.binDir }

// TCPAddr is "host:port" when Config.ListenTCP is set, else "".
func (s *Server) TCPAddr() string {
	if s.cfg.ListenTCP == "" {
		return ""
	}
	return net.JoinHostPort(s.cfg.ListenTCP, strconv.Itoa(s.cfg.Port))
}

// LogFile is the file postgres's output is appended to.
func (s *Server) LogFile() string { return filepath.Join(s.clusterDir, "log", "postgres.log") }

// PID is the postmaster's process id, 0 while stopped or restarting.
func (s *Server) PID() int { return int(s.pid.Load()) }

// CreateDatabase creates database name as a copy of template ("" for the
// default, template1). Cloning a migrated template is how tests get a fresh
// database each; the template must have no open connections.
func (s *Server) CreateDatabase(ctx context.Context, name, template string) error {
	return s.Socket().CreateDatabase(ctx, name, template)
}

// DropDatabase drops database name if it exists, disconnecting its
// sessions first.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	return s.Socket().DropDatabase(ctx, name)
}

// CreateDatabase is Server.CreateDatabase through the socket.
func (k Socket) CreateDatabase(ctx context.Context, name, template string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	return k.exec(ctx, sql)
}

// DropDatabase is Server.DropDatabase through the socket.
func (k Socket) DropDatabase(ctx context.Context, name string) error {
	return k.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// exec runs one statement as superuser in the postgres database.
func (k Socket) exec(ctx context.Context, sql string) error {
	return k.withConn(ctx, func(conn *pgconn.PgConn) error {
		if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
			return fmt.Errorf("pgembed: %s: %w", sql, err)
		}
		return nil
	})
}

// withConn runs f on a superuser connection to the postgres database of
// its own, closed afterwards: these calls are rare, and a connection of
// their own survives restarts of the server.
func (k Socket) withConn(ctx context.Context, f func(*pgconn.PgConn) error) error {
	conn, err := pgconn.Connect(ctx, k.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return f(conn)
}

// sysProcAttr runs a child in its own process group, so a Ctrl-C on the
// terminal reaches us and not postgres (we stop it ourselves), and as the
// unprivileged user when we are root.
func (s *Server) sysProcAttr(deathSig syscall.Signal) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}
	if s.user != nil {
		attr.Credential = s.user.credential()
	}
	return attr
}

// childEnv is our environment without PG* variables: PGDATA, PGPORT and
// the like would change what initdb and postgres do behind our settings.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// mkdirMode creates dir and its parents with mode perm, exactly: the umask
// must not take away the traverse bit others need.
func mkdirMode(dir string, perm os.FileMode) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is a file, not a directory", dir)
		}
		return nil
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	return os.Chmod(dir, perm)
}

// hasCUTF8Locale reports whether the C.UTF-8 locale is installed.
func hasCUTF8Locale(ctx context.Context) bool {
	out, err := exec.CommandContext(ctx, "locale", "-a").Output()
	if err != nil {
		return false
	}
	for _, l := range strings.Fields(string(out)) {
		if l = strings.ToLower(l); l == "c.utf8" || l == "c.utf-8" {
			return true
		}
	}
	return false
}
