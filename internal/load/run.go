package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"
)

// LateThreshold is how far behind its intended time a request may leave and
// still count as on time. Below it is the generator's own timer and
// scheduler noise (tens to hundreds of microseconds on a busy machine);
// beyond it the request was held back because no connection was free, and
// it is counted in Interval.LateSends. Corrected latency includes the delay
// either way.
const LateThreshold = time.Millisecond

// IntervalLength is the length of a reporting interval.
const IntervalLength = time.Second

// Engines of the open model (Config.Engine).
const (
	EngineLoops      = "loops"
	EngineGoroutines = "goroutines"
)

// Defaults used by Config.SetDefaults.
const (
	DefaultDuration    = 30 * time.Second
	DefaultTimeout     = 2 * time.Second
	DefaultConnections = 64
	MaxConnections     = 100_000
)

// MaxSendResolution bounds Config.SendResolution: coarser slots would
// turn a constant rate into bursts.
const MaxSendResolution = 10 * time.Millisecond

// sendAt is when a request intended at offset at leaves: at itself, or
// with a send resolution r, the end of r's slot that holds it.
func sendAt(at, r time.Duration) time.Duration {
	if r <= 0 {
		return at
	}
	return (at + r - 1) / r * r
}

// Config describes one run. The zero value plus a Target is a closed-model
// run with the defaults.
type Config struct {
	// Target is the URL requested; scenario paths are appended to its path.
	Target string
	// Rate is the constant arrival rate of the open model, in requests/s.
	Rate float64
	// Stages, when set, make an open-model run whose rate ramps linearly
	// from 0 through each stage's target. Duration is then the stages' sum.
	Stages []Stage
	// StagesSpec is Stages as the user wrote them, for the record.
	StagesSpec string
	// Duration of the measured part of the run.
	Duration time.Duration
	// Warmup runs before the measured part and is not recorded. The open
	// model sends at Rate (or at the first stage's target) during it.
	Warmup time.Duration
	// Timeout bounds each request, from its actual send to its last byte.
	Timeout time.Duration
	// Connections is the number of connections: the cap on requests in
	// flight in the open model, the concurrency of the closed model.
	Connections int
	// Engine is how the open model drives its connections: EngineLoops
	// (event loops, each owning a share of the connections and of the
	// schedule) or EngineGoroutines (a goroutine per connection, handed
	// each request by a pacer goroutine). Empty picks loops where they
	// work: Linux, an http:// target that resolves when the run starts,
	// two processors or more. The closed model always uses goroutines.
	Engine string
	// Loops is the number of event loops; 0 means half the processors. At
	// most one fewer than the processors are used, rounded down to a
	// divisor of Connections so that every loop holds as many.
	Loops int
	// SendResolution, in the open model, lets a request leave at the end
	// of the slot of this length (counted from the start of the schedule)
	// that holds its intended time, together with the others due in that
	// slot, instead of at that time exactly: one wake-up per slot rather
	// than per request. Its latency still counts from the intended time,
	// so a slot adds up to its length to it. 0: every request leaves at
	// its own time.
	SendResolution time.Duration
	// Headers are sent with every request, as "Name: value"; a value may
	// hold {uuid} or {seq}.
	Headers []string
	// Scenario is the request mix; nil means GET Target.
	Scenario *Scenario
	// Host labels the generator in the recording (for merged runs).
	Host string
	// StartAt delays the start until then (for distributed runs).
	StartAt time.Time
	// Progress, if set, is called after every interval (warm-up included)
	// from a single goroutine. The Interval's histograms must not be kept.
	Progress func(Progress)
	// Hlog, if set, receives the run's interval log (run.hlog): the header
	// when the run starts, then each measured interval as it closes, so
	// that the run keeps no interval's histograms beyond its second. A
	// write error does not stop the run: the writer keeps it (HlogWriter.Err)
	// and writes nothing more.
	Hlog *HlogWriter
}

// Progress is what Config.Progress receives once per interval.
type Progress struct {
	Interval Interval
	Warmup   bool
	Elapsed  time.Duration // since the start of the run, warm-up included
	Total    time.Duration // planned length, warm-up included
}

// Open reports whether c describes an open-model run.
func (c *Config) Open() bool { return c.Rate > 0 || len(c.Stages) > 0 }

