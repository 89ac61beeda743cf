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

// newRequestContext returns the context for one request's lookups.
func (s *Server) newRequestContext() context.Context {
	return &requestContext{deadline: time.Now().Add(s.cfg.RequestTimeout)}
}
