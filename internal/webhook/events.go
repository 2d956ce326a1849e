package webhook

import (
	"context"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
)

// ReasonDenied is the Event reason on a workload whose pod the injector refused.
const ReasonDenied = "PodgateDenied"

// OwnerReader reads the controller reference of an intermediate owner (a ReplicaSet's Deployment,
// a Job's CronJob); nil when it has none or cannot be read.
type OwnerReader func(ctx context.Context, namespace string, ref metav1.OwnerReference) *metav1.OwnerReference

// WorkloadEvents records an Event on the workload that owns a denied pod. The API server's error
// reaches only whoever created the pod, which for a Deployment is the ReplicaSet controller: the
// person who applied the Deployment sees it in `kubectl describe deployment` this way.
type WorkloadEvents struct {
	Recorder record.EventRecorder
	Owner    OwnerReader
	// Timeout bounds the owner lookups; the Event is recorded after the admission answer.
	Timeout time.Duration
	Log     *zap.Logger
}

// Denied records message on pod's workload in the background (the admission answer never waits
// for it). A pod without a controller (a bare pod) has no workload to tell.
func (w *WorkloadEvents) Denied(pod *metav1.ObjectMeta, message string) {
	ctrl := metav1.GetControllerOfNoCopy(pod)
	if ctrl == nil {
		return
	}
	ref := *ctrl
	namespace := pod.Namespace
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), w.Timeout)
		defer cancel()
		target := w.workload(ctx, namespace, ref)
		w.Recorder.Event(&corev1.ObjectReference{APIVersion: target.APIVersion, Kind: target.Kind, Name: target.Name,
			Namespace: namespace, UID: target.UID}, corev1.EventTypeWarning, ReasonDenied, message)
		w.Log.Debug("event recorded on workload", zap.String("kind", target.Kind), zap.String("workload", target.Name))
	}()
}

// workload climbs from the pod's controller to the object a person manages: ReplicaSet →
// Deployment, Job → CronJob. Anything else (StatefulSet, DaemonSet, a custom controller) is that
// object already.
func (w *WorkloadEvents) workload(ctx context.Context, namespace string, ref metav1.OwnerReference) metav1.OwnerReference {
	switch {
	case ref.Kind == "ReplicaSet" && ref.APIVersion == "apps/v1", ref.Kind == "Job" && ref.APIVersion == "batch/v1":
		if up := w.Owner(ctx, namespace, ref); up != nil {
			return *up
		}
	}
	return ref
}
