package httpapi

import (
	"context"
	"net"
	"sync"
	"time"
)

// Shutdown order (Server.Shutdown, after the caller's shutdown delay during
// which /readyz already answers 503):
//
//  1. the listener closes: new connections are refused, or with
//     SO_REUSEPORT go to the process taking over the port;
//  2. every response from then on carries Connection: close, and
//     keep-alive connections get up to idleCloseGrace to bring their next
//     request, which is answered;
//  3. fasthttp's ShutdownWithContext closes the connections still idle and
//     waits for the requests in flight.
//
// Closing an idle keep-alive connection at once, as ShutdownWithContext
// does, loses the request its client may be sending at that moment: the
// client sees the connection closed before any byte of a response and
// cannot know whether the request was seen. A client that got a response
// with Connection: close stops using the connection by itself.
const idleCloseGrace = time.Second

// closeListener performs steps 1 and 2.
func (s *Server) closeListener(ctx context.Context) {
	if ln := s.ln.Load(); ln != nil {
		_ = ln.Close()
	}
	// Only now: a client told to close before the listener was closed
	// could reconnect into the accept queue and be reset with it.
	s.closing.Store(true)
	grace := time.NewTimer(idleCloseGrace)
	defer grace.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.http.GetCurrentConcurrency() > 0 {
		select {
		case <-tick.C:
		case <-grace.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// onceCloseListener lets closeListener close the listener before
// ShutdownWithContext closes it again.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}
