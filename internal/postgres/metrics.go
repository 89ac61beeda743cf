package postgres

import "github.com/prometheus/client_golang/prometheus"

// PoolCollector exports the pool's and the coalescers' statistics, read at
// scrape time.
type PoolCollector struct {
	db                                   *DB
	total, idle, acquired, maxConns      *prometheus.Desc
	acquires, acquireWait, emptyAcquires *prometheus.Desc
	canceledAcquires, newConns           *prometheus.Desc
	coalescedLookups, coalescedQueries   *prometheus.Desc
}

// NewPoolCollector returns a collector for db's pool.
func NewPoolCollector(db *DB) *PoolCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("storefront_db_"+name, help, labels, nil)
	}
	return &PoolCollector{
		db:               db,
		total:            d("pool_connections", "Open pooled connections."),
		idle:             d("pool_idle_connections", "Pooled connections not in use."),
		acquired:         d("pool_acquired_connections", "Pooled connections in use."),
		maxConns:         d("pool_max_connections", "Most connections the pool may open."),
		acquires:         d("pool_acquires_total", "Connections handed out."),
		acquireWait:      d("pool_acquire_wait_seconds_total", "Time spent waiting for a free connection."),
		emptyAcquires:    d("pool_empty_acquires_total", "Acquires that had to wait because no connection was idle."),
		canceledAcquires: d("pool_canceled_acquires_total", "Acquires abandoned because their deadline passed."),
		newConns:         d("pool_new_connections_total", "Connections opened."),
		coalescedLookups: d("coalesced_lookups_total", "Point lookups served through the coalescer, by shape.", "shape"),
		coalescedQueries: d("coalesced_queries_total", "Queries the coalescer ran for them, by shape.", "shape"),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.total, c.idle, c.acquired, c.maxConns, c.acquires, c.acquireWait,
		c.emptyAcquires, c.canceledAcquires, c.newConns, c.coalescedLookups, c.coalescedQueries} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.db.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(c.total, float64(s.TotalConns()))
	gauge(c.idle, float64(s.IdleConns()))
	gauge(c.acquired, float64(s.AcquiredConns()))
	gauge(c.maxConns, float64(s.MaxConns()))
	counter(c.acquires, float64(s.AcquireCount()))
	counter(c.acquireWait, s.AcquireDuration().Seconds())
	counter(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	counter(c.canceledAcquires, float64(s.CanceledAcquireCount()))
	counter(c.newConns, float64(s.NewConnsCount()))
	for _, sh := range [...]struct {
		name  string
		stats func() (lookups, queries int64)
	}{{"users", c.db.users.Stats}, {"products", c.db.products.Stats}, {"inventory", c.db.inventory.Stats}} {
		lookups, queries := sh.stats()
		counter(c.coalescedLookups, float64(lookups), sh.name)
		counter(c.coalescedQueries, float64(queries), sh.name)
	}
}

var _ prometheus.Collector = (*PoolCollector)(nil)
