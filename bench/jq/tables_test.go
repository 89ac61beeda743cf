// Package tables_test checks the bench tables that compare-table.jq
// computes from a compare.json, with jq itself, on a run whose every
// figure is known: the ratios, medians, ceilings and verdicts the README
// quotes come from these definitions.
package tables_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// run is one row of compare.json with the fields the tables read.
type run struct {
	Server    string  `json:"server"`
	Route     string  `json:"route"`
	Conns     int     `json:"conns"`
	Model     string  `json:"model"`
	Generator string  `json:"generator"`
	Pair      *int    `json:"pair,omitempty"`
	OKRate    float64 `json:"ok_rate"`
	P50       float64 `json:"p50"`
	P99       float64 `json:"p99"`
	Errors    int     `json:"errors"`
	Late      int     `json:"late_sends"`
	ServerUS  float64 `json:"server_us"`
	PGUS      float64 `json:"pg_us"`
	TotalUS   float64 `json:"total_us"`
	GenUS     float64 `json:"gen_us"`
	Machine   float64 `json:"machine_cores"`
	Other     float64 `json:"other_cores"`
	RSSMax    float64 `json:"rss_max_mb"`
}

func newRun(route, model string, rate, serverUS, pgUS, genUS float64) run {
	return run{
		Server: "coalesce-on", Route: route, Conns: 256, Model: model, Generator: "loadgen",
		OKRate: rate, P50: 0.5, P99: 2, ServerUS: serverUS, PGUS: pgUS, TotalUS: serverUS + pgUS,
		GenUS: genUS, Machine: 1.9, RSSMax: 21,
	}
}

func pair(r run, i int) run {
	r.Pair = &i
	return r
}

func withP99(r run, p99 float64) run {
	r.P99 = p99
	return r
}

// fixture is a run of static and users-uniform with three interleaved
// pairs, whose figures are worked out by hand in TestCompareTable.
func fixture() map[string]any {
	rows := []run{
		newRun("static", "closed", 100000, 10, 0, 10),
		newRun("users-uniform", "closed", 70000, 11, 4, 11),
		withP99(newRun("static", "open", 50000, 20, 0, 20), 3),
		withP99(newRun("users-uniform", "open", 35000, 22, 8, 22), 4),
		withP99(newRun("users-uniform", "open", 35000, 22, 8, 22), 6),
		withP99(newRun("users-uniform", "open", 35000, 22, 8, 22), 5),
		// Static runs around the route's: 100k, 110k, 90k, 100k req/s,
		// each at 20 µs of CPU per request (server + generator).
		pair(newRun("users-uniform", "pair-static", 100000, 10, 0, 10), 0),
		pair(newRun("users-uniform", "pair-static", 110000, 10, 0, 10), 1),
		pair(newRun("users-uniform", "pair-static", 90000, 10, 0, 10), 2),
		pair(newRun("users-uniform", "pair-static", 100000, 10, 0, 10), 3),
		// Route runs between them: 84k against (100k+110k)/2 = 80 %,
		// 70k against 100k = 70 %, 76k against 95k = 80 %. Each costs 26 µs
		// (11 server + 4 PostgreSQL + 11 generator).
		pair(newRun("users-uniform", "pair-route", 84000, 11, 4, 11), 0),
		pair(newRun("users-uniform", "pair-route", 70000, 11, 4, 11), 1),
		pair(newRun("users-uniform", "pair-route", 76000, 11, 4, 11), 2),
	}
	return map[string]any{
		"machine": map[string]any{"nproc": 2, "cpu": "test CPU", "memory": "1 GiB", "commit": "abc1234", "postgres_huge_pages": "off"},
		"config": map[string]any{
			"users": 1000, "products": 100, "connections": []int{256},
			"routes": []string{"static", "users-uniform"}, "closed_s": 10, "open_s": 15, "open_rounds": 3,
			"warmup_s": 3, "server_flags": "--shed=false", "pairs": 3, "pair_s": 4,
		},
		"memory": map[string]any{
			"idle": map[string]any{"connections": 10000, "opened": 10000, "alive_at_end": 10000, "rss_before_mb": 17, "rss_mb": 27},
			"busy": map[string]any{"connections": 256, "rate": 50000, "rss_before_mb": 17, "rss_max_mb": 21, "delta_mb": 4},
		},
		"rows": rows,
	}
}

