//go:build !linux

package load

// Event loops are Linux-only; elsewhere the open model uses connection
// goroutines.

type loopTarget struct{}

func newLoopTarget(string, bool) *loopTarget { return nil }

func (e *engine) startLoops(chan<- struct{}) bool { return false }
