package main

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
