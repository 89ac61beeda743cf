package load

import (
	"strings"
	"testing"
)

func TestParseSLOValid(t *testing.T) {
	tests := []struct {
		spec string
		want []objective // term is checked through String
	}{
		{"", nil},
		{"  ", nil},
		{"p99<80ms", []objective{{name: "p99", kind: objLatency, op: "<", percentile: 99, limit: 80}}},
		{"p50<=500us,p90<2ms,p999<200ms,p9999<=1.5s,max<2s", []objective{
			{name: "p50", kind: objLatency, op: "<=", percentile: 50, limit: 0.5},
			{name: "p90", kind: objLatency, op: "<", percentile: 90, limit: 2},
			{name: "p999", kind: objLatency, op: "<", percentile: 99.9, limit: 200},
			{name: "p9999", kind: objLatency, op: "<=", percentile: 99.99, limit: 1500},
			{name: "max", kind: objLatency, op: "<", percentile: 100, limit: 2000},
		}},
		{"p99.9<200ms, P99.99 < 300µs", []objective{
			{name: "p999", kind: objLatency, op: "<", percentile: 99.9, limit: 200},
			{name: "p9999", kind: objLatency, op: "<", percentile: 99.99, limit: 0.3},
		}},
		{"errors<=0", []objective{{name: "errors", kind: objErrorCount, op: "<=", limit: 0}}},
		{"errors<10", []objective{{name: "errors", kind: objErrorCount, op: "<", limit: 10}}},
		{"errors<=0.1%", []objective{{name: "errors", kind: objErrorRatio, op: "<=", limit: 0.001}}},
		{"rate>=0.99", []objective{{name: "rate", kind: objRateRatio, op: ">=", limit: 0.99}}},
		{"rate>=1", []objective{{name: "rate", kind: objRateRatio, op: ">=", limit: 1}}},
		{"rate>=99.5%", []objective{{name: "rate", kind: objRateRatio, op: ">=", limit: 0.995}}},
		{"rate>=50000", []objective{{name: "rate", kind: objRateAbsolute, op: ">=", limit: 50000}}},
		{"rate>0.5/s", []objective{{name: "rate", kind: objRateAbsolute, op: ">", limit: 0.5}}},
		{"p99<80ms,p999<200ms,errors<=0,rate>=0.99", []objective{
			{name: "p99", kind: objLatency, op: "<", percentile: 99, limit: 80},
			{name: "p999", kind: objLatency, op: "<", percentile: 99.9, limit: 200},
			{name: "errors", kind: objErrorCount, op: "<=", limit: 0},
			{name: "rate", kind: objRateRatio, op: ">=", limit: 0.99},
		}},
	}
	for _, tt := range tests {
		slo, err := ParseSLO(tt.spec)
		if err != nil {
			t.Errorf("ParseSLO(%q): %v", tt.spec, err)
			continue
		}
		if len(slo.objectives) != len(tt.want) {
			t.Errorf("ParseSLO(%q): %d objectives, want %d", tt.spec, len(slo.objectives), len(tt.want))
			continue
		}
		for i, o := range slo.objectives {
			o.term = ""
			if o != tt.want[i] {
				t.Errorf("ParseSLO(%q)[%d] = %+v, want %+v", tt.spec, i, o, tt.want[i])
			}
		}
		if slo.IsZero() != (tt.want == nil) {
			t.Errorf("ParseSLO(%q).IsZero() = %v", tt.spec, slo.IsZero())
		}
		again, err := ParseSLO(slo.String())
		if err != nil || again.String() != slo.String() {
			t.Errorf("ParseSLO(%q).String() = %q does not parse back: %v", tt.spec, slo.String(), err)
		}
	}
}

