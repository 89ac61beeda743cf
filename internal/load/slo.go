package load

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// SLO is a service-level objective checked against a run's Summary, parsed
// from a spec such as "p99<80ms,p999<200ms,errors<=0.1%,rate>=0.99".
// The zero SLO has no objectives and is always met.
//
// Objectives, separated by commas:
//
//	p50 p90 p99 p999 p9999 max  (also p99.9, p99.99)  < or <=  a latency with unit us, ms or s
//	    Latency is the coordinated-omission CORRECTED latency, the one a user waits.
//	errors  < or <=  a count (errors<=0) or a percentage of completed requests (errors<=0.1%)
//	    Errors are failures: transport errors (timeouts, refused or reset
//	    connections, ...) plus 5xx responses. 4xx responses are the client's
//	    doing and are reported separately, never counted as errors.
//	    Completed requests are responses plus transport errors.
//	rate  >= or >  achieved rate (responses per second)
//	    A bare value <= 1 (rate>=0.99) or a percentage (rate>=99%) is a ratio of
//	    the target rate and needs an open-model run; a bare value > 1 or a value
//	    with /s (rate>=50000, rate>=500/s) is an absolute rate, valid in both models.
//
// Whatever the objectives, a run in which no request completed fails, and a
// latency objective fails when no latency was recorded. A latency objective whose percentile reached the histograms' top (60 s) while
// latencies were clamped there is not met: that percentile is only known to
// be 60 s or more. Nor is one whose percentile falls among timed-out requests
// (more timeouts than the percentile leaves out): their latency is only known
// to exceed --timeout.
type SLO struct {
	objectives []objective
}

type objectiveKind int

const (
	objLatency objectiveKind = iota
	objErrorCount
	objErrorRatio
	objRateRatio
	objRateAbsolute
)

type objective struct {
	term       string // as written, spaces removed
	name       string // canonical: p99, p999, max, errors, rate
	kind       objectiveKind
	op         string  // <, <=, >=, >
	percentile float64 // latency objectives: 50 ... 99.99, 100 for max
	limit      float64 // ms, count, ratio in [0,1] or requests/s
}

// latencyObjectives maps accepted names to their canonical name and percentile.
var latencyObjectives = map[string]struct {
	name       string
	percentile float64
}{
	"p50":    {"p50", 50},
	"p90":    {"p90", 90},
	"p99":    {"p99", 99},
	"p999":   {"p999", 99.9},
	"p99.9":  {"p999", 99.9},
	"p9999":  {"p9999", 99.99},
	"p99.99": {"p9999", 99.99},
	"max":    {"max", 100},
}

// ParseSLO parses an SLO spec; the empty spec is the empty SLO.
func ParseSLO(spec string) (SLO, error) {
	var slo SLO
	if strings.TrimSpace(spec) == "" {
		return slo, nil
	}
	seen := make(map[string]bool)
	for _, raw := range strings.Split(spec, ",") {
		term := strings.Join(strings.Fields(raw), "")
		if term == "" {
			return SLO{}, fmt.Errorf("slo %q: empty objective (objectives are separated by single commas)", spec)
		}
		o, err := parseObjective(term)
		if err != nil {
			return SLO{}, err
		}
		if seen[o.name] {
			return SLO{}, fmt.Errorf("slo %q: %s is given twice", spec, o.name)
		}
		seen[o.name] = true
		slo.objectives = append(slo.objectives, o)
	}
	return slo, nil
}

