package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The added-latency measurement: requests at a fixed rate (an open loop: each is sent on schedule
// whether or not the previous ones have returned) over a fixed number of connections. Measured in
// a closed loop at saturation, as the throughput tables are, a target's p99 is the length of its
// own queue: the upstream alone answers twice as many requests as podgate and shares its CPU with
// the load generator, so its queue is the longer one and "podgate's p99 minus the upstream's" can
// come out negative. At one rate that both sustain with room to spare, the difference is what the
// proxy adds to a request.
const (
	// steadyRate is well below podgate's capacity on one pinned CPU (about 7,500 req/s) and the
	// upstream's, so that neither queues; oauth2-proxy (about 1,200 req/s) would, so it is left out.
	steadyRate = 1000
	// steadyConns is the concurrency the targets are set at (bearer path, c=32).
	steadyConns = 32
)

// steadyPaths are the paths whose added latency a run measures: the bearer path, which the target
// is set on, and in the full run the cookie path too.
func (b *bench) steadyPaths() []string {
	var paths []string
	for _, p := range []string{pathBearer, pathCookie} {
		if b.cfg.want(p) && (p == pathBearer || !b.cfg.quick) {
			paths = append(paths, p)
		}
	}
	return paths
}

// steadyArms are the path's arms without oauth2-proxy (see steadyRate).
func (b *bench) steadyArms(path string) []arm {
	var arms []arm
	for _, a := range b.pathArms(path) {
		if a.name != nameO2P {
			arms = append(arms, a)
		}
	}
	return arms
}

// steady is the loader of the added-latency measurement: vegeta at steadyRate. A run that could
// not keep the rate (a target or the load side falling behind) fails rather than report a latency
// measured at another rate.
func (b *bench) steady(ctx context.Context, a arm, conns int) (Sample, error) {
	h := http.Header{}
	for _, kv := range a.headers {
		k, v, _ := strings.Cut(kv, ":")
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	s, err := b.vegeta(ctx, vegeta.Target{Method: "GET", URL: a.url, Header: h}, nil, conns, vegeta.Rate{Freq: steadyRate, Per: time.Second})
	if err != nil {
		return Sample{}, fmt.Errorf("%s: %w", a.name, err)
	}
	if got := s.RPS(); got < 0.95*steadyRate {
		return Sample{}, fmt.Errorf("%s: %.0f req/s, below the fixed rate of %d: the target or the load side fell behind", a.name, got, steadyRate)
	}
	return s, nil
}
