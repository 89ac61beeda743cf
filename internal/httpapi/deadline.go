package httpapi

import (
	"context"
	"time"
)

// requestContext carries a request's deadline without arming a timer:
// context.WithTimeout costs a timer and several allocations per request,
// measurable on this hot path. It is never cancelled (Done is nil, Err is
// nil); consumers honour Deadline instead: the coalescer expires queued
// lookups at their deadline, and any context.WithTimeout derived from it
// (the uncoalesced queries) inherits the earlier deadline with a real
// timer.
type requestContext struct{ deadline time.Time }

func (c *requestContext) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *requestContext) Done() <-chan struct{}       { return nil }
func (c *requestContext) Err() error                  { return nil }
func (c *requestContext) Value(any) any               { return nil }

var _ context.Context = (*requestContext)(nil)

// requestContext returns the context for one request's lookups. It lives
// in the request's pooled buffer, so it allocates nothing; nothing keeps it
// after the handler returns (lookups read its deadline, and a derived
// context.WithTimeout is cancelled before the lookup returns).
func (s *Server) requestContext(buf *buffer) context.Context {
	buf.rctx.deadline = time.Now().Add(s.cfg.RequestTimeout)
	return &buf.rctx
}
