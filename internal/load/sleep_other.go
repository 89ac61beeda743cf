//go:build !(linux || freebsd || netbsd || openbsd)

package load

import "time"

// shortSleep sleeps for about d with the Go timer; on these systems it may
// wake up to a timer tick late.
func shortSleep(d time.Duration) { time.Sleep(d) }
