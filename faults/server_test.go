package faults

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// suiteParams sizes the scenarios (short form or full suite).
type suiteParams struct {
	steadyRate      float64       // requests/s of scenario 1
	sigtermRun      time.Duration // length of each scenario-1 run
	pgRate          float64       // requests/s while PostgreSQL is hurt (scenarios 2-4)
	terminateFor    time.Duration // scenario 3
	blackholeFor    time.Duration // scenario 4
	overloadFor     time.Duration // scenario 5
	slowloris       int           // scenario 6 slow connections
	malformed       int           // scenario 6 malformed requests
	hostileRate     float64       // scenario 6 normal load
	recoveryBudget  time.Duration // error-free after the fault ends, at the latest
	overloadRecover time.Duration
}

// server is one storefront process started by the suite.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string // public listener host:port
	admin   string // admin listener host:port
	logPath string
	exited  chan struct{}
	exitErr error
	exitAt  time.Time
}

// serverOpts are how a scenario wants storefront started.
type serverOpts struct {
	dsn   string   // default: the cluster over TCP
	addr  string   // default: a free loopback port
	flags []string // extra serve flags
}

// startServer runs `storefront serve` and waits until /readyz says ready.
func startServer(t *testing.T, o serverOpts) *server {
	t.Helper()
	if o.dsn == "" {
		o.dsn = tcpDSN()
	}
	if o.addr == "" {
		o.addr = freeAddr(t)
	}
	s := &server{t: t, addr: o.addr, admin: freeAddr(t), exited: make(chan struct{})}
	logDir := os.Getenv("FAULTS_LOG_DIR") // kept for inspection when set
	if logDir == "" {
		logDir = t.TempDir()
	}
	s.logPath = filepath.Join(logDir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+strings.ReplaceAll(s.admin, ":", "_")+".log")
	logFile, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	level := "warn"
	if l := os.Getenv("FAULTS_LOG_LEVEL"); l != "" {
		level = l
	}
	args := append([]string{"serve", "--dsn", o.dsn, "--addr", s.addr, "--admin-addr", s.admin,
		"--log-level", level}, o.flags...)
	s.cmd = exec.Command(env.bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.Env = cleanEnv()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		s.exitAt = time.Now()
		logFile.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("storefront log (%s): %s", s.addr, s.logSummary())
		}
	})
	s.waitReady(30 * time.Second)
	return s
}

// cleanEnv is the environment without STOREFRONT_* settings, so that the
// suite's flags are all that configure the server.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STOREFRONT_") {
			out = append(out, kv)
		}
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var probe = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// waitReady polls the admin /readyz of this very process (the public port
// may be shared with another process).
func (s *server) waitReady(timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			s.t.Fatalf("storefront exited during start: %v\n%s", s.exitErr, s.logTail(30))
		default:
		}
		if code, _ := s.get(s.admin, "/readyz"); code == 200 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("storefront not ready within %s\n%s", timeout, s.logTail(30))
}

// get fetches path from addr and returns the status and body.
func (s *server) get(addr, path string) (int, []byte) {
	resp, err := probe.Get("http://" + addr + path)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// signal sends sig to the process.
func (s *server) signal(sig syscall.Signal) {
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Errorf("signal %v: %v", sig, err)
	}
}

// wait waits up to timeout for the process to exit and returns its exit
// code (-1: still running, killed).
func (s *server) wait(timeout time.Duration) int {
	select {
	case <-s.exited:
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return -1
	}
	if s.exitErr == nil {
		return 0
	}
	if ee, ok := s.exitErr.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// metrics reads the admin /metrics and returns the unlabelled samples plus
// labelled ones under their full name ("name{labels}").
func (s *server) metrics() map[string]float64 {
	code, body := s.get(s.admin, "/metrics")
	out := map[string]float64{}
	if code != 200 {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// logTail returns the last n lines of the server's log.
func (s *server) logTail(n int) string {
	data, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logSummary counts the log's distinct messages and errors (numbers and
// ids blurred), most frequent first.
func (s *server) logSummary() string {
	data, _ := os.ReadFile(s.logPath)
	counts := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		i := strings.Index(line, "msg=")
		if i < 0 {
			continue
		}
		msg, _, _ := strings.Cut(line[i+4:], " request_id=")
		if j := strings.Index(line, " err="); j >= 0 {
			msg += " |" + line[j:]
		}
		counts[digits.ReplaceAllString(msg, "N")]++
	}
	type kv struct {
		k string
		n int
	}
	var list []kv
	for k, n := range counts {
		list = append(list, kv{k, n})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].n > list[j].n })
	var b strings.Builder
	for i, e := range list {
		if i == 12 {
			break
		}
		fmt.Fprintf(&b, "\n  %6d  %s", e.n, e.k)
	}
	return b.String()
}

var digits = regexp.MustCompile(`[0-9]+`)

// logContains reports whether the server logged s.
func (s *server) logContains(sub string) bool {
	data, _ := os.ReadFile(s.logPath)
	return bytes.Contains(data, []byte(sub))
}

// backendCount counts storefront's pool connections in pg_stat_activity.
func backendCount(ctx context.Context) (int, error) {
	var n int
	err := superuserQuery(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'storefront'`, &n)
	return n, err
}

// superuserQuery runs one query on a connection of its own, straight to
// the cluster.
func superuserQuery(ctx context.Context, sql string, dst ...any) error {
	conn, err := pgxConnect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if len(dst) == 0 {
		_, err = conn.Exec(ctx, sql)
		return err
	}
	return conn.QueryRow(ctx, sql).Scan(dst...)
}

func mustf(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }

func fmtRate(r float64) string { return fmt.Sprintf("%.0f req/s", r) }