func TestParseSLOInvalid(t *testing.T) {
	tests := []struct{ spec, wantErr string }{
		{"p99", "no comparison"},
		{"p99<80", "latency needs a unit (us, ms or s), e.g. p99<80ms"},
		{"p99<80min", `unknown latency unit "min"`},
		{"p99>80ms", "latency objectives use < or <="},
		{"p95<80ms", `unknown objective "p95"`},
		{"latency<80ms", `unknown objective "latency"`},
		{"p99<ms", "missing or bad number"},
		{"p99<-5ms", "missing or bad number"},
		{"p99<1.2.3ms", `bad number "1.2.3"`},
		{"p99=80ms", "unknown comparison"},
		{"p99==80ms", "unknown comparison"},
		{"errors<=0.5", "an error count is a whole number; write a ratio as a percentage, e.g. errors<=0.5%"},
		{"errors>=1", "error objectives use < or <="},
		{"errors<=150%", "at most 100%"},
		{"errors<=5ms", `unknown unit "ms"`},
		{"rate<=0.9", "rate objectives use >= or >"},
		{"rate>=120%", "at most 100%"},
		{"rate>=10ms", `unknown unit "ms"`},
		{"p99<80ms,,rate>=1", "empty objective"},
		{"p99<80ms,", "empty objective"},
		{"p99<80ms,p99.0<90ms", `unknown objective "p99.0"`},
		{"p99<80ms,p99<90ms", "p99 is given twice"},
		{"p999<1s,p99.9<2s", "p999 is given twice"},
	}
	for _, tt := range tests {
		_, err := ParseSLO(tt.spec)
		if err == nil {
			t.Errorf("ParseSLO(%q): no error, want %q", tt.spec, tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseSLO(%q) = %q, want it to contain %q", tt.spec, err, tt.wantErr)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseSLO(%q): error spans lines: %q", tt.spec, err)
		}
	}
}

func TestSLOCheck(t *testing.T) {
	open := Summary{
		Meta:         Meta{Model: "open", TargetRate: 1000},
		TargetRate:   1000,
		AchievedRate: 995,
		RateRatio:    0.995,
		Responses:    9950,
		Statuses:     map[int]int64{200: 9900, 404: 40, 503: 10},
		Errors:       map[string]int64{"reset": 5},
		ClientErrors: 40, ServerErrors: 10, TransportErrors: 5,
		Failures: 15, FailureRatio: 15.0 / 9955,
		Corrected:   Latency{Count: 9950, P50MS: 2, P90MS: 10, P99MS: 80, P999MS: 150, P9999MS: 400, MaxMS: 900},
		Uncorrected: Latency{Count: 9950, P50MS: 1, P90MS: 5, P99MS: 20, P999MS: 50, P9999MS: 100, MaxMS: 300},
	}
	closed := open
	closed.Meta = Meta{Model: "closed"}
	closed.TargetRate, closed.RateRatio = 0, 0
	empty := Summary{Meta: Meta{Model: "open", TargetRate: 1000}, TargetRate: 1000}
	// Every request refused: completed, failed, and no latency recorded.
	refused := empty
	refused.Errors = map[string]int64{"connect_refused": 400}
	refused.TransportErrors, refused.Failures, refused.FailureRatio = 400, 400, 1

	// Every request timed out (recorded at about --timeout, 300 ms), and one
	// run where 2 of 1,000 did.
	hung := empty
	hung.Errors = map[string]int64{"timeout": 4}
	hung.TransportErrors, hung.Failures, hung.FailureRatio = 4, 4, 1
	hung.Corrected = Latency{Count: 4, P50MS: 304, P90MS: 304, P99MS: 304, P999MS: 304, P9999MS: 304, MaxMS: 304}
	someTimeouts := open
	someTimeouts.Errors = map[string]int64{"timeout": 2}
	someTimeouts.Corrected = Latency{Count: 1000, P50MS: 2, P90MS: 10, P99MS: 80, P999MS: 300, P9999MS: 300, MaxMS: 300}

	tests := []struct {
		spec     string
		sum      Summary
		ok       bool
		failures []string // substrings, one per failure
	}{
		{"", open, true, nil},
		{"", empty, true, nil},
		{"p99<=80ms", open, true, nil},
		{"p99<80ms", open, false, []string{"p99<80ms: corrected p99 latency is 80ms, want < 80ms"}},
		{"p99<81ms,p50<2.5ms,max<1s", open, true, nil},
		{"p999<100ms,max<500ms", open, false, []string{"p999 latency is 150ms", "max latency is 900ms"}},
		{"p9999<=400000us", open, true, nil},
		{"errors<=15", open, true, nil},
		{"errors<15", open, false, []string{"15 errors (5 transport, 10 5xx), want < 15"}},
		{"errors<=0", open, false, []string{"want <= 0"}},
		{"errors<=0.2%", open, true, nil},
		{"errors<=0.1%", open, false, []string{"0.151% of completed requests failed (5 transport, 10 5xx), want <= 0.1%"}},
		{"rate>=0.99", open, true, nil},
		{"rate>=0.999", open, false, []string{"achieved 995.0/s is 99.5% of the target 1000.0/s, want >= 99.9%"}},
		{"rate>=99%", open, true, nil},
		{"rate>=900", open, true, nil},
		{"rate>=1000/s", open, false, []string{"achieved 995.0/s, want >= 1000/s"}},
		{"rate>=0.99", closed, false, []string{"a rate ratio needs a target rate, and this run records none (closed model or staged rates); give an absolute rate instead, e.g. rate>=995/s"}},
		{"rate>=990", closed, true, nil},
		{"p99<1s", empty, false, []string{"no request completed"}},
		{"errors<=0", empty, false, []string{"no request completed"}},
		{"p99<10ms", refused, false, []string{"no latency was recorded (no response, no timeout; 400 transport, 0 5xx)"}},
		{"max<=1s,errors<=100%", refused, false, []string{"max<=1s: no latency was recorded"}},
		{"p99<1s", hung, false, []string{"p99<1s: 4 of 4 recorded requests timed out, more than a p99 can leave out"}},
		{"p50<1s", hung, false, []string{"p50<1s: 4 of 4 recorded requests timed out"}},
		{"p99<1s", someTimeouts, true, nil},
		{"p999<1s,max<1s", someTimeouts, false, []string{"p999<1s: 2 of 1000 recorded requests timed out", "max<1s: 2 of 1000"}},
	}
	for _, tt := range tests {
		slo, err := ParseSLO(tt.spec)
		if err != nil {
			t.Fatalf("ParseSLO(%q): %v", tt.spec, err)
		}
		ok, failures := slo.Check(tt.sum)
		if ok != tt.ok || len(failures) != len(tt.failures) {
			t.Errorf("%q: ok=%v failures=%q, want ok=%v and %d failures", tt.spec, ok, failures, tt.ok, len(tt.failures))
			continue
		}
		for i, f := range failures {
			if !strings.Contains(f, tt.failures[i]) {
				t.Errorf("%q: failure %q, want it to contain %q", tt.spec, f, tt.failures[i])
			}
		}
		v := slo.Verdict(tt.sum)
		switch {
		case tt.spec == "" && v != nil:
			t.Errorf("%q: verdict %+v for no SLO", tt.spec, v)
		case tt.spec != "" && (v == nil || v.OK != ok || len(v.Failures) != len(failures)):
			t.Errorf("%q: verdict %+v disagrees with Check", tt.spec, v)
		}
	}
}

