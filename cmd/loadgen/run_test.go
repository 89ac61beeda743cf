package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"storefront/internal/load"
)

func okServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestUsageErrors: bad input fails before any load with exit status 2 and
// one line on stderr.
func TestUsageErrors(t *testing.T) {
	srv := okServer(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := "http://" + ln.Addr().String() + "/"
	ln.Close()
	dir := t.TempDir()
	badScenario := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badScenario, []byte("requests:\n  - path: /users/{id}\n    weight: 1\n"), 0o644)
	notYAML := filepath.Join(dir, "broken.yaml")
	os.WriteFile(notYAML, []byte("requests: [\n"), 0o644)
	zipf := func(name, exponent string) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte("requests:\n  - path: /p/{id}\n    weight: 1\n    params: {id: {dist: zipf, exponent: "+exponent+", min: 1, max: 9}}\n"), 0o644)
		return path
	}
	steepZipf, flatZipf := zipf("steep.yaml", "101"), zipf("flat.yaml", "0")

	cases := map[string][]string{
		"no command":        {},
		"unknown command":   {"fire"},
		"no target":         {"run", "--rate", "10"},
		"unknown flag":      {"run", "--target", srv.URL, "--bogus"},
		"extra argument":    {"run", "--target", srv.URL, "extra"},
		"bad url":           {"run", "--target", "ftp://x/"},
		"unreachable":       {"run", "--target", refused, "--duration", "1s"},
		"zero rate":         {"run", "--target", srv.URL, "--rate", "0"},
		"negative rate":     {"run", "--target", srv.URL, "--rate", "-5"},
		"huge rate":         {"run", "--target", srv.URL, "--rate", "20000000"},
		"rate not a number": {"run", "--target", srv.URL, "--rate", "fast"},
		"bad duration":      {"run", "--target", srv.URL, "--duration", "soon"},
		"zero duration":     {"run", "--target", srv.URL, "--duration", "0s"},
		"negative duration": {"run", "--target", srv.URL, "--duration", "-3s"},
		"bad timeout":       {"run", "--target", srv.URL, "--timeout", "0s"},
		"endless duration":  {"run", "--target", srv.URL, "--rate", "10", "--duration", "2562047h47m15s"},
		"no connections":    {"run", "--target", srv.URL, "--connections", "0"},
		"bad stages":        {"run", "--target", srv.URL, "--stages", "30s"},
		"stages and rate":   {"run", "--target", srv.URL, "--stages", "1s:10", "--rate", "10"},
		"stages, duration":  {"run", "--target", srv.URL, "--stages", "1s:10", "--duration", "5s"},
		"bad header":        {"run", "--target", srv.URL, "--header", "nocolon"},
		"missing scenario":  {"run", "--target", srv.URL, "--scenario", "no-such"},
		"bad scenario":      {"run", "--target", srv.URL, "--scenario", badScenario},
		"broken scenario":   {"run", "--target", srv.URL, "--scenario", notYAML},
		"bad slo":           {"run", "--target", srv.URL, "--slo", "p99<<fast"},
		"bad start-at":      {"run", "--target", srv.URL, "--start-at", "tomorrow"},
		"past start-at":     {"run", "--target", srv.URL, "--start-at", "2001-01-01T00:00:00Z"},
		"bad engine":        {"run", "--target", srv.URL, "--rate", "10", "--engine", "turbo"},
		"negative loops":    {"run", "--target", srv.URL, "--rate", "10", "--loops", "-1"},
		"too many loops":    {"run", "--target", srv.URL, "--rate", "10", "--loops", "100001"},
		"loops over https":  {"run", "--target", "https://127.0.0.1:1/", "--rate", "10", "--engine", "loops"},
		"coarse resolution": {"run", "--target", srv.URL, "--rate", "10", "--send-resolution", "11ms"},
		"closed resolution": {"run", "--target", srv.URL, "--send-resolution", "50us"},
		"steep zipf":        {"run", "--target", srv.URL, "--scenario", steepZipf},
		"zero zipf":         {"run", "--target", srv.URL, "--scenario", flatZipf},
	}
	// Where a limit was hit, the line states the range that is accepted.
	says := map[string]string{
		"endless duration":  "duration 2562047h47m15s with warm-up 0s and timeout 2s: longer than loadgen can time",
		"negative loops":    "--loops -1: want 0..100000 (0: half the processors)",
		"too many loops":    "loops 100001: want 0..100000 (0: half the processors)",
		"coarse resolution": "--send-resolution 11ms: want 0..10ms",
		"closed resolution": "--send-resolution paces the open model only",
		"steep zipf":        "zipf exponent must be above 0 and at most 100 (e.g. 1.0), got 101",
		"zero zipf":         "zipf exponent must be above 0 and at most 100 (e.g. 1.0), got 0",
	}
	for name, args := range cases {
		code, stdout, stderr := runMain(args...)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2 (stderr %q)", name, code, stderr)
		}
		if name == "no command" {
			continue // prints the usage
		}
		if strings.Count(stderr, "\n") != 1 || stdout != "" {
			t.Errorf("%s: want one line on stderr and nothing on stdout, got %q / %q", name, stderr, stdout)
		}
		if want, ok := says[name]; ok && !strings.Contains(stderr, want) {
			t.Errorf("%s: stderr %q, want it to say %q", name, stderr, want)
		}
	}
}

