package main

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with a space and a parenthesis, as /proc allows.
	stat := "4242 (side car) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 37 0 0 20 0 9 0 12345 1000000 2000 18446744073709551615"
	got, err := parseStatCPU(stat)
	if err != nil || got != 2870*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 2.87s", got, err)
	}
	own, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip(err)
	}
	if _, err := parseStatCPU(string(own)); err != nil {
		t.Errorf("own /proc/self/stat: %v", err)
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2 3"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) accepted", bad)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS("Name:\tsidecar\nVmHWM:\t  20480 kB\nVmRSS:\t  10342 kB\nThreads:\t9\n")
	if err != nil || got < 10.09 || got > 10.11 {
		t.Errorf("parseVmRSS = %v, %v; want 10.1", got, err)
	}
	if _, err := parseVmRSS("Name:\tx\n"); err == nil {
		t.Error("no VmRSS accepted")
	}
}

func TestParseWrk(t *testing.T) {
	out := "Running 3s test @ http://127.0.0.1:1/\n  1 threads and 32 connections\n" +
		"BENCH requests=30000 duration_us=3000000 socket_errors=0 non2xx=0 p50_us=900 p99_us=4000 p999_us=9000\n"
	s, err := parseWrk(out)
	if err != nil || s.Requests != 30000 || s.RPS() != 10000 || s.P99 != 4*time.Millisecond || s.P999 != 9*time.Millisecond {
		t.Errorf("parseWrk = %+v, %v", s, err)
	}
	for _, bad := range []string{
		"no summary line",
		strings.Replace(out, "non2xx=0", "non2xx=12", 1),
		strings.Replace(out, "socket_errors=0", "socket_errors=1", 1),
		strings.Replace(out, "requests=30000", "requests=0", 1),
		strings.Replace(out, "p50_us=900", "p50_us=x", 1),
	} {
		if _, err := parseWrk(bad); err == nil {
			t.Errorf("parseWrk accepted %q", bad)
		}
	}
}

func TestSummariseMedianAndCPU(t *testing.T) {
	r := summarise([]Sample{
		{Requests: 300, Elapsed: time.Second, CPU: 30 * time.Millisecond},
		{Requests: 100, Elapsed: time.Second, CPU: 10 * time.Millisecond},
		{Requests: 200, Elapsed: time.Second, CPU: 20 * time.Millisecond},
	})
	if r.Median.Requests != 200 || r.CPUPer10k != time.Second {
		t.Errorf("median %d requests, CPU per 10k %v; want 200 and 1s", r.Median.Requests, r.CPUPer10k)
	}
}

func TestSpliceSection(t *testing.T) {
	sec := beginMarker + "\nnew\n" + endMarker + "\n"
	doc := "# Benchmarks\n\nintro\n\n" + beginMarker + "\nold\n" + endMarker + "\n\n## Analysis\n"
	got := spliceSection(doc, sec, beginMarker, endMarker)
	if got != "# Benchmarks\n\nintro\n\n"+beginMarker+"\nnew\n"+endMarker+"\n\n## Analysis\n" {
		t.Errorf("splice:\n%s", got)
	}
	if got := spliceSection("# B\n", sec, beginMarker, endMarker); got != "# B\n\n"+sec {
		t.Errorf("append:\n%s", got)
	}
}

