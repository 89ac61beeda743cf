package seed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// table is one generated table being loaded.
type table struct {
	name    string
	columns string
	key     string // leading primary-key column, the generator's key
	keys    int64  // the generator's keys are 1..keys
	// oneRowPerKey says the primary key is the generator's key, so a table
	// holding exactly the ids 1..m is known to be complete up to m.
	oneRowPerKey bool
	newGen       func() rowGen
	// count returns the number of rows of keys from..to; nil means one per key.
	count func(from, to int64) int64
	// rowsPer100Keys estimates the rows per key (×100), to order jobs.
	rowsPer100Keys int64

	total    int64 // rows to generate, for progress
	done     atomic.Int64
	inserted atomic.Int64
}

// job loads keys from..to of a table, either by COPY straight into the table
// or, where rows may already exist, through a staging table.
type job struct {
	t        *table
	from, to int64
	staged   bool
}

func (j job) size() int64 { return j.to - j.from + 1 }

// parallelism is how many connections load at once. Two keeps both cores of
// a small machine busy with one PostgreSQL backend each while the generators
// (a small fraction of the work) fit in between.
const parallelism = 2

// loader carries the state of one Run.
type loader struct {
	pool  *pgxpool.Pool
	cfg   Config
	start time.Time
	vocab *vocab
}

func (l *loader) run(ctx context.Context) (Stats, error) {
	var st Stats
	var err error
	if st.Warehouses, err = loadWarehouses(ctx, l.pool, l.cfg.Warehouses); err != nil {
		return st, err
	}

	users := &table{
		name: "users", columns: userColumns, key: "user_id", keys: int64(l.cfg.Users),
		oneRowPerKey: true, rowsPer100Keys: 100,
		newGen: func() rowGen { return newUserGen(l.vocab, l.cfg.Seed) },
	}
	products := &table{
		name: "products", columns: productColumns, key: "product_id", keys: int64(l.cfg.Products),
		oneRowPerKey: true, rowsPer100Keys: 100,
		newGen: func() rowGen { return newProductGen(l.vocab, l.cfg.Seed) },
	}
	inventory := &table{
		name: "inventory", columns: inventoryColumns, key: "product_id", keys: int64(l.cfg.Products),
		rowsPer100Keys: int64(l.cfg.Warehouses) * stockedPercent,
		newGen:         func() rowGen { return newInventoryGen(l.cfg.Seed, l.cfg.Warehouses) },
		count:          newInventoryGen(l.cfg.Seed, l.cfg.Warehouses).count,
	}
	tables := []*table{users, products, inventory}

	var jobs []job
	for _, t := range tables {
		tj, err := l.plan(ctx, t)
		if err != nil {
			return st, err
		}
		jobs = append(jobs, tj...)
	}
	// Inventory has no foreign key to products, so the three tables load
	// side by side; the biggest jobs start first.
	slices.SortStableFunc(jobs, func(a, b job) int { return cmp.Compare(b.rowsEstimate(), a.rowsEstimate()) })

	stopReport := l.startReporting(tables)
	err = l.runJobs(ctx, jobs)
	stopReport()
	// On failure too: jobs that finished have committed their rows.
	st.Users, st.Products, st.Inventory = users.inserted.Load(), products.inserted.Load(), inventory.inserted.Load()
	st.Elapsed = time.Since(l.start)
	if err != nil {
		return st, err
	}

	var changed []string
	for _, c := range []struct {
		name string
		n    int64
	}{{"users", st.Users}, {"products", st.Products}, {"warehouses", st.Warehouses}, {"inventory", st.Inventory}} {
		if c.n > 0 {
			changed = append(changed, c.name)
		}
	}
	if len(changed) > 0 {
		// Fresh statistics, so the first queries after seeding are planned
		// for the real sizes rather than for empty tables, and a visibility
		// map, so that lookups are index-only scans without waiting for
		// autovacuum (which still sets it later if a snapshot held by
		// another session keeps this pass from doing so).
		if _, err := l.pool.Exec(ctx, "VACUUM (ANALYZE) "+strings.Join(changed, ", ")); err != nil {
			return st, fmt.Errorf("seed: vacuum: %w", err)
		}
	}
	st.Elapsed = time.Since(l.start)
	return st, nil
}

