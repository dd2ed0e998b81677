// Package metrics is bucketd's Prometheus instrumentation: it owns the
// registry and every collector, and serves them in the Prometheus text
// format (Handler) and as INFO fields (Info).
//
// The fronts do not import it. Each declares the small interface of the
// hooks it calls (a decision, a request of a route), which *Metrics
// implements; main.go passes it. The store's and the RESP server's counts
// are read at scrape time, through StoreSource and RESPSource, so that
// nothing is counted twice and the take path adds no work for them.
//
// On the take path a hook costs a few atomic adds: the counters of each
// (front, policy) and of each (route, status) are resolved once, the first
// time they are seen, and looked up after that without building a string.
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The fronts, as the front label names them.
const (
	FrontHTTP = "http" // GET /{key}
	FrontJSON = "json" // POST /v1/take and /v1/batch
	FrontRESP = "resp" // BUCKET.TAKE
	FrontCell = "cell" // CL.THROTTLE
	FrontGRPC = "grpc" // Envoy's ShouldRateLimit, under policy "rls:DOMAIN"
)

var fronts = [...]string{FrontHTTP, FrontJSON, FrontRESP, FrontCell, FrontGRPC}

// The outcomes of a decision, as the outcome label names them.
const (
	OutcomeAllowed       = "allowed"        // the limits allowed the take
	OutcomeLimited       = "limited"        // they refused it, and the caller was refused
	OutcomeShadowLimited = "shadow_limited" // they refused it, but the policy is a shadow one: allowed
)

// Build describes the binary, for bucketd_build_info.
type Build struct {
	Version, Revision, GoVersion string
}

// Options configure a Metrics. The zero value is valid: no store, no RESP
// server.
type Options struct {
	Build Build
	// Store, if not nil, is read at each scrape.
	Store StoreSource
	// RESP, if not nil, is read at each scrape.
	RESP RESPSource
	// MaxKeys is the store's --max-keys (0: no bound), exported as
	// bucketd_max_keys so that an alert can compare the keys with it.
	MaxKeys int
}

// Metrics holds the registry and the collectors. Its methods are safe for
// concurrent use.
type Metrics struct {
	reg       *prometheus.Registry
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	requests  *prometheus.CounterVec

	front [len(fronts)]frontMetrics
}

// frontMetrics are one front's decision counters by policy, and its latency
// histogram.
type frontMetrics struct {
	name     string
	latency  prometheus.Observer
	policies atomic.Pointer[map[string]*[3]prometheus.Counter] // copied on write
	mu       sync.Mutex                                        // serializes writers of policies
}

// New returns a Metrics with every collector registered.
func New(opts Options) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bucketd_decisions_total",
		Help: "Takes decided (cost > 0), by policy (empty for CL.THROTTLE), front (http, json, resp, cell, grpc) and outcome (allowed, limited, shadow_limited).",
	}, []string{"policy", "front", "outcome"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "bucketd_decision_duration_seconds",
		Help:    "Time the limiter and the store took to decide a take, by front.",
		Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1, 1},
	}, []string{"front"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bucketd_http_requests_total",
		Help: `HTTP requests answered, by route pattern (never the key; "other" when no route matched), method and status code.`,
	}, []string{"route", "method", "code"})
	for i, f := range fronts {
		m.front[i].name = f
		m.front[i].latency = m.latency.WithLabelValues(f)
		m.front[i].policies.Store(&map[string]*[3]prometheus.Counter{})
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "bucketd_build_info",
		Help:        "Always 1; the labels describe the binary.",
		ConstLabels: prometheus.Labels{"version": opts.Build.Version, "revision": opts.Build.Revision, "goversion": opts.Build.GoVersion},
	})
	build.Set(1)
	m.reg.MustRegister(m.decisions, m.latency, m.requests, build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.Store != nil {
		m.reg.MustRegister(&storeCollector{src: opts.Store, maxKeys: opts.MaxKeys})
	}
	if opts.RESP != nil {
		m.reg.MustRegister(&respCollector{src: opts.RESP})
	}
	return m
}

// Registry returns the registry, for tests and for more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format (or OpenMetrics,
// if the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}

// Decision counts a take (cost > 0) that the limiter decided through
// front, under policy: allowed, or refused by limits that were enforced
// (shadow false) or not (shadow true); d is the time the decision took.
// An unknown front is not counted.
func (m *Metrics) Decision(front, policy string, allowed, shadow bool, d time.Duration) {
	f := m.frontOf(front)
	if f == nil {
		return
	}
	cs := m.resolve(f, policy)
	switch {
	case allowed:
		cs[0].Inc()
	case shadow:
		cs[2].Inc()
	default:
		cs[1].Inc()
	}
	f.latency.Observe(d.Seconds())
}

// Decisions counts takes decided together through front under policy, a
// policy that is not a shadow's (a batch of pipelined CL.THROTTLEs): allowed
// of them allowed and limited refused, each in d. It counts what as many
// calls of Decision would, resolving the counters once.
func (m *Metrics) Decisions(front, policy string, allowed, limited int, d time.Duration) {
	f := m.frontOf(front)
	if f == nil {
		return
	}
	cs := m.resolve(f, policy)
	cs[0].Add(float64(allowed))
	cs[1].Add(float64(limited))
	s := d.Seconds()
	for range allowed + limited {
		f.latency.Observe(s)
	}
}

// frontOf returns the metrics of front, or nil for an unknown front.
func (m *Metrics) frontOf(front string) *frontMetrics {
	switch front {
	case FrontHTTP:
		return &m.front[0]
	case FrontJSON:
		return &m.front[1]
	case FrontRESP:
		return &m.front[2]
	case FrontCell:
		return &m.front[3]
	case FrontGRPC:
		return &m.front[4]
	}
	return nil
}

// policyCounters resolves, once per front and policy, the counters of its
// outcomes.
func (m *Metrics) policyCounters(f *frontMetrics, policy string) *[3]prometheus.Counter {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := *f.policies.Load()
	if cs, ok := old[policy]; ok {
		return cs
	}
	policy = string([]byte(policy)) // it may point into a request's memory
	cs := &[3]prometheus.Counter{
		m.decisions.WithLabelValues(policy, f.name, OutcomeAllowed),
		m.decisions.WithLabelValues(policy, f.name, OutcomeLimited),
		m.decisions.WithLabelValues(policy, f.name, OutcomeShadowLimited),
	}
	next := make(map[string]*[3]prometheus.Counter, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[policy] = cs
	f.policies.Store(&next)
	return cs
}

// Policies resolves the counters of each policy on every front, so that
// /metrics shows them at 0 before their first take (a rate over a series
// that does not exist yet is no rate), and CL.THROTTLE's. Call it at start
// and after each reload; the counters of a policy removed stay.
func (m *Metrics) Policies(names []string) {
	for i := range m.front {
		f := &m.front[i]
		if f.name == FrontCell {
			m.resolve(f, "")
			continue
		}
		if f.name == FrontGRPC {
			continue // its policies are RLS domains, resolved at their first take
		}
		for _, n := range names {
			m.resolve(f, n)
		}
	}
}

// resolve returns f's counters of policy, resolving them the first time.
func (m *Metrics) resolve(f *frontMetrics, policy string) *[3]prometheus.Counter {
	if cs, ok := (*f.policies.Load())[policy]; ok {
		return cs
	}
	return m.policyCounters(f, policy)
}
