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
