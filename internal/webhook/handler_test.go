package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podgate/podgate/internal/inject"
)

func testConfig() *inject.Config {
	c := inject.DefaultConfig()
	c.Image = "ghcr.io/podgate/sidecar:test"
	c.IssuerURL = "https://keycloak.example.com/realms/demo"
	c.ClientID = "demo"
	return &c
}

// namespaces is an in-memory NamespaceGetter: "shop" is enabled, "plain" is not, "broken" fails.
func namespaces(_ context.Context, name string) (*corev1.Namespace, error) {
	switch name {
	case "shop":
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{inject.LabelInjection: "enabled"},
			Annotations: map[string]string{inject.AnnotationAllowedGroups: "/shoppers"}}}, nil
	case "plain":
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil
	}
	return nil, errors.New("namespace lookup failed")
}

// newServer serves the real handler through controller-runtime's admission webhook, over HTTP.
func newServer(t testing.TB) (*httptest.Server, *Metrics) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Config: testConfig(), Namespaces: namespaces, NamespaceTimeout: 1e9, Log: zap.NewNop(), Metrics: m}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, m
}

func typicalPod(ns string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Namespace: ns, Annotations: map[string]string{inject.AnnotationInject: "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "web", Image: "example/web:1",
			Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}}},
		}}},
	}
}

func review(op admissionv1.Operation, kind string, obj []byte, dryRun bool) []byte {
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("uid-1"), Kind: metav1.GroupVersionKind{Version: "v1", Kind: kind},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "shop",
			Operation: op, Object: runtime.RawExtension{Raw: obj}, DryRun: &dryRun,
		},
	}
	b, _ := json.Marshal(r)
	return b
}

