package load

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Merge combines the interval logs of generators that ran at the same time
// (or of separate runs) into one, losslessly: intervals are aligned on the whole
// second their start falls in, and within each second the histograms are
// added (never their percentiles averaged) and the counts summed. A merged
// interval starts on that second and lasts as long as the longest interval
// merged into it.
//
// Meta is combined for concurrent generators: target rates and connections
// are summed, hosts listed, the earliest start kept. Open-model and
// closed-model recordings do not mix. The inputs are left untouched.
//
// The whole-run totals and each second's percentiles of the result come
// from its merged histograms (Log.Recording), never from the inputs'
// percentiles.
func Merge(recs ...*Log) (*Log, error) {
	if len(recs) == 0 {
		return nil, errors.New("merge: no recordings")
	}
	for i, rec := range recs {
		if rec == nil {
			return nil, fmt.Errorf("merge: recording %d is nil", i+1)
		}
	}
	if err := checkConcurrent(recs); err != nil {
		return nil, err
	}
	if err := checkRemerge(recs); err != nil {
		return nil, err
	}
	meta, err := mergeMeta(recs)
	if err != nil {
		return nil, err
	}

	// Group the intervals by the second they start in, then build each
	// merged interval in histograms just large enough for its values (as
	// compact as the engine's), so that long runs stay small.
	members := make(map[int64][]*Interval)
	inFlight := make(map[int64]int64)
	for _, rec := range recs {
		// In-flight requests are a level, not a count: per recording take
		// the level at the end of its last interval in the second, then sum
		// across recordings.
		last := make(map[int64]*Interval)
		for i := range rec.Intervals {
			iv := &rec.Intervals[i]
			key := iv.Start.Truncate(time.Second).Unix()
			members[key] = append(members[key], iv)
			if l := last[key]; l == nil || !iv.End.Before(l.End) {
				last[key] = iv
			}
		}
		for key, iv := range last {
			inFlight[key] += iv.InFlight
		}
	}

	keys := make([]int64, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := &Log{Meta: meta, Intervals: make([]Interval, 0, len(keys))}
	for _, key := range keys {
		iv, err := mergeSecond(key, members[key])
		if err != nil {
			return nil, err
		}
		iv.InFlight = inFlight[key]
		out.Intervals = append(out.Intervals, iv)
	}
	return out, nil
}

// checkRemerge refuses a merged recording (its host label lists several
// generators) given with another recording of one of its generators: that
// generator's requests would count twice. Runs of separate generators that
// share a label (two on one machine) are not refused; --host-label tells
// them apart.
func checkRemerge(recs []*Log) error {
	hosts := func(rec *Log) []string {
		var hs []string
		for _, h := range strings.Split(rec.Meta.Host, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hs = append(hs, h)
			}
		}
		return hs
	}
	for i, merged := range recs {
		mh := hosts(merged)
		if len(mh) < 2 {
			continue
		}
		for j, other := range recs {
			if j == i {
				continue
			}
			for _, h := range hosts(other) {
				if slices.Contains(mh, h) {
					return fmt.Errorf("merge: recording %d is a merge that holds generator %q, and recording %d is %q too: its requests would count twice; merge each generator's own run once", i+1, h, j+1, h)
				}
			}
		}
	}
	return nil
}

// checkConcurrent refuses recordings whose time spans do not all overlap:
// sums of rates over different periods describe no run.
func checkConcurrent(recs []*Log) error {
	var latestStart, earliestEnd time.Time
	var first, last int // the recordings that set them, 1-based
	for i, rec := range recs {
		if len(rec.Intervals) == 0 {
			continue
		}
		start, end := rec.Intervals[0].Start, rec.Intervals[len(rec.Intervals)-1].End
		if first == 0 || start.After(latestStart) {
			latestStart, first = start, i+1
		}
		if last == 0 || end.Before(earliestEnd) {
			earliestEnd, last = end, i+1
		}
	}
	if first != 0 && !latestStart.Before(earliestEnd) {
		return fmt.Errorf("merge: recording %d ended (%s) before recording %d began (%s): merge combines generators that ran at the same time (start them with the same --start-at)",
			last, earliestEnd.Format(time.RFC3339), first, latestStart.Format(time.RFC3339))
	}
	return nil
}

