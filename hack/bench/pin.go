package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cpuLayout is where a run's processes may run. A sidecar in production has a CPU budget of its
// own (its container's limit); on a machine where the load generator, the upstream and the proxy
// share the same cores, each request instead costs the CPU of all three, and throughput follows
// their sum rather than the proxy's own cost. Pinning gives the processes under test (the sidecar,
// oauth2-proxy, the baseline sidecar, the injectors) a CPU that nothing else of the run uses, and
// puts the load side (this runner with vegeta in it, wrk, the fixture's upstream) on the others.
type cpuLayout struct {
	// target is the CPU of the processes under test; -1 when the run is not pinned.
	target int
	// load are the CPUs of the load side (every CPU when the run is not pinned).
	load []int
}

func (l cpuLayout) pinned() bool { return l.target >= 0 }

// cores is how many CPUs the load side has.
func (l cpuLayout) cores() int { return max(len(l.load), 1) }

// targetCPUs are the CPUs the processes under test may use.
func (l cpuLayout) targetCPUs() []int {
	if !l.pinned() {
		return l.load
	}
	return []int{l.target}
}

// describe is the layout as the output and the document state it.
func (l cpuLayout) describe() string {
	if !l.pinned() {
		return fmt.Sprintf("not pinned: the processes under test, wrk, vegeta and the upstream share CPUs %s", cpuList(l.load))
	}
	return fmt.Sprintf("pinned: the process under test (podgate, oauth2-proxy, the injector) alone on CPU %d; "+
		"the load side (wrk, the upstream, vegeta in the runner) on CPU %s", l.target, cpuList(l.load))
}

// pinEnv carries the layout across the runner's re-execution of itself (see pinRunner).
const pinEnv = "PODGATE_BENCH_PIN"

// unpinnedLayout is the layout of a run that does not pin: every CPU this process may use.
func unpinnedLayout() (cpuLayout, error) {
	cpus, err := ownCPUs()
	return cpuLayout{target: -1, load: cpus}, err
}

// pinRunner puts this runner on the load side's CPUs and returns the layout. It takes the last
// CPU this process may use for the processes under test and the others for the load side, then
// re-executes itself from a thread bound to the load side: a process inherits the affinity of the
// thread that executes it, so every thread of the new runner (vegeta's included) and every
// process it starts without pinning (wrk, the fixture) stays on the load side. Setting the
// affinity of the running process instead would leave threads it starts meanwhile on any CPU.
func pinRunner() (cpuLayout, error) {
	if v := os.Getenv(pinEnv); v != "" {
		l, err := parseLayout(v)
		if err != nil {
			return l, fmt.Errorf("%s: %w", pinEnv, err)
		}
		if own, err := ownCPUs(); err != nil || !slices.Equal(own, l.load) {
			return l, fmt.Errorf("runner on CPUs %s, not the load side's %s (%v)", cpuList(own), cpuList(l.load), err)
		}
		return l, nil
	}
	cpus, err := ownCPUs()
	if err != nil {
		return cpuLayout{}, err
	}
	if len(cpus) < 2 {
		return cpuLayout{}, fmt.Errorf("pinning needs two CPUs, this process may use %s (-pin=false, PIN=0 with make, runs unpinned)", cpuList(cpus))
	}
	l := cpuLayout{target: cpus[len(cpus)-1], load: cpus[:len(cpus)-1]}
	self, err := os.Executable()
	if err != nil {
		return l, err
	}
	// The thread stays locked: it either becomes the new runner or reports the error.
	runtime.LockOSThread()
	if err := setThreadCPUs(l.load); err != nil {
		return l, err
	}
	return l, syscall.Exec(self, os.Args, append(os.Environ(), pinEnv+"="+l.String()))
}

// String is the layout as pinEnv carries it: "<target>:<load,...>".
func (l cpuLayout) String() string {
	var load []string
	for _, c := range l.load {
		load = append(load, strconv.Itoa(c))
	}
	return strconv.Itoa(l.target) + ":" + strings.Join(load, ",")
}

func parseLayout(s string) (cpuLayout, error) {
	t, rest, ok := strings.Cut(s, ":")
	target, err := strconv.Atoi(t)
	if !ok || err != nil || target < 0 || rest == "" {
		return cpuLayout{}, fmt.Errorf("layout %q: want <target CPU>:<load CPU>,...", s)
	}
	l := cpuLayout{target: target}
	for _, f := range strings.Split(rest, ",") {
		c, err := strconv.Atoi(f)
		if err != nil || c < 0 || c == target {
			return cpuLayout{}, fmt.Errorf("layout %q: bad load CPU %q", s, f)
		}
		l.load = append(l.load, c)
	}
	return l, nil
}

func ownCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// setThreadCPUs binds the calling thread (the caller has locked it) to cpus.
func setThreadCPUs(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("sched_setaffinity %s: %w", cpuList(cpus), err)
	}
	return nil
}

