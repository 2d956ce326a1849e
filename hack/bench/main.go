// Command bench is `make bench` and `make bench-quick`: podgate's sidecar against the upstream
// directly and against oauth2-proxy on the bearer and cookie-session paths, the injector's webhook
// under load over TLS, and how the sidecar's cost grows with the token and the skip rules, all on
// loopback in one run. Every measurement is taken in interleaved rounds (each target once per
// round, in turn), so drift from other load on the machine spreads over all targets alike; each
// figure is the median round, and ratios are between targets of the same run.
//
// It starts every process itself: a fixture process (`bench fixture`: the upstream, an in-process
// test IdP issuing Keycloak-shaped tokens, and the namespace list the injector's informer reads),
// the sidecar, oauth2-proxy and `injector serve`. HTTP load comes from wrk, webhook load from
// vegeta's library. The full run writes its tables and SVG plots into docs/benchmarks.md and
// docs/benchmarks/; both end with one name=value line per headline figure on standard output.
//
// hack/bench/bench.sh builds the binaries and installs wrk and oauth2-proxy into a cache outside
// the repository, then runs this.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// The IdP client every proxy uses, and the session key of both proxies.
const (
	clientID     = "app"
	clientSecret = "bench-secret"
	cookieSecret = "0123456789abcdef0123456789abcdef"
)

type config struct {
	quick bool
	// pin gives the processes under test a CPU of their own (see cpuLayout).
	pin bool
	// idlePoll holds idle CPUs in their polling state for the run (idle.go).
	idlePoll    bool
	rounds      int
	duration    time.Duration
	conns       []int
	webhookConn []int
	wrk         string
	oauth2Proxy string
	sidecar     string
	injector    string
	// baseSidecar and baseInjector, when set, are other builds (make bench-quick BASELINE=<rev>)
	// measured in the same run, each figure then also put against them.
	baseSidecar  string
	baseInjector string
	doc          string
	plots        string
	work         string
	// only, when not empty, limits the run to these parts (bearer, cookie, webhook, growth).
	only map[string]bool
	// soak, when set, runs the soak (see soak.go) instead of the benchmark.
	soak soakConfig
}

// want reports whether part is measured in this run.
func (c config) want(part string) bool { return len(c.only) == 0 || c.only[part] }