// TestReportRenders fills a report as a run would and checks the document, the plots (well-formed
// SVG) and the name=value lines.
func TestReportRenders(t *testing.T) {
	res := func(rps int, p99 time.Duration, cpu time.Duration) Result {
		return summarise([]Sample{{Requests: rps, Elapsed: time.Second, P50: p99 / 4, P99: p99, P999: 2 * p99, CPU: cpu}})
	}
	r := &Report{Rounds: 1, Duration: time.Second, CPUs: 2, Started: time.Now(), LoadBefore: "1 1 1", LoadAfter: "2 2 2",
		Layout: (cpuLayout{target: 1, load: []int{0}}).describe(), Pinned: true,
		Paths: map[string]map[int][]ArmResult{}, Webhook: map[int]map[int]Result{1: {}, 20: {}},
		IdleRSS:  map[string]float64{namePodgate: 10, nameO2P: 22, "injector": 40},
		AfterRSS: map[string]float64{namePodgate: 16, nameO2P: 30, "injector": 50},
		Cookies:  map[string]int{namePodgate + "/1": 1470, namePodgate + "/30": 2590, nameO2P + "/1": 5000, nameO2P + "/30": 6500}}
	for _, p := range []string{pathBearer, pathCookie} {
		r.Paths[p] = map[int][]ArmResult{}
		for _, c := range []int{1, 32, 256} {
			r.Paths[p][c] = []ArmResult{{nameDirect, res(60000, 4*time.Millisecond, time.Second)},
				{nameO2P, res(3000, 20*time.Millisecond, time.Second)}, {namePodgate, res(18000, 6*time.Millisecond, 2*time.Second)}}
		}
	}
	for _, c := range []int{1, 16, 64} {
		r.Webhook[1][c] = res(3200, 8*time.Millisecond, time.Second)
		r.Webhook[20][c] = res(400, 40*time.Millisecond, time.Second)
	}
	r.StealTarget, r.StealLoad = 0.018, 0.002
	r.IdlePoll, r.IdlePollShare = true, 0.97
	r.WebhookSteady = []ArmResult{{"typical pod", res(1000, 2*time.Millisecond, time.Second)}}
	r.SteadyRate, r.Steady = 1000, map[string][]ArmResult{}
	for _, p := range []string{pathBearer, pathCookie} {
		r.Steady[p] = []ArmResult{{nameDirect, res(1000, time.Millisecond, time.Second)}, {namePodgate, res(1000, 3*time.Millisecond, time.Second)}}
	}
	r.Groups = []ArmResult{{"1 groups", res(18000, 6*time.Millisecond, 2*time.Second)}, {"300 groups", res(9000, 12*time.Millisecond, 4*time.Second)}}
	r.Skip = r.Groups
	md := r.markdown("benchmarks")
	for _, want := range []string{beginMarker, endMarker, "CPU layout: pinned: the process under test (podgate, oauth2-proxy, the injector) alone on CPU 1; the load side (wrk, the upstream, vegeta in the runner) on CPU 0.",
		"| `bearer_vs_oauth2_proxy` | 6.00 | ≥ 6 | met |",
		"| `webhook_p99_ms` | 8.00 | ≤ 10 | met |", "| `bearer_added_p99_ms` | 2.00 | ≤ 2 | met |",
		"| `bearer_cpu_vs_oauth2_proxy` | 0.33 | ≤ 0.20 | **missed** |", "(benchmarks/webhook.svg)", "| bearer, podgate | 0.75 | 3.00 | 6.00 | 0.50 | 2.00 | 4.00 | 100% |", "The hypervisor took 1.8% of the target CPU's time and 0.2% of the load side's for other guests (steal). Idle CPUs were held polling rather than halting (`-cpu-idle-poll`): 97% of the target CPU's idle time was polling.", "| typical pod, at a fixed 1000/s | 16 | 1000 | 0.50 | 2.00 | 4.00 | 10.000 | 100% | 0% |", "| 300 groups | 9000 | 12.00 | 4.444 | 0.50 | 4.00 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	r.IdlePollShare = -1
	if got, want := r.host(), "without a cpuidle driver the kernel halts idle CPUs whatever the request"; !strings.Contains(got, want) {
		t.Errorf("host() without cpuidle states = %q, want it to say %q", got, want)
	}
	r.IdlePollShare = 0.97
	lines := r.figures().String()
	for _, want := range []string{"bearer_vs_oauth2_proxy=6.00\n", "bearer_vs_direct=0.30\n", "webhook_reviews_per_s=3200\n",
		"session_cookie_bytes=1470\n", "webhook_fixed_rate_p99_ms=2.00\n", "cpu_steal_target=0.018\n", "sidecar_idle_rss_mb=10.0\n", "pinned=1\n", "bearer_podgate_cpu_util=2.00\n",
		"cpu_idle_poll=1\n", "cpu_idle_poll_target=0.97\n"} {
		if !strings.Contains(lines, want) {
			t.Errorf("figures lack %q:\n%s", want, lines)
		}
	}
	for name, svg := range r.plots() {
		d := xml.NewDecoder(strings.NewReader(svg))
		for {
			_, err := d.Token()
			if err != nil {
				if err.Error() != "EOF" {
					t.Errorf("%s.svg: %v", name, err)
				}
				break
			}
		}
		if strings.Count(svg, "<polyline") != map[string]int{"bearer": 6, "cookie": 6, "webhook": 4}[name] {
			t.Errorf("%s.svg has %d lines", name, strings.Count(svg, "<polyline"))
		}
	}
	if strings.Contains(lines, "baseline") {
		t.Errorf("figures against a baseline the run did not have:\n%s", lines)
	}

	// With baseline builds in the run: their rows, and the ratios against them.
	for _, p := range []string{pathBearer, pathCookie} {
		r.Paths[p][32] = append(r.Paths[p][32], ArmResult{nameBaseline, res(12000, 6*time.Millisecond, 4*time.Second)})
	}
	r.WebhookBaseline = map[int]map[int]Result{1: {16: res(800, 80*time.Millisecond, 2*time.Second)}}
	lines = r.figures().String()
	for _, want := range []string{"bearer_vs_baseline=1.50\n", "bearer_cpu_vs_baseline=0.33\n", "cookie_vs_baseline=1.50\n",
		"webhook_vs_baseline=4.00\n", "webhook_cpu_vs_baseline=0.12\n", "webhook_baseline_p99_ms=80.00\n"} {
		if !strings.Contains(lines, want) {
			t.Errorf("figures lack %q:\n%s", want, lines)
		}
	}
	for _, want := range []string{"| podgate baseline | 32 | 12000 |", "| typical pod, baseline | 16 | 800 |"} {
		if q := r.quickTables(); !strings.Contains(q, want) {
			t.Errorf("tables lack %q:\n%s", want, q)
		}
	}
}

// TestSoakVerdict checks the soak's pass/fail rule on made-up samples: the plateau is the highest
// RSS of the first minute, growth past it by more than the tolerance fails, and so does a single
// failed request or a run too short to have anything after the first minute.
func TestSoakVerdict(t *testing.T) {
	samples := func(rss ...float64) []RSSSample {
		var s []RSSSample
		for i, v := range rss {
			s = append(s, RSSSample{At: time.Duration(i) * 30 * time.Second, RSS: v})
		}
		return s
	}
	ok := map[string]*KindStats{kindBearer: {Requests: 10}, kindCookie: {Requests: 10}}
	cases := []struct {
		name    string
		rss     []float64
		kinds   map[string]*KindStats
		failing bool
	}{
		{"flat after warm-up", []float64{12, 19, 20, 20.5, 19.8, 21}, ok, false},
		{"growth past the tolerance", []float64{12, 19, 20, 22, 24, 26}, ok, true},
		{"too short", []float64{12, 19, 20}, ok, true},
		{"past the container limit", []float64{12, 19, 200, 200, 200}, ok, true},
		{"a failed legitimate request", []float64{12, 19, 20, 20}, map[string]*KindStats{
			kindBearer: {Requests: 10, Failures: 1, Example: "HTTP 502"}, kindCookie: {Requests: 10}}, true},
		{"no cookie requests", []float64{12, 19, 20, 20}, map[string]*KindStats{kindBearer: {Requests: 10}}, true},
	}
	for _, c := range cases {
		r := &SoakReport{Config: soakConfig{tolerance: 0.2}, Samples: samples(c.rss...), Kinds: c.kinds}
		r.soakVerdict(128)
		if failed := len(r.Verdict) > 0; failed != c.failing {
			t.Errorf("%s: verdict %q, want failing=%t", c.name, r.Verdict, c.failing)
		}
	}
	r := &SoakReport{Config: soakConfig{tolerance: 0.2}, Samples: samples(12, 19, 20, 21, 22), Kinds: ok}
	r.soakVerdict(128)
	if r.Plateau != 20 || r.Max != 22 || r.Last != 22 || r.SlopeMBPerMin < 1.99 || r.SlopeMBPerMin > 2.01 {
		t.Errorf("plateau %.1f, max %.1f, last %.1f, slope %.2f; want 20, 22, 22, 2", r.Plateau, r.Max, r.Last, r.SlopeMBPerMin)
	}
	doc := spliceSection("# B\n\n"+beginMarker+"\nbench\n"+endMarker+"\n", r.markdown(), soakBeginMarker, soakEndMarker)
	if !strings.Contains(doc, beginMarker+"\nbench\n"+endMarker) || !strings.Contains(doc, "| RSS plateau (highest in the first minute) | 20.0 MB |") {
		t.Errorf("the soak section clobbered the bench section or lacks the plateau:\n%s", doc)
	}
}

func TestLayoutRoundTrip(t *testing.T) {
	l := cpuLayout{target: 3, load: []int{0, 1, 2}}
	got, err := parseLayout(l.String())
	if err != nil || got.target != 3 || cpuList(got.load) != "0-2" {
		t.Errorf("parseLayout(%q) = %+v, %v", l.String(), got, err)
	}
	for _, bad := range []string{"", "1", "1:", "x:0", "-1:0", "1:1", "1:0,y"} {
		if _, err := parseLayout(bad); err == nil {
			t.Errorf("parseLayout(%q) accepted", bad)
		}
	}
	for cpus, want := range map[string]string{"0": "0", "0 1": "0-1", "0 2 3 4 7": "0,2-4,7"} {
		var cs []int
		for _, f := range strings.Fields(cpus) {
			n, _ := strconv.Atoi(f)
			cs = append(cs, n)
		}
		if got := cpuList(cs); got != want {
			t.Errorf("cpuList(%v) = %q, want %q", cs, got, want)
		}
	}
	if u := (cpuLayout{target: -1, load: []int{0, 1}}); u.pinned() || cpuList(u.targetCPUs()) != "0-1" || u.cores() != 2 {
		t.Errorf("unpinned layout: %+v", u)
	}
}

func TestCPUTicks(t *testing.T) {
	t0, err := parseCPUTicks("cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 5 0 5 40 0 0 0 0 0 0\nintr 1\n")
	if err != nil {
		t.Fatal(err)
	}
	// CPU 0 busy for 50 of 100 ticks (iowait counts as idle), CPU 1 for 10 of 100.
	t1, err := parseCPUTicks("cpu0 35 5 20 80 10 0 0 0 0 0\ncpu1 10 0 10 130 0 0 0 0 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if b := busy(t0, t1, []int{0}); b != 0.5 {
		t.Errorf("busy cpu0 = %v, want 0.5", b)
	}
	if b := busy(t0, t1, []int{0, 1}); b != 0.3 {
		t.Errorf("busy cpu0-1 = %v, want 0.3", b)
	}
	// CPU 1 stolen by the hypervisor for 20 of 100 ticks, which counts as busy too.
	t2, err := parseCPUTicks("cpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 10 0 10 110 0 0 0 20 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if s, b := stolen(t0, t2, []int{1}), busy(t0, t2, []int{1}); s != 0.2 || b != 0.3 {
		t.Errorf("cpu1 stolen %v busy %v, want 0.2 and 0.3", s, b)
	}
	if _, err := parseCPUTicks("intr 1\n"); err == nil {
		t.Error("no per-CPU lines accepted")
	}
	if _, err := readCPUTicks(); err != nil {
		t.Errorf("own /proc/stat: %v", err)
	}
}

// TestStartOn starts a real process bound to one CPU and reads, from inside it, where the kernel
// lets it run.
func TestStartOn(t *testing.T) {
	cpus, err := ownCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) < 2 {
		t.Skipf("needs two CPUs, has %v", cpus)
	}
	last := cpus[len(cpus)-1]
	cmd := exec.Command("grep", "Cpus_allowed_list", "/proc/self/status")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := startOn(cmd, []int{last}); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(strings.TrimPrefix(out.String(), "Cpus_allowed_list:")); got != strconv.Itoa(last) {
		t.Errorf("child ran on CPUs %q, want %d", got, last)
	}
	// This test's own threads keep every CPU.
	if own, err := ownCPUs(); err != nil || len(own) != len(cpus) {
		t.Errorf("the caller's CPUs changed to %v (%v)", own, err)
	}
}

