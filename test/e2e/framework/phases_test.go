package framework

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPhasesSummary(t *testing.T) {
	var p Phases
	if err := p.Run("build", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom\n")
	if err := p.Run("cluster", func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Run returned %v, want the phase's error", err)
	}
	p.Add("tests", 90*time.Second, nil)
	var b strings.Builder
	p.Write(&b)
	out := b.String()
	for _, want := range []string{"build", "ok", "cluster", "FAILED: boom", "tests", "90.0s", "total"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if got := len(p.List()); got != 3 {
		t.Errorf("%d phases recorded, want 3", got)
	}
}
