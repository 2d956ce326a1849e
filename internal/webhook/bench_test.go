package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"go.uber.org/zap"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podgate/podgate/internal/inject"
	"github.com/podgate/podgate/internal/inject/injecttest"
	"github.com/podgate/podgate/internal/jsonpatch"
)

func benchRequest(n int) admission.Request {
	pod := typicalPod("")
	pod.Spec.Containers = injecttest.Containers(n)
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(review(admissionv1.Create, "Pod", mustJSON(pod), false), &r); err != nil {
		panic(err)
	}
	return admission.Request{AdmissionRequest: *r.Request}
}

// BenchmarkHandle measures the handler in process (decode, namespace lookup from memory, Inject,
// marshal twice, JSON patch). BenchmarkDecodeOnly, the baseline in the same run, only decodes the
// pod, which any webhook must do.
func BenchmarkHandle(b *testing.B) {
	m, _ := NewMetrics(nil)
	h := &Handler{Config: testConfig(), Namespaces: namespaces, NamespaceTimeout: 1e9, Log: zap.NewNop(), Metrics: m}
	for _, n := range []int{1, 20} {
		req := benchRequest(n)
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := h.Handle(context.Background(), req); !r.Allowed || len(r.Patch) == 0 {
					b.Fatalf("%+v", r.Result)
				}
			}
		})
	}
}

func BenchmarkDecodeOnly(b *testing.B) {
	for _, n := range []int{1, 20} {
		req := benchRequest(n)
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var p corev1.Pod
				if err := json.Unmarshal(req.Object.Raw, &p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPatch compares the patch as the handler computes it (jsonpatch.Diff on the typed pods)
// with marshalling both pods and diffing the documents (controller-runtime's PatchResponseFromRaw
// and the encoding of its operations), the baseline in the same run.
func BenchmarkPatch(b *testing.B) {
	for _, n := range []int{1, 20} {
		var pod corev1.Pod
		if err := json.Unmarshal(benchRequest(n).Object.Raw, &pod); err != nil {
			b.Fatal(err)
		}
		pod.Namespace = "shop"
		out, _, err := inject.Inject(&pod, must(namespaces(context.Background(), "shop")), testConfig())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("containers=%d/typed", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if p, err := jsonpatch.Diff(&pod, out); err != nil || len(p) == 0 {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("containers=%d/marshal-and-diff", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				before, _ := json.Marshal(&pod)
				after, _ := json.Marshal(out)
				r := admission.PatchResponseFromRaw(before, after)
				if err := r.Complete(admission.Request{}); err != nil || len(r.Patch) == 0 {
					b.Fatal(err)
				}
			}
		})
	}
}
