package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"storefront/internal/shop"
)

// FetchFunc runs one query for keys (distinct) and calls found once per row
// it returns. Keys without a row are simply not reported.
type FetchFunc[K comparable, V any] func(ctx context.Context, keys []K, found func(K, V)) error

// Coalescer merges concurrent point lookups of one query shape into a single
// round trip ("natural batching"): a lookup that arrives while fewer than
// maxInFlight batches are running starts a batch at once, so an idle server
// adds no waiting; lookups that arrive while every batch slot is busy queue
// up and leave together, up to maxBatch lookups, as soon as a slot frees.
// The busier the server, the bigger the batches and the cheaper each
// lookup.
//
// Every caller gets exactly its own answer. A batch runs under its own
// deadline, detached from any caller, so one caller giving up never cancels
// the others; an error reaches every caller of the batch.
//
// A caller's deadline is honoured without a timer per lookup. A queued
// lookup whose deadline has passed when a slot frees is answered
// EUNAVAILABLE instead of being queried. Lookups that could otherwise wait
// past their deadline (queued behind, or part of, a batch that may run until
// batchTimeout) are rare: the HTTP deadline is longer than batchTimeout.
// For them one timer per coalescer, the sweeper, is armed at the earliest
// such deadline and answers every lookup due by then, queued or in a running
// batch, with EUNAVAILABLE. Callers whose context can be cancelled
// (Done() != nil) may also leave at once.
type Coalescer[K comparable, V any] struct {
	fetch        FetchFunc[K, V]
	maxBatch     int
	maxInFlight  int
	batchTimeout time.Duration

	mu      sync.Mutex
	queue   []*call[K, V]
	running [][]*call[K, V] // the batches being queried, oldest first
	ends    []time.Time     // when each running batch times out at the latest
	sweeper *time.Timer     // nil until first needed
	sweepAt time.Time       // when the sweeper fires; zero: not armed

	calls sync.Pool // *call[K, V], recycled only after an answer from its batch

	batches atomic.Int64
	lookups atomic.Int64
}

// call is one caller's lookup, its answer and the channel that hands the
// answer over. Whoever answers first (its batch, the sweeper, the queue's
// expiry) wins answered; only the winner writes err and signals done. val
// and found are written by the batch while it reads rows, and read by the
// caller only when the batch was the one to answer.
type call[K comparable, V any] struct {
	key      K
	deadline time.Time // zero: none
	val      V
	found    bool
	err      error
	answered atomic.Bool
	done     chan struct{} // buffered: delivery never blocks on an absent caller
}

// answer hands err (nil: val and found are set) to the caller unless
// someone answered first, and reports whether it did.
func (cl *call[K, V]) answer(err error) bool {
	if !cl.answered.CompareAndSwap(false, true) {
		return false
	}
	cl.err = err
	cl.done <- struct{}{}
	return true
}

// NewCoalescer returns a coalescer running fetch with at most maxBatch keys
// per query and at most maxInFlight queries at once. Each batch gets
// batchTimeout to finish.
func NewCoalescer[K comparable, V any](maxBatch, maxInFlight int, batchTimeout time.Duration, fetch FetchFunc[K, V]) *Coalescer[K, V] {
	if maxBatch < 1 {
		maxBatch = 1
	}
	if maxInFlight < 1 {
		maxInFlight = 1
	}
	return &Coalescer[K, V]{fetch: fetch, maxBatch: maxBatch, maxInFlight: maxInFlight, batchTimeout: batchTimeout}
}

// Get looks key up. found is false when no row exists. When ctx ends first,
// Get returns ctx's error at once and the batch carries on for the others.
func (c *Coalescer[K, V]) Get(ctx context.Context, key K) (val V, found bool, err error) {
	cl, _ := c.calls.Get().(*call[K, V])
	if cl == nil {
		cl = &call[K, V]{done: make(chan struct{}, 1)}
	}
	deadline, _ := ctx.Deadline()
	c.lookups.Add(1)

	c.mu.Lock()
	// Set under the lock: the sweeper may still see this call in the batch
	// that answered its previous use.
	cl.key, cl.deadline = key, deadline
	c.queue = append(c.queue, cl)
	var batch []*call[K, V]
	if len(c.running) < c.maxInFlight {
		batch = c.startLocked()
	} else if !cl.deadline.IsZero() && cl.deadline.Before(c.ends[0]) {
		// Every slot is busy until at most ends[0]: this lookup may still
		// be queued at its deadline.
		c.sweepByLocked(cl.deadline)
	}
	c.mu.Unlock()

	if len(batch) > 0 {
		// Run the batch on this goroutine: at low load it holds only this
		// lookup, and no hand-off to another goroutine is needed.
		c.run(batch)
	}

	var zero V
	if done := ctx.Done(); done == nil {
		<-cl.done
	} else {
		select {
		case <-cl.done:
		case <-done:
			// cl is abandoned: its batch still writes to it, so it is
			// not recycled.
			if cl.answer(ctx.Err()) {
				return zero, false, ctx.Err()
			}
			<-cl.done
		}
	}
	if err = cl.err; err != nil {
		if err == errQueueTimeout {
			// Answered by expiry: a running batch may still write val.
			return zero, false, err
		}
	} else {
		val, found = cl.val, cl.found
	}
	cl.val, cl.found, cl.err = zero, false, nil
	cl.answered.Store(false)
	c.calls.Put(cl)
	return val, found, err
}

// errQueueTimeout answers lookups whose deadline passed while they waited
// for a batch slot or for their batch.
var errQueueTimeout = shop.Errorf(shop.EUNAVAILABLE, "database busy, retry later")

