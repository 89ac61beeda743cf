// Command loadgen is an open-model HTTP load generator whose numbers can be
// trusted: latency is measured from each request's intended send time
// (coordinated omission corrected) and from its actual send, recorded in
// HDR histograms, and reported as text, JSON, an HdrHistogram interval log
// and an offline HTML page. The engine lives in internal/load; this command
// only parses flags.
//
//	loadgen run --target URL [--rate N | --stages 30s:1000,60s:5000] [flags]
//	loadgen merge [flags] DIR...
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes.
const (
	exitOK      = 0   // the run completed and met its SLO (if any)
	exitSLO     = 1   // the SLO was not met
	exitUsage   = 2   // bad flags or input: nothing was measured
	exitWrite   = 3   // the run completed but its files under --out could not be written
	exitAborted = 130 // interrupted (SIGINT, SIGTERM): what was recorded is reported
)

const usage = `loadgen: an open-model HTTP load generator.

Usage:
  loadgen run --target URL [flags]   generate load and report (loadgen run --help)
  loadgen merge [flags] DIR...       merge the recordings of several generators (loadgen merge --help)

Exit status: 0 done (SLO met), 1 SLO not met, 2 usage error or a target that
does not answer before the run (nothing measured), 3 the report files could
not be written, 130 interrupted (what was recorded is reported).
`

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs loadgen with args (without the program name) and returns the
// exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runRun(args[1:], stdout, stderr)
	case "merge":
		return runMerge(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "loadgen: unknown command %q (want run or merge; see loadgen --help)\n", args[0])
	return exitUsage
}
