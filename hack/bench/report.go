package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Report is everything one run measured.
type Report struct {
	Quick      bool
	Rounds     int
	Duration   time.Duration
	CPUs       int
	Started    time.Time
	Elapsed    time.Duration
	LoadBefore string
	LoadAfter  string
	// Layout says where the processes ran (cpuLayout.describe); Pinned whether the processes under
	// test had a CPU of their own.
	Layout string
	Pinned bool
	// StealTarget and StealLoad are the shares of the run's time the hypervisor gave the target's
	// and the load side's CPUs to other guests (/proc/stat steal): a latency tail that no process
	// of the run explains shows up here.
	StealTarget, StealLoad float64
	// IdlePoll: idle CPUs were held polling rather than halting for the run (idle.go);
	// IdlePollShare is the share of the target CPU's idle time it spent polling (-1: unknown).
	IdlePoll      bool
	IdlePollShare float64
	// Paths: path (bearer, cookie) → concurrency → one result per target.
	Paths map[string]map[int][]ArmResult
	// Webhook: containers per pod → concurrency → result; WebhookBaseline the same for the
	// baseline injector (nil without one).
	Webhook, WebhookBaseline map[int]map[int]Result
	// WebhookSteady: the typical pod at webhookSteadyRate reviews/s, the injector's and the
	// baseline's (when there is one).
	WebhookSteady []ArmResult
	// Steady: path → one result per target at SteadyRate req/s over steadyConns connections, the
	// added-latency measurement (see steady.go).
	Steady     map[string][]ArmResult
	SteadyRate int
	// Groups and Skip are the growth measurements (full run only).
	Groups, Skip []ArmResult
	// IdleRSS (before any load) and AfterRSS (after all of it) in MB, by process.
	IdleRSS, AfterRSS map[string]float64
	// Cookies: "<target>/<groups>" → bytes of the session's Cookie header.
	Cookies map[string]int
}

// steadyArm is a target's result at the fixed rate.
func (r *Report) steadyArm(path, name string) Result { return resultOf(r.Steady[path], name) }

func (r *Report) arm(path string, conns int, name string) Result {
	return resultOf(r.Paths[path][conns], name)
}

// resultOf is the result of the arm named name (empty when the run did not measure it).
func resultOf(arms []ArmResult, name string) Result {
	for _, a := range arms {
		if a.Name == name {
			return a.Result
		}
	}
	return Result{}
}

// figure is one headline value with its target (if the issue set one).
type figure struct {
	name  string
	value float64
	// format prints the value; target describes the goal and met reports whether it holds.
	format string
	target string
	met    func(float64) bool
}

type figures []figure

// String is the name=value lines a script compares between runs.
func (fs figures) String() string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s="+f.format+"\n", f.name, f.value)
	}
	return b.String()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// figures derives the headline values, at c=32 for the proxies and c=16 for the webhook.