// startLocked takes the next batch off the queue and registers it as
// running; nil when the queue holds no live lookup.
func (c *Coalescer[K, V]) startLocked() []*call[K, V] {
	now := time.Now()
	batch := c.takeLocked(now)
	if len(batch) == 0 {
		return nil
	}
	end := now.Add(c.batchTimeout)
	c.running = append(c.running, batch)
	c.ends = append(c.ends, end)
	// Lookups of this batch, or still queued behind it, that are due
	// before it must end get the sweeper. FIFO order makes the first of
	// each the earliest (the HTTP layer gives every request the same
	// timeout); the sweeper re-checks everything anyway.
	for _, first := range []*call[K, V]{batch[0], c.headLocked()} {
		if first != nil && !first.deadline.IsZero() && first.deadline.Before(end) {
			c.sweepByLocked(first.deadline)
		}
	}
	return batch
}

func (c *Coalescer[K, V]) headLocked() *call[K, V] {
	if len(c.queue) == 0 {
		return nil
	}
	return c.queue[0]
}

// finishLocked unregisters a batch that has been answered.
func (c *Coalescer[K, V]) finishLocked(batch []*call[K, V]) {
	for i := range c.running {
		if &c.running[i][0] == &batch[0] {
			c.running = append(c.running[:i], c.running[i+1:]...)
			c.ends = append(c.ends[:i], c.ends[i+1:]...)
			return
		}
	}
}

// takeLocked removes up to maxBatch live calls from the head of the queue,
// answering calls whose deadline has passed instead of querying for them.
// An empty batch means the queue is empty.
func (c *Coalescer[K, V]) takeLocked(now time.Time) []*call[K, V] {
	n := 0
	batch := make([]*call[K, V], 0, min(len(c.queue), c.maxBatch))
	for _, cl := range c.queue {
		if len(batch) == c.maxBatch {
			break
		}
		n++
		if !cl.deadline.IsZero() && now.After(cl.deadline) {
			cl.answer(errQueueTimeout)
			continue
		}
		if cl.answered.Load() {
			continue // expired by the sweeper, or its caller left
		}
		batch = append(batch, cl)
	}
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	return batch
}

// sweepByLocked makes sure the sweeper runs no later than at.
func (c *Coalescer[K, V]) sweepByLocked(at time.Time) {
	if !c.sweepAt.IsZero() && !c.sweepAt.After(at) {
		return
	}
	c.sweepAt = at
	d := time.Until(at)
	if c.sweeper == nil {
		c.sweeper = time.AfterFunc(d, c.sweep)
	} else {
		c.sweeper.Reset(d)
	}
}

// sweep answers every lookup whose deadline has passed, queued or in a
// running batch, and re-arms for the next such deadline that may come
// before its batch (or the batch it waits for) ends.
func (c *Coalescer[K, V]) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.sweepAt = time.Time{}
	var next time.Time
	consider := func(cl *call[K, V], end time.Time) {
		if cl.deadline.IsZero() || cl.answered.Load() {
			return
		}
		if !now.Before(cl.deadline) {
			cl.answer(errQueueTimeout)
			return
		}
		if cl.deadline.Before(end) && (next.IsZero() || cl.deadline.Before(next)) {
			next = cl.deadline
		}
	}
	for i, batch := range c.running {
		for _, cl := range batch {
			consider(cl, c.ends[i])
		}
	}
	if len(c.ends) > 0 {
		for _, cl := range c.queue {
			consider(cl, c.ends[0])
		}
	}
	if !next.IsZero() {
		c.sweepByLocked(next)
	}
}

// run executes batch, then keeps the slot busy with whatever queued up
// meanwhile: the follow-up batch runs on a new goroutine so this caller can
// answer its own request right away.
func (c *Coalescer[K, V]) run(batch []*call[K, V]) {
	c.execute(batch)
	c.mu.Lock()
	c.finishLocked(batch)
	next := c.startLocked()
	c.mu.Unlock()
	if len(next) > 0 {
		go c.loop(next)
	}
}

func (c *Coalescer[K, V]) loop(batch []*call[K, V]) {
	for len(batch) > 0 {
		c.execute(batch)
		c.mu.Lock()
		c.finishLocked(batch)
		batch = c.startLocked()
		c.mu.Unlock()
	}
}

// execute runs one query for the distinct keys of batch and hands every
// call its answer. A failure the connection caused (not the query) is
// retried once: reads are idempotent and pgxpool discards the broken
// connection, so the retry runs on a fresh one.
func (c *Coalescer[K, V]) execute(batch []*call[K, V]) {
	c.batches.Add(1)
	keys := make([]K, 0, len(batch))
	for _, cl := range batch {
		if !containsKey(keys, cl.key) {
			keys = append(keys, cl.key)
		}
	}
	found := func(k K, v V) {
		for _, cl := range batch {
			if cl.key == k {
				cl.val, cl.found = v, true
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.batchTimeout)
	err := c.fetch(ctx, keys, found)
	if err != nil && retryable(ctx, err) {
		var zero V
		for _, cl := range batch {
			cl.val, cl.found = zero, false
		}
		err = c.fetch(ctx, keys, found)
	}
	cancel()
	if err != nil {
		err = translate(err)
	}
	for _, cl := range batch {
		cl.answer(err)
	}
}

// Stats reports how many lookups the coalescer served and in how many
// queries.
func (c *Coalescer[K, V]) Stats() (lookups, batches int64) {
	return c.lookups.Load(), c.batches.Load()
}

// containsKey is a linear scan: batches are small (at most maxBatch keys),
// and a scan allocates nothing where a map would.
func containsKey[K comparable](keys []K, k K) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}
