package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"storefront/internal/load"
)

// writeRun writes what loadgen run --out DIR leaves: a generator that sent
// 100 requests/s for 5 s at latency ms milliseconds.
func writeRun(t *testing.T, dir, host string, latencyMS int64) {
	t.Helper()
	writeRunAt(t, dir, host, latencyMS, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC))
}

// writeRunAt is writeRun for a run that started at start.
func writeRunAt(t *testing.T, dir, host string, latencyMS int64, start time.Time) {
	t.Helper()
	log := &load.Log{Meta: load.Meta{Target: "http://127.0.0.1:8080", Model: "open", TargetRate: 100, Connections: 4, Host: host, Started: start}}
	for i := range 5 {
		iv := load.Interval{
			Start: start.Add(time.Duration(i) * time.Second), End: start.Add(time.Duration(i+1) * time.Second),
			Corrected: load.NewHistogram(), Uncorrected: load.NewHistogram(),
			Statuses: map[int]int64{200: 100}, Sent: 100,
		}
		for range 100 {
			if err := iv.Corrected.RecordValue(latencyMS * 1000); err != nil {
				t.Fatal(err)
			}
			if err := iv.Uncorrected.RecordValue(latencyMS * 1000); err != nil {
				t.Fatal(err)
			}
		}
		log.Intervals = append(log.Intervals, iv)
	}
	rec, err := log.Recording()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeMerged(dir, log, rec, load.SLO{}); err != nil {
		t.Fatal(err)
	}
}

func TestMergeUsageErrors(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "a")
	writeRun(t, run, "a", 1)
	garbage := filepath.Join(dir, "garbage.hlog")
	if err := os.WriteFile(garbage, []byte("not a histogram log\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := filepath.Join(dir, "later") // began after run ended
	writeRunAt(t, later, "b", 1, time.Date(2024, 5, 1, 10, 1, 0, 0, time.UTC))
	out := filepath.Join(dir, "out")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nothing", nil, "--out is required"},
		{"no runs", []string{"--out", out}, "no runs to merge"},
		{"unknown flag", []string{"--out", out, "--rate", "5", run}, "flag provided but not defined: -rate"},
		{"flag without value", []string{run, "--out"}, "flag needs an argument: -out"},
		{"bad slo", []string{"--out", out, "--slo", "p99<80", run}, "--slo: slo \"p99<80\": latency needs a unit"},
		{"missing run", []string{"--out", out, filepath.Join(dir, "missing")}, "no such file or directory"},
		{"directory without a log", []string{"--out", out, dir}, "run.hlog: no such file or directory"},
		{"not a log", []string{"--out", out, garbage}, "garbage.hlog: hlog line 1:"},
		{"the same run twice", []string{"--out", out, run, filepath.Join(run, "run.hlog")}, "are the same recording"},
		{"runs apart in time", []string{"--out", out, run, later}, "merge: recording 1 ended (2024-05-01T10:00:05Z) before recording 2 began (2024-05-01T10:01:00Z)"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := mergeMain(tt.args, &stdout, &stderr)
		if code != exitUsage {
			t.Errorf("%s: exit %d, want %d", tt.name, code, exitUsage)
		}
		msg := stderr.String()
		if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "loadgen merge: ") || !strings.Contains(msg, tt.want) {
			t.Errorf("%s: stderr %q, want one line containing %q", tt.name, msg, tt.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Error("a failed merge wrote its output directory")
	}
}

func TestMergeHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := mergeMain([]string{"-h"}, &stdout, &stderr); code != exitOK {
		t.Errorf("exit %d", code)
	}
	if !strings.Contains(stdout.String(), "Usage: loadgen merge") || !strings.Contains(stdout.String(), "-slo") {
		t.Errorf("help: %q", stdout.String())
	}
}

func TestMergeCommand(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeRun(t, a, "gen-a", 1)
	writeRun(t, b, "gen-b", 100)

	tests := []struct {
		name   string
		slo    string
		code   int
		stderr string
	}{
		{"no slo", "", exitOK, ""},
		{"slo met", "p50<=2ms,max<200ms,errors<=0,rate>=0.99", exitOK, "SLO met\n"},
		{"slo not met", "p99<50ms,rate>=0.99", exitSLO, "SLO not met: p99<50ms: corrected p99 latency is 100.031ms, want < 50ms\n"},
	}
	for _, tt := range tests {
		out := filepath.Join(dir, "merged-"+strings.ReplaceAll(tt.name, " ", "-"))
		args := []string{"--out", out}
		if tt.slo != "" {
			args = append(args, "--slo", tt.slo)
		}
		// A run directory and a run.hlog path are both accepted, and the
		// flags may come before or after them.
		runs := []string{a, filepath.Join(b, "run.hlog")}
		if tt.name == "slo met" {
			args = append(runs, args...)
		} else {
			args = append(args, runs...)
		}
		var stdout, stderr bytes.Buffer
		if code := mergeMain(args, &stdout, &stderr); code != tt.code {
			t.Errorf("%s: exit %d, want %d (stderr %q)", tt.name, code, tt.code, stderr.String())
		}
		if stderr.String() != tt.stderr {
			t.Errorf("%s: stderr %q, want %q", tt.name, stderr.String(), tt.stderr)
		}
		for _, want := range []string{"target 200.0/s", "host gen-a,gen-b", "responses 1000", "merged 2 runs"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%s: summary lacks %q:\n%s", tt.name, want, stdout.String())
			}
		}
		for _, f := range []string{"summary.json", "run.hlog", "report.html"} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
		}
	}
}

// A merge whose files cannot all be written exits 3, as a run does, after
// writing the others and printing the summary and the SLO verdict.
func TestMergeUnwritableFileIsExit3(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeRun(t, a, "gen-a", 1)
	writeRun(t, b, "gen-b", 1)
	out := filepath.Join(dir, "merged")
	// A directory where summary.json goes: no file can be written there,
	// whoever runs the test.
	if err := os.MkdirAll(filepath.Join(out, "summary.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := mergeMain([]string{"--out", out, "--slo", "errors<=0", a, b}, &stdout, &stderr)
	if code != exitWrite {
		t.Errorf("exit %d, want %d (stderr %q)", code, exitWrite, stderr.String())
	}
	if !strings.Contains(stderr.String(), "summary.json") || !strings.Contains(stderr.String(), "SLO met") {
		t.Errorf("stderr %q: want the failed file named and the verdict", stderr.String())
	}
	if !strings.Contains(stdout.String(), "responses 1000") || strings.Contains(stdout.String(), "merged 2 runs into") {
		t.Errorf("stdout %q: want the summary, and no claim that the files were written", stdout.String())
	}
	for _, f := range []string{"run.hlog", "report.html"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("the other files: %v", err)
		}
	}
}
