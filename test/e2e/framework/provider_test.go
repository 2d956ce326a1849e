package framework

import (
	"strings"
	"testing"
)

func TestNewProvider(t *testing.T) {
	for name, want := range map[string]string{"": "local", "local": "local", "kind": "kind"} {
		p, err := NewProvider(name, Scripts{})
		if err != nil || p.Name() != want {
			t.Errorf("NewProvider(%q) = %v, %v; want the %s provider", name, p, err, want)
		}
	}
	_, err := NewProvider("docker", Scripts{})
	if err == nil || !strings.Contains(err.Error(), `PODGATE_E2E_PROVIDER="docker"`) || !strings.Contains(err.Error(), "local or kind") {
		t.Errorf("unknown provider: err = %v, want it to name the variable, the value and the choices", err)
	}
}