// rowsEstimate orders jobs by expected work.
func (j job) rowsEstimate() int64 { return j.size() * j.t.rowsPer100Keys / 100 }

// plan decides how to load t from what the table already holds:
//   - empty: COPY keys 1..N straight in;
//   - exactly the ids 1..m (a previous run, possibly smaller): keys up to m
//     are done, COPY m+1..N straight in;
//   - anything else: keys up to the largest existing key go through a
//     staging table and INSERT ... ON CONFLICT DO NOTHING, keys above it
//     are copied straight in.
func (l *loader) plan(ctx context.Context, t *table) ([]job, error) {
	if t.keys == 0 {
		return nil, nil
	}
	var count, lo, hi int64
	q := fmt.Sprintf("SELECT count(*), coalesce(min(%[1]s), 0), coalesce(max(%[1]s), 0) FROM %[2]s", t.key, t.name)
	if err := l.pool.QueryRow(ctx, q).Scan(&count, &lo, &hi); err != nil {
		return nil, fmt.Errorf("seed: %s: %w", t.name, err)
	}
	var jobs []job
	switch {
	case count == 0:
		jobs = append(jobs, job{t: t, from: 1, to: t.keys})
	case t.oneRowPerKey && lo >= 1 && count == hi:
		if hi < t.keys {
			jobs = append(jobs, job{t: t, from: hi + 1, to: t.keys})
		}
	default:
		if hi >= 1 {
			jobs = append(jobs, job{t: t, from: 1, to: min(hi, t.keys), staged: true})
		}
		if max(hi, 0) < t.keys {
			jobs = append(jobs, job{t: t, from: max(hi, 0) + 1, to: t.keys})
		}
	}
	for _, j := range jobs {
		if t.count == nil {
			t.total += j.size()
		} else {
			t.total += t.count(j.from, j.to)
		}
	}
	return jobs, nil
}

// runJobs runs jobs on up to parallelism connections and returns the first
// error, cancelling the others.
func (l *loader) runJobs(ctx context.Context, jobs []job) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := make(chan job, len(jobs))
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	var wg sync.WaitGroup
	for range min(parallelism, len(jobs)) {
		wg.Go(func() {
			for j := range queue {
				if ctx.Err() != nil {
					return
				}
				if err := l.runJob(ctx, j); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func (l *loader) runJob(ctx context.Context, j job) error {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("seed: %s: %w", j.t.name, err)
	}
	defer conn.Release()
	pg := conn.Conn().PgConn()

	if !j.staged {
		var sent int64
		n, err := l.copyIn(ctx, pg, j, j.t.name, &sent)
		if err == nil {
			j.t.inserted.Add(n)
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
			return fmt.Errorf("seed: %s: %w", j.t.name, err)
		}
		// A unique value (say a SKU) is taken by a row we did not write:
		// load the range again through the staging table, which skips it.
		j.t.done.Add(-sent)
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("seed: %s: %w", j.t.name, err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE seed_stage (LIKE "+j.t.name+" INCLUDING DEFAULTS) ON COMMIT DROP"); err != nil {
		return fmt.Errorf("seed: %s: staging table: %w", j.t.name, err)
	}
	var sent int64
	if _, err := l.copyIn(ctx, pg, j, "seed_stage", &sent); err != nil {
		return fmt.Errorf("seed: %s: %w", j.t.name, err)
	}
	tag, err := tx.Exec(ctx, "INSERT INTO "+j.t.name+" ("+j.t.columns+") SELECT "+j.t.columns+" FROM seed_stage ON CONFLICT DO NOTHING")
	if err != nil {
		return fmt.Errorf("seed: %s: %w", j.t.name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("seed: %s: %w", j.t.name, err)
	}
	j.t.inserted.Add(tag.RowsAffected())
	return nil
}

// copyIn streams the rows of job j into table dest with binary COPY and
// returns the number of rows the server stored. sent counts the rows
// generated so far, also on failure.
func (l *loader) copyIn(ctx context.Context, pg *pgconn.PgConn, j job, dest string, sent *int64) (int64, error) {
	r := newCopyReader(ctx, j.t.newGen(), j.from, j.to, &j.t.done)
	tag, err := pg.CopyFrom(ctx, r, "COPY "+dest+" ("+j.t.columns+") FROM STDIN (FORMAT binary)")
	*sent = r.rows.Load()
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
