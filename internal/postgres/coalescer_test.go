package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"storefront/internal/shop"
)

// These tests drive the coalescer with an in-memory fetch function: they
// check the batching contract itself. The database-backed behaviour is
// covered in lookups_test.go against a real PostgreSQL.

func TestCoalescerBatchesConcurrentLookups(t *testing.T) {
	var queries, maxKeys atomic.Int64
	release := make(chan struct{})
	fetch := func(ctx context.Context, keys []int64, found func(int64, int64, error)) error {
		if queries.Add(1) == 1 {
			<-release // hold the first batch so the others queue up
		}
		if n := int64(len(keys)); n > maxKeys.Load() {
			maxKeys.Store(n)
		}
		seen := map[int64]bool{}
		for _, k := range keys {
			if seen[k] {
				t.Errorf("key %d sent twice in one batch", k)
			}
			seen[k] = true
			if k%10 != 0 { // multiples of ten "do not exist"
				found(k, k*100, nil)
			}
		}
		return nil
	}
	c := NewCoalescer[int64, int64](64, 1, time.Second, fetch)

	const n = 500
	var wg sync.WaitGroup
	first := make(chan struct{})
	go func() {
		defer close(first)
		if v, ok, err := c.Get(context.Background(), 1); err != nil || !ok || v != 100 {
			t.Errorf("first lookup: %v %v %v", v, ok, err)
		}
	}()
	for queries.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := int64(i%97 + 1) // duplicates on purpose
			v, ok, err := c.Get(context.Background(), key)
			if err != nil {
				t.Errorf("key %d: %v", key, err)
				return
			}
			if wantOK := key%10 != 0; ok != wantOK || (ok && v != key*100) {
				t.Errorf("key %d: got %d,%v", key, v, ok)
			}
		}()
	}
	// Every lookup must be queued behind the held batch before it is let
	// go: a fixed sleep is not enough on a loaded machine, where lookups
	// that arrive after the release each find the slot free and run in a
	// batch of their own.
	for deadline := time.Now().Add(10 * time.Second); len(c.queued()) < n; {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("%d of %d lookups queued behind the held batch", len(c.queued()), n)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	<-first
	lookups, batches := c.Stats()
	if lookups != n+1 {
		t.Errorf("lookups = %d, want %d", lookups, n+1)
	}
	if batches >= lookups/4 {
		t.Errorf("%d lookups ran in %d queries: not coalesced", lookups, batches)
	}
	if maxKeys.Load() > 64 {
		t.Errorf("a batch had %d keys, cap is 64", maxKeys.Load())
	}
}

func TestCoalescerCancelledCallerDoesNotCancelBatch(t *testing.T) {
	release := make(chan struct{})
	var batchErr atomic.Value
	fetch := func(ctx context.Context, keys []int64, found func(int64, string, error)) error {
		<-release
		if err := ctx.Err(); err != nil {
			batchErr.Store(err)
			return err
		}
		for _, k := range keys {
			found(k, "ok", nil)
		}
		return nil
	}
	c := NewCoalescer[int64, string](16, 1, time.Second, fetch)

	// The first caller runs the batch on its own goroutine; the second joins
	// the next batch and gives up early; the third must still get its answer.
	results := make(chan error, 3)
	go func() { _, _, err := c.Get(context.Background(), 1); results <- err }()
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _, err := c.Get(ctx, 2); results <- err }()
	go func() {
		v, ok, err := c.Get(context.Background(), 3)
		if err == nil && (!ok || v != "ok") {
			err = errors.New("wrong answer")
		}
		results <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-results; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: err = %v, want context.Canceled", err)
	}
	close(release)
	for range 2 {
		if err := <-results; err != nil {
			t.Errorf("other caller: %v", err)
		}
	}
	if v := batchErr.Load(); v != nil {
		t.Errorf("batch saw a cancelled context: %v", v)
	}
}

