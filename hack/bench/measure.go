package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat, fixed at 100 on Linux whatever the
// kernel's own tick rate.
const userHZ = 100

// cpuTime returns the CPU time (user + system) a process has used so far: its own rusage as the
// kernel keeps it, every thread included.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a /proc/<pid>/stat line. The command
// name (field 2) is in parentheses and may hold spaces, so fields are counted after its ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, errors.New("/proc stat: too few fields")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc stat: %w", err)
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// rssMB returns a process's resident set size (VmRSS) in MB.
func rssMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(b))
}

func parseVmRSS(status string) (float64, error) {
	for line := range strings.Lines(status) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("VmRSS: unexpected %q", line)
			}
			kb, err := strconv.ParseFloat(f[0], 64)
			return kb / 1024, err
		}
	}
	return 0, errors.New("no VmRSS line")
}

// Sample is one load run against one target.
type Sample struct {
	Requests int
	Elapsed  time.Duration
	// P50, P99 and P999 are latency percentiles.
	P50, P99, P999 time.Duration
	// CPU is what the target process used during the run.
	CPU time.Duration
	// LoadCPU is what the load side used during the run (wrk or vegeta, the fixture's upstream),
	// on LoadCores CPUs.
	LoadCPU   time.Duration
	LoadCores int
	// TargetBusy and LoadBusy are how busy the CPUs of the processes under test and of the load
	// side were during the run, with anything the machine ran (other users' processes too).
	TargetBusy, LoadBusy float64
}

// RPS is requests per second (0 for a part that was not measured).
func (s Sample) RPS() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Requests) / s.Elapsed.Seconds()
}

// LoadUtil is the share of the load side's CPUs the load side used.
func (s Sample) LoadUtil() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.LoadCPU) / float64(s.Elapsed*time.Duration(max(s.LoadCores, 1)))
}

// Result summarises a target's rounds: the median round (by throughput) for rates and latencies,
// and CPU per 10k requests over all rounds together, which a single short round measures coarsely.
type Result struct {
	Rounds    []Sample
	Median    Sample
	CPUPer10k time.Duration
	// TargetUtil is the share of one CPU the process under test used, LoadUtil the share of the
	// load side's CPUs the load side used, TargetBusy and LoadBusy how busy those CPUs were with
	// anything, all over all rounds.
	TargetUtil, LoadUtil, TargetBusy, LoadBusy float64
}

func summarise(rounds []Sample) Result {
	r := Result{Rounds: rounds}
	if len(rounds) == 0 {
		return r
	}
	s := append([]Sample(nil), rounds...)
	sort.Slice(s, func(i, j int) bool { return s[i].RPS() < s[j].RPS() })
	r.Median = s[len(s)/2]
	var cpu, elapsed, loadCore time.Duration
	var targetBusy, loadBusy float64
	n := 0
	for _, x := range rounds {
		cpu += x.CPU
		n += x.Requests
		elapsed += x.Elapsed
		loadCore += x.Elapsed * time.Duration(max(x.LoadCores, 1))
		r.LoadUtil += float64(x.LoadCPU)
		targetBusy += x.TargetBusy * float64(x.Elapsed)
		loadBusy += x.LoadBusy * float64(x.Elapsed)
	}
	if n > 0 {
		r.CPUPer10k = time.Duration(float64(cpu) * 10000 / float64(n))
	}
	if elapsed > 0 {
		r.TargetUtil = float64(cpu) / float64(elapsed)
		r.LoadUtil /= float64(loadCore)
		r.TargetBusy, r.LoadBusy = targetBusy/float64(elapsed), loadBusy/float64(elapsed)
	}
	return r
}

// medianQuantiles makes each latency percentile of r's median the median of that percentile over
// the rounds. At a fixed rate every round serves the same number of requests, so the median round
// by throughput is an arbitrary one, and a single round's p99 (the 30th-slowest of 3,000 requests)
// moves with one scheduling hiccup of the load side.
func medianQuantiles(r Result) Result {
	med := func(q func(Sample) time.Duration) time.Duration {
		v := make([]time.Duration, 0, len(r.Rounds))
		for _, s := range r.Rounds {
			v = append(v, q(s))
		}
		slices.Sort(v)
		if len(v) == 0 {
			return 0
		}
		return v[len(v)/2]
	}
	r.Median.P50 = med(func(s Sample) time.Duration { return s.P50 })
	r.Median.P99 = med(func(s Sample) time.Duration { return s.P99 })
	r.Median.P999 = med(func(s Sample) time.Duration { return s.P999 })
	return r
}

// wrkScript makes wrk print one machine-readable line: wrk's own summary prints only some
// percentiles, rounded, in mixed units.
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d socket_errors=%d non2xx=%d p50_us=%d p99_us=%d p999_us=%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
`

// wrk runs one wrk load (conns connections sending back to back) and returns its sample, LoadCPU
// the CPU wrk used (the target's CPU left to the caller).
func (b *bench) wrk(ctx context.Context, a arm, conns int) (Sample, error) {
	url := a.url
	args := []string{"-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%s", b.cfg.duration), "--timeout", "10s", "-s", b.wrkScript}
	for _, h := range a.headers {
		args = append(args, "-H", h)
	}
	args = append(args, url)
	cmd := exec.CommandContext(ctx, b.cfg.wrk, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return Sample{}, fmt.Errorf("wrk %s: %w: %s", url, err, stderr.String())
	}
	s, err := parseWrk(out.String())
	s.LoadCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return s, err
}

func parseWrk(out string) (Sample, error) {
	for line := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "BENCH ")
		if !ok {
			continue
		}
		v := map[string]int64{}
		for _, kv := range strings.Fields(rest) {
			k, val, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return Sample{}, fmt.Errorf("wrk: %q: %w", kv, err)
			}
			v[k] = n
		}
		if v["socket_errors"] > 0 || v["non2xx"] > 0 {
			return Sample{}, fmt.Errorf("wrk: %d socket errors, %d non-2xx responses", v["socket_errors"], v["non2xx"])
		}
		if v["requests"] == 0 || v["duration_us"] == 0 {
			return Sample{}, errors.New("wrk: no requests completed")
		}
		us := func(k string) time.Duration { return time.Duration(v[k]) * time.Microsecond }
		return Sample{Requests: int(v["requests"]), Elapsed: us("duration_us"), P50: us("p50_us"), P99: us("p99_us"), P999: us("p999_us")}, nil
	}
	return Sample{}, fmt.Errorf("wrk: no BENCH line in %q", out)
}
