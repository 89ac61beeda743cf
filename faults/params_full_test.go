//go:build faults

package faults

// The full suite, `make faults`: the loads and durations, and its
// figures asserted (p99 bounds, goodput, refusal latency).
const (
	suiteName = "full"
	full      = true
)

var params = suiteParams{
	steadyRate:      5000,
	sigtermRun:      12e9,
	pgRate:          2000,
	terminateFor:    30e9,
	blackholeFor:    20e9,
	overloadFor:     30e9,
	slowloris:       5000,
	malformed:       50000,
	hostileRate:     2000,
	recoveryBudget:  5e9,
	overloadRecover: 10e9,
}