// startOn starts cmd bound to cpus (nil: where the runner runs). Go forks on the calling thread,
// so the child is started from a thread bound to cpus and inherits that affinity from its first
// instruction, before it starts any thread of its own. The goroutine never unlocks its thread, so
// the thread ends with it and no other goroutine runs on the changed affinity.
func startOn(cmd *exec.Cmd, cpus []int) error {
	if cpus == nil {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := setThreadCPUs(cpus); err != nil {
			errc <- err
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

// allowedCPUs returns the CPUs each thread of a process may run on, as the kernel states them
// (Cpus_allowed_list of every /proc/<pid>/task/<tid>/status), the distinct lists joined by " and ".
func allowedCPUs(pid int) (string, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		return "", fmt.Errorf("pid %d: no tasks (%v)", pid, err)
	}
	var lists []string
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that has just exited
		}
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok && !slices.Contains(lists, strings.TrimSpace(v)) {
				lists = append(lists, strings.TrimSpace(v))
			}
		}
	}
	if len(lists) == 0 {
		return "", fmt.Errorf("pid %d: no Cpus_allowed_list", pid)
	}
	slices.Sort(lists)
	return strings.Join(lists, " and "), nil
}

// cpuList writes CPUs the way Cpus_allowed_list does ("0", "0-2", "0,2").
func cpuList(cpus []int) string {
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		} else {
			parts = append(parts, strconv.Itoa(cpus[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// cpuTicks is the time of each CPU since boot, from /proc/stat.
type cpuTicks map[int]ticks

// ticks is one CPU's time: busy (with anything), stolen (by the hypervisor, for other guests:
// counted in busy too) and in all.
type ticks struct{ busy, steal, total uint64 }

func readCPUTicks() (cpuTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	return parseCPUTicks(string(b))
}

// parseCPUTicks reads the per-CPU lines of /proc/stat ("cpuN user nice system idle iowait irq
// softirq steal ..."); idle and iowait are the idle time, the rest up to steal is busy.
func parseCPUTicks(stat string) (cpuTicks, error) {
	out := cpuTicks{}
	for line := range strings.Lines(stat) {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil {
			continue
		}
		var t ticks
		for i, v := range f[1:9] {
			x, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/stat %s: %w", f[0], err)
			}
			t.total += x
			if i != 3 && i != 4 {
				t.busy += x
			}
			if i == 7 {
				t.steal = x
			}
		}
		out[n] = t
	}
	if len(out) == 0 {
		return nil, errors.New("/proc/stat: no per-CPU lines")
	}
	return out, nil
}

// busy is the fraction of the time between t0 and t1 that cpus were busy, with anything: the
// run's processes and whatever else the machine runs.
func busy(t0, t1 cpuTicks, cpus []int) float64 {
	return share(t0, t1, cpus, func(t ticks) uint64 { return t.busy })
}

// stolen is the fraction of the time between t0 and t1 that the hypervisor gave cpus to other
// guests: on a virtual machine, a request that needs a CPU then waits for the host, which no
// process of the run can see.
func stolen(t0, t1 cpuTicks, cpus []int) float64 {
	return share(t0, t1, cpus, func(t ticks) uint64 { return t.steal })
}

func share(t0, t1 cpuTicks, cpus []int, part func(ticks) uint64) float64 {
	var p, t uint64
	for _, c := range cpus {
		p += part(t1[c]) - part(t0[c])
		t += t1[c].total - t0[c].total
	}
	if t == 0 {
		return 0
	}
	return float64(p) / float64(t)
}

// loadMeter measures one load run: the CPU time the load side's long-lived processes use (the
// fixture's upstream and this runner, vegeta's home) and how busy each group of CPUs is.
type loadMeter struct {
	cpu   time.Duration
	ticks cpuTicks
}

func (b *bench) startMeter() (loadMeter, error) {
	cpu, err := b.loadSideCPU()
	if err != nil {
		return loadMeter{}, err
	}
	t, err := readCPUTicks()
	return loadMeter{cpu: cpu, ticks: t}, err
}

// stop fills the sample's load-side figures; extra is CPU the load side used in processes that
// have ended (wrk).
func (m loadMeter) stop(b *bench, s *Sample, extra time.Duration) error {
	cpu, err := b.loadSideCPU()
	if err != nil {
		return err
	}
	t, err := readCPUTicks()
	if err != nil {
		return err
	}
	s.LoadCPU = cpu - m.cpu + extra
	s.LoadCores = b.layout.cores()
	s.TargetBusy = busy(m.ticks, t, b.layout.targetCPUs())
	s.LoadBusy = busy(m.ticks, t, b.layout.load)
	return nil
}

// loadSideCPU is the CPU time used so far by the fixture and this runner.
func (b *bench) loadSideCPU() (time.Duration, error) {
	fx, err := cpuTime(b.fixture.pid())
	if err != nil {
		return 0, fmt.Errorf("fixture: %w", err)
	}
	self, err := cpuTime(os.Getpid())
	return fx + self, err
}