// table runs compare-table.jq on v and returns its output.
func table(t *testing.T, v any) string {
	t.Helper()
	jq, err := exec.LookPath("jq")
	if err != nil {
		t.Skip("jq is not installed (make bench-compare installs it)")
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "compare.json")
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(jq, "-r", "-L", ".", "-f", "compare-table.jq", in).CombinedOutput()
	if err != nil {
		t.Fatalf("jq: %v\n%s", err, out)
	}
	return string(out)
}

// cells returns the cells of the table row whose first cell is first (and,
// when given, whose second is second).
func cells(t *testing.T, md, first, second string) []string {
	t.Helper()
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		c := strings.Split(strings.Trim(line, "| "), " | ")
		if c[0] == first && (second == "" || (len(c) > 1 && c[1] == second)) {
			return c
		}
	}
	t.Fatalf("no row %q %q in:\n%s", first, second, md)
	return nil
}

// column returns the cell of row under header name.
func column(t *testing.T, md string, row []string, name string) string {
	t.Helper()
	header := cells(t, md, "route", "")
	for i, h := range header {
		if h == name {
			if i >= len(row) {
				t.Fatalf("row %v has no cell for %q", row, name)
			}
			return row[i]
		}
	}
	t.Fatalf("no column %q in %v", name, header)
	return ""
}

func TestCompareTable(t *testing.T) {
	md := table(t, fixture())
	users := cells(t, md, "users-uniform", "on")
	for _, c := range []struct{ column, want string }{
		{"req/s max", "70,000"},
		{"srv+PG µs/req", "15.0"},
		// 70k against the first static run's 100k.
		{"rate / static", "70%"},
		// Pairs 80 %, 70 %, 80 %: the median and the range.
		{"rate / static, interleaved", "80% (70%-80%)"},
		// 20 µs against 26 µs a request.
		{"rate / static from CPU", "77%"},
		// 20 µs against 20 + 4 (PostgreSQL's share).
		{"ceiling from PG's CPU", "83%"},
		// The open rounds' p99: 4, 6, 5 ms; the median round is shown.
		{"p50 / p99 half", "0.50 / 5.00 (4.00-6.00)"},
	} {
		if got := column(t, md, users, c.column); got != c.want {
			t.Errorf("users-uniform %s = %q, want %q", c.column, got, c.want)
		}
	}
	for _, c := range []struct{ target, want string }{
		{"the same, interleaved with the static route (median of the pairs; worst route)", "80% (users-uniform) met"},
		{"the same from CPU per request (worst route)", "77% (users-uniform) met"},
		{"(not a target: the ratio PostgreSQL's CPU alone allows, lowest route)", "83% (users-uniform)"},
		{"DB rate / static rate ≥ 75% (worst route)", "70% (users-uniform) MISSED"},
		{"server+PG CPU ≤ 25 µs/req at max (worst route)", "15.0 µs (users-uniform) met"},
		{"p99 at half the max rate ≤ 5 ms (worst route; median of 3 rounds)", "5.00 ms (users-uniform) met"},
		{"the same, worst round (worst route)", "6.00 ms (users-uniform) MISSED"},
	} {
		if got := cells(t, md, c.target, "")[1]; got != c.want {
			t.Errorf("target %q = %q, want %q", c.target, got, c.want)
		}
	}
}

// TestCompareTableWithoutPairs: a run made with --no-pairs has no
// interleaved ratio, and its CPU ratio and ceiling come from the closed
// runs instead.
func TestCompareTableWithoutPairs(t *testing.T) {
	v := fixture()
	var rows []run
	for _, r := range v["rows"].([]run) {
		if r.Pair == nil {
			rows = append(rows, r)
		}
	}
	v["rows"] = rows
	v["config"].(map[string]any)["pairs"] = 0
	md := table(t, v)
	users := cells(t, md, "users-uniform", "on")
	for _, c := range []struct{ column, want string }{
		{"rate / static, interleaved", "–"},
		// Closed runs: static 10 + 10 µs, users 15 + 11 µs.
		{"rate / static from CPU", "77%"},
		{"ceiling from PG's CPU", "83%"},
	} {
		if got := column(t, md, users, c.column); got != c.want {
			t.Errorf("users-uniform %s = %q, want %q", c.column, got, c.want)
		}
	}
}
