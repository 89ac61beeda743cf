package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"storefront/internal/load"
)

const runUsage = `Usage: loadgen run --target URL [flags]

Open model (--rate or --stages): requests leave at
their intended times whatever the server does; latency is measured from the
intended time (corrected) and from the actual send (uncorrected). A request
that finds every connection busy waits, and counts as a late send (one
that leaves more than 1 ms after its intended time); one still waiting when
the run ends (plus one --timeout of grace) is reported as an "unsent" error,
never dropped silently.
Closed model (no --rate, no --stages): --connections connections each send
their next request as soon as the previous response is in.

Flags:
`

// headerFlags collects repeated --header flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// runOptions are the flags of loadgen run.
type runOptions struct {
	cfg      load.Config
	rate     float64
	stages   string
	scenario string
	out      string
	slo      string
	startAt  string
	quiet    bool
	headers  headerFlags
}

func runRun(args []string, stdout, stderr io.Writer) int {
	var o runOptions
	fs := flag.NewFlagSet("loadgen run", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line below
	fs.StringVar(&o.cfg.Target, "target", "", "URL to load (required); scenario paths are appended to its path, and its query string to theirs")
	fs.Float64Var(&o.rate, "rate", 0, "open model: constant arrival rate, requests/s")
	fs.StringVar(&o.stages, "stages", "", "open model: linear ramps DURATION:RATE,..., from rate 0 (e.g. 30s:1000,60s:5000,30s:0)")
	fs.DurationVar(&o.cfg.Duration, "duration", load.DefaultDuration, "length of the measured run (with --stages: their sum)")
	fs.DurationVar(&o.cfg.Warmup, "warmup", 0, "unrecorded warm-up before the measured run, at --rate (or the first stage's rate)")
	fs.DurationVar(&o.cfg.Timeout, "timeout", load.DefaultTimeout, "per-request timeout, from the actual send to the last byte")
	fs.IntVar(&o.cfg.Connections, "connections", load.DefaultConnections, "connections: the cap on requests in flight (open model), the concurrency (closed model)")
	fs.Var(&o.headers, "header", "request header 'Name: value', repeatable; {uuid} and {seq} in the value are replaced per request")
	fs.StringVar(&o.scenario, "scenario", "", "scenario file (YAML or JSON) or shipped scenario name ("+strings.Join(load.BuiltinScenarios(), ", ")+")")
	fs.StringVar(&o.out, "out", "", "directory for summary.json, run.hlog (written as the run goes) and report.html")
	fs.StringVar(&o.slo, "slo", "", "objectives, e.g. 'p99<80ms,p999<200ms,errors<=0,rate>=0.99'; exit 1 when not met")
	fs.StringVar(&o.startAt, "start-at", "", "start at this RFC 3339 time (for generators on several hosts)")
	fs.StringVar(&o.cfg.Host, "host-label", "", "name of this generator in the recording (default: host name)")
	fs.BoolVar(&o.quiet, "quiet", false, "no live progress line")
	fs.StringVar(&o.cfg.Engine, "engine", "", "open model: loops (event loops) or goroutines (one per connection); default loops where they work (Linux, http://)")
	fs.IntVar(&o.cfg.Loops, "loops", 0, "open model: event loops (default half the processors; at most one fewer than the processors, rounded down to a divisor of --connections)")
	fs.DurationVar(&o.cfg.SendResolution, "send-resolution", 0, "open model: send the requests due within each slot this long together at its end, one wake-up per slot (latency still counts from each request's intended time; 0: each at its own time)")
	if help, err := parseFlags(fs, args, runUsage, stdout); help {
		return exitOK
	} else if err != nil {
		return usageError(stderr, err)
	}
	if fs.NArg() > 0 {
		return usageError(stderr, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	slo, err := o.configure(set)
	if err != nil {
		return usageError(stderr, err)
	}
	if err := load.CheckTarget(context.Background(), o.cfg.Target, o.cfg.Timeout); err != nil {
		return usageError(stderr, err)
	}
	// With --out, the interval log is written as the run goes, one interval
	// a second, so that the run keeps none of them in memory.
	var hlogFile *os.File
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return usageError(stderr, fmt.Errorf("--out: %v", err))
		}
		f, err := os.Create(filepath.Join(o.out, "run.hlog"))
		if err != nil {
			return usageError(stderr, fmt.Errorf("--out: %v", err))
		}
		defer f.Close()
		hlogFile = f
		o.cfg.Hlog = load.NewHlogWriter(f)
	}

	ctx, stop := interruptible(stderr)
	defer stop()
	if !o.cfg.StartAt.IsZero() && !o.quiet {
		fmt.Fprintf(stderr, "loadgen: waiting until %s (in %v) to start\n",
			o.cfg.StartAt.Format(time.RFC3339Nano), time.Until(o.cfg.StartAt).Round(time.Second))
	}
	var live *load.Live
	if !o.quiet {
		live = load.NewLive(stderr, isTerminal(stderr), o.cfg)
		o.cfg.Progress = live.Update
	}
	rec, err := load.Run(ctx, o.cfg)
	if live != nil {
		live.Done()
	}
	if rec == nil {
		if hlogFile != nil {
			os.Remove(hlogFile.Name()) // nothing was recorded
		}
		if ctx.Err() == nil {
			// The engine refused the configuration (event loops where
			// they cannot run): nothing was sent.
			return usageError(stderr, err)
		}
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return exitAborted
	}
	interrupted := err != nil
	if interrupted {
		fmt.Fprintln(stderr, "loadgen: run interrupted; reporting what was recorded")
		rec.Meta.Interrupted = true
	}
	sum := load.Summarize(rec)
	if err := sum.WriteText(stdout); err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
	}
	writeFailed := false
	if o.out != "" {
		_ = o.cfg.Hlog.WriteEnd(interrupted) // its error, if any, is Err's
		hlogErr := o.cfg.Hlog.Err()
		if err := hlogFile.Close(); hlogErr == nil && err != nil {
			hlogErr = fmt.Errorf("write hlog: %w", err)
		}
		reportErr := load.WriteReports(o.out, rec, slo)
		for _, err := range []error{hlogErr, reportErr} {
			if err != nil {
				fmt.Fprintf(stderr, "loadgen: %v\n", err)
			}
		}
		writeFailed = hlogErr != nil || reportErr != nil
	}
	code := sloVerdict(stderr, slo, sum) // printed even when the files failed
	if writeFailed {
		return exitWrite
	}
	if interrupted {
		// A run cut short is not a pass, whatever its figures: a CI job
		// stopped by its timeout must not read as one.
		return exitAborted
	}
	return code
}