// TestEngineRefusedIsUsageError: a configuration that only the engine can
// refuse (here event loops with one processor) is a usage error too: exit
// 2 and one line, not the status of an interrupted run.
func TestEngineRefusedIsUsageError(t *testing.T) {
	srv := okServer(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	out := t.TempDir()
	code, stdout, stderr := runMain("run", "--target", srv.URL, "--rate", "10", "--duration", "1s", "--quiet",
		"--engine", "loops", "--out", out)
	if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "loadgen run: ") || stdout != "" {
		t.Errorf("exit %d, stderr %q, stdout %q; want 2 and one usage line", code, stderr, stdout)
	}
	if _, err := os.Stat(filepath.Join(out, "run.hlog")); err == nil {
		t.Error("run.hlog left behind by a run that never started")
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}} {
		code, stdout, _ := runMain(args...)
		if code != 0 || !strings.Contains(stdout, "run") {
			t.Errorf("%v: exit %d, %q", args, code, stdout)
		}
	}
}

func TestRunWritesReportsAndChecksSLO(t *testing.T) {
	srv := okServer(t)
	out := t.TempDir()
	code, stdout, stderr := runMain("run", "--target", srv.URL, "--rate", "200", "--duration", "1s",
		"--connections", "8", "--header", "X-Request-ID: {uuid}", "--out", out, "--slo", "p99<5s,errors<=0")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, f := range []string{"summary.json", "run.hlog", "report.html"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// Not a terminal: the live line is one plain line per second.
	if !strings.Contains(stderr, "/1s]") || strings.Contains(stderr, "\r") {
		t.Errorf("live output %q", stderr)
	}
	sum := readSummary(t, out)
	if sum.Sent != 200 {
		t.Errorf("summary.json: sent %d", sum.Sent)
	}
	if runtime.GOOS == "linux" && (sum.Meta.Engine != "loops" || !strings.Contains(stdout, "open model on loops")) {
		t.Errorf("engine %q, summary %q: want the event loops, named in both", sum.Meta.Engine, stdout)
	}

	code, _, stderr = runMain("run", "--target", srv.URL, "--rate", "50", "--duration", "1s", "--quiet", "--slo", "p50<1us")
	if code != 1 || !strings.Contains(stderr, "p50") {
		t.Errorf("unmet SLO: exit %d, stderr %q", code, stderr)
	}
}

func TestClosedModelWithScenario(t *testing.T) {
	srv := okServer(t)
	code, stdout, stderr := runMain("run", "--target", srv.URL, "--connections", "2", "--duration", "1s", "--quiet", "--scenario", "users-uniform")
	if code != 0 || !strings.Contains(stdout, "closed") {
		t.Errorf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestDistributedRun runs two generators that start together with
// --start-at and merges their recordings.
func TestDistributedRun(t *testing.T) {
	srv := okServer(t)
	dir := t.TempDir()
	// A whole second, as for real distributed runs (merge aligns intervals on
	// whole seconds), far enough ahead for both to check the target first
	// on a busy machine.
	start := time.Now().Add(4 * time.Second).Truncate(time.Second).UTC().Format(time.RFC3339)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _ = runMain("run", "--target", srv.URL, "--rate", "100", "--duration", "2s", "--quiet",
				"--start-at", start, "--host-label", fmt.Sprintf("gen%d", i), "--out", filepath.Join(dir, fmt.Sprint(i)))
		}()
	}
	wg.Wait()
	if codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("generators exited %v", codes)
	}
	merged := filepath.Join(dir, "merged")
	var out, errb bytes.Buffer
	if code := mergeMain([]string{"--out", merged, filepath.Join(dir, "0"), filepath.Join(dir, "1")}, &out, &errb); code != 0 {
		t.Fatalf("merge exited %d: %s", code, errb.String())
	}
	var sum struct {
		Sent       int64   `json:"requests_sent"`
		TargetRate float64 `json:"target_rate"`
		Intervals  int     `json:"intervals"`
	}
	b, _ := os.ReadFile(filepath.Join(merged, "summary.json"))
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 400 || sum.TargetRate != 200 || sum.Intervals != 2 {
		t.Errorf("merged: sent %d, target rate %v, %d intervals; want 400, 200, 2", sum.Sent, sum.TargetRate, sum.Intervals)
	}
}

