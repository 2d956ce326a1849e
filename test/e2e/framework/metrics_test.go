package framework

import (
	"math"
	"strings"
	"testing"
)

const exposition = `# HELP apiserver_admission_webhook_admission_duration_seconds [STABLE] Admission webhook latency
# TYPE apiserver_admission_webhook_admission_duration_seconds histogram
apiserver_admission_webhook_admission_duration_seconds_bucket{name="inject.podgate.io",operation="CREATE",rejected="false",type="admit",le="0.005"} 10
apiserver_admission_webhook_admission_duration_seconds_bucket{name="inject.podgate.io",operation="CREATE",rejected="false",type="admit",le="0.025"} 30
apiserver_admission_webhook_admission_duration_seconds_bucket{name="inject.podgate.io",operation="CREATE",rejected="false",type="admit",le="0.1"} 40
apiserver_admission_webhook_admission_duration_seconds_bucket{name="inject.podgate.io",operation="CREATE",rejected="false",type="admit",le="+Inf"} 40
apiserver_admission_webhook_admission_duration_seconds_sum{name="inject.podgate.io",operation="CREATE",rejected="false",type="admit"} 0.6
apiserver_admission_webhook_admission_duration_seconds_count{name="inject.podgate.io",operation="CREATE",rejected="false",type="admit"} 40
apiserver_admission_webhook_admission_duration_seconds_bucket{name="other.example.com",operation="CREATE",rejected="false",type="admit",le="0.005"} 99
apiserver_admission_webhook_admission_duration_seconds_count{name="other.example.com",operation="CREATE",rejected="false",type="admit"} 99
apiserver_admission_webhook_admission_duration_seconds_sum{name="other.example.com",operation="CREATE",rejected="false",type="admit"} 1
`

func TestParseHistogram(t *testing.T) {
	h, err := ParseHistogram(exposition, "apiserver_admission_webhook_admission_duration_seconds", map[string]string{"name": "inject.podgate.io"})
	if err != nil {
		t.Fatal(err)
	}
	if h.Count != 40 || h.Sum != 0.6 || len(h.Buckets) != 4 {
		t.Fatalf("got count %v sum %v buckets %v, want only the podgate series", h.Count, h.Sum, h.Buckets)
	}
	if m := h.Mean(); math.Abs(m-0.015) > 1e-9 {
		t.Errorf("mean = %v, want 0.015", m)
	}
	// rank 20 of 40 lies halfway through the (0.005, 0.025] bucket.
	if q := h.Quantile(0.5); math.Abs(q-0.015) > 1e-9 {
		t.Errorf("p50 = %v, want 0.015", q)
	}
	// rank 39.6 lies in (0.025, 0.1], 9.6 of its 10 observations in.
	if q := h.Quantile(0.99); math.Abs(q-(0.025+0.075*0.96)) > 1e-9 {
		t.Errorf("p99 = %v", q)
	}
	d := h.Minus(Histogram{Count: 10, Sum: 0.05, Buckets: map[float64]float64{0.005: 10, 0.025: 10, 0.1: 10, math.Inf(1): 10}})
	if d.Count != 30 || d.Buckets[0.005] != 0 || d.Buckets[0.025] != 20 {
		t.Errorf("delta = %+v", d)
	}
}

func TestSinceAndBound(t *testing.T) {
	h := func(count, sum, under5ms float64) Histogram {
		return Histogram{Count: count, Sum: sum, Buckets: map[float64]float64{0.005: under5ms, 0.01: count, math.Inf(1): count}}
	}
	before := map[string]Histogram{"a": h(10, 0.01, 10), "b": h(4, 0.004, 4), "restarted": h(50, 1, 50)}
	after := map[string]Histogram{"a": h(30, 0.03, 29), "b": h(14, 0.014, 14), "restarted": h(3, 0.003, 3), "new": h(7, 0.1, 0)}
	d, n := Since(before, after)
	// a and b only: the restarted replica went back, the new one has no starting point.
	if n != 2 || d.Count != 30 || math.Abs(d.Sum-0.030) > 1e-9 || d.Buckets[0.005] != 29 {
		t.Fatalf("Since = %+v over %d replicas, want 30 observations (29 under 5 ms) over 2", d, n)
	}
	if b := d.Bound(0.5); b != 0.005 {
		t.Errorf("p50 bound = %v, want 0.005", b)
	}
	// rank 29.7 of 30 is past the 29 under 5 ms.
	if b := d.Bound(0.99); b != 0.01 {
		t.Errorf("p99 bound = %v, want 0.01", b)
	}
	if b := (Histogram{Count: 2, Buckets: map[float64]float64{0.005: 1, math.Inf(1): 2}}).Bound(0.99); !math.IsInf(b, 1) {
		t.Errorf("bound past the last finite bucket = %v, want +Inf", b)
	}
	if b := (Histogram{}).Bound(0.5); !math.IsNaN(b) {
		t.Errorf("bound of an empty histogram = %v, want NaN", b)
	}
}

func TestParseHistogramMissing(t *testing.T) {
	_, err := ParseHistogram(exposition, "apiserver_admission_webhook_admission_duration_seconds", map[string]string{"name": "absent"})
	if err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("err = %v, want one naming the missing series", err)
	}
	if q := (Histogram{}).Quantile(0.5); !math.IsNaN(q) {
		t.Errorf("quantile of an empty histogram = %v, want NaN", q)
	}
}

func TestParseCounter(t *testing.T) {
	const text = `# TYPE podgate_requests_total counter
podgate_requests_total{outcome="refreshed"} 2
podgate_requests_total{outcome="cookie"} 7
podgate_requests_total_other{outcome="refreshed"} 5
`
	for outcome, want := range map[string]float64{"refreshed": 2, "cookie": 7, "bearer": 0} {
		got, err := ParseCounter(text, "podgate_requests_total", map[string]string{"outcome": outcome})
		if err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", outcome, got, err, want)
		}
	}
	if _, err := ParseCounter("podgate_requests_total{outcome=\"x\"} nope\n", "podgate_requests_total", nil); err == nil {
		t.Error("a malformed value parsed")
	}
}
