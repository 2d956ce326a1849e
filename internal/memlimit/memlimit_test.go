package memlimit

import (
	"runtime/debug"
	"testing"
)

// TestSet: the Go soft limit follows the container's limit; GOMEMLIMIT and an unknown limit leave it.
func TestSet(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	t.Setenv("GOMEMLIMIT", "")
	if got, want := Set(128<<20), int64(128<<20)/100*Percent; got != want || debug.SetMemoryLimit(-1) != want {
		t.Errorf("Set returned %d, runtime has %d, want %d", got, debug.SetMemoryLimit(-1), want)
	}
	debug.SetMemoryLimit(prev)
	for _, c := range []struct {
		name, env string
		limit     int64
	}{{"GOMEMLIMIT set", "100MiB", 128 << 20}, {"no limit known", "", 0}, {"negative", "", -1}} {
		t.Setenv("GOMEMLIMIT", c.env)
		if got := Set(c.limit); got != 0 || debug.SetMemoryLimit(-1) != prev {
			t.Errorf("%s: Set returned %d and the soft limit is %d, want both untouched", c.name, got, debug.SetMemoryLimit(-1))
		}
	}
}

// TestSetGCPercent: GOGC, when set, wins.
func TestSetGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	t.Setenv("GOGC", "")
	if !SetGCPercent(400) || debug.SetGCPercent(100) != 400 {
		t.Error("GOGC unset, yet the GC percent is not 400")
	}
	t.Setenv("GOGC", "150")
	if SetGCPercent(400) || debug.SetGCPercent(100) != 100 {
		t.Error("GOGC set, yet the GC percent changed")
	}
}