func (r *Report) figures() figures {
	const c = 32
	pb, ob, db := r.arm(pathBearer, c, namePodgate), r.arm(pathBearer, c, nameO2P), r.arm(pathBearer, c, nameDirect)
	pc, oc, dc := r.arm(pathCookie, c, namePodgate), r.arm(pathCookie, c, nameO2P), r.arm(pathCookie, c, nameDirect)
	wh := r.Webhook[1][16]
	sp, sd := r.steadyArm(pathBearer, namePodgate), r.steadyArm(pathBearer, nameDirect)
	var ws Result
	if len(r.WebhookSteady) > 0 {
		ws = r.WebhookSteady[0].Result
	}
	atLeast := func(t float64) func(float64) bool { return func(v float64) bool { return v >= t } }
	atMost := func(t float64) func(float64) bool { return func(v float64) bool { return v <= t } }
	fs := figures{
		{"bearer_vs_oauth2_proxy", ratio(pb.Median.RPS(), ob.Median.RPS()), "%.2f", "≥ 6", atLeast(6)},
		{"bearer_vs_direct", ratio(pb.Median.RPS(), db.Median.RPS()), "%.2f", "≥ 0.30", atLeast(0.30)},
		// At the fixed rate (steady.go), not at saturation.
		{"bearer_added_p99_ms", ms(sp.Median.P99 - sd.Median.P99), "%.2f", "≤ 2", atMost(2)},
		{"bearer_added_p50_ms", ms(sp.Median.P50 - sd.Median.P50), "%.2f", "", nil},
		{"bearer_cpu_vs_oauth2_proxy", ratio(float64(pb.CPUPer10k), float64(ob.CPUPer10k)), "%.2f", "≤ 0.20", atMost(0.20)},
		{"cookie_vs_oauth2_proxy", ratio(pc.Median.RPS(), oc.Median.RPS()), "%.2f", "≥ 4", atLeast(4)},
		{"cookie_vs_direct", ratio(pc.Median.RPS(), dc.Median.RPS()), "%.2f", "", nil},
		{"cookie_cpu_vs_oauth2_proxy", ratio(float64(pc.CPUPer10k), float64(oc.CPUPer10k)), "%.2f", "", nil},
		{"bearer_podgate_req_per_s", pb.Median.RPS(), "%.0f", "", nil},
		{"bearer_cpu_s_per_10k", pb.CPUPer10k.Seconds(), "%.3f", "", nil},
		{"webhook_reviews_per_s", wh.Median.RPS(), "%.0f", "≥ 3000", atLeast(3000)},
		{"webhook_p99_ms", ms(wh.Median.P99), "%.2f", "≤ 10", atMost(10)},
		// The review's own latency, at webhookSteadyRate rather than with the injector saturated.
		{"webhook_fixed_rate_p50_ms", ms(ws.Median.P50), "%.2f", "", nil},
		{"webhook_fixed_rate_p99_ms", ms(ws.Median.P99), "%.2f", "", nil},
		{"session_cookie_bytes", float64(r.Cookies[namePodgate+"/1"]), "%.0f", "≤ 2048", atMost(2048)},
		{"session_cookie_bytes_30_groups", float64(r.Cookies[namePodgate+"/30"]), "%.0f", "", nil},
		{"oauth2_proxy_cookie_bytes", float64(r.Cookies[nameO2P+"/1"]), "%.0f", "", nil},
		{"sidecar_idle_rss_mb", r.IdleRSS[namePodgate], "%.1f", "≤ 12", atMost(12)},
		{"oauth2_proxy_idle_rss_mb", r.IdleRSS[nameO2P], "%.1f", "", nil},
		{"sidecar_rss_after_mb", r.AfterRSS[namePodgate], "%.1f", "", nil},
		{"pinned", map[bool]float64{true: 1}[r.Pinned], "%.0f", "", nil},
		{"cpu_steal_target", r.StealTarget, "%.3f", "", nil},
		{"cpu_steal_load", r.StealLoad, "%.3f", "", nil},
		{"cpu_idle_poll", map[bool]float64{true: 1}[r.IdlePoll], "%.0f", "", nil},
		{"cpu_idle_poll_target", r.IdlePollShare, "%.2f", "", nil},
		// Shares of a CPU: the process under test of its own CPU(s), the load side of its CPUs, and how
		// busy the process's CPU was with anything (other users' processes too).
		{"bearer_podgate_cpu_util", pb.TargetUtil, "%.2f", "", nil},
		{"bearer_podgate_cpu_busy", pb.TargetBusy, "%.2f", "", nil},
		{"bearer_load_cpu_util", pb.LoadUtil, "%.2f", "", nil},
		{"bearer_oauth2_proxy_cpu_util", ob.TargetUtil, "%.2f", "", nil},
		{"cookie_podgate_cpu_util", pc.TargetUtil, "%.2f", "", nil},
		{"cookie_podgate_cpu_busy", pc.TargetBusy, "%.2f", "", nil},
		{"cookie_load_cpu_util", pc.LoadUtil, "%.2f", "", nil},
		{"cookie_oauth2_proxy_cpu_util", oc.TargetUtil, "%.2f", "", nil},
		{"webhook_injector_cpu_util", wh.TargetUtil, "%.2f", "", nil},
		{"webhook_load_cpu_util", wh.LoadUtil, "%.2f", "", nil},
	}
	// Against the baseline builds, when the run had them: > 1 is faster, CPU < 1 is cheaper.
	if bb, bc := r.arm(pathBearer, c, nameBaseline), r.arm(pathCookie, c, nameBaseline); bb.Median.Requests > 0 || bc.Median.Requests > 0 {
		fs = append(fs,
			figure{"bearer_vs_baseline", ratio(pb.Median.RPS(), bb.Median.RPS()), "%.2f", "", nil},
			figure{"bearer_cpu_vs_baseline", ratio(float64(pb.CPUPer10k), float64(bb.CPUPer10k)), "%.2f", "", nil},
			figure{"cookie_vs_baseline", ratio(pc.Median.RPS(), bc.Median.RPS()), "%.2f", "", nil},
			figure{"cookie_cpu_vs_baseline", ratio(float64(pc.CPUPer10k), float64(bc.CPUPer10k)), "%.2f", "", nil})
	}
	if wb, ok := r.WebhookBaseline[1][16]; ok {
		fs = append(fs,
			figure{"webhook_vs_baseline", ratio(wh.Median.RPS(), wb.Median.RPS()), "%.2f", "", nil},
			figure{"webhook_cpu_vs_baseline", ratio(float64(wh.CPUPer10k), float64(wb.CPUPer10k)), "%.2f", "", nil},
			figure{"webhook_baseline_p99_ms", ms(wb.Median.P99), "%.2f", "", nil})
	}
	return fs
}