func TestSummariseUtilisation(t *testing.T) {
	r := summarise([]Sample{
		{Requests: 100, Elapsed: time.Second, CPU: 900 * time.Millisecond, LoadCPU: 500 * time.Millisecond, LoadCores: 1, TargetBusy: 1, LoadBusy: 0.6},
		{Requests: 100, Elapsed: time.Second, CPU: 700 * time.Millisecond, LoadCPU: 700 * time.Millisecond, LoadCores: 1, TargetBusy: 0.8, LoadBusy: 0.8},
	})
	if r.TargetUtil != 0.8 || r.LoadUtil != 0.6 || r.TargetBusy != 0.9 || r.LoadBusy != 0.7 {
		t.Errorf("utilisation = %v %v %v %v, want 0.8 0.6 0.9 0.7", r.TargetUtil, r.LoadUtil, r.TargetBusy, r.LoadBusy)
	}
}

// TestBounds checks the line that says what set a rate: the process under test using its whole
// CPU, or the load side saturating its own, which makes the rate a lower bound.
func TestBounds(t *testing.T) {
	arm := func(target, load float64) Result {
		return summarise([]Sample{{Requests: 100, Elapsed: time.Second, CPU: time.Duration(target * float64(time.Second)),
			LoadCPU: time.Duration(load * float64(time.Second)), LoadCores: 1, TargetBusy: 1, LoadBusy: 1}})
	}
	r := &Report{Pinned: true, Paths: map[string]map[int][]ArmResult{
		pathBearer: {32: {{nameO2P, arm(0.98, 0.3)}, {namePodgate, arm(0.7, 0.95)}}}}}
	got := r.bounds()
	for _, want := range []string{"- oauth2-proxy, bearer, c=32: the process under test used 98% of a CPU",
		"the process under test set the rate.", "- podgate, bearer, c=32: the process under test used 70% of a CPU",
		"the load side 95% of its CPUs (busy 100%): the load side saturated its CPUs, so this rate is a **lower bound**"} {
		if !strings.Contains(got, want) {
			t.Errorf("bounds lack %q:\n%s", want, got)
		}
	}
	r.Pinned = false
	if got := r.bounds(); !strings.Contains(got, "not pinned") || strings.Contains(got, "lower bound") {
		t.Errorf("unpinned bounds:\n%s", got)
	}
}