func post(t testing.TB, srv *httptest.Server, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	resp, err := http.Post(srv.URL+Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &out); err != nil || out.Response == nil {
		t.Fatalf("not an AdmissionReview (status %d): %s", resp.StatusCode, b)
	}
	return out.Response
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func TestInjectsOverHTTP(t *testing.T) {
	srv, m := newServer(t)
	pod := typicalPod("")
	raw := mustJSON(pod)
	for _, dry := range []bool{false, true} {
		r := post(t, srv, review(admissionv1.Create, "Pod", raw, dry))
		if !r.Allowed || r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch || r.UID != "uid-1" {
			t.Fatalf("dryRun=%v: response %+v", dry, r)
		}
		patch, err := jsonpatch.DecodePatch(r.Patch)
		if err != nil {
			t.Fatal(err)
		}
		patched, err := patch.Apply(raw)
		if err != nil {
			t.Fatalf("patch does not apply to the original object: %v\n%s", err, r.Patch)
		}
		var got corev1.Pod
		if err := json.Unmarshal(patched, &got); err != nil {
			t.Fatal(err)
		}
		// The patch must produce exactly what the pure function produces (namespace from the request).
		pod.Namespace = "shop"
		want, _, err := inject.Inject(pod, must(namespaces(context.Background(), "shop")), testConfig())
		if err != nil {
			t.Fatal(err)
		}
		want.Namespace = ""
		if !bytes.Equal(mustJSON(want), mustJSON(&got)) {
			t.Fatalf("patched pod differs from Inject's:\n got %s\nwant %s", mustJSON(&got), mustJSON(want))
		}
		if !strings.Contains(strings.Join(got.Spec.InitContainers[0].Args, " "), "--allowed-group=/shoppers") {
			t.Fatalf("namespace annotation not applied: %q", got.Spec.InitContainers[0].Args)
		}
		pod = typicalPod("")
	}
	// Without capture an unnamed port is reachable by number: both reach the user as warnings.
	unnamed := typicalPod("")
	unnamed.Annotations[inject.AnnotationCapture] = "none"
	unnamed.Spec.Containers[0].Ports[0].Name = ""
	unnamed.Spec.Containers[0].ReadinessProbe = nil
	r := post(t, srv, review(admissionv1.Create, "Pod", mustJSON(unnamed), false))
	if !r.Allowed || len(r.Warnings) != 2 || !strings.Contains(strings.Join(r.Warnings, "\n"), "targetPort: http-8080") {
		t.Fatalf("no warning about the unnamed port: %+v", r.Warnings)
	}
	if n := testutil.ToFloat64(m.Admissions.WithLabelValues(ResultInjected, "")); n != 3 {
		t.Fatalf("injected counter = %v", n)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestBadRequests: every malformed or unexpected request gets a clear AdmissionReview answer.
func TestBadRequests(t *testing.T) {
	srv, m := newServer(t)
	pod := typicalPod("")
	plain := typicalPod("")
	plain.Annotations = nil
	optedOut := typicalPod("")
	optedOut.Annotations[inject.AnnotationInject] = "false"
	badAnn := typicalPod("")
	badAnn.Annotations[inject.AnnotationCookieSecure] = "maybe"
	badAnn.Annotations[inject.AnnotationPorts] = "nope"
	huge := typicalPod("")
	huge.Annotations["example.com/blob"] = strings.Repeat("x", 3<<20)
	for _, tc := range []struct {
		name    string
		body    []byte
		allowed bool
		code    int32
		msg     string
	}{
		{"malformed review", []byte(`{"apiVersion":`), false, 400, ""},
		{"malformed pod", review(admissionv1.Create, "Pod", []byte(`{"spec":{"containers":"nope"}}`), false), false, 400, "decoding the pod"},
		{"wrong kind", review(admissionv1.Create, "Service", mustJSON(pod), false), false, 400, "pods only"},
		{"empty object", review(admissionv1.Create, "Pod", nil, false), false, 400, "no pod object"},
		{"empty pod", review(admissionv1.Create, "Pod", []byte(`{}`), false), true, 0, "neither the annotation"},
		{"json null", review(admissionv1.Create, "Pod", []byte(`null`), false), false, 400, "no pod object"},
		{"delete", review(admissionv1.Delete, "Pod", nil, false), true, 0, "CREATE only"},
		{"update", review(admissionv1.Update, "Pod", mustJSON(pod), false), true, 0, "CREATE only"},
		{"not opted in", review(admissionv1.Create, "Pod", mustJSON(plain), false), true, 0, "neither"},
		{"opted out", review(admissionv1.Create, "Pod", mustJSON(optedOut), false), true, 0, "=false"},
		{"invalid annotations", review(admissionv1.Create, "Pod", mustJSON(badAnn), false), false, 403, `annotation "podgate.io/cookie-secure": value "maybe"`},
		{"huge pod", review(admissionv1.Create, "Pod", mustJSON(huge), false), true, 0, ""},
		{"too large", review(admissionv1.Create, "Pod", []byte(`{"x":"`+strings.Repeat("y", 8<<20)+`"}`), false), false, 413, "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, srv, tc.body)
			if r.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v: %+v", r.Allowed, tc.allowed, r.Result)
			}
			if tc.code != 0 && (r.Result == nil || r.Result.Code != tc.code) {
				t.Fatalf("result %+v, want code %d", r.Result, tc.code)
			}
			if tc.msg != "" && (r.Result == nil || !strings.Contains(r.Result.Message, tc.msg)) {
				t.Fatalf("message %+v does not contain %q", r.Result, tc.msg)
			}
			if badAnn := tc.name == "invalid annotations"; badAnn && !strings.Contains(r.Result.Message, inject.AnnotationPorts) {
				t.Fatalf("not every problem listed: %s", r.Result.Message)
			}
		})
	}
	if n := testutil.ToFloat64(m.Admissions.WithLabelValues(ResultSkipped, string(inject.SkipOptedOut))); n != 1 {
		t.Fatalf("optedOut counter = %v", n)
	}
	if n := testutil.ToFloat64(m.Admissions.WithLabelValues(ResultDenied, "invalid")); n != 1 {
		t.Fatalf("denied counter = %v", n)
	}
}

func TestNamespaceHandling(t *testing.T) {
	srv, m := newServer(t)
	for _, tc := range []struct {
		ns      string
		allowed bool
		msg     string
	}{
		{"plain", true, "not labelled"},
		{"broken", false, `reading namespace "broken"`},
	} {
		pod := typicalPod(tc.ns)
		r := post(t, srv, review(admissionv1.Create, "Pod", mustJSON(pod), false))
		if r.Allowed != tc.allowed || r.Patch != nil || !strings.Contains(r.Result.Message, tc.msg) {
			t.Fatalf("namespace %s: %+v %+v", tc.ns, r, r.Result)
		}
	}
	if n := testutil.ToFloat64(m.Admissions.WithLabelValues(ResultError, "namespaceUnavailable")); n != 1 {
		t.Fatalf("error counter = %v", n)
	}
}

// FuzzHandler feeds arbitrary pod JSON through the real handler: it must always answer with an
// AdmissionReview and never panic; when it allows with a patch, the patch must apply.
func FuzzHandler(f *testing.F) {
	srv, _ := newServer(f)
	f.Add(mustJSON(typicalPod("")))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"metadata":{"annotations":{"podgate.io/inject":"true"}},"spec":{"containers":[{"name":"a","ports":[{"containerPort":4190}]}]}}`))
	f.Add([]byte(`{"metadata":{"labels":{"podgate.io/inject":"true"},"annotations":{"podgate.io/ports":"x,1"}},"spec":{"hostNetwork":true,"containers":[{"name":"a","livenessProbe":{"grpc":{"port":1}},"ports":[{"name":"x","containerPort":1,"protocol":"UDP"}]}]}}`))
	f.Fuzz(func(t *testing.T, obj []byte) {
		body := review(admissionv1.Create, "Pod", obj, false)
		resp, err := http.Post(srv.URL+Path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(b, &out); err != nil || out.Response == nil {
			t.Fatalf("no AdmissionReview for %q: %s", obj, b)
		}
		if r := out.Response; r.Allowed && len(r.Patch) > 0 {
			p, err := jsonpatch.DecodePatch(r.Patch)
			if err != nil {
				t.Fatalf("bad patch: %v", err)
			}
			if _, err := p.Apply(obj); err != nil {
				// The typed round trip may normalise the input (e.g. duplicate keys); the patch
				// must still apply to the normalised form.
				var pod corev1.Pod
				if json.Unmarshal(obj, &pod) == nil {
					if _, err2 := p.Apply(mustJSON(&pod)); err2 != nil {
						t.Fatalf("patch does not apply: %v / %v", err, err2)
					}
				}
			}
		}
	})
}

// TestCancelledRequestNotWorkedOn: once the API server has given up (the request's context is
// done), the handler does no mutation and no patch for it.
func TestCancelledRequestNotWorkedOn(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Config: testConfig(), Namespaces: namespaces, NamespaceTimeout: 1e9, Log: zap.NewNop(), Metrics: m}
	raw, _ := json.Marshal(typicalPod("shop"))
	req, err := DecodeReview(review(admissionv1.Create, "Pod", raw, false))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	resp := h.Handle(ctx, req)
	if resp.Allowed || len(resp.Patch) != 0 || resp.Result == nil || resp.Result.Code != http.StatusServiceUnavailable {
		t.Fatalf("cancelled request: allowed=%v patch=%s result=%+v", resp.Allowed, resp.Patch, resp.Result)
	}
	if got := testutil.ToFloat64(m.Admissions.WithLabelValues(ResultError, "cancelled")); got != 1 {
		t.Errorf("cancelled admissions counted %v, want 1", got)
	}
}

// TestReviewTransport: what reaches the webhook that is not a well-formed v1 AdmissionReview of
// JSON gets an AdmissionReview refusing it, with the code and the reason; a panic in the handler
// refuses the pod rather than crash the injector or admit the pod unprotected.
func TestReviewTransport(t *testing.T) {
	srv, m := newServer(t)
	send := func(t *testing.T, contentType string, body io.Reader, length int64) (*http.Response, *admissionv1.AdmissionResponse) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+Path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = length
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(b, &out); err != nil || out.Response == nil || out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" {
			t.Fatalf("not a v1 AdmissionReview (status %d): %s", resp.StatusCode, b)
		}
		return resp, out.Response
	}
	good := review(admissionv1.Create, "Pod", mustJSON(typicalPod("")), false)
	v1beta1 := bytes.Replace(good, []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v1beta1"`), 1)
	capitalised := bytes.Replace(good, []byte(`"request"`), []byte(`"Request"`), 1)
	huge := append(append([]byte(`{"x":"`), bytes.Repeat([]byte("y"), MaxReviewBytes)...), `"}`...)
	for _, tc := range []struct {
		name        string
		contentType string
		body        []byte
		chunked     bool
		code        int32
		msg         string
	}{
		{"wrong content type", "text/plain", good, false, 400, `content type "text/plain"`},
		{"empty body", "application/json", nil, false, 400, "body is empty"},
		{"v1beta1 review", "application/json", v1beta1, false, 400, `apiVersion "admission.k8s.io/v1beta1"`},
		{"no request", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), false, 400, "no request"},
		{"keys are case-sensitive", "application/json", capitalised, false, 400, "no request"},
		{"too large, declared", "application/json", huge, false, 413, "too large"},
		{"too large, chunked", "application/json", huge, true, 413, "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			length := int64(len(tc.body))
			if tc.chunked {
				length = -1
			}
			var body io.Reader = bytes.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length from the client
			}
			_, r := send(t, tc.contentType, body, length)
			if r.Allowed || r.Result == nil || r.Result.Code != tc.code || !strings.Contains(r.Result.Message, tc.msg) {
				t.Fatalf("got %+v, want code %d and %q", r.Result, tc.code, tc.msg)
			}
		})
	}
	if n := testutil.ToFloat64(m.Admissions.WithLabelValues(ResultError, "badReview")); n != 7 {
		t.Errorf("badReview counter = %v, want 7", n)
	}

	t.Run("answered in one piece", func(t *testing.T) {
		resp, r := send(t, "application/json", bytes.NewReader(good), int64(len(good)))
		if !r.Allowed || r.UID != "uid-1" || r.Result == nil || r.Result.Code != 200 || resp.ContentLength <= 0 || len(resp.TransferEncoding) != 0 {
			t.Fatalf("response %+v, length %d, transfer encoding %v", r, resp.ContentLength, resp.TransferEncoding)
		}
	})

	t.Run("panic", func(t *testing.T) {
		pm, _ := NewMetrics(prometheus.NewRegistry())
		h := &Handler{Config: testConfig(), NamespaceTimeout: 1e9, Log: zap.NewNop(), Metrics: pm,
			Namespaces: func(context.Context, string) (*corev1.Namespace, error) { panic("boom") }}
		psrv := httptest.NewServer(h)
		defer psrv.Close()
		r := post(t, psrv, good)
		if r.Allowed || r.UID != "uid-1" || r.Result == nil || r.Result.Code != 500 || !strings.Contains(r.Result.Message, "boom") {
			t.Fatalf("panic answered with %+v", r)
		}
		if n := testutil.ToFloat64(pm.Admissions.WithLabelValues(ResultError, "panic")); n != 1 {
			t.Errorf("panic counter = %v", n)
		}
		// Still serving.
		if r := post(t, srv, good); !r.Allowed {
			t.Fatalf("after a panic: %+v", r.Result)
		}
	})
}

