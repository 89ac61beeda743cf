package faults

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Scenario 1a: SIGTERM under steady open-model load. Every request sent
// before the listener closed is answered 2xx; /readyz turns 503 at once;
// the process exits 0 within the drain deadline. After the listener has
// closed, a new connection is refused (the request never leaves); a request
// on an open keep-alive connection is still answered, never dropped.
func TestSIGTERMUnderLoad(t *testing.T) {
	const delay, drain = 1500 * time.Millisecond, 5 * time.Second
	srv := startServer(t, serverOpts{flags: []string{
		"--shutdown-delay", delay.String(), "--drain-timeout", drain.String()}})
	rate := params.steadyRate
	term := params.sigtermRun / 3

	starts := make(chan time.Time, 1)
	done := make(chan *loadResult, 1)
	go func() {
		done <- runLoad(context.Background(), loadSpec{addr: srv.addr, rate: rate, duration: params.sigtermRun,
			conns: 64, path: pathMix(env.users, env.products), start: starts})
	}()
	start := <-starts
	time.Sleep(time.Until(start.Add(term)))

	// Watch /readyz on the public port and the listener, from the signal on.
	var readyz503, closedAt atomic.Int64
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go func() {
		for watchCtx.Err() == nil {
			if readyz503.Load() == 0 {
				if code, _ := srv.get(srv.addr, "/readyz"); code == 503 {
					readyz503.Store(int64(time.Since(start)))
				}
			}
			if c, err := net.DialTimeout("tcp", srv.addr, time.Second); err != nil {
				closedAt.Store(int64(time.Since(start)))
				return
			} else {
				c.Close()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	sigAt := time.Since(start)
	srv.signal(syscall.SIGTERM)
	code := srv.wait(delay + drain + 5*time.Second)
	exitAfter := srv.exitAt.Sub(start) - sigAt
	res := <-done
	stopWatch()

	closed := time.Duration(closedAt.Load())
	before := summarize(res.samples, func(s *sample) bool { return s.sent >= 0 && s.sent < closed })
	after := summarize(res.samples, func(s *sample) bool { return !(s.sent >= 0 && s.sent < closed) })
	// After the close, the only acceptable non-answer is a refused connect.
	afterFailed := after.failures() - after.Errors[kindNames[errRefused]]
	readyIn := time.Duration(readyz503.Load()) - sigAt

	mustf(t, before.failures() == 0, "requests sent before the listener closed not answered 2xx: %v", before)
	mustf(t, afterFailed == 0, "requests after the listener closed failed other than by a refused connect: %v", after)
	mustf(t, readyz503.Load() > 0 && readyIn < 250*time.Millisecond, "/readyz not 503 at once: %v after SIGTERM", readyIn)
	mustf(t, code == 0, "exit code %d, want 0", code)
	mustf(t, exitAfter <= delay+drain, "exit %v after SIGTERM, drain deadline %v", exitAfter, delay+drain)
	mustf(t, closed > sigAt, "listener did not close after SIGTERM")
	achieved := summarize(res.samples, func(s *sample) bool { return s.intended < sigAt }).RatePerS
	if full {
		mustf(t, achieved >= 0.95*rate, "sustained %.0f req/s, wanted %.0f", achieved, rate)
	}
	report(t, result{
		Name: "1a sigterm-under-load",
		Load: fmt.Sprintf("%s open model, 64 conns, %s; SIGTERM at %s, --shutdown-delay %s", fmtRate(rate), params.sigtermRun, term, delay),
		Figures: map[string]any{
			"achieved_rps":          round1(achieved),
			"sent_before_close":     before.Sent,
			"failed_before_close":   before.failures(),
			"after_close_refused":   after.Errors[kindNames[errRefused]],
			"after_close_failed":    afterFailed,
			"readyz_503_after_ms":   ms(readyIn),
			"listener_closed_at_ms": ms(closed - sigAt),
			"exit_code":             code,
			"exit_after_ms":         ms(exitAfter),
			"p99_ms":                before.P99MS,
		},
	})
}

// Scenario 1b: a rolling restart of two storefront processes sharing one
// port (SO_REUSEPORT): the new one starts, the old one gets SIGTERM, twice
// over, under steady load. Not one request may fail, not even by a refused
// connect: some process always listens.
func TestRollingRestart(t *testing.T) {
	const delay, drain = time.Second, 5 * time.Second
	flags := []string{"--reuseport", "--shutdown-delay", delay.String(), "--drain-timeout", drain.String()}
	a := startServer(t, serverOpts{flags: flags})
	rate := params.steadyRate
	starts := make(chan time.Time, 1)
	done := make(chan *loadResult, 1)
	go func() {
		done <- runLoad(context.Background(), loadSpec{addr: a.addr, rate: rate, duration: params.sigtermRun,
			conns: 64, path: pathMix(env.users, env.products), start: starts})
	}()
	start := <-starts
	old := a
	var exits []int
	for i := range 2 {
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * params.sigtermRun / 4)))
		next := startServer(t, serverOpts{addr: a.addr, flags: flags})
		old.signal(syscall.SIGTERM)
		exits = append(exits, old.wait(delay+drain+5*time.Second))
		old = next
	}
	res := <-done
	all := summarize(res.samples, nil)
	mustf(t, all.failures() == 0, "failed requests across the rolling restart: %v", all)
	for i, c := range exits {
		mustf(t, c == 0, "process %d exited %d, want 0", i+1, c)
	}
	report(t, result{
		Name: "1b rolling-restart",
		Load: fmt.Sprintf("%s open model, 64 conns, %s; 2 hand-overs on one port (--reuseport)", fmtRate(rate), params.sigtermRun),
		Figures: map[string]any{
			"sent":         all.Sent,
			"failed":       all.failures(),
			"statuses":     all.Statuses,
			"errors":       all.Errors,
			"p99_ms":       all.P99MS,
			"achieved_rps": round1(all.RatePerS),
			"exit_codes":   exits,
		},
	})
}