// TestMedianQuantiles: at a fixed rate each percentile is the median over the rounds, so one round
// with a scheduling hiccup moves neither the p99 nor the p99.9.
func TestMedianQuantiles(t *testing.T) {
	ms := time.Millisecond
	r := medianQuantiles(summarise([]Sample{
		{Requests: 3000, Elapsed: 3 * time.Second, P50: ms / 2, P99: 2 * ms, P999: 4 * ms},
		{Requests: 2999, Elapsed: 3 * time.Second, P50: ms / 2, P99: 30 * ms, P999: 60 * ms},
		{Requests: 3001, Elapsed: 3 * time.Second, P50: ms, P99: 3 * ms, P999: 5 * ms},
	}))
	if r.Median.P50 != ms/2 || r.Median.P99 != 3*ms || r.Median.P999 != 5*ms || r.Median.Requests != 3000 {
		t.Errorf("median %+v", r.Median)
	}
}

// TestPollShare: the share of idle time spent polling, from two readings of the cpuidle states.
func TestPollShare(t *testing.T) {
	t0 := idleTimes{"POLL": 100, "haltpoll idle": 1000}
	for _, tc := range []struct {
		t1   idleTimes
		want float64
	}{
		{idleTimes{"POLL": 400, "haltpoll idle": 1100}, 0.75},
		{idleTimes{"POLL": 100, "haltpoll idle": 2000}, 0},
		{idleTimes{"POLL": 100, "haltpoll idle": 1000}, -1}, // no idle time in between
	} {
		if got := pollShare(t0, tc.t1); got != tc.want {
			t.Errorf("pollShare(%v, %v) = %v, want %v", t0, tc.t1, got, tc.want)
		}
	}
	if got := pollShare(nil, t0); got != -1 {
		t.Errorf("without a first reading: %v, want -1", got)
	}
}