// TestLargeReviewBudget: reviews over SmallReviewBytes, or of unknown length, are read and handled
// within the byte budget, in turn; small ones never wait for it; a client that stops sending its
// body is cut off after ReadTimeout and gives its share back.
func TestLargeReviewBudget(t *testing.T) {
	m, _ := NewMetrics(prometheus.NewRegistry())
	h := &Handler{Config: testConfig(), Namespaces: namespaces, NamespaceTimeout: 1e9, Log: zap.NewNop(), Metrics: m,
		LargeReviews: semaphore.NewWeighted(MaxReviewBytes), ReadTimeout: 2 * time.Second}
	srv := httptest.NewServer(h)
	defer srv.Close()
	bigPod := typicalPod("")
	bigPod.Annotations["example.com/blob"] = strings.Repeat("x", 2*SmallReviewBytes)
	big := review(admissionv1.Create, "Pod", mustJSON(bigPod), false)
	small := review(admissionv1.Create, "Pod", mustJSON(typicalPod("")), false)
	counted := func(reason string, want float64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for testutil.ToFloat64(m.Admissions.WithLabelValues(ResultError, reason)) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s counted %v, want %v", reason, testutil.ToFloat64(m.Admissions.WithLabelValues(ResultError, reason)), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// held waits until the budget is taken (a one-byte share cannot be had).
	held := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for h.LargeReviews.TryAcquire(1) {
			h.LargeReviews.Release(1)
			if time.Now().After(deadline) {
				t.Fatal("the chunked review never took the budget")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// A: a large review sent chunked, half of it, then held.
	pr, pw := io.Pipe()
	done := make(chan *admissionv1.AdmissionResponse, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+Path, pr)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- nil
			return
		}
		defer resp.Body.Close()
		var out admissionv1.AdmissionReview
		_ = json.NewDecoder(resp.Body).Decode(&out)
		done <- out.Response
	}()
	if _, err := pw.Write(big[:len(big)/2]); err != nil {
		t.Fatal(err)
	}
	held()

	// B: another large one waits its turn.
	waited := make(chan *admissionv1.AdmissionResponse, 1)
	go func() { waited <- post(t, srv, big) }()
	// C: a small one is answered meanwhile.
	if r := post(t, srv, small); !r.Allowed || len(r.Patch) == 0 {
		t.Fatalf("small review while the budget is taken: %+v", r.Result)
	}
	select {
	case r := <-waited:
		t.Fatalf("a second large review was answered while the budget was taken: %+v", r.Result)
	case <-time.After(300 * time.Millisecond):
	}
	// A completes; then B.
	if _, err := pw.Write(big[len(big)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if r := <-done; r == nil || !r.Allowed || len(r.Patch) == 0 {
		t.Fatalf("the held review: %+v", r)
	}
	if r := <-waited; !r.Allowed || len(r.Patch) == 0 {
		t.Fatalf("the waiting review: %+v", r.Result)
	}

	// A large review that cannot get its share within ReadTimeout is refused (503), not left
	// waiting.
	if err := h.LargeReviews.Acquire(context.Background(), MaxReviewBytes); err != nil {
		t.Fatal(err)
	}
	if r := post(t, srv, big); r.Allowed || r.Result == nil || r.Result.Code != http.StatusServiceUnavailable || !strings.Contains(r.Result.Message, "too many large reviews") {
		t.Fatalf("large review with no budget left: %+v", r.Result)
	}
	counted("busy", 1)
	h.LargeReviews.Release(MaxReviewBytes)

	// D: a client that stops sending is cut off after ReadTimeout, and its share comes back.
	pr2, pw2 := io.Pipe()
	defer pw2.Close()
	go func() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+Path, pr2)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	if _, err := pw2.Write(big[:100]); err != nil {
		t.Fatal(err)
	}
	held()
	counted("badReview", 1)
	if !h.LargeReviews.TryAcquire(MaxReviewBytes) {
		t.Fatal("the budget was not given back after the read timed out")
	}
	h.LargeReviews.Release(MaxReviewBytes)
}

func TestLargeReviewBudgetSize(t *testing.T) {
	for limit, want := range map[int64]int64{0: 32 << 20, 256 << 20: 32 << 20, 1 << 30: 128 << 20, 16 << 20: MaxReviewBytes} {
		if got := LargeReviewBudget(limit); got != want {
			t.Errorf("LargeReviewBudget(%d) = %d, want %d", limit, got, want)
		}
	}
}
