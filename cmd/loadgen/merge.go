package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"storefront/internal/load"
)

const mergeUsage = `Usage: loadgen merge --out DIR [--slo SPEC] RUN...

Merges the recordings of generators that ran at the same time (started
with the same --start-at) into one, as if a single generator had made all
the requests: intervals are aligned on whole seconds, histograms are added
(percentiles are never averaged), counts summed, target rates and
connections summed. A RUN is the --out directory of a loadgen run or its
run.hlog file. Writes summary.json, run.hlog and report.html into --out and
prints the summary.

Exit status: 0 merged (SLO met), 1 SLO not met, 2 usage error or unreadable input.

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
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, mergeUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return exitOK
		}
		return mergeUsageError(stderr, err)
	}
	if *out == "" {
		return mergeUsageError(stderr, errors.New("--out is required"))
	}
	if fs.NArg() == 0 {
		return mergeUsageError(stderr, errors.New("no runs to merge: give run directories or .hlog files"))
	}
	slo, err := load.ParseSLO(*sloSpec)
	if err != nil {
		return mergeUsageError(stderr, fmt.Errorf("--slo: %v", err))
	}

	recs := make([]*load.Recording, 0, fs.NArg())
	for _, arg := range fs.Args() {
		rec, err := readRun(arg)
		if err != nil {
			return mergeUsageError(stderr, err)
		}
		recs = append(recs, rec)
	}
	merged, err := load.Merge(recs...)
	if err != nil {
		return mergeUsageError(stderr, err)
	}
	if err := load.WriteReports(*out, merged, slo); err != nil {
		return mergeUsageError(stderr, err)
	}
	sum := load.Summarize(merged)
	if err := sum.WriteText(stdout); err != nil {
		fmt.Fprintf(stderr, "loadgen merge: %v\n", err)
	}
	fmt.Fprintf(stdout, "\nmerged %d runs into %s\n", len(recs), *out)
	return sloVerdict(stderr, slo, sum)
}

// readRun reads a run's interval log: path itself, or run.hlog in it when
// path is a directory.
func readRun(path string) (*load.Recording, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "run.hlog")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rec, err := load.ReadHlog(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return rec, nil
}

func mergeUsageError(stderr io.Writer, err error) int {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(stderr, "loadgen merge: %s\n", msg)
	return exitUsage
}
