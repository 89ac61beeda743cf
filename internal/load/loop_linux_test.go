//go:build linux

package load

import "testing"

// Every loop sends an equal share of the schedule on its own connections,
// so the loops must hold equal numbers of connections: with 4 connections
// and 3 loops, the loop holding 1 would send its third at half the pace
// of the others and its requests would leave late.
func TestLoopCountDividesConnections(t *testing.T) {
	for _, tc := range []struct{ requested, conns, procs, want int }{
		{0, 256, 8, 4},  // half the processors
		{0, 256, 2, 1},  // half of two
		{3, 4, 8, 2},    // 3 does not divide 4
		{4, 6, 8, 3},    // nor 4 six
		{4, 7, 8, 1},    // a prime count of connections
		{16, 256, 8, 4}, // one processor stays, and 7, 6 and 5 do not divide 256
		{0, 1, 8, 1},    // no more loops than connections
		{2, 10, 1, 1},   // one processor
	} {
		got := loopCount(tc.requested, tc.conns, tc.procs)
		if got != tc.want {
			t.Errorf("loopCount(%d loops, %d connections, %d processors) = %d, want %d", tc.requested, tc.conns, tc.procs, got, tc.want)
		}
		if got < 1 || tc.conns%got != 0 {
			t.Errorf("loopCount(%d, %d, %d) = %d does not divide the connections", tc.requested, tc.conns, tc.procs, got)
		}
	}
}
