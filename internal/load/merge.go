package load

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Merge combines recordings of generators that ran at the same time (or of
// separate runs) into one, losslessly: intervals are aligned on the whole
// second their start falls in, and within each second the histograms are
// added (never their percentiles averaged) and the counts summed. A merged
// interval starts on that second and lasts as long as the longest interval
// merged into it.
//
// Meta is combined for concurrent generators: target rates and connections
// are summed, hosts listed, the earliest start kept. Open-model and
// closed-model recordings do not mix. The inputs are left untouched.
func Merge(recs ...*Recording) (*Recording, error) {
	if len(recs) == 0 {
		return nil, errors.New("merge: no recordings")
	}
	for i, rec := range recs {
		if rec == nil {
			return nil, fmt.Errorf("merge: recording %d is nil", i+1)
		}
	}
	meta, err := mergeMeta(recs)
	if err != nil {
		return nil, err
	}

	type bucket struct {
		iv     Interval
		length time.Duration
	}
	buckets := make(map[int64]*bucket)
	for ri, rec := range recs {
		// In-flight requests are a level, not a count: per recording keep
		// the level at the end of its last interval in the second, then sum
		// across recordings.
		inFlight := make(map[int64]Interval)
		for _, iv := range rec.Intervals {
			key := iv.Start.Truncate(time.Second).Unix()
			b := buckets[key]
			if b == nil {
				b = &bucket{iv: Interval{
					Start:       time.Unix(key, 0).UTC(),
					Corrected:   NewHistogram(),
					Uncorrected: NewHistogram(),
					Statuses:    map[int]int64{},
					Errors:      map[string]int64{},
				}}
				buckets[key] = b
			}
			if err := addHistograms(&b.iv, &iv); err != nil {
				return nil, fmt.Errorf("merge: recording %d, interval at %s: %w", ri+1, iv.Start.UTC().Format(time.RFC3339), err)
			}
			for code, n := range iv.Statuses {
				b.iv.Statuses[code] += n
			}
			for kind, n := range iv.Errors {
				b.iv.Errors[kind] += n
			}
			b.iv.LateSends += iv.LateSends
			b.iv.Sent += iv.Sent
			b.length = max(b.length, iv.End.Sub(iv.Start))
			if last, ok := inFlight[key]; !ok || !iv.End.Before(last.End) {
				inFlight[key] = iv
			}
		}
		for key, iv := range inFlight {
			buckets[key].iv.InFlight += iv.InFlight
		}
	}

	keys := make([]int64, 0, len(buckets))
	for k := range buckets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := &Recording{Meta: meta, Intervals: make([]Interval, 0, len(keys))}
	for _, k := range keys {
		b := buckets[k]
		b.iv.End = b.iv.Start.Add(b.length)
		out.Intervals = append(out.Intervals, b.iv)
	}
	return out, nil
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

func mergeMeta(recs []*Recording) (Meta, error) {
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