// saturated is the share of its CPUs above which the load side counts as the bottleneck.
const saturated = 0.9

// bounds says, for the proxies' arms and the injector, what set the rate: the process under test
// using its whole CPU, or something else (the load side saturating its CPUs, or other processes on
// the machine taking CPU from either side), which makes the rate a lower bound for the process; a
// ratio whose numerator is such a lower bound and whose denominator is not is one too.
func (r *Report) bounds() string {
	var b strings.Builder
	const c = 32
	check := func(what string, res Result) {
		if res.Median.Requests == 0 {
			return
		}
		var verdict string
		switch {
		case !r.Pinned:
			verdict = "not pinned, so the rate follows the CPU of every process on the shared CPUs"
		case res.TargetUtil >= saturated:
			verdict = "the process under test set the rate"
		case res.LoadUtil >= saturated:
			verdict = "the load side saturated its CPUs, so this rate is a **lower bound** for the process under test"
		case res.LoadBusy >= saturated:
			verdict = "the load side's CPUs were busy with other processes too, so this rate is a **lower bound** for the process under test"
		case res.TargetBusy >= saturated:
			verdict = "other processes on the machine took the rest of its CPU, so this rate is a **lower bound** for the process under test"
		default:
			verdict = "no CPU was saturated (latency-bound)"
		}
		fmt.Fprintf(&b, "- %s: the process under test used %.0f%% of a CPU (its CPU busy %.0f%% with anything), the load side %.0f%% of its CPUs (busy %.0f%%): %s.\n",
			what, 100*res.TargetUtil, 100*res.TargetBusy, 100*res.LoadUtil, 100*res.LoadBusy, verdict)
	}
	check(fmt.Sprintf("podgate, bearer, c=%d", c), r.arm(pathBearer, c, namePodgate))
	check(fmt.Sprintf("oauth2-proxy, bearer, c=%d", c), r.arm(pathBearer, c, nameO2P))
	check(fmt.Sprintf("podgate, cookie, c=%d", c), r.arm(pathCookie, c, namePodgate))
	check(fmt.Sprintf("oauth2-proxy, cookie, c=%d", c), r.arm(pathCookie, c, nameO2P))
	check("injector, typical pod, c=16", r.Webhook[1][16])
	return b.String()
}

