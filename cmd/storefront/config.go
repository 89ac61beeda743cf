package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"storefront/internal/httpapi"
	"storefront/internal/postgres"
	"storefront/internal/seed"
)

// Config is everything `storefront serve` can be told, from flags and
// STOREFRONT_* environment variables (flags win).
type Config struct {
	Addr          string
	AdminAddr     string
	DSN           string
	DataDir       string
	Migrate       bool
	DrainTimeout  time.Duration
	ShutdownDelay time.Duration
	ReusePort     bool
	LogLevel      string
	LogFormat     string
	DemoUsers     int
	DemoProducts  int

	DB   postgres.Config
	HTTP httpapi.Config
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		Addr:         ":8080",
		AdminAddr:    "127.0.0.1:9090",
		DataDir:      "./data",
		DrainTimeout: 10 * time.Second,
		LogLevel:     "info",
		LogFormat:    "text",
		DemoUsers:    100_000,
		DemoProducts: 10_000,
		DB:           postgres.DefaultConfig(),
		HTTP:         httpapi.DefaultConfig(),
	}
}

// Validate reports every problem, one per line.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("--addr must not be empty"))
	} else if err := checkListenAddr(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("--addr %q: %v", c.Addr, err))
	}
	if c.AdminAddr != "" {
		if err := checkListenAddr(c.AdminAddr); err != nil {
			errs = append(errs, fmt.Errorf("--admin-addr %q: %v", c.AdminAddr, err))
		}
	}
	if c.DSN == "" && c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty when no --dsn is given"))
	}
	if c.DSN != "" {
		// pgconn's message leaves the password out.
		if _, err := pgconn.ParseConfig(c.DSN); err != nil {
			errs = append(errs, fmt.Errorf("--dsn: %v%s", err, libpqEnvHint()))
		}
	}
	if c.DrainTimeout <= 0 {
		errs = append(errs, errors.New("--drain-timeout must be > 0"))
	}
	if c.ShutdownDelay < 0 {
		errs = append(errs, errors.New("--shutdown-delay must be >= 0"))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format must be text or json, not %q", c.LogFormat))
	}
	if c.DemoUsers < 0 || c.DemoProducts < 0 {
		errs = append(errs, errors.New("--demo-users and --demo-products must be >= 0"))
	} else if c.DemoUsers > seed.MaxRows || c.DemoProducts > seed.MaxRows {
		errs = append(errs, fmt.Errorf("--demo-users and --demo-products must be at most %d", seed.MaxRows))
	}
	if err := c.DB.Validate(); err != nil {
		errs = append(errs, withFlagNames(err, serveSubjects))
	}
	if err := c.HTTP.Validate(); err != nil {
		errs = append(errs, withFlagNames(err, serveSubjects))
	}
	return errors.Join(errs...)
}

// flagSubject is the subject of a package's validation message ("read
// timeout" in "read timeout must be > 0") and the flag that sets it.
type flagSubject struct{ subject, flag string }

// serveSubjects maps the subjects of the postgres and httpapi packages'
// validation messages to serve's flags, so that a message names what the
// user typed. Longer subjects come before their prefixes.
// TestValidationNamesFlags keeps it in step with the packages' messages.
var serveSubjects = []flagSubject{
	{"min pool connections", "--pool-min-conns"},
	{"max pool connections", "--pool-max-conns"},
	{"pool acquire timeout", "--pool-acquire-timeout"},
	{"statement timeout", "--statement-timeout"},
	{"max connection lifetime jitter", "--pool-max-conn-lifetime-jitter"},
	{"max connection lifetime", "--pool-max-conn-lifetime"},
	{"max batch", "--coalesce-max-batch"},
	{"batch mode", "--coalesce-mode"},
	{"batches in flight", "--coalesce-in-flight"},
	{"coalesced queries in flight", "--coalesce-queries"},
	{"read timeout", "--read-timeout"},
	{"write timeout", "--write-timeout"},
	{"idle timeout", "--idle-timeout"},
	{"request timeout", "--request-timeout"},
	{"max header bytes", "--max-header-bytes"},
	{"max body bytes", "--max-body-bytes"},
	{"max connections", "--max-conns"},
	{"event loops", "--event-loops"},
	{"access log sampling", "--access-log-every"},
	{"shed max in-flight", "--shed-max-inflight"},
}