// mergeSecond merges the intervals that start in the second at Unix time
// key into one interval that starts on that second.
func mergeSecond(key int64, ivs []*Interval) (Interval, error) {
	var length time.Duration
	var maxCorrected, maxUncorrected int64
	for _, iv := range ivs {
		length = max(length, iv.End.Sub(iv.Start))
		if iv.Corrected != nil {
			maxCorrected = max(maxCorrected, maxOf(iv.Corrected))
		}
		if iv.Uncorrected != nil {
			maxUncorrected = max(maxUncorrected, maxOf(iv.Uncorrected))
		}
	}
	start := time.Unix(key, 0).UTC()
	m := Interval{
		Start:       start,
		End:         start.Add(length),
		Corrected:   newCompactHistogram(maxCorrected),
		Uncorrected: newCompactHistogram(maxUncorrected),
		Statuses:    map[int]int64{},
		Errors:      map[string]int64{},
	}
	for _, iv := range ivs {
		if err := addHistograms(&m, iv); err != nil {
			return Interval{}, fmt.Errorf("merge: interval at %s: %w", iv.Start.UTC().Format(time.RFC3339), err)
		}
		for code, n := range iv.Statuses {
			m.Statuses[code] += n
		}
		for kind, n := range iv.Errors {
			m.Errors[kind] += n
		}
		m.LateSends += iv.LateSends
		m.Sent += iv.Sent
		m.ClampedCorrected += iv.ClampedCorrected
		m.ClampedUncorrected += iv.ClampedUncorrected
	}
	return m, nil
}

// addHistograms adds src's histograms into dst's, failing rather than
// dropping values that dst cannot hold.
func addHistograms(dst, src *Interval) error {
	if src.Corrected != nil {
		if dropped := dst.Corrected.Merge(src.Corrected); dropped > 0 {
			return fmt.Errorf("%d corrected values out of range", dropped)
		}
	}
	if src.Uncorrected != nil {
		if dropped := dst.Uncorrected.Merge(src.Uncorrected); dropped > 0 {
			return fmt.Errorf("%d uncorrected values out of range", dropped)
		}
	}
	return nil
}

func mergeMeta(recs []*Log) (Meta, error) {
	var (
		m                          Meta
		targets, scenarios, stages []string
		hosts                      []string
		models                     []string
		unnamedHosts               int
	)
	for _, rec := range recs {
		r := rec.Meta
		targets = appendUnique(targets, r.Target)
		scenarios = appendUnique(scenarios, r.Scenario)
		stages = appendUnique(stages, r.Stages)
		models = appendUnique(models, r.Model)
		for _, h := range strings.Split(r.Host, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hosts = appendUnique(hosts, h)
			} else if r.Host == "" {
				unnamedHosts++
			}
		}
		m.TargetRate += r.TargetRate
		m.Connections += r.Connections
		m.Duration = max(m.Duration, r.Duration)
		m.Warmup = max(m.Warmup, r.Warmup)
		m.Interrupted = m.Interrupted || r.Interrupted // one generator cut short: the merge is short of requests
		if !r.Started.IsZero() && (m.Started.IsZero() || r.Started.Before(m.Started)) {
			m.Started = r.Started
		}
	}
	if slices.Contains(models, "open") && slices.Contains(models, "closed") {
		return Meta{}, errors.New("merge: cannot mix open-model and closed-model recordings: their corrected latencies mean different things")
	}
	m.Model = strings.Join(models, "")
	m.Target = strings.Join(targets, " ")
	m.Scenario = strings.Join(scenarios, " ")
	if len(stages) == 1 {
		m.Stages = stages[0]
	}
	if unnamedHosts > 0 && len(hosts) > 0 {
		hosts = append(hosts, fmt.Sprintf("%d unnamed", unnamedHosts))
	}
	m.Host = strings.Join(hosts, ",")
	return m, nil
}

// appendUnique appends s unless it is empty or already present.
func appendUnique(list []string, s string) []string {
	if s == "" || slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
