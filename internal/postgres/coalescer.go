package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"storefront/internal/shop"
)

// FetchFunc runs one query for keys (distinct) and calls found once per row
// it returns. Keys without a row are simply not reported. A row that was
// received but cannot be turned into a V (a value the API cannot
// represent) is reported with its error: it fails that key's lookups only,
// where an error returned by FetchFunc fails the whole batch.
type FetchFunc[K comparable, V any] func(ctx context.Context, keys []K, found func(K, V, error)) error

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
//
// Get blocks its caller until the answer is in. Submit is the same lookup
// for callers that must not block (an event loop): it only queues the
// lookup, and the goroutine that ran its batch (or the sweeper) hands the
// answer to a shop.Reply. Both kinds of caller share the queue and the
// batches.
type Coalescer[K comparable, V any] struct {
	fetch        FetchFunc[K, V]
	notFound     func(K) error // Submit's answer for a key without a row
	maxBatch     int
	maxInFlight  int
	batchTimeout time.Duration
	gate         *Gate // nil: no limit shared with other coalescers

	mu      sync.Mutex
	queue   []*call[K, V]
	running []*batch[K, V] // the batches being queried, oldest first
	ends    []time.Time    // when each running batch times out at the latest
	sweeper *time.Timer    // nil until first needed
	sweepAt time.Time      // when the sweeper fires; zero: not armed
	late    []*call[K, V]  // Submit calls expired under mu, replied to once it is released

	calls       sync.Pool // *call[K, V], recycled only after an answer from its batch
	freeBatches sync.Pool // *batch[K, V], recycled once answered and no longer running

	batches atomic.Int64
	lookups atomic.Int64
}

// call is one caller's lookup, its answer and how the answer is handed
// over: the done channel for Get, r for Submit. Whoever answers first (its
// batch, the sweeper, the queue's expiry) wins answered; only the winner
// writes err and signals done or calls r. val and found are written by the
// batch while it reads rows, and read only when the batch was the one to
// answer.
type call[K comparable, V any] struct {
	key      K
	deadline time.Time     // zero: none
	r        shop.Reply[V] // nil: a Get caller waits on done
	val      V
	found    bool
	failed   error // the key's row could not be read (found is false)
	err      error
	answered atomic.Bool
	done     chan struct{} // buffered: delivery never blocks on an absent caller
}

// batch is the calls of one query and their distinct keys. Batches are
// pooled with their closures, which are bound once: a batch costs no
// allocation but its context.
type batch[K comparable, V any] struct {
	calls []*call[K, V]
	keys  []K
	found func(K, V, error) // hands a row (or its error) to every call of the batch with its key
	loop  func()            // c.loop(this batch), for a go statement without a closure
}

func (c *Coalescer[K, V]) newBatch() *batch[K, V] {
	if b, _ := c.freeBatches.Get().(*batch[K, V]); b != nil {
		return b
	}
	b := &batch[K, V]{}
	b.found = func(k K, v V, err error) {
		if err != nil {
			err = translate(err)
		}
		for _, cl := range b.calls {
			if cl.key == k {
				cl.val, cl.found, cl.failed = v, err == nil, err
			}
		}
	}
	b.loop = func() { c.loop(b) }
	return b
}

func (c *Coalescer[K, V]) freeBatch(b *batch[K, V]) {
	clear(b.calls)
	clear(b.keys)
	b.calls, b.keys = b.calls[:0], b.keys[:0]
	c.freeBatches.Put(b)
}

