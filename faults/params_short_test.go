//go:build !faults

package faults

// The short form, part of `make test`: every scenario, briefly and at a
// rate a noisy shared CI machine sustains. It asserts the properties (no
// failed request, no 500, 503s carry Retry-After, recovery within a bound);
// percentiles and throughput are reported, not asserted.
const (
	suiteName = "short"
	full      = false
)

var params = suiteParams{
	steadyRate:      1500,
	sigtermRun:      5e9,
	pgRate:          800,
	terminateFor:    5e9,
	blackholeFor:    3e9,
	overloadFor:     5e9,
	slowloris:       1000,
	malformed:       5000,
	hostileRate:     500,
	recoveryBudget:  5e9,
	overloadRecover: 10e9,
}