// seedSubjects does the same for the seed package and seed's flags.
var seedSubjects = []flagSubject{
	{"products × warehouses", "--products × --warehouses"},
	{"users", "--users"},
	{"products", "--products"},
	{"warehouses", "--warehouses"},
}

// withFlagNames rewrites each line of a package's validation error to start
// with the flag its subject comes from.
func withFlagNames(err error, subjects []flagSubject) error {
	lines := strings.Split(err.Error(), "\n")
	for i, line := range lines {
		for _, fs := range subjects {
			if strings.HasPrefix(line, fs.subject+" ") {
				lines[i] = fs.flag + line[len(fs.subject):]
				break
			}
		}
	}
	return errors.New(strings.Join(lines, "\n"))
}

// checkListenAddr reports an address that cannot be listened on whatever
// the machine: no port, or a port that is neither a number from 0 to 65535
// nor a service name. A host that does not resolve, or a port in use, is
// found when listening.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, e.g. :8080 or 127.0.0.1:9090")
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// bindDatabaseFlags registers the flags every subcommand that talks to
// PostgreSQL shares.
func bindDatabaseFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.DSN, "dsn", c.DSN, "PostgreSQL connection string; empty runs a private PostgreSQL under --data-dir")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the private PostgreSQL (used when --dsn is empty)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
}

// bindServeFlags registers serve's flags on fs, writing into c.
func bindServeFlags(fs *flag.FlagSet, c *Config) {
	bindDatabaseFlags(fs, c)
	fs.StringVar(&c.Addr, "addr", c.Addr, "public API listen address")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "admin listen address (/metrics, /debug/pprof, /healthz, /readyz); keep it on loopback; empty disables")
	fs.BoolVar(&c.Migrate, "migrate", c.Migrate, "apply pending schema migrations at start (always on for the private PostgreSQL)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "how long in-flight requests may take to finish after SIGTERM, SIGINT or SIGHUP")
	fs.DurationVar(&c.ShutdownDelay, "shutdown-delay", c.ShutdownDelay, "after SIGTERM, SIGINT or SIGHUP, keep serving this long with /readyz at 503 before closing the listener (lets load balancers notice)")
	fs.BoolVar(&c.ReusePort, "reuseport", c.ReusePort, "listen with SO_REUSEPORT so a new process can take over the port during a rolling restart")
	fs.IntVar(&c.DemoUsers, "demo-users", c.DemoUsers, "users seeded on the first start of the private PostgreSQL")
	fs.IntVar(&c.DemoProducts, "demo-products", c.DemoProducts, "products seeded on the first start of the private PostgreSQL")

	fs.Func("pool-min-conns", "connections the pool keeps open (default: --pool-max-conns, a fixed-size pool)", int32Setter(&c.DB.MinConns))
	fs.Func("pool-max-conns", fmt.Sprintf("most connections the pool opens (default %d)", c.DB.MaxConns), int32Setter(&c.DB.MaxConns))
	fs.DurationVar(&c.DB.AcquireTimeout, "pool-acquire-timeout", c.DB.AcquireTimeout, "longest wait for a pooled connection before answering 503")
	fs.DurationVar(&c.DB.MaxConnLifetime, "pool-max-conn-lifetime", c.DB.MaxConnLifetime, "connections older than this are replaced")
	fs.DurationVar(&c.DB.MaxConnLifetimeJitter, "pool-max-conn-lifetime-jitter", c.DB.MaxConnLifetimeJitter, "random extra lifetime so connections are not all replaced at once")
	fs.DurationVar(&c.DB.StatementTimeout, "statement-timeout", c.DB.StatementTimeout, "PostgreSQL statement_timeout, set once per connection")
	fs.BoolVar(&c.DB.Coalesce, "coalesce", c.DB.Coalesce, "merge concurrent lookups into one query per round trip")
	fs.IntVar(&c.DB.MaxBatch, "coalesce-max-batch", c.DB.MaxBatch, "most ids in one coalesced query")
	fs.IntVar(&c.DB.BatchesInFlight, "coalesce-in-flight", c.DB.BatchesInFlight, "most coalesced queries of one kind running at once")
	fs.IntVar(&c.DB.QueriesInFlight, "coalesce-queries", c.DB.QueriesInFlight, "most coalesced queries of all kinds running at once (0: no limit but --coalesce-in-flight per kind)")
	fs.StringVar(&c.DB.BatchMode, "coalesce-mode", c.DB.BatchMode, "how a coalesced user batch is sent: any (one = ANY($1) query) or pipeline (pipelined single-row queries); for measurement")

	fs.DurationVar(&c.HTTP.RequestTimeout, "request-timeout", c.HTTP.RequestTimeout, "deadline for the database work of one request")
	fs.DurationVar(&c.HTTP.ReadTimeout, "read-timeout", c.HTTP.ReadTimeout, "time allowed to read a whole request; slower clients are cut")
	fs.DurationVar(&c.HTTP.WriteTimeout, "write-timeout", c.HTTP.WriteTimeout, "time allowed to write a response")
	fs.DurationVar(&c.HTTP.IdleTimeout, "idle-timeout", c.HTTP.IdleTimeout, "keep-alive connections idle longer are closed")
	fs.IntVar(&c.HTTP.MaxHeaderBytes, "max-header-bytes", c.HTTP.MaxHeaderBytes, "larger request headers are answered 431")
	fs.IntVar(&c.HTTP.MaxBodyBytes, "max-body-bytes", c.HTTP.MaxBodyBytes, "larger request bodies are answered 413")
	fs.IntVar(&c.HTTP.MaxConns, "max-conns", c.HTTP.MaxConns, "most client connections served at once")
	fs.BoolVar(&c.HTTP.Shed, "shed", c.HTTP.Shed, "overload protection: refuse database-backed requests over an adaptive in-flight limit at once with 503 + Retry-After")
	fs.IntVar(&c.HTTP.ShedMaxInFlight, "shed-max-inflight", c.HTTP.ShedMaxInFlight, "where the adaptive in-flight limit starts, and its ceiling")
	fs.IntVar(&c.HTTP.AccessLogEvery, "access-log-every", c.HTTP.AccessLogEvery, "log one request in N (0: no access log)")
	fs.IntVar(&c.HTTP.EventLoops, "event-loops", c.HTTP.EventLoops, "event loops serving client connections (0: one per CPU)")
	fs.BoolVar(&c.HTTP.StaticRoute, "bench-static-route", c.HTTP.StaticRoute, "serve GET /_bench/static/{user,product,inventory}, in-memory answers for benchmarks (never on in production)")
}

