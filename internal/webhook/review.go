package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
)

// The AdmissionReview transport. controller-runtime's admission.Webhook decodes a review in two
// passes (its universal deserializer reads the whole body once to find the kind, then decodes it,
// copying the object out as raw bytes) and builds a request-scoped logger for every review, used or
// not; the handler then decoded the pod from those bytes again. Decoding the review with the pod
// typed inside it takes one pass: 23 µs against 45 µs for a typical pod (BenchmarkDecodeReview), on
// a review that cost the injector 250–300 µs of CPU in all (docs/benchmarks.md, The AdmissionReview
// transport). The webhook server, its TLS and certificate reloading stay controller-runtime's.

// MaxReviewBytes bounds a review's body, as controller-runtime's admission webhook does and for its
// reason: the API server sends at most two objects of at most 3 MB each (etcd's request limit,
// doubled for JSON) and less than 1 MB besides. A bigger body is refused (413) unread.
const MaxReviewBytes = 7 << 20

// SmallReviewBytes is the largest review read without taking from the handler's budget for large
// ones (Handler.LargeReviews): a typical pod's review is 3 KB, a 20-container pod's 40 KB.
const SmallReviewBytes = 256 << 10

// DefaultReviewReadTimeout bounds the reading of a review's body: no API server waits longer for
// a webhook (timeoutSeconds is at most 30), so a body still arriving after that is a client
// holding memory, or a share of the large-review budget, for nothing.
const DefaultReviewReadTimeout = 30 * time.Second

// LargeReviewBudget is how many bytes of large reviews an injector reads and handles at once: an
// eighth of its container's memory limit (a review's body is decoded and copied by Inject, so it
// holds two to three times its size live: 64 reviews of 6 MiB at once peaked at 986 MiB of heap
// unbounded, 139 MiB within a 32 MiB budget), never less than one review of MaxReviewBytes; 32 MiB
// when the limit is unknown.
func LargeReviewBudget(memoryLimit int64) int64 {
	if memoryLimit <= 0 {
		return 32 << 20
	}
	return max(memoryLimit/8, MaxReviewBytes)
}

// reviewAPIVersion is the one AdmissionReview version the webhook configurations ask for
// (admissionReviewVersions: ["v1"]); the response carries the same.
const reviewAPIVersion = "admission.k8s.io/v1"

// Request is the part of an AdmissionRequest the handler reads, with the object decoded as a pod in
// the same pass as the review.
type Request struct {
	UID       types.UID               `json:"uid"`
	Kind      metav1.GroupVersionKind `json:"kind"`
	Namespace string                  `json:"namespace"`
	Name      string                  `json:"name"`
	Operation admissionv1.Operation   `json:"operation"`
	DryRun    *bool                   `json:"dryRun,omitempty"`
	// Pod is the request's object; nil when it carries none (or JSON null).
	Pod *corev1.Pod `json:"object"`
	// PodErr says why the object could not be decoded as a pod (Pod is then nil). It is reported
	// only once the kind and the operation are known to be a pod's creation.
	PodErr error `json:"-"`
}

func (r *Request) dryRun() bool { return r.DryRun != nil && *r.DryRun }

// ReviewError is a review the webhook cannot read: its HTTP status (400, 413) and why.
type ReviewError struct {
	Code int32
	Err  error
}

func (e *ReviewError) Error() string { return e.Err.Error() }
func (e *ReviewError) Unwrap() error { return e.Err }

// DecodeReview decodes an AdmissionReview of admission.k8s.io/v1 with its object as a pod. A
// review whose object is not a pod still decodes: its Request names the kind, and PodErr holds the
// pod decoder's error.
func DecodeReview(body []byte) (*Request, error) {
	var rev struct {
		metav1.TypeMeta `json:",inline"`
		Request         *Request `json:"request"`
	}
	// Case-sensitive, as the API server itself decodes JSON.
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &rev); err != nil {
		// Rare: either the review or the object is malformed. Decode the review with the object
		// left raw, to tell the two apart.
		return decodeReviewRaw(body)
	}
	if err := checkReview(rev.TypeMeta, rev.Request); err != nil {
		return nil, err
	}
	return rev.Request, nil
}

func decodeReviewRaw(body []byte) (*Request, error) {
	var rev struct {
		metav1.TypeMeta `json:",inline"`
		Request         *struct {
			Request
			Object json.RawMessage `json:"object"`
		} `json:"request"`
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &rev); err != nil {
		return nil, &ReviewError{Code: http.StatusBadRequest, Err: fmt.Errorf("decoding the AdmissionReview: %w", err)}
	}
	var req *Request
	if rev.Request != nil {
		req = &rev.Request.Request
	}
	if err := checkReview(rev.TypeMeta, req); err != nil {
		return nil, err
	}
	if obj := bytes.TrimSpace(rev.Request.Object); len(obj) > 0 && !bytes.Equal(obj, []byte("null")) {
		pod := &corev1.Pod{}
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(obj, pod); err != nil {
			req.PodErr = err
		} else {
			req.Pod = pod
		}
	}
	return req, nil
}

