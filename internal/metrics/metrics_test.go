package metrics

import (
	"strings"
	"testing"
	"time"
)

func TestExposition(t *testing.T) {
	m := NewSidecar()
	m.Requests.With("bearer").Inc()
	m.Requests.With("bearer").Inc()
	m.Requests.With("forbidden").Inc()
	m.AuthLatency.Observe(30 * time.Microsecond)
	m.AuthLatency.Observe(2 * time.Second)
	var b strings.Builder
	m.Registry.Write(&b)
	out := b.String()
	for _, want := range []string{
		"# TYPE podgate_requests_total counter\n",
		`podgate_requests_total{outcome="bearer"} 2` + "\n",
		`podgate_requests_total{outcome="forbidden"} 1` + "\n",
		"# TYPE podgate_auth_duration_seconds histogram\n",
		`podgate_auth_duration_seconds_bucket{le="1e-05"} 0` + "\n",
		`podgate_auth_duration_seconds_bucket{le="5e-05"} 1` + "\n",
		`podgate_auth_duration_seconds_bucket{le="1"} 1` + "\n",
		`podgate_auth_duration_seconds_bucket{le="+Inf"} 2` + "\n",
		"podgate_auth_duration_seconds_count 2\n",
		"podgate_auth_duration_seconds_sum 2.00003\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q:\n%s", want, out)
		}
	}
}