// host says how much CPU time the hypervisor took from the run, and whether idle CPUs halted.
func (r *Report) host() string {
	s := fmt.Sprintf("The hypervisor took %.1f%% of the target CPU's time and %.1f%% of the load side's for other guests (steal).",
		100*r.StealTarget, 100*r.StealLoad)
	if !r.IdlePoll {
		return s + " Idle CPUs could halt (no `-cpu-idle-poll`)."
	}
	if r.IdlePollShare < 0 {
		// The request only steers a cpuidle governor: without cpuidle states (no cpuidle driver,
		// as on some KVM guests) the kernel halts an idle CPU whatever was asked.
		return s + " Idle CPUs were asked to poll rather than halt (`-cpu-idle-poll`), but the target CPU has no cpuidle states to show it did: without a cpuidle driver the kernel halts idle CPUs whatever the request, so idle wake-ups are in these figures."
	}
	return s + fmt.Sprintf(" Idle CPUs were held polling rather than halting (`-cpu-idle-poll`): %.0f%% of the target CPU's idle time was polling.", 100*r.IdlePollShare)
}

// quickTables is the short human summary bench-quick prints before the figures.
func (r *Report) quickTables() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CPU layout: %s. %s\n\n", r.Layout, r.host())
	for _, p := range []string{pathBearer, pathCookie} {
		b.WriteString(r.pathTable(p))
		b.WriteString("\n")
	}
	b.WriteString(r.steadyTable())
	b.WriteString("\n")
	b.WriteString(r.webhookTable())
	b.WriteString("\n")
	b.WriteString(r.bounds())
	b.WriteString("\n")
	return b.String()
}

// steadyTable is the added-latency measurement: each path's targets at the fixed rate, and what
// podgate adds to the upstream's latency.
func (r *Report) steadyTable() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| path, %d req/s over %d connections | p50 (ms) | p99 (ms) | p99.9 (ms) | added p50 (ms) | added p99 (ms) | added p99.9 (ms) | its CPU |\n", r.SteadyRate, steadyConns)
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, p := range []string{pathBearer, pathCookie} {
		d := r.steadyArm(p, nameDirect).Median
		for _, a := range r.Steady[p] {
			m := a.Median
			added := func(x, y time.Duration) string {
				if a.Name == nameDirect {
					return "–"
				}
				return fmt.Sprintf("%.2f", ms(x-y))
			}
			fmt.Fprintf(&b, "| %s, %s | %.2f | %.2f | %.2f | %s | %s | %s | %.0f%% |\n", p, a.Name, ms(m.P50), ms(m.P99), ms(m.P999),
				added(m.P50, d.P50), added(m.P99, d.P99), added(m.P999, d.P999), 100*a.TargetUtil)
		}
	}
	return b.String()
}

func (r *Report) conns(path string) []int {
	var cs []int
	for c := range r.Paths[path] {
		cs = append(cs, c)
	}
	sort.Ints(cs)
	return cs
}

func (r *Report) pathTable(path string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s path | c | req/s | p50 (ms) | p99 (ms) | p99.9 (ms) | CPU s / 10k req | vs direct | vs oauth2-proxy | its CPU | load side's CPU |\n", path)
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, c := range r.conns(path) {
		d, o := r.arm(path, c, nameDirect), r.arm(path, c, nameO2P)
		for _, a := range r.Paths[path][c] {
			m := a.Median
			vsO := fmt.Sprintf("%.2f", ratio(m.RPS(), o.Median.RPS()))
			if a.Name == nameDirect {
				vsO = "–"
			}
			fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f | %.2f | %.2f | %.3f | %.2f | %s | %.0f%% | %.0f%% |\n", a.Name, c, m.RPS(), ms(m.P50), ms(m.P99),
				ms(m.P999), a.CPUPer10k.Seconds(), ratio(m.RPS(), d.Median.RPS()), vsO, 100*a.TargetUtil, 100*a.LoadUtil)
		}
	}
	return b.String()
}

