package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podgate/podgate/internal/inject"
	"github.com/podgate/podgate/internal/inject/injecttest"
	"github.com/podgate/podgate/internal/jsonpatch"
)

func benchReview(n int) []byte {
	pod := typicalPod("")
	pod.Spec.Containers = injecttest.Containers(n)
	return review(admissionv1.Create, "Pod", mustJSON(pod), false)
}

// BenchmarkServe measures a whole review in process, as ServeHTTP answers it: decoding the review
// with its pod, the namespace from memory, Inject, the JSON patch and the encoded answer (no TLS, no
// socket).
func BenchmarkServe(b *testing.B) {
	m, _ := NewMetrics(nil)
	h := &Handler{Config: testConfig(), Namespaces: namespaces, NamespaceTimeout: 1e9, Log: zap.NewNop(), Metrics: m}
	for _, n := range []int{1, 20} {
		body := benchReview(n)
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"patch"`)) {
					b.Fatalf("%d %s", w.Code, w.Body.Bytes())
				}
			}
		})
	}
}

// BenchmarkDecodeReview compares DecodeReview (one pass, the pod typed inside the review) with
// what controller-runtime's admission webhook did before the handler ran, plus the handler's own
// decoding of the pod from the raw object: the baseline in the same run.
func BenchmarkDecodeReview(b *testing.B) {
	scheme := runtime.NewScheme()
	if err := admissionv1.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	codecs := serializer.NewCodecFactory(scheme)
	for _, n := range []int{1, 20} {
		body := benchReview(n)
		b.Run(fmt.Sprintf("containers=%d/typed", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if req, err := DecodeReview(body); err != nil || req.Pod == nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("containers=%d/controller-runtime", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var rev admissionv1.AdmissionReview
				rev.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
				if _, _, err := codecs.UniversalDeserializer().Decode(body, nil, &rev); err != nil {
					b.Fatal(err)
				}
				var p corev1.Pod
				if err := json.Unmarshal(rev.Request.Object.Raw, &p); err != nil {
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
		req, err := DecodeReview(benchReview(n))
		if err != nil {
			b.Fatal(err)
		}
		pod := *req.Pod
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