// sloVerdict prints whether sum meets slo and returns the exit code: exitOK
// when it does or when there is no SLO, exitSLO when it does not.
func sloVerdict(stderr io.Writer, slo load.SLO, sum load.Summary) int {
	if slo.IsZero() {
		return exitOK
	}
	ok, failures := slo.Check(sum)
	if !ok {
		for _, f := range failures {
			fmt.Fprintf(stderr, "SLO not met: %s\n", f)
		}
		return exitSLO
	}
	fmt.Fprintln(stderr, "SLO met")
	return exitOK
}

// configure turns the flags into o.cfg and the SLO, rejecting impossible
// combinations before anything is sent.
func (o *runOptions) configure(set map[string]bool) (load.SLO, error) {
	var slo load.SLO
	c := &o.cfg
	if c.Target == "" {
		return slo, errors.New("--target is required (e.g. --target http://127.0.0.1:8080/)")
	}
	if set["rate"] {
		if !(o.rate > 0 && o.rate <= load.MaxRate) {
			return slo, fmt.Errorf("--rate %v: want 0 < rate <= %d requests/s", o.rate, load.MaxRate)
		}
		c.Rate = o.rate
	}
	if o.stages != "" {
		if set["rate"] {
			return slo, errors.New("give --rate or --stages, not both")
		}
		if set["duration"] {
			return slo, errors.New("--duration does not apply with --stages: the stages set the length")
		}
		stages, err := load.ParseStages(o.stages)
		if err != nil {
			return slo, fmt.Errorf("--stages: %v", err)
		}
		c.Stages, c.StagesSpec = stages, o.stages
		c.Duration = 0
	}
	if set["duration"] && c.Duration <= 0 {
		return slo, fmt.Errorf("--duration %v: want a positive duration", c.Duration)
	}
	if set["timeout"] && c.Timeout <= 0 {
		return slo, fmt.Errorf("--timeout %v: want a positive duration", c.Timeout)
	}
	c.Headers = o.headers
	if o.scenario != "" {
		sc, err := load.LoadScenario(o.scenario)
		if err != nil {
			return slo, err
		}
		c.Scenario = sc
	}
	if o.slo != "" {
		s, err := load.ParseSLO(o.slo)
		if err != nil {
			return slo, fmt.Errorf("--slo: %v", err)
		}
		slo = s
	}
	if o.startAt != "" {
		t, err := time.Parse(time.RFC3339Nano, o.startAt)
		if err != nil {
			return slo, fmt.Errorf("--start-at %q: want an RFC 3339 time such as 2025-01-02T15:04:05Z", o.startAt)
		}
		if time.Until(t) < 0 {
			return slo, fmt.Errorf("--start-at %s is in the past", o.startAt)
		}
		c.StartAt = t
	}
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	return slo, c.Validate()
}

// parseFlags parses args into fs. Asked for help, it prints usage and fs's
// flags to stdout and reports help.
func parseFlags(fs *flag.FlagSet, args []string, usage string, stdout io.Writer) (help bool, err error) {
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return true, nil
	}
	return false, err
}

// usageError prints err as one line and returns the usage exit status.
func usageError(stderr io.Writer, err error) int {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(stderr, "loadgen run: %s\n", msg)
	return exitUsage
}

// interruptible returns a context cancelled by the first SIGINT or SIGTERM;
// a second one exits at once.
func interruptible(stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
		case <-done:
			return
		}
		fmt.Fprintln(stderr, "\nloadgen: stopping, writing the report (interrupt again to quit at once)")
		cancel()
		select {
		case <-sigs:
			fmt.Fprintln(stderr, "loadgen: quit")
			os.Exit(exitAborted)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