func (r *Report) webhookTable() string {
	var b strings.Builder
	b.WriteString("| pod | c | reviews/s | p50 (ms) | p99 (ms) | p99.9 (ms) | injector CPU s / 10k reviews | injector's CPU | load side's CPU |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	var pods []int
	for n := range r.Webhook {
		pods = append(pods, n)
	}
	sort.Ints(pods)
	for _, n := range pods {
		var cs []int
		for c := range r.Webhook[n] {
			cs = append(cs, c)
		}
		sort.Ints(cs)
		for _, c := range cs {
			for i, results := range []map[int]map[int]Result{r.Webhook, r.WebhookBaseline} {
				res, ok := results[n][c]
				if !ok {
					continue
				}
				m := res.Median
				fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f | %.2f | %.2f | %.3f | %.0f%% | %.0f%% |\n", webhookRowName(n, i > 0), c, m.RPS(), ms(m.P50), ms(m.P99),
					ms(m.P999), res.CPUPer10k.Seconds(), 100*res.TargetUtil, 100*res.LoadUtil)
			}
		}
	}
	for _, a := range r.WebhookSteady {
		m := a.Median
		fmt.Fprintf(&b, "| %s, at a fixed %d/s | %d | %.0f | %.2f | %.2f | %.2f | %.3f | %.0f%% | %.0f%% |\n", a.Name, webhookSteadyRate, webhookSteadyConns,
			m.RPS(), ms(m.P50), ms(m.P99), ms(m.P999), a.CPUPer10k.Seconds(), 100*a.TargetUtil, 100*a.LoadUtil)
	}
	return b.String()
}

func growthTable(title string, arms []ArmResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s | req/s | p99 (ms) | CPU s / 10k req | req/s vs first row | CPU vs first row |\n", title)
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, a := range arms {
		base := arms[0]
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.3f | %.2f | %.2f |\n", a.Name, a.Median.RPS(), ms(a.Median.P99), a.CPUPer10k.Seconds(),
			ratio(a.Median.RPS(), base.Median.RPS()), ratio(float64(a.CPUPer10k), float64(base.CPUPer10k)))
	}
	return b.String()
}

func (r *Report) targetsTable() string {
	var b strings.Builder
	b.WriteString("| figure (`make bench-quick` prints the same names) | this run | target | |\n| --- | ---: | ---: | --- |\n")
	for _, f := range r.figures() {
		if f.met == nil {
			continue
		}
		verdict := "met"
		if !f.met(f.value) {
			verdict = "**missed**"
		}
		fmt.Fprintf(&b, "| `%s` | "+f.format+" | %s | %s |\n", f.name, f.value, f.target, verdict)
	}
	return b.String()
}

// Markers around the part of docs/benchmarks.md a full run rewrites.
const (
	beginMarker = "<!-- BEGIN make bench: generated by hack/bench, do not edit -->"
	endMarker   = "<!-- END make bench -->"
)

