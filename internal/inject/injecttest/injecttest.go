// Package injecttest holds pod fixtures shared by the injector's tests and benchmarks, so the
// mutation and the webhook handler are measured on the same pods.
package injecttest

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Containers returns n app containers, each with a named port and an HTTP readiness probe on that
// port: the work per container the injector does (a port taken over, a probe rewritten).
func Containers(n int) []corev1.Container {
	cs := make([]corev1.Container, 0, n)
	for i := 0; i < n; i++ {
		port := fmt.Sprintf("http-%d", i)
		cs = append(cs, corev1.Container{
			Name: fmt.Sprintf("c%d", i), Image: "example/app:1",
			Ports: []corev1.ContainerPort{{Name: port, ContainerPort: int32(8000 + i)}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/ready", Port: intstr.FromString(port)}}},
		})
	}
	return cs
}
