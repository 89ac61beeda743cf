package faults

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"storefront/internal/pgembed"
)

// fault is one injected fault on the run's clock: from start until the
// dependency works again (end).
type fault struct {
	name       string
	start, end time.Duration
}

// recovery checks the samples around one fault: every answer is 2xx, or a
// 503 with Retry-After within the request deadline; nothing else (no 500,
// no reset, no hang). It returns how long after the fault ended the last
// non-2xx answer was intended (0: none after the end).
func recovery(t *testing.T, ss []sample, f fault, until time.Duration) (recovered time.Duration, during stats) {
	t.Helper()
	during = summarize(ss, func(s *sample) bool { return s.intended >= f.start && s.intended < until })
	for i := range ss {
		s := &ss[i]
		if s.intended < f.start || s.intended >= until {
			continue
		}
		if s.kind == okResponse && s.status/100 == 2 {
			continue
		}
		if s.intended >= f.end {
			recovered = max(recovered, s.intended-f.end)
		}
	}
	return recovered, during
}

// answerBound is the longest a lookup may legitimately take, measured by
// the client: the request deadline (2 s; the coalescer answers a lookup at
// its deadline even when its batch is still running), plus slack for a
// client sharing two cores with everything else.
const answerBound = 2*time.Second + 500*time.Millisecond

// checkAnswers asserts that every sample is a 2xx, or a 503 with
// Retry-After answered within deadline.
func checkAnswers(t *testing.T, name string, ss []sample, deadline time.Duration) (bad int) {
	t.Helper()
	for i := range ss {
		s := &ss[i]
		switch {
		case s.kind == okResponse && s.status/100 == 2:
		case s.kind == okResponse && s.status == 503 && s.retryAfter && s.done-s.sent <= deadline:
		default:
			if bad < 5 {
				t.Errorf("%s: request at %v: kind=%s status=%d retry-after=%v took %v", name, s.intended.Round(time.Millisecond),
					kindNames[s.kind], s.status, s.retryAfter, (s.done - s.sent).Round(time.Millisecond))
			}
			bad++
		}
	}
	return bad
}

// Scenario 2: PostgreSQL restarted under load: -m fast, -m immediate, and a
// longer outage (stopped for a few seconds). While it is down, answers are
// 503 with Retry-After within the request deadline; within the recovery
// budget after it accepts connections again every request succeeds; the
// pool leaks no connection.
func TestPostgresRestart(t *testing.T) {
	const requestTimeout = 2 * time.Second
	srv := startServer(t, serverOpts{})
	rate := params.pgRate
	steady := 2 * time.Second
	phase := steady + params.recoveryBudget + 3*time.Second
	total := 3*phase + steady

	starts := make(chan time.Time, 1)
	done := make(chan *loadResult, 1)
	go func() {
		done <- runLoad(context.Background(), loadSpec{addr: srv.addr, rate: rate, duration: total, conns: 128,
			timeout: 5 * time.Second, path: pathMix(env.users, env.products), start: starts})
	}()
	start := <-starts
	ctx := context.Background()
	var faults []fault
	for i, mode := range []string{"fast", "immediate", "outage"} {
		time.Sleep(time.Until(start.Add(time.Duration(i)*phase + steady)))
		f := fault{name: mode, start: time.Since(start)}
		var err error
		if mode == "outage" {
			err = env.pg.Stop(ctx)
			if err == nil {
				time.Sleep(3 * time.Second)
				env.pg, err = pgembed.Start(ctx, env.pgCfg)
			}
		} else {
			err = env.pg.Restart(ctx, mode)
		}
		if err != nil {
			t.Fatalf("restart %s: %v", mode, err)
		}
		f.end = time.Since(start)
		faults = append(faults, f)
	}
	res := <-done

	figures := map[string]any{}
	bad := checkAnswers(t, "restart", res.samples, answerBound)
	for i, f := range faults {
		until := total
		if i+1 < len(faults) {
			until = faults[i+1].start - requestTimeout // not hit by the next fault
		}
		rec, during := recovery(t, res.samples, f, until)
		mustf(t, rec <= params.recoveryBudget, "%s: errors until %v after PostgreSQL was back, budget %v", f.name, rec, params.recoveryBudget)
		figures[f.name+"_down_ms"] = ms(f.end - f.start)
		figures[f.name+"_recovered_after_ms"] = ms(rec)
		figures[f.name+"_503"] = during.Statuses["503"]
		figures[f.name+"_p99_ms"] = during.P99MS
	}
	all := summarize(res.samples, nil)
	time.Sleep(time.Second)
	n, err := backendCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustf(t, n <= 16, "%d storefront connections in pg_stat_activity after the restarts, pool max 16", n)
	figures["bad_answers"] = bad
	figures["statuses"] = all.Statuses
	figures["errors"] = all.Errors
	figures["backends_after"] = n
	report(t, result{
		Name:    "2 postgres-restart",
		Load:    fmt.Sprintf("%s open model, 128 conns, %s; restart -m fast, -m immediate, stop 3s+start", fmtRate(rate), total.Round(time.Second)),
		Figures: figures,
	})
}

// allowedFailures is how many requests may fail (always as 503 with
// Retry-After, checked apart) in a scenario that promises none: none in
// the full suite; in the short form, which runs in CI on a shared 2-core
// machine where other jobs can stall any process for hundreds of
// milliseconds (the suite was written on one running at a load average of
// 12), one in a hundred, for a lookup that missed its deadline.
func allowedFailures(sent int) int {
	if full {
		return 0
	}
	return sent / 100
}

// Scenario 3: every storefront backend terminated (pg_terminate_backend)
// once a second under load: not one read fails.
func TestTerminateBackends(t *testing.T) {
	srv := startServer(t, serverOpts{})
	rate := params.pgRate
	lead := time.Second
	total := lead + params.terminateFor + time.Second

	starts := make(chan time.Time, 1)
	done := make(chan *loadResult, 1)
	go func() {
		done <- runLoad(context.Background(), loadSpec{addr: srv.addr, rate: rate, duration: total, conns: 64,
			path: pathMix(env.users, env.products), start: starts})
	}()
	start := <-starts
	ctx := context.Background()
	conn, err := pgxConnect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	killed := 0
	var mu sync.Mutex
	for i := range int(params.terminateFor / time.Second) {
		time.Sleep(time.Until(start.Add(lead + time.Duration(i)*time.Second)))
		var n int
		err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = 'storefront' AND pid <> pg_backend_pid()`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		killed += n
		mu.Unlock()
	}
	res := <-done
	all := summarize(res.samples, nil)
	bad := checkAnswers(t, "terminate", res.samples, answerBound) // never a 500, a reset or a hang
	mustf(t, all.failures() <= allowedFailures(all.Sent), "failed reads while backends were terminated: %v", all)
	report(t, result{
		Name: "3 terminate-backends",
		Load: fmt.Sprintf("%s open model, 64 conns; pg_terminate_backend on every storefront backend each second for %s", fmtRate(rate), params.terminateFor),
		Figures: map[string]any{
			"backends_killed": killed,
			"bad_answers":     bad,
			"sent":            all.Sent,
			"failed":          all.failures(),
			"statuses":        all.Statuses,
			"errors":          all.Errors,
			"p99_ms":          all.P99MS,
			"max_ms":          all.MaxMS,
		},
	})
}
