// Package webhook serves the pod mutation as a Kubernetes mutating admission webhook. The handler
// only translates: AdmissionRequest → inject.Inject → a patch computed from the typed objects.
package webhook

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podgate/podgate/internal/inject"
	"github.com/podgate/podgate/internal/jsonpatch"
)

// Path is where the API server sends pod admission reviews.
const Path = "/mutate-v1-pod"

// NamespaceGetter reads a Namespace (its labels and annotations hold per-namespace defaults). The
// AdmissionRequest does not carry it.
type NamespaceGetter func(ctx context.Context, name string) (*corev1.Namespace, error)

// Results, the "result" label of the admissions counter.
const (
	ResultInjected = "injected"
	ResultSkipped  = "skipped"
	ResultDenied   = "denied"
	ResultError    = "error"
)

// Metrics counts admissions by result and reason, so "why was my pod not injected" has an answer
// on a dashboard as well as in the log.
type Metrics struct {
	Admissions *prometheus.CounterVec
	Duration   prometheus.Histogram
}

// NewMetrics registers the injector's metrics on reg, every skip reason initialised at zero.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podgate_injector_admissions_total",
			Help: "Pod admission reviews by result (injected, skipped, denied, error) and reason.",
		}, []string{"result", "reason"}),
		Duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "podgate_injector_admission_duration_seconds",
			Help:    "Time to answer a pod admission review, namespace lookup included.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 2.5},
		}),
	}
	for _, r := range inject.SkipReasons {
		m.Admissions.WithLabelValues(ResultSkipped, string(r))
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Admissions, m.Duration} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Handler answers pod AdmissionReviews (ServeHTTP, review.go) with Inject's mutation.
type Handler struct {
	Config     *inject.Config
	Namespaces NamespaceGetter
	// NamespaceTimeout bounds the namespace read so the API server's webhook timeout (≤ 5 s) is
	// never the one that fires.
	NamespaceTimeout time.Duration
	Log              *zap.Logger
	Metrics          *Metrics
	// Events, when set, records each denial on the pod's workload (never for a dry run).
	Events *WorkloadEvents
	// LargeReviews, when set, bounds the bytes of reviews over SmallReviewBytes (or of unknown
	// length, counted as MaxReviewBytes) that are read and handled at once; others wait their
	// turn, in order, for as long as their client does (LargeReviewBudget sizes it).
	LargeReviews *semaphore.Weighted
	// ReadTimeout bounds the reading of a review's body (0: DefaultReviewReadTimeout).
	ReadTimeout time.Duration
}

// Handle never panics on bad input (controller-runtime recovers too, but a clear answer is
// better): every path returns a response that says what happened.
func (h *Handler) Handle(ctx context.Context, req *Request) admission.Response {
	start := time.Now()
	log := &reviewLog{log: h.Log, fields: append(make([]zap.Field, 0, 8), zap.String("namespace", req.Namespace), zap.String("name", req.Name),
		zap.String("uid", string(req.UID)), zap.Bool("dryRun", req.dryRun()))}
	resp, result, reason := h.handle(ctx, req, log)
	h.Metrics.Admissions.WithLabelValues(result, reason).Inc()
	h.Metrics.Duration.Observe(time.Since(start).Seconds())
	switch result {
	case ResultInjected:
		log.Info("pod injected")
	case ResultSkipped:
		log.Info("pod skipped", zap.String("reason", reason))
	case ResultDenied:
		log.Info("pod denied", zap.String("reason", reason), zap.String("message", resp.Result.Message))
		h.recordDenied(req, resp.Result.Message)
	default:
		log.Error("admission failed", zap.String("reason", reason), zap.String("message", resp.Result.Message))
	}
	return resp
}