// TestInterruptedRunIsNotAPass: a run stopped by a signal reports what it
// recorded, marks summary.json interrupted and exits 130 even though its
// SLO is met, so that a CI job stopped by its timeout does not pass.
func TestInterruptedRunIsNotAPass(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT to send to oneself on Windows")
	}
	srv := okServer(t)
	out := t.TempDir()
	done := make(chan int, 1)
	var stderr string
	go func() {
		var code int
		code, _, stderr = runMain("run", "--target", srv.URL, "--rate", "100", "--duration", "30s",
			"--connections", "4", "--quiet", "--out", out, "--slo", "p99<10s")
		done <- code
	}()
	time.Sleep(1500 * time.Millisecond) // the run is under way, its signal handler installed
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := self.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != exitAborted || !strings.Contains(stderr, "run interrupted") {
			t.Errorf("exit %d, stderr %q; want %d", code, stderr, exitAborted)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the interrupted run did not stop")
	}
	if sum := readSummary(t, out); !sum.Meta.Interrupted || sum.Sent == 0 || sum.Sent >= 3000 {
		t.Errorf("summary.json: interrupted %v, sent %d; want interrupted and what was sent before", sum.Meta.Interrupted, sum.Sent)
	}
	// The interval log says so too, so that a merge of it is marked.
	merged := filepath.Join(t.TempDir(), "merged")
	var mout, merr bytes.Buffer
	if code := mergeMain([]string{"--out", merged, out}, &mout, &merr); code != exitAborted {
		t.Fatalf("merge of an interrupted run: exit %d, want %d: %s", code, exitAborted, merr.String())
	}
	if sum := readSummary(t, merged); !sum.Meta.Interrupted || !strings.Contains(mout.String(), "interrupted: stopped") {
		t.Errorf("merged: interrupted %v, report:\n%s", sum.Meta.Interrupted, mout.String())
	}
	if html, err := os.ReadFile(filepath.Join(merged, "report.html")); err != nil || !strings.Contains(string(html), "interrupted") {
		t.Errorf("merged report.html does not say interrupted (%v)", err)
	}
}

// readSummary reads the summary.json a run wrote into dir.
func readSummary(t *testing.T, dir string) load.Summary {
	t.Helper()
	var sum load.Summary
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err == nil {
		err = json.Unmarshal(b, &sum)
	}
	if err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	return sum
}