func TestCoalescerErrorReachesEveryCaller(t *testing.T) {
	boom := errors.New("boom")
	release := make(chan struct{})
	fetch := func(ctx context.Context, keys []int64, found func(int64, int, error)) error {
		<-release
		return boom
	}
	c := NewCoalescer[int64, int](16, 1, time.Second, fetch)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := c.Get(context.Background(), int64(i)); errors.Is(err, boom) {
				failed.Add(1)
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	close(release)
	wg.Wait()
	if failed.Load() != 20 {
		t.Errorf("%d of 20 callers saw the error", failed.Load())
	}
}

func BenchmarkCoalescer(b *testing.B) {
	fetch := func(ctx context.Context, keys []int64, found func(int64, int64, error)) error {
		for _, k := range keys {
			found(k, k, nil)
		}
		return nil
	}
	c := NewCoalescer[int64, int64](128, 4, time.Second, fetch)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		var k int64
		for pb.Next() {
			k++
			if _, _, err := c.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// deadlineOnly advertises a deadline but is never cancelled, like the HTTP
// layer's request context.
type deadlineOnly struct {
	context.Context
	at time.Time
}

func (d deadlineOnly) Deadline() (time.Time, bool) { return d.at, true }

func TestCoalescerExpiresQueuedLookupsAtTheirDeadline(t *testing.T) {
	release := make(chan struct{})
	var asked atomic.Int64
	fetch := func(ctx context.Context, keys []int64, found func(int64, int, error)) error {
		asked.Add(int64(len(keys)))
		<-release
		return nil
	}
	c := NewCoalescer[int64, int](16, 1, time.Second, fetch)
	go c.Get(context.Background(), 1) // occupies the only batch slot
	// Key 1's query must hold the slot before key 2 arrives: were key 2
	// first, its own batch would take the slot and 1 would be queried next.
	for asked.Load() == 0 {
		time.Sleep(time.Millisecond)
	}

	ctx := deadlineOnly{Context: context.Background(), at: time.Now().Add(30 * time.Millisecond)}
	got := make(chan error, 1)
	go func() { _, _, err := c.Get(ctx, 2); got <- err }()
	time.Sleep(60 * time.Millisecond) // past the deadline, still queued
	close(release)
	select {
	case err := <-got:
		if code := shop.ErrorCode(err); code != shop.EUNAVAILABLE {
			t.Fatalf("expired lookup: %v, want unavailable", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("expired lookup never answered")
	}
	if asked.Load() != 1 {
		t.Errorf("the database was asked for %d keys; the expired one must not be queried", asked.Load())
	}
}

// TestCoalescerHonoursDeadlineOfLookupInSlowBatch: a lookup that joins with
// little time left is answered EUNAVAILABLE at its deadline even though the
// batch ahead of it (and so its own) is still running, instead of waiting
// for the batch timeout.
func TestCoalescerHonoursDeadlineOfLookupInSlowBatch(t *testing.T) {
	release := make(chan struct{})
	fetch := func(ctx context.Context, keys []int64, found func(int64, int, error)) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
	c := NewCoalescer[int64, int](16, 1, time.Minute, fetch)
	first := make(chan error, 1)
	go func() { _, _, err := c.Get(context.Background(), 1); first <- err }() // holds the only slot
	time.Sleep(20 * time.Millisecond)

	ctx := deadlineOnly{Context: context.Background(), at: time.Now().Add(50 * time.Millisecond)}
	got := make(chan error, 1)
	go func() { _, _, err := c.Get(ctx, 2); got <- err }()
	select {
	case err := <-got:
		if code := shop.ErrorCode(err); code != shop.EUNAVAILABLE {
			t.Fatalf("lookup past its deadline: %v, want unavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lookup waited for the slow batch past its own deadline")
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("the slow batch's own caller: %v", err)
	}
	// The abandoned lookup is answered by its batch later; nothing blocks.
	if _, _, err := c.Get(context.Background(), 3); err != nil {
		t.Fatalf("next lookup: %v", err)
	}
}

// TestCoalescerGetLeavesOwnBatchAtDeadline: a Get caller whose lookup
// starts a batch at once (a free slot, no gate) still leaves at its own
// deadline or cancellation while that batch's query runs on, whether its
// context can be cancelled or only carries a deadline.
func TestCoalescerGetLeavesOwnBatchAtDeadline(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"timeout", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}},
		{"deadline only", func() (context.Context, context.CancelFunc) {
			return deadlineOnly{Context: context.Background(), at: time.Now().Add(50 * time.Millisecond)}, func() {}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			fetch := func(ctx context.Context, keys []int64, found func(int64, int, error)) error {
				<-release
				for _, k := range keys {
					found(k, int(k), nil)
				}
				return nil
			}
			c := NewCoalescer[int64, int](16, 1, time.Minute, fetch)
			ctx, cancel := tc.ctx()
			defer cancel()
			got := make(chan error, 1)
			go func() { _, _, err := c.Get(ctx, 1); got <- err }()
			select {
			case err := <-got:
				if !errors.Is(err, context.DeadlineExceeded) && shop.ErrorCode(err) != shop.EUNAVAILABLE {
					t.Errorf("lookup past its deadline: %v, want its context's error or EUNAVAILABLE", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("the caller waited for its own batch's query past its deadline")
			}
			close(release)
			if v, ok, err := c.Get(context.Background(), 2); err != nil || !ok || v != 2 {
				t.Errorf("next lookup: %v %v %v", v, ok, err)
			}
		})
	}
}

// TestCoalescerSweepsDueLookupOutOfRunningBatch: a lookup inside a batch
// that outlasts the lookup's deadline is answered EUNAVAILABLE at its
// deadline; the other lookup of the same batch still gets its row.
func TestCoalescerSweepsDueLookupOutOfRunningBatch(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{}, 2)
	fetch := func(ctx context.Context, keys []int64, found func(int64, int, error)) error {
		started <- struct{}{}
		<-release
		for _, k := range keys {
			found(k, int(k)*10, nil)
		}
		return nil
	}
	c := NewCoalescer[int64, int](16, 1, time.Minute, fetch)
	go c.Get(context.Background(), 1) // holds the slot while the next two queue
	<-started
	due := deadlineOnly{Context: context.Background(), at: time.Now().Add(300 * time.Millisecond)}
	dueErr, otherVal := make(chan error, 1), make(chan int, 1)
	go func() { _, _, err := c.Get(due, 2); dueErr <- err }()
	go func() {
		for len(c.queued()) < 1 {
			time.Sleep(time.Millisecond)
		}
		v, _, _ := c.Get(context.Background(), 3)
		otherVal <- v
	}()
	for len(c.queued()) < 2 {
		time.Sleep(time.Millisecond)
	}
	release <- struct{}{} // first batch done; 2 and 3 now run together
	<-started
	select {
	case err := <-dueErr:
		if shop.ErrorCode(err) != shop.EUNAVAILABLE {
			t.Fatalf("due lookup: %v, want unavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("due lookup waited for its batch past its deadline")
	}
	close(release)
	if v := <-otherVal; v != 30 {
		t.Errorf("the other lookup of the batch got %d, want 30", v)
	}
}

// queued is the queue's current contents, for tests.
func (c *Coalescer[K, V]) queued() []*call[K, V] {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*call[K, V](nil), c.queue...)
}

// TestCoalescerDeadlinesUnderChurn: many lookups with short, varied
// deadlines against a fetch of varied speed. Each gets its own value or
// EUNAVAILABLE, never another's value and never a hang; run with -race.
func TestCoalescerDeadlinesUnderChurn(t *testing.T) {
	var n atomic.Int64
	fetch := func(ctx context.Context, keys []int64, found func(int64, int64, error)) error {
		time.Sleep(time.Duration(n.Add(1)%7) * time.Millisecond)
		for _, k := range keys {
			found(k, -k, nil)
		}
		return nil
	}
	c := NewCoalescer[int64, int64](8, 2, time.Second, fetch)
	var wg sync.WaitGroup
	var expired atomic.Int64
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				key := int64(g*1000 + i)
				ctx := deadlineOnly{Context: context.Background(), at: time.Now().Add(time.Duration(1+(g+i)%9) * time.Millisecond)}
				v, ok, err := c.Get(ctx, key)
				switch {
				case err != nil:
					if shop.ErrorCode(err) != shop.EUNAVAILABLE {
						t.Errorf("key %d: %v", key, err)
					}
					expired.Add(1)
				case !ok || v != -key:
					t.Errorf("key %d: got %d %v", key, v, ok)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("lookups hung")
	}
	if expired.Load() == 0 || expired.Load() == 64*60 {
		t.Logf("expired %d of %d (the mix is meant to have both)", expired.Load(), 64*60)
	}
}

// onceReply is a shop.Reply for one Submit: it passes the answer on and
// fails the test when called a second time.
type onceReply[V any] struct {
	t     testing.TB
	calls atomic.Int32
	got   chan answered[V]
}

type answered[V any] struct {
	v   V
	err error
	at  time.Time
}

func newOnceReply[V any](t testing.TB) *onceReply[V] {
	return &onceReply[V]{t: t, got: make(chan answered[V], 2)}
}

func (r *onceReply[V]) Reply(v V, err error) {
	if n := r.calls.Add(1); n > 1 {
		r.t.Errorf("reply called %d times, the last with %v, %v", n, v, err)
		return
	}
	r.got <- answered[V]{v, err, time.Now()}
}

func (r *onceReply[V]) wait(t testing.TB, what string) answered[V] {
	t.Helper()
	select {
	case a := <-r.got:
		return a
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no reply", what)
		panic("unreachable")
	}
}

// TestCoalescerSubmitNeverBlocks: Submit returns while the query it
// started is still running, and each lookup gets its row, or the
// WithNotFound error, exactly once.
func TestCoalescerSubmitNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	fetch := func(ctx context.Context, keys []int64, found func(int64, int64, error)) error {
		<-release
		for _, k := range keys {
			if k%10 != 0 {
				found(k, k*100, nil)
			}
		}
		return nil
	}
	notFound := errors.New("no such key")
	c := NewCoalescer[int64, int64](16, 1, time.Second, fetch).
		WithNotFound(func(int64) error { return notFound })
	replies := map[int64]*onceReply[int64]{}
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		for _, k := range []int64{1, 2, 10, 2} {
			r := newOnceReply[int64](t)
			replies[k] = r
			c.Submit(k, time.Time{}, r)
		}
	}()
	select {
	case <-submitted:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("Submit waited for the query")
	}
	close(release)
	for _, k := range []int64{1, 2, 10} {
		a := replies[k].wait(t, fmt.Sprint("key ", k))
		switch {
		case k == 10 && a.err != notFound:
			t.Errorf("missing key: %v, %v; want the not-found error", a.v, a.err)
		case k != 10 && (a.err != nil || a.v != k*100):
			t.Errorf("key %d: %v, %v", k, a.v, a.err)
		}
	}
	// Both lookups of key 2 were answered; one more Get proves nothing hangs.
	if v, ok, err := c.Get(context.Background(), 3); err != nil || !ok || v != 300 {
		t.Errorf("Get after Submit: %v %v %v", v, ok, err)
	}
}

// TestCoalescerSubmitDueInSlowBatch: a submitted lookup inside a batch that
// outlasts its deadline is answered EUNAVAILABLE at about that deadline;
// the batch's own answer, when it comes, does not reach the reply again,
// and the other lookup of the batch still gets its row.
func TestCoalescerSubmitDueInSlowBatch(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{}, 2)
	fetch := func(ctx context.Context, keys []int64, found func(int64, int, error)) error {
		started <- struct{}{}
		<-release
		for _, k := range keys {
			found(k, int(k)*10, nil)
		}
		return nil
	}
	c := NewCoalescer[int64, int](16, 1, time.Minute, fetch)
	first, due, other := newOnceReply[int](t), newOnceReply[int](t), newOnceReply[int](t)
	c.Submit(1, time.Time{}, first) // holds the slot while the next two queue
	<-started
	deadline := time.Now().Add(300 * time.Millisecond)
	c.Submit(2, deadline, due)
	c.Submit(3, time.Time{}, other)
	release <- struct{}{} // first batch done; 2 and 3 now run together
	<-started
	if a := first.wait(t, "first lookup"); a.err != nil || a.v != 10 {
		t.Errorf("first lookup: %v, %v", a.v, a.err)
	}
	a := due.wait(t, "due lookup")
	if shop.ErrorCode(a.err) != shop.EUNAVAILABLE {
		t.Fatalf("due lookup: %v, %v; want unavailable", a.v, a.err)
	}
	if late := a.at.Sub(deadline); late < 0 || late > 2*time.Second {
		t.Errorf("due lookup answered %v after its deadline", late)
	}
	close(release)
	if a := other.wait(t, "other lookup"); a.err != nil || a.v != 30 {
		t.Errorf("the other lookup of the batch: %v, %v; want 30", a.v, a.err)
	}
	// The batch answered 2 before 3: had it reached the reply again, that
	// would have happened by now.
	if n := due.calls.Load(); n != 1 {
		t.Errorf("due lookup's reply called %d times", n)
	}
}

// TestCoalescerSubmitPastDeadline: a lookup submitted past its deadline is
// answered EUNAVAILABLE without a query, and not on the submitting
// goroutine (Submit returns before the reply, which waits for it).
func TestCoalescerSubmitPastDeadline(t *testing.T) {
	var asked atomic.Int64
	fetch := func(ctx context.Context, keys []int64, found func(int64, int, error)) error {
		asked.Add(int64(len(keys)))
		return nil
	}
	c := NewCoalescer[int64, int](16, 1, time.Second, fetch)
	returned := make(chan struct{})
	got := make(chan error, 1)
	c.Submit(1, time.Now().Add(-time.Millisecond), replyFunc[int](func(v int, err error) {
		<-returned // deadlocks if called by Submit itself
		got <- err
	}))
	close(returned)
	select {
	case err := <-got:
		if shop.ErrorCode(err) != shop.EUNAVAILABLE {
			t.Errorf("expired lookup: %v, want unavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reply")
	}
	if asked.Load() != 0 {
		t.Errorf("the database was asked for %d keys", asked.Load())
	}
}

type replyFunc[V any] func(V, error)

func (f replyFunc[V]) Reply(v V, err error) { f(v, err) }

// TestCoalescerReplyRunsWithoutLock: a reply that calls Submit and Get on
// its own coalescer must not deadlock, whether the reply comes from a
// batch, from the sweeper or from the expiry of a queued lookup.
func TestCoalescerReplyRunsWithoutLock(t *testing.T) {
	release := make(chan struct{})
	fetch := func(ctx context.Context, keys []int64, found func(int64, int64, error)) error {
		if slices.Contains(keys, 4) {
			<-release // a slow batch holds one slot; the other serves the reply
		}
		for _, k := range keys {
			found(k, k, nil)
		}
		return nil
	}
	c := NewCoalescer[int64, int64](16, 2, time.Minute, fetch)
	done := make(chan string, 3)
	// reenter looks up another key both ways from inside the reply.
	reenter := func(name string, key int64) shop.Reply[int64] {
		return replyFunc[int64](func(int64, error) {
			inner := newOnceReply[int64](t)
			c.Submit(key+1000, time.Time{}, inner)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, _, err := c.Get(ctx, key+2000); err != nil {
				t.Errorf("%s: Get inside the reply: %v", name, err)
			}
			inner.wait(t, name+": Submit inside the reply")
			done <- name
		})
	}
	expect := func(name string) {
		t.Helper()
		select {
		case got := <-done:
			if got != name {
				t.Fatalf("reply %q, want %q", got, name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the reply deadlocked", name)
		}
	}

	c.Submit(1, time.Time{}, reenter("batch", 1))
	expect("batch")

	c.Submit(2, time.Now().Add(-time.Millisecond), reenter("expired on submit", 2))
	expect("expired on submit")

	// A lookup in a slow batch, answered by the sweeper at its deadline.
	c.Submit(4, time.Now().Add(50*time.Millisecond), reenter("sweeper", 4))
	expect("sweeper")
	close(release)
}

// TestCoalescerGetAndSubmitUnderChurn: Get and Submit callers share one
// coalescer under short, varied deadlines and a fetch of varied speed.
// Each gets its own value or EUNAVAILABLE, exactly once; run with -race.
func TestCoalescerGetAndSubmitUnderChurn(t *testing.T) {
	var n atomic.Int64
	fetch := func(ctx context.Context, keys []int64, found func(int64, int64, error)) error {
		time.Sleep(time.Duration(n.Add(1)%7) * time.Millisecond)
		for _, k := range keys {
			if k%5 != 0 {
				found(k, -k, nil)
			}
		}
		return nil
	}
	c := NewCoalescer[int64, int64](8, 2, time.Second, fetch)
	check := func(key, v int64, found bool, err error) {
		switch {
		case err != nil && shop.ErrorCode(err) != shop.EUNAVAILABLE && !(key%5 == 0 && shop.ErrorCode(err) == shop.ENOTFOUND):
			t.Errorf("key %d: %v", key, err)
		case err == nil && (found != (key%5 != 0) || (found && v != -key)):
			t.Errorf("key %d: got %d %v", key, v, found)
		}
	}
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				key := int64(g*1000 + i)
				deadline := time.Now().Add(time.Duration(1+(g+i)%9) * time.Millisecond)
				if g%2 == 0 {
					v, ok, err := c.Get(deadlineOnly{Context: context.Background(), at: deadline}, key)
					check(key, v, ok, err)
					continue
				}
				r := newOnceReply[int64](t)
				c.Submit(key, deadline, r)
				a := r.wait(t, fmt.Sprint("key ", key))
				check(key, a.v, a.err == nil, a.err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("lookups hung")
	}
}

// benchReply lets an event loop keep up to cap(window) lookups in flight.
type benchReply struct {
	window chan struct{}
	bad    atomic.Bool
}

func (r *benchReply) Reply(v int64, err error) {
	if err != nil || v <= 0 {
		r.bad.Store(true)
	}
	<-r.window
}

// BenchmarkCoalescerSubmit is BenchmarkCoalescer for Submit: each
// goroutine plays an event loop with up to 64 lookups in flight. A lookup
// allocates nothing; what allocs/op shows is the batch's context (four
// allocations per batch) spread over lookups/batch.
func BenchmarkCoalescerSubmit(b *testing.B) {
	fetch := func(ctx context.Context, keys []int64, found func(int64, int64, error)) error {
		for _, k := range keys {
			found(k, k, nil)
		}
		return nil
	}
	c := NewCoalescer[int64, int64](128, 4, time.Second, fetch)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := &benchReply{window: make(chan struct{}, 64)}
		deadline := time.Now().Add(time.Minute)
		var k int64
		for pb.Next() {
			k++
			r.window <- struct{}{}
			c.Submit(k, deadline, r)
		}
		for range cap(r.window) {
			r.window <- struct{}{} // every lookup answered
		}
		if r.bad.Load() {
			b.Error("a lookup got a wrong answer")
		}
	})
	lookups, batches := c.Stats()
	b.ReportMetric(float64(lookups)/float64(batches), "lookups/batch")
}

// TestCoalescerGateTakesTurnsAndTopsUp checks the shared gate: two
// coalescers sharing a gate of one never query at once, and a batch that
// waited for the gate takes in the lookups that queued behind it meanwhile,
// each still answered with its own row.
func TestCoalescerGateTakesTurnsAndTopsUp(t *testing.T) {
	gate := NewGate(1)
	var running, overlap atomic.Int64
	release := make(chan struct{})
	var usersKeys [][]int64
	var mu sync.Mutex
	fetch := func(hold bool) FetchFunc[int64, int64] {
		return func(ctx context.Context, keys []int64, found func(int64, int64, error)) error {
			if running.Add(1) > 1 {
				overlap.Add(1)
			}
			defer running.Add(-1)
			if hold {
				<-release
			} else {
				mu.Lock()
				usersKeys = append(usersKeys, slices.Clone(keys))
				mu.Unlock()
			}
			for _, k := range keys {
				found(k, -k, nil)
			}
			return nil
		}
	}
	products := NewCoalescer(64, 1, 5*time.Second, fetch(true)).WithGate(gate)
	users := NewCoalescer(64, 1, 5*time.Second, fetch(false)).WithGate(gate)

	held := make(chan error, 1)
	go func() {
		_, _, err := products.Get(context.Background(), 1)
		held <- err
	}()
	for running.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// The first user lookup starts a batch, which waits for the gate; the
	// others queue behind it and must join it once the gate opens.
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := int64(100 + i)
			v, ok, err := users.Get(context.Background(), key)
			if err != nil || !ok || v != -key {
				t.Errorf("user %d: got %d, %v, %v", key, v, ok, err)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		users.mu.Lock()
		queued, batches := len(users.queue), len(users.running)
		users.mu.Unlock()
		if queued == n-1 && batches == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d user lookups queued, %d batches: want %d and 1", queued, batches, n-1)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatalf("held product lookup: %v", err)
	}
	if overlap.Load() != 0 {
		t.Errorf("%d queries ran while another held the gate", overlap.Load())
	}
	if len(usersKeys) != 1 || len(usersKeys[0]) != n {
		t.Errorf("user queries = %v, want one query with all %d keys", usersKeys, n)
	}
}

// TestCoalescerGateWaitEndsAtBatchTimeout checks that a batch never waits
// for the gate past its batch timeout: its lookups get EUNAVAILABLE, and the
// coalescer serves the next lookups once the gate frees.
func TestCoalescerGateWaitEndsAtBatchTimeout(t *testing.T) {
	gate := NewGate(1)
	gate.slots <- struct{}{} // someone else holds the only slot
	var queries atomic.Int64
	c := NewCoalescer(64, 1, 50*time.Millisecond, func(ctx context.Context, keys []int64, found func(int64, int64, error)) error {
		queries.Add(1)
		for _, k := range keys {
			found(k, k, nil)
		}
		return nil
	}).WithGate(gate)
	start := time.Now()
	_, _, err := c.Get(context.Background(), 7)
	if shop.ErrorCode(err) != shop.EUNAVAILABLE {
		t.Fatalf("lookup behind a closed gate: %v, want EUNAVAILABLE", err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("waited %v for a 50ms batch timeout", waited)
	}
	if queries.Load() != 0 {
		t.Errorf("%d queries ran without the gate", queries.Load())
	}
	gate.leave()
	if v, ok, err := c.Get(context.Background(), 8); err != nil || !ok || v != 8 {
		t.Errorf("lookup after the gate freed: %d, %v, %v", v, ok, err)
	}
}

// TestCoalescerGateWaitKeepsQueryTimeAndCallerDeadline checks the two
// budgets around the gate: a Get caller whose deadline passes while its
// batch waits for the gate leaves at that deadline, and the query that
// finally runs gets a whole batch timeout, not what the wait left of it.
func TestCoalescerGateWaitKeepsQueryTimeAndCallerDeadline(t *testing.T) {
	// Long enough that the gate still opens within the batch timeout when
	// this goroutine runs late after its sleep on a loaded machine.
	const batchTimeout = 2 * time.Second
	gate := NewGate(1)
	gate.slots <- struct{}{} // held by another kind's query
	budget := make(chan time.Duration, 1)
	c := NewCoalescer(64, 1, batchTimeout, func(ctx context.Context, keys []int64, found func(int64, int64, error)) error {
		d, _ := ctx.Deadline()
		budget <- time.Until(d)
		for _, k := range keys {
			found(k, k, nil)
		}
		return nil
	}).WithGate(gate)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	// At its deadline the caller leaves by its context or is answered by
	// the sweeper, whichever timer fires first.
	if _, _, err := c.Get(ctx, 1); !errors.Is(err, context.DeadlineExceeded) && shop.ErrorCode(err) != shop.EUNAVAILABLE {
		t.Fatalf("lookup waiting at the gate: %v, want its context's deadline or EUNAVAILABLE", err)
	}
	if waited := time.Since(start); waited > batchTimeout/2 {
		t.Errorf("caller with a 50ms deadline returned after %v", waited)
	}
	time.Sleep(batchTimeout / 2) // most of the batch's gate wait passes
	gate.leave()
	select {
	case left := <-budget:
		if left < batchTimeout*3/4 {
			t.Errorf("query started with %v of a %v batch timeout", left, batchTimeout)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the batch never queried after the gate freed")
	}
}

// TestCoalescerRowErrorFailsItsKeyOnly: a row reported with an error fails
// the lookups of its key, Get and Submit alike, as an internal error; the
// other lookups of the batch get their rows. A retried batch starts over:
// a row error of the failed attempt does not stick (here the retry finds
// the key gone: not found).
func TestCoalescerRowErrorFailsItsKeyOnly(t *testing.T) {
	unreadable := errors.New("unreadable row")
	for _, retried := range []bool{false, true} {
		t.Run(fmt.Sprint("retried=", retried), func(t *testing.T) {
			release := make(chan struct{})
			var attempts atomic.Int32
			fetch := func(ctx context.Context, keys []int64, found func(int64, int64, error)) error {
				<-release
				first := slices.Contains(keys, 7) && attempts.Add(1) == 1
				for _, k := range keys {
					switch {
					case k == 7 && (first || !retried):
						found(k, 0, unreadable)
					case k == 7: // deleted before the retry
					default:
						found(k, k*100, nil)
					}
				}
				if first && retried {
					return io.ErrUnexpectedEOF // the connection broke after the rows
				}
				return nil
			}
			c := NewCoalescer[int64, int64](16, 1, time.Second, fetch)
			replies := map[int64]*onceReply[int64]{}
			for _, k := range []int64{1, 7, 2} {
				replies[k] = newOnceReply[int64](t)
				c.Submit(k, time.Time{}, replies[k])
			}
			type got struct {
				v     int64
				found bool
				err   error
			}
			gets := map[int64]chan got{}
			for _, k := range []int64{7, 3} {
				gets[k] = make(chan got, 1)
				go func() {
					v, ok, err := c.Get(context.Background(), k)
					gets[k] <- got{v, ok, err}
				}()
			}
			time.Sleep(50 * time.Millisecond) // the Gets queue behind the held batch
			close(release)
			for _, k := range []int64{1, 7, 2} {
				a := replies[k].wait(t, fmt.Sprint("Submit ", k))
				switch {
				case k == 7 && retried:
					if shop.ErrorCode(a.err) != shop.ENOTFOUND {
						t.Errorf("Submit %d: %v, %v; want not found", k, a.v, a.err)
					}
				case k == 7:
					if shop.ErrorCode(a.err) != shop.EINTERNAL || !errors.Is(a.err, unreadable) {
						t.Errorf("Submit %d: %v, %v; want the row's error", k, a.v, a.err)
					}
				case a.err != nil || a.v != k*100:
					t.Errorf("Submit %d: %v, %v", k, a.v, a.err)
				}
			}
			for _, k := range []int64{7, 3} {
				g := <-gets[k]
				switch {
				case k == 7 && retried:
					if g.err != nil || g.found {
						t.Errorf("Get %d: %+v; want not found", k, g)
					}
				case k == 7:
					if shop.ErrorCode(g.err) != shop.EINTERNAL || !errors.Is(g.err, unreadable) || g.found {
						t.Errorf("Get %d: %+v; want the row's error", k, g)
					}
				case g.err != nil || !g.found || g.v != k*100:
					t.Errorf("Get %d: %+v", k, g)
				}
			}
		})
	}
}

// TestCoalescerSweepsADeadlineBehindOneWithout: the sweeper must be armed
// for the earliest deadline of a batch, wherever that lookup sits in it.
// Lookup 3, due 1.2 s after the first batch began, waits behind lookup 2,
// which has no deadline. When it was queued it was not due before the
// first batch could end (1 s); the second batch starts half a second
// later, so it can outlast lookup 3's deadline, and its query does: lookup
// 3 must be answered EUNAVAILABLE at its deadline, not when the query ends.
func TestCoalescerSweepsADeadlineBehindOneWithout(t *testing.T) {
	release1, release2 := make(chan struct{}), make(chan struct{})
	var queries atomic.Int32
	fetch := func(ctx context.Context, keys []int64, found func(int64, int, error)) error {
		if queries.Add(1) == 1 {
			<-release1
		} else {
			<-release2 // past this batch's own timeout: only the sweeper can answer lookup 3
		}
		for _, k := range keys {
			found(k, int(k), nil)
		}
		return nil
	}
	c := NewCoalescer[int64, int](16, 1, time.Second, fetch)
	start := time.Now()
	r1, r2, r3 := newOnceReply[int](t), newOnceReply[int](t), newOnceReply[int](t)
	c.Submit(1, time.Time{}, r1) // takes the only batch slot
	c.Submit(2, time.Time{}, r2)
	c.Submit(3, start.Add(1200*time.Millisecond), r3)
	time.Sleep(500 * time.Millisecond)
	close(release1)

	select {
	case a := <-r3.got:
		if shop.ErrorCode(a.err) != shop.EUNAVAILABLE {
			t.Errorf("lookup 3: %v, %v; want EUNAVAILABLE at its deadline", a.v, a.err)
		}
	case <-time.After(10 * time.Second):
		t.Error("lookup 3 was not answered at its deadline")
	}
	close(release2)
	if a := r2.wait(t, "lookup 2"); a.err != nil || a.v != 2 {
		t.Errorf("lookup 2: %v, %v", a.v, a.err)
	}
	if a := r1.wait(t, "lookup 1"); a.err != nil || a.v != 1 {
		t.Errorf("lookup 1: %v, %v", a.v, a.err)
	}
}
