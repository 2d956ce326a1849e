// Package metrics is a minimal Prometheus text exposition: a few labelled counters and one
// histogram. The sidecar runs in every protected pod, so it avoids prometheus/client_golang and its
// registry, descriptors and runtime collectors (several MB of RSS and allocations per scrape) for
// the handful of series it actually exports.
package metrics

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Counter is a monotonically increasing count, safe for concurrent use.
type Counter struct{ v atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Value returns the current count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// CounterVec is a family of counters keyed by one label. Label values are created on first use;
// callers only use a small fixed set of values, so the family stays bounded.
type CounterVec struct {
	name, help, label string
	mu                sync.RWMutex
	m                 map[string]*Counter
}

// With returns the counter for a label value.
func (v *CounterVec) With(value string) *Counter {
	v.mu.RLock()
	c := v.m[value]
	v.mu.RUnlock()
	if c != nil {
		return c
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if c = v.m[value]; c == nil {
		c = &Counter{}
		v.m[value] = c
	}
	return c
}

// Histogram counts observations (seconds) into fixed cumulative buckets.
type Histogram struct {
	name, help string
	bounds     []float64
	counts     []atomic.Uint64 // one per bound, plus +Inf
	sumNanos   atomic.Uint64
	count      atomic.Uint64
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := sort.SearchFloat64s(h.bounds, s)
	h.counts[i].Add(1)
	h.sumNanos.Add(uint64(max(d, 0)))
	h.count.Add(1)
}

// Registry holds the families in the order they are exposed.
type Registry struct {
	mu    sync.Mutex
	items []func(io.Writer)
}

// NewCounterVec registers a labelled counter family.
func (r *Registry) NewCounterVec(name, help, label string) *CounterVec {
	v := &CounterVec{name: name, help: help, label: label, m: map[string]*Counter{}}
	r.add(func(w io.Writer) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		v.mu.RLock()
		keys := make([]string, 0, len(v.m))
		for k := range v.m {
			keys = append(keys, k)
		}
		v.mu.RUnlock()
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "%s{%s=%q} %d\n", name, label, k, v.With(k).Value())
		}
	})
	return v
}

// NewHistogram registers a histogram with the given upper bounds in seconds (ascending).
func (r *Registry) NewHistogram(name, help string, bounds []float64) *Histogram {
	h := &Histogram{name: name, help: help, bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
	r.add(func(w io.Writer) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
		var cum uint64
		for i, b := range h.bounds {
			cum += h.counts[i].Load()
			fmt.Fprintf(w, "%s_bucket{le=%q} %d\n", name, strconv.FormatFloat(b, 'g', -1, 64), cum)
		}
		cum += h.counts[len(h.bounds)].Load()
		fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n", name, cum)
		fmt.Fprintf(w, "%s_sum %s\n", name, strconv.FormatFloat(float64(h.sumNanos.Load())/1e9, 'g', -1, 64))
		fmt.Fprintf(w, "%s_count %d\n", name, h.count.Load())
	})
	return h
}

// NewGaugeFunc registers a gauge whose value is read at scrape time.
func (r *Registry) NewGaugeFunc(name, help string, f func() float64) {
	r.add(func(w io.Writer) {
		v := f()
		if math.IsNaN(v) {
			return
		}
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", name, help, name, name, strconv.FormatFloat(v, 'g', -1, 64))
	})
}

func (r *Registry) add(f func(io.Writer)) {
	r.mu.Lock()
	r.items = append(r.items, f)
	r.mu.Unlock()
}

// Write writes the text exposition format (version 0.0.4).
func (r *Registry) Write(w io.Writer) {
	r.mu.Lock()
	items := slices.Clone(r.items)
	r.mu.Unlock()
	for _, f := range items {
		f(w)
	}
}

// Sidecar holds every series the sidecar exports.
type Sidecar struct {
	Registry *Registry
	// Requests counts requests by outcome (see the Outcome* constants in package proxy).
	Requests *CounterVec
	// GRPCRequests counts the gRPC calls among Requests by the same outcomes, so a dashboard can
	// tell refused gRPC clients from refused browsers.
	GRPCRequests *CounterVec
	// AuthLatency is the time spent deciding whether a request is authenticated and allowed.
	AuthLatency *Histogram
	// JWKSRefreshes counts key set fetches by result (ok, error, ratelimited).
	JWKSRefreshes *CounterVec
	// TokenCache counts bearer verifications by cache result (hit, miss).
	TokenCache *CounterVec
	// Routes counts --route decisions by the number of the rule that matched (from 1), "none" when
	// no rule did and "refused" when the matched rule's template refused the claim value. Labelled
	// by rule, never by user: the series stay as few as the rules.
	Routes *CounterVec
	// RouteRefusals counts refused claim values by rule number.
	RouteRefusals *CounterVec
}

// NewSidecar registers the sidecar's series on a fresh registry.
func NewSidecar() *Sidecar {
	r := &Registry{}
	return &Sidecar{
		Registry:      r,
		Requests:      r.NewCounterVec("podgate_requests_total", "Requests by authentication outcome.", "outcome"),
		GRPCRequests:  r.NewCounterVec("podgate_grpc_requests_total", "gRPC calls (also in podgate_requests_total) by authentication outcome.", "outcome"),
		AuthLatency:   r.NewHistogram("podgate_auth_duration_seconds", "Time to authenticate and authorize one request.", []float64{0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1}),
		JWKSRefreshes: r.NewCounterVec("podgate_jwks_refreshes_total", "Key set fetches by result.", "result"),
		TokenCache:    r.NewCounterVec("podgate_token_cache_total", "Bearer token verifications by cache result.", "result"),
		Routes:        r.NewCounterVec("podgate_route_decisions_total", "Routing decisions by the number of the matching --route rule, none or refused.", "rule"),
		RouteRefusals: r.NewCounterVec("podgate_route_refusals_total", "Claim values a templated --route upstream refused, by rule number.", "rule"),
	}
}