func int32Setter(p *int32) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseInt(s, 0, 32)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return fmt.Errorf("out of range: %q", s)
			}
			return fmt.Errorf("not an integer: %q", s)
		}
		*p = int32(v)
		return nil
	}
}

// applyEnv fills every flag not given on the command line from its
// STOREFRONT_* variable (--pool-max-conns reads STOREFRONT_POOL_MAX_CONNS).
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := envName(f.Name)
		if v, ok := lookup(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				err = valueError(f, err)
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func envName(flagName string) string {
	return "STOREFRONT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level must be debug, info, warn or error, not %q", s)
	}
	return l, nil
}

// libpqEnvHint names the PG* environment variables set, which fill in
// what a DSN leaves out: a DSN error may be theirs.
func libpqEnvHint() string {
	var set []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "PG") {
			set = append(set, name)
		}
	}
	if len(set) == 0 {
		return ""
	}
	slices.Sort(set)
	verb := "fill"
	if len(set) == 1 {
		verb = "fills"
	}
	return fmt.Sprintf(" (the environment's %s %s in what the DSN leaves out)", strings.Join(set, ", "), verb)
}

func newLogger(c Config) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		// Durations as "1.5s", as in the text format: slog's JSON handler
		// writes them as integer nanoseconds, which reads as a count.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// valueError replaces the flag package's "parse error" for a value from the
// environment by what the flag takes.
func valueError(f *flag.Flag, err error) error {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return err // a flag.Func's own message
	}
	switch g.Get().(type) {
	case bool:
		return errors.New("want true or false")
	case int, int64:
		return errors.New("want an integer")
	case time.Duration:
		return errors.New("want a duration such as 250ms, 5s or 1m")
	}
	return err
}