func TestSLOCheckOnSummarizedRun(t *testing.T) {
	// A 4xx storm is not an error; a 5xx is.
	log := &Log{Meta: Meta{Model: "open", TargetRate: 10}}
	iv := Interval{Start: reportTestStart, End: reportTestStart.Add(1e9), Corrected: NewHistogram(), Uncorrected: NewHistogram(),
		Statuses: map[int]int64{200: 2, 404: 8}}
	for range 10 {
		mustRecord(t, iv.Corrected, 1000)
		mustRecord(t, iv.Uncorrected, 1000)
	}
	log.Intervals = []Interval{iv}
	slo, err := ParseSLO("errors<=0,rate>=1,p99<=1ms")
	if err != nil {
		t.Fatal(err)
	}
	if ok, failures := slo.Check(Summarize(recordingOf(t, log))); !ok {
		t.Errorf("4xx counted as errors? %q", failures)
	}
	log.Intervals[0].Statuses[500] = 1
	if ok, _ := slo.Check(Summarize(recordingOf(t, log))); ok {
		t.Error("a 500 passed errors<=0")
	}
}

func TestVerdictString(t *testing.T) {
	var none *Verdict
	if got := none.String(); got != "no SLO given" {
		t.Errorf("nil verdict: %q", got)
	}
	ok := &Verdict{SLO: "p99<80ms", OK: true}
	if got := ok.String(); got != "SLO met: p99<80ms" {
		t.Errorf("met: %q", got)
	}
	bad := &Verdict{SLO: "p99<80ms,errors<=0", Failures: []string{"a", "b"}}
	if got := bad.String(); got != "SLO NOT met: p99<80ms,errors<=0\n  a\n  b" {
		t.Errorf("not met: %q", got)
	}
}
