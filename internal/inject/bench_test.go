package inject

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// benchPod has n app containers, each with a named port and an HTTP readiness probe on it.
func benchPod(n int) *corev1.Pod {
	p := validPod()
	p.Spec.Containers = nil
	for i := 0; i < n; i++ {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
			Name: fmt.Sprintf("c%d", i), Image: "example/app:1",
			Ports: []corev1.ContainerPort{{Name: fmt.Sprintf("http-%d", i), ContainerPort: int32(8000 + i)}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/ready", Port: intstr.FromString(fmt.Sprintf("http-%d", i))}}},
		})
	}
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
