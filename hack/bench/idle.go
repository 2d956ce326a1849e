package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Idle CPUs poll during a run rather than halt.
//
// On a virtual machine an idle CPU halts its vCPU, and the next interrupt has to wait for the host
// to run that vCPU again: on this project's machines (cpuidle driver haltpoll with
// guest_halt_poll_ns=0, so no polling before the halt) that is tens of microseconds at best and
// milliseconds when the host is busy. A pinned run puts the process under test alone on its CPU,
// which at a fixed rate idles between requests, while the direct arm's upstream shares the load
// side's busy CPU: the "added" latency then measured how long an idle vCPU takes to wake, and the
// fixed-rate p99 moved from run to run with the host's load (docs/benchmarks.md). Holding a PM QoS
// request for a CPU wake-up latency of 0 µs (/dev/cpu_dma_latency, what tuned's
// latency-performance profile does on latency-sensitive hosts) makes the cpuidle governor choose
// the polling state, so both arms wake alike and the figure is the proxy's own. Saturated runs
// never idle and are not affected.

// qosDevice is the kernel's CPU wake-up latency PM QoS interface: a request holds while the file
// stays open.
const qosDevice = "/dev/cpu_dma_latency"

// holdIdlePoll requests a wake-up latency of 0 µs until the returned file is closed.
func holdIdlePoll() (*os.File, error) {
	f, err := os.OpenFile(qosDevice, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(binary.NativeEndian.AppendUint32(nil, 0)); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", qosDevice, err)
	}
	return f, nil
}

// idleTimes is the time (µs) a CPU has spent in each cpuidle state, by the state's name.
type idleTimes map[string]uint64

func readIdleTimes(cpu int) (idleTimes, error) {
	states, err := filepath.Glob(fmt.Sprintf("/sys/devices/system/cpu/cpu%d/cpuidle/state*", cpu))
	if err != nil || len(states) == 0 {
		return nil, fmt.Errorf("cpu%d: no cpuidle states (%v)", cpu, err)
	}
	out := idleTimes{}
	for _, s := range states {
		name, err := os.ReadFile(filepath.Join(s, "name"))
		if err != nil {
			return nil, err
		}
		t, err := os.ReadFile(filepath.Join(s, "time"))
		if err != nil {
			return nil, err
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(t)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s/time: %w", s, err)
		}
		out[strings.TrimSpace(string(name))] += v
	}
	return out, nil
}

// pollShare is the share of the idle time between t0 and t1 spent polling (the POLL state) rather
// than halted: 1 when the QoS request held everywhere, near 0 without it. -1 when unknown.
func pollShare(t0, t1 idleTimes) float64 {
	if t0 == nil || t1 == nil {
		return -1
	}
	var poll, all uint64
	for name, v := range t1 {
		d := v - t0[name]
		all += d
		if name == "POLL" {
			poll += d
		}
	}
	if all == 0 {
		return -1
	}
	return float64(poll) / float64(all)
}