// answer records err (nil: val and found are set) unless someone answered
// first, and reports whether it did. A Get caller is woken at once; a
// Submit call's reply is left to the winner, which calls it outside c.mu.
func (cl *call[K, V]) answer(err error) bool {
	if !cl.answered.CompareAndSwap(false, true) {
		return false
	}
	cl.err = err
	if cl.r == nil {
		cl.done <- struct{}{}
	}
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

// WithNotFound sets the error Submit answers for a key without a row (Get
// reports found=false instead), and returns c. Call it before the first
// lookup.
func (c *Coalescer[K, V]) WithNotFound(f func(K) error) *Coalescer[K, V] {
	c.notFound = f
	return c
}

// WithGate makes every query of c hold a slot of g while it runs, and
// returns c. Coalescers of different shapes sharing one gate take turns at
// PostgreSQL: while one shape's query runs, the others' lookups keep
// queueing, and a batch that waited for the gate takes in, before its query
// starts, whatever queued up behind it meanwhile. Call it before the first
// lookup.
func (c *Coalescer[K, V]) WithGate(g *Gate) *Coalescer[K, V] {
	c.gate = g
	return c
}

func (c *Coalescer[K, V]) missing(key K) error {
	if c.notFound != nil {
		return c.notFound(key)
	}
	return shop.Errorf(shop.ENOTFOUND, "%v not found", key)
}

// newCall takes a call from the pool. A call goes back only once its own
// batch has answered it: a call answered by anyone else may still be
// written to by its batch.
func (c *Coalescer[K, V]) newCall() *call[K, V] {
	cl, _ := c.calls.Get().(*call[K, V])
	if cl == nil {
		cl = &call[K, V]{done: make(chan struct{}, 1)}
	}
	return cl
}

// Get looks key up. found is false when no row exists. When ctx ends first,
// Get returns ctx's error at once and the batch carries on for the others.
func (c *Coalescer[K, V]) Get(ctx context.Context, key K) (val V, found bool, err error) {
	cl := c.newCall()
	deadline, _ := ctx.Deadline()
	c.lookups.Add(1)

	c.mu.Lock()
	// Set under the lock, where the sweeper reads them.
	cl.key, cl.deadline = key, deadline
	c.queue = append(c.queue, cl)
	var b *batch[K, V]
	if len(c.running) < c.maxInFlight {
		b = c.startLocked()
	} else if !cl.deadline.IsZero() && cl.deadline.Before(c.ends[0]) {
		// Every slot is busy until at most ends[0]: this lookup may still
		// be queued at its deadline.
		c.sweepByLocked(cl.deadline)
	}
	c.unlockAndReply()

	switch {
	case b == nil:
	case c.gate != nil, ctx.Done() != nil, !deadline.IsZero():
		// The batch may wait for the gate, or its query outlast this
		// caller's deadline or cancellation: the caller must be free to
		// leave at once meanwhile.
		go b.loop()
	default:
		// Run the batch on this goroutine: at low load it holds only this
		// lookup, and no hand-off to another goroutine is needed. Nothing
		// can end this caller's wait earlier.
		c.run(b)
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
	} else if cl.failed != nil {
		err = cl.failed
	} else {
		val, found = cl.val, cl.found
	}
	cl.val, cl.found, cl.failed, cl.err = zero, false, nil, nil
	cl.answered.Store(false)
	c.calls.Put(cl)
	return val, found, err
}

// Submit looks key up like Get, without blocking: it queues the lookup and
// returns. r receives exactly once what Get would have found: the row, the
// WithNotFound error when there is none, the batch's (translated) error, or
// EUNAVAILABLE at deadline (zero: none). r runs on the goroutine that ran
// the batch, on the sweeper's, or (for a lookup found expired in the queue)
// on a goroutine of its own or a Get caller's; never on Submit's caller and
// never with c.mu held.
//
// When a batch slot is free the batch starts on a new goroutine rather
// than on a persistent worker: on the 2-core machine this was measured on,
// waking a parked worker cost 360-410 ns against 425-445 ns for a new
// goroutine, once per batch, not per lookup; workers would need a Close
// and, for the next batch's query to overlap with this batch's replies,
// one more worker than batch slots.
func (c *Coalescer[K, V]) Submit(key K, deadline time.Time, r shop.Reply[V]) {
	cl := c.newCall()
	c.lookups.Add(1)

	c.mu.Lock()
	cl.key, cl.deadline, cl.r = key, deadline, r
	c.queue = append(c.queue, cl)
	var b *batch[K, V]
	if len(c.running) < c.maxInFlight {
		b = c.startLocked()
	} else if !deadline.IsZero() && deadline.Before(c.ends[0]) {
		c.sweepByLocked(deadline)
	}
	// Lookups that expired on the way in (this one among them, when its
	// deadline had passed) are replied to elsewhere: replies never run on
	// the caller.
	c.unlockAndReplyElsewhere()
	if b != nil {
		go b.loop()
	}
}

// errQueueTimeout answers lookups whose deadline passed while they waited
// for a batch slot or for their batch.
var errQueueTimeout = shop.Errorf(shop.EUNAVAILABLE, "database busy, retry later")

// startLocked takes the next batch off the queue and registers it as
// running; nil when the queue holds no live lookup.
func (c *Coalescer[K, V]) startLocked() *batch[K, V] {
	now := time.Now()
	b := c.takeLocked(now)
	if b == nil {
		return nil
	}
	end := now.Add(c.batchTimeout)
	c.running = append(c.running, b)
	c.ends = append(c.ends, end)
	c.sweepForLocked(b, end)
	return b
}

// sweepForLocked arms the sweeper for the earliest deadline, among the
// lookups of b and those still queued behind it, that comes before end,
// when b must finish at the latest. Deadlines are not in queue order: a
// lookup may have none, and callers may give different timeouts.
func (c *Coalescer[K, V]) sweepForLocked(b *batch[K, V], end time.Time) {
	earliest := earliestDeadline(earliestDeadline(time.Time{}, b.calls), c.queue)
	if !earliest.IsZero() && earliest.Before(end) {
		c.sweepByLocked(earliest)
	}
}

// earliestDeadline is the earliest of from and the deadlines of calls (zero:
// none).
func earliestDeadline[K comparable, V any](from time.Time, calls []*call[K, V]) time.Time {
	for _, cl := range calls {
		if !cl.deadline.IsZero() && (from.IsZero() || cl.deadline.Before(from)) {
			from = cl.deadline
		}
	}
	return from
}

// finishLocked unregisters a batch that has been answered.
func (c *Coalescer[K, V]) finishLocked(b *batch[K, V]) {
	for i := range c.running {
		if c.running[i] == b {
			c.running = append(c.running[:i], c.running[i+1:]...)
			c.ends = append(c.ends[:i], c.ends[i+1:]...)
			return
		}
	}
}

// takeLocked removes up to maxBatch live calls from the head of the queue,
// answering calls whose deadline has passed instead of querying for them.
// nil means the queue is empty.
func (c *Coalescer[K, V]) takeLocked(now time.Time) *batch[K, V] {
	b := c.newBatch()
	c.fillLocked(b, now)
	if len(b.calls) == 0 {
		c.freeBatch(b)
		return nil
	}
	return b
}

// fillLocked moves live calls from the head of the queue into b until b
// holds maxBatch, answering calls whose deadline has passed instead.
func (c *Coalescer[K, V]) fillLocked(b *batch[K, V], now time.Time) {
	n := 0
	for _, cl := range c.queue {
		if len(b.calls) == c.maxBatch {
			break
		}
		n++
		if !cl.deadline.IsZero() && now.After(cl.deadline) {
			c.expireLocked(cl)
			continue
		}
		if cl.answered.Load() {
			continue // expired by the sweeper, or its caller left
		}
		b.calls = append(b.calls, cl)
	}
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
}

// topUp is for a batch that has just passed the gate: it takes in the
// lookups that queued up while it waited, up to maxBatch, and gives the
// batch a fresh batchTimeout from now (the wait must not eat the query's
// time), arming the sweeper for the new end.
func (c *Coalescer[K, V]) topUp(b *batch[K, V]) {
	c.mu.Lock()
	now := time.Now()
	c.fillLocked(b, now)
	end := now.Add(c.batchTimeout)
	for i := range c.running {
		if c.running[i] == b {
			c.ends[i] = end
		}
	}
	c.sweepForLocked(b, end)
	// Not on this goroutine: it holds the gate, and a reply may write to
	// a socket.
	c.unlockAndReplyElsewhere()
}

// expireLocked answers cl EUNAVAILABLE unless someone answered first. A
// Submit call's reply is only queued in c.late: it runs once c.mu is
// released.
func (c *Coalescer[K, V]) expireLocked(cl *call[K, V]) {
	if r := cl.r; cl.answer(errQueueTimeout) && r != nil {
		c.late = append(c.late, cl)
	}
}

// unlockAndReply releases c.mu, then replies to the Submit calls that
// expired while it was held.
func (c *Coalescer[K, V]) unlockAndReply() {
	late := c.late
	c.late = nil
	c.mu.Unlock()
	c.replyLate(late)
}

// unlockAndReplyElsewhere is unlockAndReply with the replies on a new
// goroutine, for callers that must not run them.
func (c *Coalescer[K, V]) unlockAndReplyElsewhere() {
	late := c.late
	c.late = nil
	c.mu.Unlock()
	if len(late) > 0 {
		go c.replyLate(late)
	}
}

// replyLate replies to expired Submit calls. They are not recycled: their
// batch may still write to them.
func (c *Coalescer[K, V]) replyLate(late []*call[K, V]) {
	var zero V
	for _, cl := range late {
		cl.r.Reply(zero, errQueueTimeout)
	}
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
	defer c.unlockAndReply()
	now := time.Now()
	c.sweepAt = time.Time{}
	var next time.Time
	consider := func(cl *call[K, V], end time.Time) {
		if cl.deadline.IsZero() || cl.answered.Load() {
			return
		}
		if !now.Before(cl.deadline) {
			c.expireLocked(cl)
			return
		}
		if cl.deadline.Before(end) && (next.IsZero() || cl.deadline.Before(next)) {
			next = cl.deadline
		}
	}
	for i, b := range c.running {
		for _, cl := range b.calls {
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

// run executes b on the caller of Get, then keeps the slot busy with
// whatever queued up meanwhile: the follow-up batch runs on a new goroutine
// so this caller can answer its own request right away.
func (c *Coalescer[K, V]) run(b *batch[K, V]) {
	if next := c.runOne(b); next != nil {
		go next.loop()
	}
}

func (c *Coalescer[K, V]) loop(b *batch[K, V]) {
	for b != nil {
		b = c.runOne(b)
	}
}

// runOne queries for b, frees its slot for the next batch and answers b.
// It returns that next batch for the caller to run, or nil when there is
// none or it already runs on a goroutine of its own.
//
// The slot is freed before anyone is answered, so a call is never
// recycled while the sweeper can still see it in c.running. A batch of Get
// calls only wakes its callers, which is cheap: the next batch then runs
// on this goroutine. A batch with Submit calls has replies to make, each
// of which may write to a socket: the next batch runs on a new goroutine,
// so that its round trip to PostgreSQL overlaps with those replies.
func (c *Coalescer[K, V]) runOne(b *batch[K, V]) *batch[K, V] {
	replies, err := c.execute(b)
	next := c.next(b)
	if replies && next != nil {
		go next.loop()
		next = nil
	}
	c.answerAll(b, err)
	c.freeBatch(b)
	return next
}

// next unregisters b, whose query is over, and takes the batch that runs
// in its slot next (nil: none).
func (c *Coalescer[K, V]) next(b *batch[K, V]) *batch[K, V] {
	c.mu.Lock()
	c.finishLocked(b)
	next := c.startLocked()
	c.unlockAndReply()
	return next
}

// execute runs one query for the distinct keys of b, leaving each call's
// row in val and found, and returns whether b holds Submit calls and the
// (translated) error. With a gate, it first waits for a slot (at most
// batchTimeout; then every call gets EUNAVAILABLE) and tops b up; the
// query then gets a batchTimeout of its own. A failure the connection caused (not the query) is
// retried once: reads are idempotent and pgxpool discards the broken
// connection, so the retry runs on a fresh one.
func (c *Coalescer[K, V]) execute(b *batch[K, V]) (replies bool, err error) {
	if c.gate != nil {
		gctx, cancel := context.WithTimeout(context.Background(), c.batchTimeout)
		err = c.gate.enter(gctx)
		cancel()
		if err == nil {
			defer c.gate.leave()
			c.topUp(b)
		}
	}
	for _, cl := range b.calls {
		replies = replies || cl.r != nil
		if !containsKey(b.keys, cl.key) {
			b.keys = append(b.keys, cl.key)
		}
	}
	if err != nil {
		return replies, errQueueTimeout
	}
	c.batches.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), c.batchTimeout)
	defer cancel()
	err = c.fetch(ctx, b.keys, b.found)
	if err != nil && retryable(ctx, err) {
		var zero V
		for _, cl := range b.calls {
			cl.val, cl.found, cl.failed = zero, false, nil
		}
		err = c.fetch(ctx, b.keys, b.found)
	}
	return replies, translate(err)
}

// answerAll hands every call of b that nobody answered first its row, or
// err. Get callers are woken; Submit calls are replied to here, on the
// batch's goroutine, and recycled: b is no longer in c.running, so nothing
// else refers to them.
func (c *Coalescer[K, V]) answerAll(b *batch[K, V], err error) {
	var zero V
	for _, cl := range b.calls {
		// r is read before answering: a woken Get caller may recycle
		// its call at once.
		r := cl.r
		if !cl.answer(err) || r == nil {
			continue
		}
		v, rerr := cl.val, err
		if rerr == nil && cl.failed != nil {
			rerr = cl.failed
		} else if rerr == nil && !cl.found {
			rerr = c.missing(cl.key)
		}
		if rerr != nil {
			v = zero
		}
		cl.r, cl.val, cl.found, cl.failed, cl.err = nil, zero, false, nil, nil
		cl.answered.Store(false)
		c.calls.Put(cl)
		r.Reply(v, rerr)
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

// A Gate bounds how many coalesced queries run at once across the
// coalescers that share it (see WithGate). On a database with few cores,
// one query at a time makes each query larger: the fixed cost of a round
// trip (a wake-up of the backend, the executor's start-up) is shared by
// more lookups.
type Gate struct {
	slots chan struct{}
}

// NewGate returns a gate letting n queries through at once.
func NewGate(n int) *Gate {
	return &Gate{slots: make(chan struct{}, n)}
}

// enter waits for a slot until ctx ends.
func (g *Gate) enter(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leave frees the slot taken by enter.
func (g *Gate) leave() { <-g.slots }
