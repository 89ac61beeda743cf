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
// up and leave together, up to maxBatch distinct keys, as soon as a slot
// frees. The busier the server, the bigger the batches and the cheaper each
// lookup.
//
// Every caller gets exactly its own answer. A batch runs under its own
// deadline, detached from any caller, so one caller giving up never cancels
// the others; an error reaches every caller of the batch.
//
// A caller's deadline is honoured without a timer per lookup in the common
// case: a lookup still queued when its deadline passes is answered
// EUNAVAILABLE as soon as a batch slot frees, and one whose deadline is far
// enough away that no batch ahead of it, nor its own, can outlast it (each
// ends by batchTimeout) needs nothing more. A lookup whose deadline is
// nearer than that worst case waits with a timer of its own and leaves at
// its deadline. Callers whose context can be cancelled (Done() != nil) may
// also leave at once.
type Coalescer[K comparable, V any] struct {
	fetch        FetchFunc[K, V]
	maxBatch     int
	maxInFlight  int
	batchTimeout time.Duration

	mu       sync.Mutex
	queue    []*call[K, V]
	inFlight int

	calls sync.Pool // *call[K, V], recycled only after a completed hand-back

	batches atomic.Int64
	lookups atomic.Int64
}

// call is one caller's lookup, its answer and the channel that hands the
// answer over.
type call[K comparable, V any] struct {
	key      K
	deadline time.Time // zero: none
	val      V
	found    bool
	err      error
	done     chan struct{} // buffered: delivery never blocks on an absent caller
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
	cl.key = key
	cl.deadline, _ = ctx.Deadline()
	c.lookups.Add(1)

	c.mu.Lock()
	c.queue = append(c.queue, cl)
	ahead := len(c.queue) - 1
	var batch []*call[K, V]
	if c.inFlight < c.maxInFlight {
		if batch = c.takeLocked(); len(batch) > 0 {
			c.inFlight++
		}
	}
	c.mu.Unlock()

	if len(batch) > 0 {
		// Run the batch on this goroutine: at low load it holds only this
		// lookup, and no hand-off to another goroutine is needed.
		c.run(batch)
	}

	if done := ctx.Done(); done != nil {
		select {
		case <-cl.done:
		case <-done:
			// cl is abandoned: the batch will still write to it, so it is
			// not recycled.
			var zero V
			return zero, false, ctx.Err()
		}
	} else if left, tight := c.tightDeadline(cl.deadline, ahead); tight {
		if !waitAtMost(cl.done, left) {
			var zero V
			return zero, false, errQueueTimeout // cl is abandoned, as above
		}
	} else {
		<-cl.done
	}
	val, found, err = cl.val, cl.found, cl.err
	var zero V
	cl.val, cl.found, cl.err = zero, false, nil
	c.calls.Put(cl)
	return val, found, err
}

// tightDeadline reports whether a lookup with ahead lookups queued before it
// could still be waiting at deadline: the worst case is every batch ahead of
// it and its own running to batchTimeout. left is the time to the deadline.
func (c *Coalescer[K, V]) tightDeadline(deadline time.Time, ahead int) (left time.Duration, tight bool) {
	if deadline.IsZero() {
		return 0, false
	}
	left = time.Until(deadline)
	batches := 2 + ahead/(c.maxBatch*c.maxInFlight)
	return left, left < time.Duration(batches)*c.batchTimeout
}

// waitAtMost waits for done for at most d and reports whether it came.
func waitAtMost(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// errQueueTimeout answers lookups whose deadline passed while they waited
// for a batch slot or for their batch.
var errQueueTimeout = shop.Errorf(shop.EUNAVAILABLE, "database busy, retry later")

// takeLocked removes up to maxBatch live calls from the head of the queue,
// answering calls whose deadline has passed instead of querying for them.
// An empty batch means the queue is empty.
func (c *Coalescer[K, V]) takeLocked() []*call[K, V] {
	now := time.Now()
	n := 0
	batch := make([]*call[K, V], 0, min(len(c.queue), c.maxBatch))
	for _, cl := range c.queue {
		if len(batch) == c.maxBatch {
			break
		}
		n++
		if !cl.deadline.IsZero() && now.After(cl.deadline) {
			cl.err = errQueueTimeout
			cl.done <- struct{}{}
			continue
		}
		batch = append(batch, cl)
	}
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	return batch
}

// run executes batch, then keeps the slot busy with whatever queued up
// meanwhile: the follow-up batch runs on a new goroutine so this caller can
// answer its own request right away.
func (c *Coalescer[K, V]) run(batch []*call[K, V]) {
	c.execute(batch)
	c.mu.Lock()
	next := c.takeLocked()
	if len(next) == 0 {
		c.inFlight--
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	go c.loop(next)
}

func (c *Coalescer[K, V]) loop(batch []*call[K, V]) {
	for {
		c.execute(batch)
		c.mu.Lock()
		batch = c.takeLocked()
		if len(batch) == 0 {
			c.inFlight--
			c.mu.Unlock()
			return
		}
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
		cl.err = err
		cl.done <- struct{}{}
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
