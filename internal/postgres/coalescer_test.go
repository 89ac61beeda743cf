package postgres

import (
	"context"
	"errors"
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
	fetch := func(ctx context.Context, keys []int64, found func(int64, int64)) error {
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
				found(k, k*100)
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
	time.Sleep(50 * time.Millisecond) // let the lookups queue behind the held batch
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
	fetch := func(ctx context.Context, keys []int64, found func(int64, string)) error {
		<-release
		if err := ctx.Err(); err != nil {
			batchErr.Store(err)
			return err
		}
		for _, k := range keys {
			found(k, "ok")
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
	fetch := func(ctx context.Context, keys []int64, found func(int64, int)) error {
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
	fetch := func(ctx context.Context, keys []int64, found func(int64, int64)) error {
		for _, k := range keys {
			found(k, k)
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
	fetch := func(ctx context.Context, keys []int64, found func(int64, int)) error {
		asked.Add(int64(len(keys)))
		<-release
		return nil
	}
	c := NewCoalescer[int64, int](16, 1, time.Second, fetch)
	go c.Get(context.Background(), 1) // occupies the only batch slot
	time.Sleep(20 * time.Millisecond)

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
	fetch := func(ctx context.Context, keys []int64, found func(int64, int)) error {
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

// TestCoalescerSweepsDueLookupOutOfRunningBatch: a lookup inside a batch
// that outlasts the lookup's deadline is answered EUNAVAILABLE at its
// deadline; the other lookup of the same batch still gets its row.
func TestCoalescerSweepsDueLookupOutOfRunningBatch(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{}, 2)
	fetch := func(ctx context.Context, keys []int64, found func(int64, int)) error {
		started <- struct{}{}
		<-release
		for _, k := range keys {
			found(k, int(k)*10)
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
	fetch := func(ctx context.Context, keys []int64, found func(int64, int64)) error {
		time.Sleep(time.Duration(n.Add(1)%7) * time.Millisecond)
		for _, k := range keys {
			found(k, -k)
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
