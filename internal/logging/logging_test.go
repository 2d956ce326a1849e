package logging

import "testing"

func TestNew(t *testing.T) {
	for _, f := range []string{"json", "console"} {
		l, err := New("debug", f)
		if err != nil || l == nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !l.Core().Enabled(-1) {
			t.Errorf("%s: debug not enabled", f)
		}
	}
	if _, err := New("loud", "json"); err == nil {
		t.Error("bad level accepted")
	}
	if _, err := New("info", "xml"); err == nil {
		t.Error("bad format accepted")
	}
}
