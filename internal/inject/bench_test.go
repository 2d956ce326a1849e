package inject

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/podgate/podgate/internal/inject/injecttest"
)

// benchPod has n app containers, each with a named port and an HTTP readiness probe on it.
func benchPod(n int) *corev1.Pod {
	p := validPod()
	p.Spec.Containers = injecttest.Containers(n)
	return p
}

// BenchmarkInject measures the pure mutation; BenchmarkDeepCopy is the baseline in the same run
// (copying the pod is the least any non-destructive mutation must do).
func BenchmarkInject(b *testing.B) {
	cfg := testConfig()
	ns := enabledNS(nil)
	for _, n := range []int{1, 20} {
		pod := benchPod(n)
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Inject(pod, ns, cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	skip := benchPod(1)
	skip.Annotations = nil
	b.Run("skip", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Inject(skip, ns, cfg)
		}
	})
}

func BenchmarkDeepCopy(b *testing.B) {
	for _, n := range []int{1, 20} {
		pod := benchPod(n)
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = pod.DeepCopy()
			}
		})
	}
}
