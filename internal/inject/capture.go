package inject

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podgate/podgate/internal/capture"
)

// CaptureInitName is init mode's first init container.
const CaptureInitName = "podgate-capture"

// LabelPSAEnforce is Pod Security Admission's namespace label; init mode reads it to deny, at
// admission and with a reason, a pod that Pod Security would reject for its NET_ADMIN.
const LabelPSAEnforce = "pod-security.kubernetes.io/enforce"

// planCapture checks that the pod's capture mode can work here and reserves the check port: a
// port with no listener that the capture rules redirect to the admin port. The sidecar's startup
// probe goes through it, so without the rules in place the sidecar never starts and, as a native
// sidecar, holds the app back: a pod whose capture is missing never serves its app.
func (in *injection) planCapture(ns *corev1.Namespace) {
	s := in.s
	src := s.source[AnnotationCapture]
	if src == "" {
		src = fromConfig
	}
	switch s.capture {
	case capture.ModeNone:
		in.warnings = append(in.warnings, fmt.Sprintf("podgate: %s is none: nothing captures the protected ports, so the pod IP "+
			"and a Service with a numeric targetPort reach the app without authentication; use cni or init", AnnotationCapture))
		return
	case capture.ModeCNI:
		// A regular sidecar container starts next to the app, so the failing check could not hold the
		// app back: the app would serve on its own port while the capture is missing.
		if !s.native {
			in.ps.add(AnnotationCapture, src, string(s.capture), "needs the native sidecar (%s: \"true\", Kubernetes ≥ 1.29): "+
				"with a regular sidecar container the app would start before capture is checked; enable the native sidecar or use capture init",
				AnnotationNativeSidecar)
		}
	case capture.ModeInit:
		if ns != nil {
			if level := ns.Labels[LabelPSAEnforce]; level == "baseline" || level == "restricted" {
				in.ps.add(AnnotationCapture, src, string(s.capture), "needs an init container with the NET_ADMIN capability, which the "+
					"namespace's Pod Security level %q (label %s) forbids; use capture cni (the podgate-cni node agent) here, "+
					"or a namespace at level privileged", level, LabelPSAEnforce)
			}
		}
	}
	next := in.cfg.ProxyPortBase
	if port, ok := in.allocateProxyPort(&next); ok {
		in.checkPort = port
	}
}

// checkProbe is the sidecar's startup probe in a captured pod: /ping through the check port.
func (in *injection) checkProbe() *corev1.Probe {
	if in.checkPort == 0 {
		return nil
	}
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: capture.CheckPath,
			Port: intstr.FromInt32(in.checkPort), Scheme: corev1.URISchemeHTTP}},
		PeriodSeconds: 1, FailureThreshold: 60, TimeoutSeconds: 1,
	}
}

// captureInit is init mode's container: the sidecar image programming the rules from the pod's own
// status (downward API). NET_ADMIN is the one capability it has; nftables needs it and root (a
// non-root process loses added capabilities at exec).
func (in *injection) captureInit() corev1.Container {
	root, yes, no := int64(0), true, false
	return corev1.Container{
		Name:            CaptureInitName,
		Image:           in.s.image,
		ImagePullPolicy: in.cfg.ImagePullPolicy,
		Args:            []string{"capture"},
		Env: []corev1.EnvVar{{Name: capture.EnvStatus, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + AnnotationStatus + "']"}}}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi")},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                &root,
			RunAsGroup:               &root,
			RunAsNonRoot:             &no,
			Privileged:               &no,
			AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem:   &yes,
			Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}
