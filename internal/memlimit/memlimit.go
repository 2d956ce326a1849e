// Package memlimit fits the Go runtime's collector to the container it runs in. The runtime does not
// read cgroup limits: left alone, it lets the heap double before every collection however close
// that takes the process to its container's limit, and the kernel's OOM killer is the first to
// notice.
package memlimit

import (
	"os"
	"runtime/debug"
)

// Percent is the part of the container's memory limit the Go runtime may use before the collector
// runs continuously; the rest is headroom for what the runtime does not account (the binary's
// mapped text, kernel buffers charged to the container).
const Percent = 85

// Set makes Percent of limit (the container's memory limit in bytes) the Go soft memory limit and
// returns it. It sets nothing and returns 0 when limit is not positive (no limit known) or when
// GOMEMLIMIT is set: an operator's explicit setting wins.
func Set(limit int64) int64 {
	if limit <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	soft := limit / 100 * Percent
	debug.SetMemoryLimit(soft)
	return soft
}

// SetGCPercent sets the collector's growth target (GOGC) to percent and reports whether it did:
// not when GOGC is set, which an operator's explicit setting wins.
func SetGCPercent(percent int) bool {
	if os.Getenv("GOGC") != "" {
		return false
	}
	debug.SetGCPercent(percent)
	return true
}