func main() {
	if len(os.Args) > 2 && os.Args[1] == "fixture" {
		if err := runFixture(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "bench fixture:", err)
			os.Exit(1)
		}
		return
	}
	var c config
	flag.BoolVar(&c.quick, "quick", false, "the small subset: bearer and cookie at c=32, the webhook (typical pod) at c=16; writes no doc")
	flag.BoolVar(&c.pin, "pin", true, "give the process under test (podgate, oauth2-proxy, the injector) the last CPU alone and the load side (wrk, the upstream, vegeta) the others, as a sidecar has its own CPU limit; needs two CPUs (the soak never pins)")
	flag.BoolVar(&c.idlePoll, "cpu-idle-poll", true, "keep idle CPUs polling rather than halting for the run (a PM QoS request on "+qosDevice+", needs root; see idle.go): a halted vCPU's wake-up is the host's latency, not the proxy's")
	flag.IntVar(&c.rounds, "rounds", 3, "interleaved rounds; each figure is the median round")
	flag.DurationVar(&c.duration, "duration", 0, "length of one load run (default 4s, 3s with -quick)")
	flag.StringVar(&c.wrk, "wrk", "wrk", "wrk binary")
	flag.StringVar(&c.oauth2Proxy, "oauth2-proxy", "oauth2-proxy", "oauth2-proxy binary (v7.15.6)")
	flag.StringVar(&c.sidecar, "sidecar", "bin/sidecar", "podgate sidecar binary")
	flag.StringVar(&c.injector, "injector", "bin/injector", "podgate injector binary")
	flag.StringVar(&c.baseSidecar, "baseline-sidecar", "", "another sidecar build measured in the same run as the baseline (make bench-quick BASELINE=<git revision> builds one)")
	flag.StringVar(&c.baseInjector, "baseline-injector", "", "another injector build measured in the same run as the baseline")
	flag.StringVar(&c.doc, "doc", "docs/benchmarks.md", "document whose generated section the full run rewrites")
	flag.StringVar(&c.plots, "plots", "docs/benchmarks", "directory of the SVG plots the full run writes")
	flag.DurationVar(&c.soak.duration, "soak", 0, "run the soak for this long instead of the benchmark (make soak: 10m); 10m or more rewrites the soak section of -doc")
	flag.DurationVar(&c.soak.sample, "soak-sample", 2*time.Second, "soak: RSS sampling period")
	flag.IntVar(&c.soak.rate, "soak-rate", 400, "soak: at most this many requests started per second, all kinds together")
	flag.IntVar(&c.soak.workers, "soak-workers", 16, "soak: concurrent request workers")
	flag.Float64Var(&c.soak.hostile, "soak-hostile", 0.1, "soak: fraction of requests that are hostile")
	flag.Float64Var(&c.soak.tolerance, "soak-rss-tolerance", 0.2, "soak: how far RSS may rise above the first minute's plateau, as a fraction")
	only := flag.String("only", "", "comma-separated parts to measure, for iterating: bearer, cookie, webhook, growth (implies not writing the doc)")
	flag.Parse()
	if *only != "" {
		c.only = map[string]bool{}
		for _, p := range strings.Split(*only, ",") {
			c.only[strings.TrimSpace(p)] = true
		}
	}
	c.conns, c.webhookConn = []int{1, 32, 256}, []int{1, 16, 64}
	if c.quick {
		c.conns, c.webhookConn = []int{32}, []int{16}
	}
	if c.duration == 0 {
		c.duration = 4 * time.Second
		if c.quick {
			c.duration = 3 * time.Second
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	// Pinning re-executes the runner, so it comes before anything the runner creates.
	layout, err := unpinnedLayout()
	if c.pin && c.soak.duration == 0 {
		layout, err = pinRunner()
	}
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "podgate-bench-")
	if err != nil {
		return err
	}
	c.work = work
	b := &bench{cfg: c, layout: layout, wrkScript: filepath.Join(work, "report.lua")}
	defer b.stopAll()
	if err := os.WriteFile(b.wrkScript, []byte(wrkScript), 0o644); err != nil {
		return err
	}
	if c.soak.duration > 0 {
		return runSoak(ctx, b)
	}
	rep := &Report{Quick: c.quick, Rounds: c.rounds, Duration: c.duration, CPUs: machineCPUs(),
		Started: time.Now().UTC(), LoadBefore: loadAvg(), Layout: layout.describe(), Pinned: layout.pinned(), IdlePollShare: -1}
	if c.idlePoll {
		qos, err := holdIdlePoll()
		if err != nil {
			logf("idle CPUs may halt during the run: %v", err)
		} else {
			defer qos.Close()
			rep.IdlePoll = true
		}
	}
	target := layout.targetCPUs()[0]
	i0, idleErr := readIdleTimes(target)
	if err := b.startAll(ctx); err != nil {
		b.dumpLogs()
		return err
	}
	t0, err := readCPUTicks()
	if err != nil {
		return err
	}
	if err := b.measure(ctx, rep); err != nil {
		b.dumpLogs()
		return err
	}
	t1, err := readCPUTicks()
	if err != nil {
		return err
	}
	rep.StealTarget, rep.StealLoad = stolen(t0, t1, layout.targetCPUs()), stolen(t0, t1, layout.load)
	if i1, err := readIdleTimes(target); idleErr == nil && err == nil {
		rep.IdlePollShare = pollShare(i0, i1)
	}
	rep.LoadAfter = loadAvg()
	rep.Elapsed = time.Since(rep.Started).Round(time.Second)
	if !c.quick && len(c.only) == 0 {
		if err := writeDoc(c.doc, c.plots, rep); err != nil {
			return err
		}
		logf("wrote %s and %s/*.svg", c.doc, c.plots)
	} else {
		fmt.Print(rep.quickTables())
	}
	_ = os.RemoveAll(work)
	fmt.Print(rep.figures().String())
	return nil
}

// runSoak runs the soak, prints its figures, writes the document after a full-length run, and
// fails when the soak's verdict does.
func runSoak(ctx context.Context, b *bench) error {
	c := b.cfg
	if c.soak.rate < 1 || c.soak.workers < 1 || c.soak.hostile < 0 || c.soak.hostile > 1 || c.soak.sample <= 0 {
		return fmt.Errorf("soak: -soak-rate and -soak-workers must be positive, -soak-hostile within 0..1, -soak-sample positive")
	}
	logf("soak: %s, at most %d requests/s (%.0f%% hostile) from %d workers, RSS every %s", c.soak.duration, c.soak.rate,
		c.soak.hostile*100, c.soak.workers, c.soak.sample)
	rep, err := b.soak(ctx, c.soak)
	if err != nil {
		b.dumpLogs()
		return err
	}
	fmt.Print(rep.markdown())
	if c.soak.duration >= soakDocMinimum {
		if err := writeSoakDoc(c.doc, rep); err != nil {
			return err
		}
		logf("wrote the soak section of %s", c.doc)
	}
	_ = os.RemoveAll(c.work)
	fmt.Print(rep.figures())
	if len(rep.Verdict) > 0 {
		return fmt.Errorf("soak failed: %s", strings.Join(rep.Verdict, "; "))
	}
	return nil
}

