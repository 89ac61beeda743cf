// Command storefront serves the storefront API and manages its database.
//
//	storefront serve     run the API (with a private PostgreSQL unless --dsn is given)
//	storefront migrate   apply pending schema migrations
//	storefront seed      load deterministic demo data
//	storefront version   print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `storefront: the read-heavy core API of an e-commerce platform, on PostgreSQL.

Usage:
  storefront serve   [flags]   run the API (a private PostgreSQL under --data-dir unless --dsn is given)
  storefront migrate [flags]   apply pending schema migrations
  storefront seed    [flags]   load deterministic demo data (idempotent)
  storefront version           print the version

Every flag can also be set with STOREFRONT_<FLAG> (e.g. STOREFRONT_POOL_MAX_CONNS=32);
flags win. Run "storefront <command> --help" for the flags of a command.
`

// run is main without the process exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	var err error
	switch args[0] {
	case "serve":
		err = serveCmd(ctx, args[1:], stderr)
	case "migrate":
		err = migrateCmd(ctx, args[1:], stdout, stderr)
	case "seed":
		err = seedCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		err = versionCmd(args[1:], stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "storefront: unknown command %q (want serve, migrate, seed or version)\n", args[0])
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		printError(stderr, args[0], err)
		return 2
	case errors.As(err, new(loggedError)):
		return 1
	default:
		printError(stderr, args[0], err)
		return 1
	}
}

// versionCmd prints the version; it takes no flags or arguments.
func versionCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("storefront version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "storefront", buildVersion())
	return nil
}

// printError writes one line per problem, each naming the command. pgx
// reports each attempt to connect on a tab-indented line of its own under
// one "failed to connect" line: they are joined onto that line, the same
// attempt's failure once, and a refused TLS handshake (sslmode=prefer's
// first attempt, against a server without TLS) after the attempt that says
// what went wrong.
func printError(w io.Writer, cmd string, err error) {
	for _, line := range errorLines(err.Error()) {
		fmt.Fprintf(w, "storefront %s: %s\n", cmd, line)
	}
}

func errorLines(msg string) []string {
	var lines []string
	var attempts, tlsRefused []string
	flush := func() {
		if len(lines) > 0 && len(attempts)+len(tlsRefused) > 0 {
			lines[len(lines)-1] += " " + strings.Join(append(attempts, tlsRefused...), "; ")
		}
		attempts, tlsRefused = nil, nil
	}
	for _, line := range strings.Split(msg, "\n") {
		if strings.HasPrefix(line, "\t") && len(lines) > 0 {
			a := strings.TrimSpace(line)
			switch {
			case slices.Contains(attempts, a), slices.Contains(tlsRefused, a):
			case strings.Contains(a, "tls error: server refused TLS connection"):
				tlsRefused = append(tlsRefused, a)
			default:
				attempts = append(attempts, a)
			}
			continue
		}
		flush()
		if len(lines) == 0 || line != lines[len(lines)-1] {
			lines = append(lines, line)
		}
	}
	flush()
	return lines
}

// loggedError marks an error already written to the log (as a JSON line):
// it is not printed again.
type loggedError struct{ err error }

func (e loggedError) Error() string { return e.err.Error() }
func (e loggedError) Unwrap() error { return e.err }

// usageError marks a problem with the command line or configuration.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// parseFlags parses args, then fills unset flags from the environment.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard) // a bad flag is reported in one line, not with the whole usage
	err := fs.Parse(args)
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(out, "Usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		return err
	}
	if err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return usageError{err}
	}
	return nil
}

// signalContext is cancelled by the first SIGINT, SIGTERM or SIGHUP; a
// second one exits at once. SIGHUP (the terminal went away) stops as
// gracefully as the others: there is no configuration to reload, and
// dying at once would drop requests in flight.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
			return
		}
		<-ch
		fmt.Fprintln(os.Stderr, "storefront: second signal, exiting now")
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return version
}