// markdown is the generated section.
func (r *Report) markdown(plotsRel string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", beginMarker)
	fmt.Fprintf(&b, "Run of %s UTC: %d CPUs, load average %s before and %s after, %d interleaved rounds of %s per figure "+
		"(the median round is shown; CPU per 10k requests is over all rounds), %s in all.\n\n",
		r.Started.Format("2006-01-02 15:04"), r.CPUs, r.LoadBefore, r.LoadAfter, r.Rounds, r.Duration, r.Elapsed)
	fmt.Fprintf(&b, "CPU layout: %s. \"Its CPU\" is the share of one CPU the target process used, \"load side's CPU\" the "+
		"share of the load side's CPUs that wrk (or vegeta) and the upstream used. %s\n\n", r.Layout, r.host())
	b.WriteString("#### Against the targets\n\n")
	b.WriteString(r.targetsTable())
	b.WriteString("\n")
	b.WriteString(r.bounds())
	b.WriteString("\n#### Bearer path\n\n")
	b.WriteString(r.pathTable(pathBearer))
	fmt.Fprintf(&b, "\n![bearer: throughput and p99 against concurrency](%s/bearer.svg)\n", plotsRel)
	b.WriteString("\n#### Cookie-session path\n\n")
	b.WriteString(r.pathTable(pathCookie))
	fmt.Fprintf(&b, "\n![cookie session: throughput and p99 against concurrency](%s/cookie.svg)\n", plotsRel)
	fmt.Fprintf(&b, "\n#### Added latency (a fixed %d req/s over %d connections, vegeta)\n\n", r.SteadyRate, steadyConns)
	b.WriteString("The throughput tables load each target to saturation, where p99 is the length of the target's own queue; here both " +
		"targets get the same requests on the same schedule, well below either one's capacity, so the difference is what podgate adds.\n\n")
	b.WriteString(r.steadyTable())
	b.WriteString("\n#### Memory and session size\n\n")
	b.WriteString("| process | VmRSS idle (MB) | VmRSS after all load (MB) |\n| --- | ---: | ---: |\n")
	for _, p := range []string{namePodgate, nameO2P, "injector"} {
		fmt.Fprintf(&b, "| %s | %.1f | %.1f |\n", p, r.IdleRSS[p], r.AfterRSS[p])
	}
	b.WriteString("\n| session Cookie header per request (bytes) | alice | alice with 30 groups |\n| --- | ---: | ---: |\n")
	for _, p := range []string{namePodgate, nameO2P} {
		fmt.Fprintf(&b, "| %s | %d | %d |\n", p, r.Cookies[p+"/1"], r.Cookies[p+"/30"])
	}
	b.WriteString("\n#### Webhook (AdmissionReview over TLS to `injector serve`, vegeta)\n\n")
	b.WriteString(r.webhookTable())
	fmt.Fprintf(&b, "\n![webhook: reviews/s and p99 against concurrency](%s/webhook.svg)\n", plotsRel)
	fmt.Fprintf(&b, "\n#### Growth (podgate, bearer path, c=%d)\n\n", growthConns)
	b.WriteString(growthTable("token", r.Groups))
	b.WriteString("\n")
	b.WriteString(growthTable("skip rules (none matching)", r.Skip))
	fmt.Fprintf(&b, "\n%s\n", endMarker)
	return b.String()
}

// writeDoc replaces the generated section of doc (or appends it) and writes the plots.
func writeDoc(doc, plots string, r *Report) error {
	if err := os.MkdirAll(plots, 0o755); err != nil {
		return err
	}
	for name, svg := range r.plots() {
		if err := os.WriteFile(filepath.Join(plots, name+".svg"), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	rel, err := filepath.Rel(filepath.Dir(doc), plots)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(doc, []byte(spliceSection(string(old), r.markdown(filepath.ToSlash(rel)), beginMarker, endMarker)), 0o644)
}

// spliceSection puts section (which starts and ends with the markers begin and end) in place of
// the part of text between them, or at its end when text has no such markers. make bench and make
// soak each own their marked section of the same document.
func spliceSection(text, section, begin, end string) string {
	i := strings.Index(text, begin)
	j := strings.Index(text, end)
	if i < 0 || j < i {
		return strings.TrimRight(text, "\n") + "\n\n" + section
	}
	return text[:i] + strings.TrimSuffix(section, "\n") + text[j+len(end):]
}