func parseObjective(term string) (objective, error) {
	i := strings.IndexAny(term, "<>=")
	if i < 0 {
		return objective{}, fmt.Errorf("slo %q: no comparison; write e.g. p99<80ms, errors<=0 or rate>=0.99", term)
	}
	name := strings.ToLower(term[:i])
	rest := term[i:]
	var op string
	for _, candidate := range []string{"<=", ">=", "<", ">"} {
		if strings.HasPrefix(rest, candidate) {
			op = candidate
			break
		}
	}
	if op == "" {
		return objective{}, fmt.Errorf("slo %q: unknown comparison; use <, <=, >= or >", term)
	}
	value := rest[len(op):]
	num, unit := splitNumber(value)
	if num == "" {
		return objective{}, fmt.Errorf("slo %q: missing or bad number %q", term, value)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(v, 0) {
		return objective{}, fmt.Errorf("slo %q: bad number %q", term, num)
	}
	o := objective{term: term, name: name, op: op, limit: v}

	if lat, ok := latencyObjectives[name]; ok {
		o.name, o.kind, o.percentile = lat.name, objLatency, lat.percentile
		if op != "<" && op != "<=" {
			return objective{}, fmt.Errorf("slo %q: latency objectives use < or <=", term)
		}
		switch strings.ToLower(unit) {
		case "us", "µs":
			o.limit = v / 1000
		case "ms":
			o.limit = v
		case "s":
			o.limit = v * 1000
		case "":
			return objective{}, fmt.Errorf("slo %q: latency needs a unit (us, ms or s), e.g. %s%s%sms", term, name, op, num)
		default:
			return objective{}, fmt.Errorf("slo %q: unknown latency unit %q; use us, ms or s", term, unit)
		}
		return o, nil
	}

	switch name {
	case "errors":
		if op != "<" && op != "<=" {
			return objective{}, fmt.Errorf("slo %q: error objectives use < or <=", term)
		}
		switch unit {
		case "":
			if v != math.Trunc(v) {
				return objective{}, fmt.Errorf("slo %q: an error count is a whole number; write a ratio as a percentage, e.g. errors%s%s%%", term, op, num)
			}
			o.kind = objErrorCount
		case "%":
			if v > 100 {
				return objective{}, fmt.Errorf("slo %q: a percentage is at most 100%%", term)
			}
			o.kind, o.limit = objErrorRatio, v/100
		default:
			return objective{}, fmt.Errorf("slo %q: unknown unit %q; errors take a count (errors<=10) or a percentage (errors<=0.1%%)", term, unit)
		}
		return o, nil
	case "rate":
		if op != ">=" && op != ">" {
			return objective{}, fmt.Errorf("slo %q: rate objectives use >= or >", term)
		}
		switch strings.ToLower(unit) {
		case "":
			if v <= 1 {
				o.kind = objRateRatio
			} else {
				o.kind = objRateAbsolute
			}
		case "%":
			if v > 100 {
				return objective{}, fmt.Errorf("slo %q: a percentage of the target rate is at most 100%%", term)
			}
			o.kind, o.limit = objRateRatio, v/100
		case "/s":
			o.kind = objRateAbsolute
		default:
			return objective{}, fmt.Errorf("slo %q: unknown unit %q; rate takes a ratio of the target (rate>=0.99, rate>=99%%) or requests per second (rate>=50000, rate>=500/s)", term, unit)
		}
		return o, nil
	}
	return objective{}, fmt.Errorf("slo %q: unknown objective %q; use p50, p90, p99, p999, p9999, max, errors or rate", term, name)
}

// splitNumber splits "80ms" into "80" and "ms". Only plain decimals are
// numbers: no sign, no exponent.
func splitNumber(s string) (num, unit string) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	return s[:i], s[i:]
}

// IsZero reports whether the SLO has no objectives.
func (s SLO) IsZero() bool { return len(s.objectives) == 0 }

// String returns the SLO in its canonical spec form ("" for the zero SLO).
func (s SLO) String() string {
	terms := make([]string, len(s.objectives))
	for i, o := range s.objectives {
		terms[i] = o.term
	}
	return strings.Join(terms, ",")
}

// Check evaluates every objective against sum and returns one line per
// objective that is not met.
func (s SLO) Check(sum Summary) (ok bool, failures []string) {
	if s.IsZero() {
		return true, nil
	}
	completed := sum.Responses + sum.TransportErrors
	if completed == 0 {
		return false, []string{"no request completed"}
	}
	for _, o := range s.objectives {
		if msg := o.check(sum); msg != "" {
			failures = append(failures, msg)
		}
	}
	return len(failures) == 0, failures
}

