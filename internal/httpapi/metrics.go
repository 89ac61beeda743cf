package httpapi

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// route identifies an endpoint for metrics; an enum, so counting a request
// is an array index and an atomic add, not a map lookup.
type route uint8

const (
	routeUnknown route = iota
	routeUser
	routeProduct
	routeProductBySKU
	routeProducts
	routeInventory
	routeHealthz
	routeReadyz
	routeStatic
	numRoutes
)

var routeNames = [numRoutes]string{
	routeUnknown:      "unknown",
	routeUser:         "/users/{id}",
	routeProduct:      "/products/{id}",
	routeProductBySKU: "/products/by-sku/{sku}",
	routeProducts:     "/products",
	routeInventory:    "/inventory/{product_id}",
	routeHealthz:      "/healthz",
	routeReadyz:       "/readyz",
	routeStatic:       "/_bench/static",
}

// trackedStatuses are counted individually; anything else is "other".
var trackedStatuses = [...]int{200, 400, 404, 405, 408, 413, 431, 500, 503}

const numStatusSlots = len(trackedStatuses) + 1

func statusSlot(status int) int {
	for i, s := range trackedStatuses {
		if s == status {
			return i
		}
	}
	return len(trackedStatuses)
}

// Metrics are the public listener's Prometheus metrics. Counting is
// lock-free; the collector reads the counters at scrape time.
type Metrics struct {
	requests [numRoutes][numStatusSlots]atomic.Uint64
	latency  [numRoutes]prometheus.Observer
	inFlight atomic.Int64
	dropped  atomic.Uint64 // connections dropped for want of descriptors or memory

	latencyVec   *prometheus.HistogramVec
	requestsDesc *prometheus.Desc
	inFlightDesc *prometheus.Desc
	droppedDesc  *prometheus.Desc
}

// NewMetrics returns unregistered metrics; Register adds them to a registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		latencyVec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "storefront_http_request_duration_seconds",
			Help:    "Time from reading a request to handing its response to the connection, by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		requestsDesc: prometheus.NewDesc("storefront_http_requests_total",
			"Requests answered, by route and status code.", []string{"route", "status"}, nil),
		inFlightDesc: prometheus.NewDesc("storefront_http_in_flight_requests",
			"Requests being served right now.", nil, nil),
		droppedDesc: prometheus.NewDesc("storefront_http_connections_dropped_total",
			"Client connections closed unserved because the process was out of file descriptors or memory.", nil, nil),
	}
	for r := range numRoutes {
		if r != routeStatic { // only when served: see withStaticRoute
			m.latency[r] = m.latencyVec.WithLabelValues(routeNames[r])
		}
	}
	return m
}

// withStaticRoute adds the benchmark-only static route's latency series,
// which a server without that route does not export.
func (m *Metrics) withStaticRoute() {
	m.latency[routeStatic] = m.latencyVec.WithLabelValues(routeNames[routeStatic])
}

func (m *Metrics) observe(r route, status int, d time.Duration) {
	m.requests[r][statusSlot(status)].Add(1)
	if o := m.latency[r]; d > 0 && o != nil {
		o.Observe(d.Seconds())
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.requestsDesc
	ch <- m.inFlightDesc
	ch <- m.droppedDesc
	m.latencyVec.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for r := range numRoutes {
		for slot := range numStatusSlots {
			n := m.requests[r][slot].Load()
			if n == 0 {
				continue
			}
			status := "other"
			if slot < len(trackedStatuses) {
				status = strconv.Itoa(trackedStatuses[slot])
			}
			ch <- prometheus.MustNewConstMetric(m.requestsDesc, prometheus.CounterValue, float64(n), routeNames[r], status)
		}
	}
	ch <- prometheus.MustNewConstMetric(m.inFlightDesc, prometheus.GaugeValue, float64(m.inFlight.Load()))
	ch <- prometheus.MustNewConstMetric(m.droppedDesc, prometheus.CounterValue, float64(m.dropped.Load()))
	m.latencyVec.Collect(ch)
}

var _ prometheus.Collector = (*Metrics)(nil)
