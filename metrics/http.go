package metrics

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// RouteOther is the route label of a request that matched no route.
const RouteOther = "other"

// Route returns the function that counts a request of the route pattern
// (as the HTTP server spells it: "/:key", "/v1/buckets/:key") and method,
// answered with status. The server calls Route once per route, and the
// function it returns for every request: it does not build a label
// after the first request of each status.
func (m *Metrics) Route(method, pattern string) func(status int) {
	r := &route{vec: m.requests, method: method, pattern: pattern}
	return r.count
}

// route is the request counters of one route, by status code.
type route struct {
	vec             *prometheus.CounterVec
	method, pattern string
	byStatus        [600]atomic.Pointer[prometheus.Counter]
}

func (r *route) count(status int) {
	if status < 100 || status >= len(r.byStatus) {
		r.vec.WithLabelValues(r.pattern, r.method, strconv.Itoa(status)).Inc()
		return
	}
	if c := r.byStatus[status].Load(); c != nil {
		(*c).Inc()
		return
	}
	c := r.vec.WithLabelValues(r.pattern, r.method, strconv.Itoa(status))
	r.byStatus[status].Store(&c) // a racing first request stores the same child
	c.Inc()
}