// SetDefaults fills unset fields with the defaults.
func (c *Config) SetDefaults() {
	if c.Duration == 0 && len(c.Stages) == 0 {
		c.Duration = DefaultDuration
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Connections == 0 {
		c.Connections = DefaultConnections
	}
}

// Validate reports the first problem with c as one line.
func (c *Config) Validate() error {
	u, err := parseTarget(c.Target)
	if err != nil {
		return err
	}
	switch {
	case c.Engine == EngineLoops && u.Scheme == "https":
		return fmt.Errorf("engine %s: event loops speak plain http; use --engine %s for https", EngineLoops, EngineGoroutines)
	case c.Rate < 0 || c.Rate > MaxRate || c.Rate != c.Rate:
		return fmt.Errorf("--rate %v: want 0 < rate <= %d requests/s", c.Rate, MaxRate)
	case c.Rate > 0 && len(c.Stages) > 0:
		return errors.New("give either --rate or --stages, not both")
	case len(c.Stages) == 0 && c.Duration <= 0:
		return fmt.Errorf("--duration %v: want a positive duration", c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("--warmup %v: want zero or a positive duration", c.Warmup)
	case c.Timeout <= 0:
		return fmt.Errorf("--timeout %v: want a positive duration", c.Timeout)
	case c.Connections < 1 || c.Connections > MaxConnections:
		return fmt.Errorf("--connections %d: want 1..%d", c.Connections, MaxConnections)
	case c.Engine != "" && c.Engine != EngineLoops && c.Engine != EngineGoroutines:
		return fmt.Errorf("--engine %q: want %s or %s", c.Engine, EngineLoops, EngineGoroutines)
	case c.Loops < 0 || c.Loops > MaxConnections:
		return fmt.Errorf("--loops %d: want 0..%d (0: half the processors)", c.Loops, MaxConnections)
	case !c.Open() && (c.Loops != 0 || c.Engine == EngineLoops):
		// Accepted and ignored, they would make a closed run look like
		// something it is not.
		return errors.New("--loops and --engine loops drive the open model only (give --rate or --stages); the closed model runs a goroutine per connection")
	case c.SendResolution < 0 || c.SendResolution > MaxSendResolution:
		return fmt.Errorf("--send-resolution %v: want 0..%v", c.SendResolution, MaxSendResolution)
	case !c.Open() && c.SendResolution != 0:
		return errors.New("--send-resolution paces the open model only (give --rate or --stages); the closed model sends each request as the previous one is answered")
	}
	for _, s := range c.Stages {
		if s.Length <= 0 || s.Target < 0 || s.Target > MaxRate {
			return fmt.Errorf("stage %v:%v: want a positive length and 0 <= rate <= %d", s.Length, s.Target, MaxRate)
		}
	}
	if err := c.checkSpan(); err != nil {
		return err
	}
	for _, h := range c.Headers {
		if _, _, err := ParseHeader(h); err != nil {
			return err
		}
	}
	if c.Scenario != nil {
		if err := c.Scenario.Validate(); err != nil {
			return fmt.Errorf("scenario: %w", err)
		}
	}
	return nil
}

// checkSpan refuses a run whose schedule (warm-up and duration, or the
// stages) and one timeout of grace after it do not fit in a Duration, the
// offset from the start at which the engine stops dispatching overdue
// requests: it would wrap around to a negative offset, which gave the run
// up at its start and left it waiting for the end of its schedule.
func (c *Config) checkSpan() error {
	what := fmt.Sprintf("duration %v", c.Duration)
	length, ok := c.Duration, true
	if len(c.Stages) > 0 {
		length = 0
		for _, s := range c.Stages {
			if length, ok = addSpan(length, s.Length); !ok {
				break
			}
		}
		what = fmt.Sprintf("stages of %v in all", length)
		if !ok {
			what = "stages"
		}
	}
	if ok {
		var span time.Duration
		if span, ok = addSpan(c.Warmup, length); ok {
			_, ok = addSpan(span, c.Timeout)
		}
	}
	if !ok {
		return fmt.Errorf("%s with warm-up %v and timeout %v: longer than loadgen can time (%v in all, about 292 years)",
			what, c.Warmup, c.Timeout, time.Duration(math.MaxInt64))
	}
	return nil
}

// addSpan adds two non-negative durations and reports whether the sum fits.
func addSpan(a, b time.Duration) (time.Duration, bool) {
	if b > math.MaxInt64-a {
		return 0, false
	}
	return a + b, true
}

func parseTarget(target string) (*url.URL, error) {
	if target == "" {
		return nil, errors.New("no target: give --target http://host:port/path")
	}
	if !strings.Contains(target, "://") {
		// Without a scheme, "127.0.0.1:8080" does not even parse as a URL.
		return nil, fmt.Errorf("target %q: want an http:// or https:// URL, e.g. http://%s", maskPassword(target), maskPassword(target))
	}
	u, err := url.Parse(target)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, password included
		}
		return nil, fmt.Errorf("target %q: %v", maskPassword(target), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("target %q: want an http:// or https:// URL", u.Redacted())
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("target %q: no host", u.Redacted())
	}
	return u, nil
}

// maskPassword replaces the password of a target's user:password@, if it
// has one, for messages about a target that may not parse as a URL.
func maskPassword(target string) string {
	rest := target
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	start := len(target) - len(rest)
	at := strings.LastIndex(rest[:strings.IndexAny(rest+"/", "/?#")], "@")
	if at < 0 {
		return target
	}
	colon := strings.Index(rest[:at], ":")
	if colon < 0 {
		return target
	}
	return target[:start+colon+1] + "xxxxx" + target[start+at:]
}

// CheckTarget connects once to the target, so that a run against a wrong
// address fails before it starts rather than as a recording of errors.
func CheckTarget(ctx context.Context, target string, timeout time.Duration) error {
	u, err := parseTarget(target)
	if err != nil {
		return err
	}
	d, err := newDialer(u)
	if err != nil {
		return err
	}
	c, err := d.dial(ctx, time.Now().Add(timeout))
	if err != nil {
		return fmt.Errorf("target %s unreachable: %s (%s)", d.addr, ClassifyError(err), err)
	}
	c.close()
	return nil
}

// Run performs a run and returns its recording, warm-up excluded: the
// whole-run histograms and per-interval stats, memory that does not grow
// with the run beyond about 200 bytes a second (the intervals' histograms
// go to Config.Hlog as they close, or nowhere). When ctx
// is cancelled the run stops early: requests in flight are given up to the
// timeout to complete, and the recording up to that point is returned with
// ctx's error.
func Run(ctx context.Context, cfg Config) (*Recording, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e, err := newEngine(cfg)
	if err != nil {
		return nil, err
	}
	if !cfg.StartAt.IsZero() {
		t := time.NewTimer(time.Until(cfg.StartAt))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	rec := e.run(ctx)
	return rec, ctx.Err()
}
