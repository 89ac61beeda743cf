package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"storefront/internal/load"
)

const mergeUsage = `Usage: loadgen merge --out DIR [--slo SPEC] RUN... (flags may also follow the runs)

Merges the recordings of generators that ran at the same time (started
with the same --start-at; recordings that do not overlap in time, the
same recording given twice, or a merge given with a run of one of its
generators, are refused) into one, as if a single generator had made all
the requests: intervals are aligned on whole seconds, histograms are added
(percentiles are never averaged), counts summed, target rates and
connections summed. A RUN is the --out directory of a loadgen run or its
run.hlog file. Writes summary.json, run.hlog and report.html into --out and
prints the summary.

Exit status: 0 merged (SLO met), 1 SLO not met, 2 usage error or unreadable input,
3 the merged files could not all be written, 130 a merged run was interrupted.

Flags:
`

// runMerge implements "loadgen merge".
func runMerge(args []string) int {
	return mergeMain(args, os.Stdout, os.Stderr)
}

func mergeMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen merge", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line below
	out := fs.String("out", "", "directory for the merged summary.json, run.hlog and report.html (required)")
	sloSpec := fs.String("slo", "", "objectives, e.g. 'p99<80ms,p999<200ms,errors<=0,rate>=0.99'; exit 1 when not met")
	// Flags may come after the runs too (merge a b --out X): parse again
	// after each run.
	var runs []string
	for {
		if help, err := parseFlags(fs, args, mergeUsage, stdout); help {
			return exitOK
		} else if err != nil {
			return mergeUsageError(stderr, err)
		}
		if fs.NArg() == 0 {
			break
		}
		runs = append(runs, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if *out == "" {
		return mergeUsageError(stderr, errors.New("--out is required"))
	}
	if len(runs) == 0 {
		return mergeUsageError(stderr, errors.New("no runs to merge: give run directories or .hlog files"))
	}
	slo, err := load.ParseSLO(*sloSpec)
	if err != nil {
		return mergeUsageError(stderr, fmt.Errorf("--slo: %v", err))
	}

	logs := make([]*load.Log, 0, len(runs))
	seen := make(map[[sha256.Size]byte]string, len(runs)) // a log's contents -> the RUN that gave it
	for _, arg := range runs {
		log, sum, err := readRun(arg)
		if err != nil {
			return mergeUsageError(stderr, err)
		}
		if prev, dup := seen[sum]; dup {
			// Its requests would count twice.
			return mergeUsageError(stderr, fmt.Errorf("%s and %s are the same recording: give each generator's run once", prev, arg))
		}
		seen[sum] = arg
		logs = append(logs, log)
	}
	merged, err := load.Merge(logs...)
	if err != nil {
		return mergeUsageError(stderr, err)
	}
	rec, err := merged.Recording()
	if err != nil {
		return mergeUsageError(stderr, err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return mergeUsageError(stderr, fmt.Errorf("--out: %v", err))
	}
	writeErr := writeMerged(*out, merged, rec, slo)
	if writeErr != nil {
		fmt.Fprintf(stderr, "loadgen merge: %s\n", strings.ReplaceAll(writeErr.Error(), "\n", "; "))
	}
	sum := load.Summarize(rec)
	if err := sum.WriteText(stdout); err != nil {
		fmt.Fprintf(stderr, "loadgen merge: %v\n", err)
	}
	if writeErr == nil {
		fmt.Fprintf(stdout, "\nmerged %d runs into %s\n", len(logs), *out)
	}
	code := sloVerdict(stderr, slo, sum)
	if writeErr != nil {
		return exitWrite // as for a run whose files could not be written
	}
	if rec.Meta.Interrupted {
		// A generator's run was cut short: as for that run, not a pass.
		fmt.Fprintln(stderr, "loadgen merge: a merged run was interrupted; the merge is short of its requests")
		return exitAborted
	}
	return code
}

// writeMerged writes what a run leaves in dir for a merged log: run.hlog,
// and summary.json and report.html from rec, the log's Recording. The
// reports are built the way a run builds them, interval by interval from
// the merged histograms. Every file is attempted.
func writeMerged(dir string, log *load.Log, rec *load.Recording, slo load.SLO) error {
	var b bytes.Buffer
	err := load.WriteHlog(&b, log)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "run.hlog"), b.Bytes(), 0o644)
	}
	if err != nil {
		err = fmt.Errorf("write run.hlog: %w", err)
	}
	return errors.Join(err, load.WriteReports(dir, rec, slo))
}

// readRun reads a run's interval log (path itself, or run.hlog in it when
// path is a directory) and returns it with the SHA-256 of its contents.
func readRun(path string) (*load.Log, [sha256.Size]byte, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "run.hlog")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, [sha256.Size]byte{}, err
	}
	log, err := load.ReadHlog(bytes.NewReader(b))
	if err != nil {
		return nil, [sha256.Size]byte{}, fmt.Errorf("%s: %v", path, err)
	}
	return log, sha256.Sum256(b), nil
}

func mergeUsageError(stderr io.Writer, err error) int {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(stderr, "loadgen merge: %s\n", msg)
	return exitUsage
}