// machineCPUs is the number of CPUs the machine has online: runtime.NumCPU counts only those this
// runner may use, one when it pins itself to the load side.
func machineCPUs() int {
	if t, err := readCPUTicks(); err == nil {
		return len(t)
	}
	return runtime.NumCPU()
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// measure runs every scenario of the configuration and fills rep.
func (b *bench) measure(ctx context.Context, rep *Report) error {
	var err error
	if rep.IdleRSS, err = b.rss(); err != nil {
		return err
	}
	if rep.Cookies, err = b.cookieSizes(ctx); err != nil {
		return err
	}
	rep.Paths = map[string]map[int][]ArmResult{}
	for _, path := range []string{pathBearer, pathCookie} {
		rep.Paths[path] = map[int][]ArmResult{}
		if !b.cfg.want(path) {
			continue
		}
		for _, n := range b.cfg.conns {
			logf("%s path, c=%d, %d rounds of %s...", path, n, b.cfg.rounds, b.cfg.duration)
			if rep.Paths[path][n], err = b.interleave(ctx, n, b.pathArms(path), b.wrk); err != nil {
				return err
			}
		}
	}
	// Added latency: a closed loop at saturation measures each target's queue, not what the proxy
	// adds to a request, so it is taken at one fixed rate both the upstream and podgate sustain.
	rep.SteadyRate, rep.Steady = steadyRate, map[string][]ArmResult{}
	for _, path := range b.steadyPaths() {
		logf("%s path at a fixed %d req/s over %d connections, %d rounds of %s...", path, steadyRate, steadyConns, b.cfg.rounds, b.cfg.duration)
		if rep.Steady[path], err = b.fixedRate(ctx, steadyConns, b.steadyArms(path), steadyRate); err != nil {
			return err
		}
	}
	pods := []int{1, 20}
	if b.cfg.quick {
		pods = []int{1}
	}
	if b.cfg.want("webhook") {
		if rep.Webhook, rep.WebhookBaseline, rep.WebhookSteady, err = b.webhook(ctx, pods); err != nil {
			return err
		}
	}
	if !b.cfg.quick && b.cfg.want("growth") {
		logf("growth: groups and roles in the token, c=%d...", growthConns)
		if rep.Groups, err = b.interleave(ctx, growthConns, b.groupArms(), b.wrk); err != nil {
			return err
		}
		logf("growth: skip rules, c=%d...", growthConns)
		if rep.Skip, err = b.interleave(ctx, growthConns, b.skipArms(), b.wrk); err != nil {
			return err
		}
	}
	rep.AfterRSS, err = b.rss()
	return err
}

// growthConns is the concurrency of the growth measurements.
const growthConns = 32

// fixedRate interleaves the arms at rate requests per second (vegeta, an open loop), each
// percentile the median of that percentile over the rounds (see medianQuantiles).
func (b *bench) fixedRate(ctx context.Context, conns int, arms []arm, rate int) ([]ArmResult, error) {
	res, err := b.interleave(ctx, conns, arms, b.vegeta(rate))
	for i := range res {
		res[i].Result = medianQuantiles(res[i].Result)
	}
	return res, err
}

// loader runs one load against an arm on conns connections; the sample's LoadCPU is what load
// processes that have ended used (wrk), the rest of the load side being metered around it.
type loader func(ctx context.Context, a arm, conns int) (Sample, error)

// interleave runs the arms in turn, round after round, and summarises each.
func (b *bench) interleave(ctx context.Context, conns int, arms []arm, load loader) ([]ArmResult, error) {
	samples := make([][]Sample, len(arms))
	for r := 0; r < b.cfg.rounds; r++ {
		var line []string
		for i, a := range arms {
			before, err := cpuTime(a.pid)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", a.name, err)
			}
			m, err := b.startMeter()
			if err != nil {
				return nil, err
			}
			s, err := load(ctx, a, conns)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", a.name, err)
			}
			if err := m.stop(b, &s, s.LoadCPU); err != nil {
				return nil, err
			}
			after, err := cpuTime(a.pid)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", a.name, err)
			}
			s.CPU = after - before
			samples[i] = append(samples[i], s)
			line = append(line, fmt.Sprintf("%s %.0f (load side %.0f%%)", a.name, s.RPS(), 100*s.LoadUtil()))
		}
		logf("  round %d: %s req/s", r+1, strings.Join(line, ", "))
	}
	out := make([]ArmResult, len(arms))
	for i, a := range arms {
		out[i] = ArmResult{Name: a.name, Result: summarise(samples[i])}
	}
	return out, nil
}

// errNoBinary names a missing tool the way bench.sh would install it.
var errNoBinary = errors.New("not found (hack/bench/bench.sh installs it)")
