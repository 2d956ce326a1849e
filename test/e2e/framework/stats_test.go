package framework

import "testing"

func TestMemorySpread(t *testing.T) {
	if got := MemorySpread(nil); got != "none" {
		t.Errorf("MemorySpread(nil) = %q", got)
	}
	got := MemorySpread([]uint64{3 << 20, 1 << 20, 2 << 20})
	if want := "1.0 / 2.0 / 3.0 MiB"; got != want {
		t.Errorf("MemorySpread = %q, want %q", got, want)
	}
}