func (h *Handler) recordDenied(req *Request, message string) {
	// A denied pod was decodable: its owner references are all that is needed.
	if h.Events == nil || req.dryRun() || req.Pod == nil {
		return
	}
	meta := req.Pod.ObjectMeta
	if meta.Namespace == "" {
		meta.Namespace = req.Namespace
	}
	h.Events.Denied(&meta, message)
}

// reviewLog is the one log line of a review: its fields are passed to that one call rather than
// bound with Logger.With, which copies the encoder and encodes them for a logger used once (half
// the cost of the line).
type reviewLog struct {
	log    *zap.Logger
	fields []zap.Field
}

func (l *reviewLog) with(f zap.Field) { l.fields = append(l.fields, f) }

func (l *reviewLog) Info(msg string, fs ...zap.Field) { l.log.Info(msg, append(l.fields, fs...)...) }

func (l *reviewLog) Error(msg string, fs ...zap.Field) { l.log.Error(msg, append(l.fields, fs...)...) }

func (h *Handler) handle(ctx context.Context, req *Request, log *reviewLog) (admission.Response, string, string) {
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("podgate injects pods only, got kind %q", req.Kind.String())), ResultError, "wrongKind"
	}
	if req.Operation != admissionv1.Create {
		return admission.Allowed("podgate injects on CREATE only"), ResultSkipped, "notCreate"
	}
	if req.PodErr != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the pod: %w", req.PodErr)), ResultError, "undecodable"
	}
	if req.Pod == nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("the request carries no pod object")), ResultError, "noObject"
	}
	pod := req.Pod
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	if pod.Name == "" && pod.GenerateName != "" {
		log.with(zap.String("generateName", pod.GenerateName))
	}
	reason, err := inject.Decide(pod)
	if err != nil {
		return admission.Denied(err.Error()), ResultDenied, "invalid"
	}
	if reason != "" {
		return admission.Allowed(reason.Explain()), ResultSkipped, string(reason)
	}
	nsCtx, cancel := context.WithTimeout(ctx, h.NamespaceTimeout)
	defer cancel()
	ns, err := h.Namespaces(nsCtx, pod.Namespace)
	if err != nil {
		// Fail closed: the namespace may hold the pod's configuration.
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading namespace %q: %w", pod.Namespace, err)), ResultError, "namespaceUnavailable"
	}
	// The API server gives up after the webhook's timeout; work for a request nobody awaits any
	// more is skipped (here, and before the patch is computed, the other step that grows with the
	// pod's size).
	if err := ctx.Err(); err != nil {
		return admission.Errored(http.StatusServiceUnavailable, fmt.Errorf("the API server gave up on the request: %w", err)), ResultError, "cancelled"
	}
	out, rep, err := inject.Inject(pod, ns, h.Config)
	if err != nil {
		if _, ok := inject.AsError(err); ok {
			return admission.Denied(err.Error()), ResultDenied, "invalid"
		}
		return admission.Errored(http.StatusInternalServerError, err), ResultError, "injectFailed"
	}
	if rep.Skipped != "" {
		return admission.Allowed(rep.Skipped.Explain()), ResultSkipped, string(rep.Skipped)
	}
	if err := ctx.Err(); err != nil {
		return admission.Errored(http.StatusServiceUnavailable, fmt.Errorf("the API server gave up on the request: %w", err)), ResultError, "cancelled"
	}
	// The patch is the difference between the typed pod before and after, computed on the typed
	// values (fields this build's API types do not know are then never touched by the patch).
	patch, err := jsonpatch.Diff(pod, out)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err), ResultError, "encode"
	}
	return patchResponse(patch).WithWarnings(rep.Warnings...), ResultInjected, ""
}

// patchResponse allows the pod with patch, a JSON Patch (none when nil). It is set as the
// response's bytes, which controller-runtime sends as they are.
func patchResponse(patch []byte) admission.Response {
	r := admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true, Patch: patch}}
	if patch != nil {
		pt := admissionv1.PatchTypeJSONPatch
		r.PatchType = &pt
	}
	return r
}