// check returns "" when the objective is met, else why not.
func (o objective) check(sum Summary) string {
	switch o.kind {
	case objLatency:
		if sum.Corrected.Count == 0 {
			// Every request failed without a latency (refused, reset or
			// closed connections): an empty histogram's percentiles read 0.
			return fmt.Sprintf("%s: no latency was recorded (no response, no timeout; %s), want %s %s",
				o.term, describeFailures(sum), o.op, formatMS(o.limit))
		}
		// A timed-out request's latency is recorded as the time it waited,
		// a lower bound: when more of them than the percentile leaves out
		// were recorded, the percentile is one of those lower bounds, and an
		// objective above --timeout would pass against a service that
		// answered nothing.
		if timeouts := sum.Errors[ErrTimeout]; float64(timeouts) > float64(sum.Corrected.Count)*(1-o.percentile/100) {
			return fmt.Sprintf("%s: %d of %d recorded requests timed out, more than a %s can leave out (their latency is only known to exceed --timeout), want %s %s",
				o.term, timeouts, sum.Corrected.Count, o.name, o.op, formatMS(o.limit))
		}
		got := sum.Corrected.at(o.percentile)
		if sum.Corrected.lowerBound(got) {
			// Clamped at the histograms' top: the latency is at least
			// that, and may be any higher.
			return fmt.Sprintf("%s: corrected %s latency is over %s (%d latencies above the histograms' range), want %s %s",
				o.term, o.name, formatMS(usToMS(HistMaxUS)), sum.Corrected.Clamped, o.op, formatMS(o.limit))
		}
		if sloCompare(got, o.op, o.limit) {
			return ""
		}
		return fmt.Sprintf("%s: corrected %s latency is %s, want %s %s", o.term, o.name, formatMS(got), o.op, formatMS(o.limit))
	case objErrorCount:
		if sloCompare(float64(sum.Failures), o.op, o.limit) {
			return ""
		}
		return fmt.Sprintf("%s: %d errors (%s), want %s %d", o.term, sum.Failures, describeFailures(sum), o.op, int64(o.limit))
	case objErrorRatio:
		if sloCompare(sum.FailureRatio, o.op, o.limit) {
			return ""
		}
		return fmt.Sprintf("%s: %s of completed requests failed (%s), want %s %s", o.term, formatPercent(sum.FailureRatio), describeFailures(sum), o.op, formatPercent(o.limit))
	case objRateRatio:
		if sum.TargetRate <= 0 {
			return fmt.Sprintf("%s: a rate ratio needs a target rate, and this run records none (closed model or staged rates); give an absolute rate instead, e.g. rate>=%.0f/s", o.term, math.Floor(sum.AchievedRate))
		}
		if sloCompare(sum.RateRatio, o.op, o.limit) {
			return ""
		}
		return fmt.Sprintf("%s: achieved %.1f/s is %s of the target %.1f/s, want %s %s", o.term, sum.AchievedRate, formatPercent(sum.RateRatio), sum.TargetRate, o.op, formatPercent(o.limit))
	case objRateAbsolute:
		if sloCompare(sum.AchievedRate, o.op, o.limit) {
			return ""
		}
		return fmt.Sprintf("%s: achieved %.1f/s, want %s %g/s", o.term, sum.AchievedRate, o.op, o.limit)
	}
	return fmt.Sprintf("%s: unknown objective", o.term)
}

func sloCompare(got float64, op string, limit float64) bool {
	switch op {
	case "<":
		return got < limit
	case "<=":
		return got <= limit
	case ">":
		return got > limit
	case ">=":
		return got >= limit
	}
	return false
}

func describeFailures(sum Summary) string {
	return fmt.Sprintf("%d transport, %d 5xx", sum.TransportErrors, sum.ServerErrors)
}

// Verdict is the outcome of checking a run against an SLO, as stored in
// summary.json.
type Verdict struct {
	SLO      string   `json:"slo"`
	OK       bool     `json:"ok"`
	Failures []string `json:"failures"`
}

// Verdict checks sum and returns the outcome; nil for the zero SLO.
func (s SLO) Verdict(sum Summary) *Verdict {
	if s.IsZero() {
		return nil
	}
	ok, failures := s.Check(sum)
	if failures == nil {
		failures = []string{}
	}
	return &Verdict{SLO: s.String(), OK: ok, Failures: failures}
}

// String is the verdict as one line per failure, led by "SLO met" or
// "SLO NOT met".
func (v *Verdict) String() string {
	if v == nil {
		return "no SLO given"
	}
	if v.OK {
		return "SLO met: " + v.SLO
	}
	var b strings.Builder
	b.WriteString("SLO NOT met: " + v.SLO)
	for _, f := range v.Failures {
		b.WriteString("\n  " + f)
	}
	return b.String()
}