func checkReview(tm metav1.TypeMeta, req *Request) error {
	if tm.APIVersion != reviewAPIVersion || tm.Kind != "AdmissionReview" {
		return &ReviewError{Code: http.StatusBadRequest, Err: fmt.Errorf("want an AdmissionReview of %s, got apiVersion %q kind %q", reviewAPIVersion, tm.APIVersion, tm.Kind)}
	}
	if req == nil {
		return &ReviewError{Code: http.StatusBadRequest, Err: errors.New("the AdmissionReview carries no request")}
	}
	return nil
}

// ServeHTTP answers an AdmissionReview. Every answer is an AdmissionReview (a bad review's carries
// the error and its code, and is allowed=false), so the API server always has a decision to apply
// under the webhook's failurePolicy.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A review declared small is read at once. One declared large, or not declared (chunked), is
	// read and handled only within the budget, so that many at once (from any client that can
	// reach the port, not only the API server) cannot take the injector past its memory limit; one
	// declared over MaxReviewBytes is refused unread. One deadline bounds both the wait and the
	// read, because the server notices a client that left only once the body is read.
	timeout := h.ReadTimeout
	if timeout <= 0 {
		timeout = DefaultReviewReadTimeout
	}
	deadline := time.Now().Add(timeout)
	// Not supported by every ResponseWriter (tests'); the server's own timeouts still apply.
	_ = http.NewResponseController(w).SetReadDeadline(deadline)
	if n := r.ContentLength; h.LargeReviews != nil && (n < 0 || n > SmallReviewBytes && n <= MaxReviewBytes) {
		if n < 0 {
			n = MaxReviewBytes
		}
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		err := h.LargeReviews.Acquire(ctx, n)
		cancel()
		if err != nil {
			h.refuse(w, "busy", http.StatusServiceUnavailable, fmt.Errorf("too many large reviews at once; gave up waiting: %w", err),
				zap.Int64("contentLength", r.ContentLength), zap.Error(err))
			return
		}
		defer h.LargeReviews.Release(n)
	}
	req, err := readReview(r)
	if err != nil {
		var re *ReviewError
		if !errors.As(err, &re) {
			re = &ReviewError{Code: http.StatusBadRequest, Err: err}
		}
		h.refuse(w, "badReview", re.Code, re.Err, zap.Int32("code", re.Code), zap.Error(re.Err))
		return
	}
	writeReview(w, req.UID, h.handleRecovered(r, req))
}

// refuse answers a review the handler never saw (unread, or unreadable): counted as an error for
// reason, logged with fields, and refused with code and err.
func (h *Handler) refuse(w http.ResponseWriter, reason string, code int32, err error, fields ...zap.Field) {
	h.Metrics.Admissions.WithLabelValues(ResultError, reason).Inc()
	h.Log.Error("admission failed", append([]zap.Field{zap.String("reason", reason)}, fields...)...)
	writeReview(w, "", admission.Errored(code, err))
}

// handleRecovered is Handle, with a panic turned into an error answer: the pod is refused, never
// admitted unprotected, and the injector keeps serving.
func (h *Handler) handleRecovered(r *http.Request, req *Request) (resp admission.Response) {
	defer func() {
		if p := recover(); p != nil {
			h.Metrics.Admissions.WithLabelValues(ResultError, "panic").Inc()
			h.Log.Error("admission failed", zap.String("reason", "panic"), zap.String("uid", string(req.UID)), zap.Any("panic", p), zap.Stack("stack"))
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("panic: %v [recovered]", p))
		}
	}()
	return h.Handle(r.Context(), req)
}

func readReview(r *http.Request) (*Request, error) {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return nil, fmt.Errorf("content type %q, want application/json", ct)
	}
	if r.ContentLength > MaxReviewBytes {
		return nil, tooLarge()
	}
	var buf bytes.Buffer
	// Sized from the declared length, but never more than a typical review up front: a declared
	// length is a claim, not bytes received.
	buf.Grow(int(min(max(r.ContentLength, 0), 64<<10)) + bytes.MinRead)
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, MaxReviewBytes+1)); err != nil {
		return nil, fmt.Errorf("reading the request body: %w", err)
	}
	if buf.Len() > MaxReviewBytes {
		return nil, tooLarge()
	}
	if buf.Len() == 0 {
		return nil, errors.New("the request body is empty")
	}
	return DecodeReview(buf.Bytes())
}

func tooLarge() error {
	return &ReviewError{Code: http.StatusRequestEntityTooLarge, Err: fmt.Errorf("request entity is too large; limit is %d bytes", MaxReviewBytes)}
}

// writeReview writes resp as a v1 AdmissionReview in one write, with its length: the response is
// small, and a body written in pieces would be sent chunked.
func writeReview(w http.ResponseWriter, uid types.UID, resp admission.Response) {
	resp.UID = uid
	if resp.Result == nil {
		resp.Result = &metav1.Status{}
	}
	if resp.Result.Code == 0 {
		resp.Result.Code = http.StatusOK
	}
	encode := func(r *admissionv1.AdmissionResponse) ([]byte, error) {
		return json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: reviewAPIVersion, Kind: "AdmissionReview"},
			Response: r,
		})
	}
	b, err := encode(&resp.AdmissionResponse)
	if err != nil {
		// Only a value json cannot encode gets here; answer without it.
		failed := admission.Errored(http.StatusInternalServerError, fmt.Errorf("encoding the response: %w", err))
		failed.UID = uid
		b, _ = encode(&failed.AdmissionResponse)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}
