// Package inject is the pod mutation: a pure function from (pod, namespace, config) to the pod with
// the podgate sidecar added, its protected ports taken over and its probes rewritten. The webhook,
// the offline `injector inject` command and the golden tests all call the same Inject, so what the
// tests see is what the cluster gets.
package inject

import (
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/podgate/podgate/internal/capture"
)

// SidecarName is the injected container's name.
const SidecarName = "podgate-proxy"

// AdminPortName names the sidecar's admin port.
const AdminPortName = "podgate-admin"

// Secret keys the sidecar's environment reads from the pod's podgate Secret.
const (
	SecretKeyClientSecret = "client-secret"
	SecretKeyCookieSecret = "cookie-secret"
)

// SystemNamespaces never get a sidecar, whatever their labels say: a webhook with failurePolicy
// Fail that selects the control plane's pods can deadlock a cluster.
var SystemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// SkipReason names why a pod passed through unchanged. The values are metric label values.
type SkipReason string

const (
	SkipNotOptedIn         SkipReason = "notOptedIn"
	SkipOptedOut           SkipReason = "optedOut"
	SkipAlreadyInjected    SkipReason = "alreadyInjected"
	SkipNamespaceNotEnable SkipReason = "namespaceNotEnabled"
	SkipSystemNamespace    SkipReason = "systemNamespace"
)

// SkipReasons lists every reason, so metrics can be initialised at zero.
var SkipReasons = []SkipReason{SkipNotOptedIn, SkipOptedOut, SkipAlreadyInjected, SkipNamespaceNotEnable, SkipSystemNamespace}

// Explain is the human text for a reason.
func (r SkipReason) Explain() string {
	switch r {
	case SkipNotOptedIn:
		return "the pod has neither the annotation nor the label " + AnnotationInject + "=true"
	case SkipOptedOut:
		return "the pod is annotated " + AnnotationInject + "=false"
	case SkipAlreadyInjected:
		return "the pod already has the sidecar (" + AnnotationStatus + " or a container named " + SidecarName + ")"
	case SkipNamespaceNotEnable:
		return "the namespace is not labelled " + LabelInjection + "=enabled"
	case SkipSystemNamespace:
		return "pods in system namespaces are never injected"
	}
	return string(r)
}

// Report says what Inject did: either a skip reason or the injected Status.
type Report struct {
	Skipped SkipReason
	Status  *Status
	// Warnings are shown to the user (kubectl prints admission warnings) without denying the pod.
	Warnings []string
}

// Decide is the cheap first step of Inject: does this pod want the sidecar at all? The webhook
// calls it before reading the namespace, so pods that did not opt in cost no API call.
func Decide(pod *corev1.Pod) (SkipReason, error) {
	if v, ok := pod.Annotations[AnnotationInject]; ok {
		switch v {
		case "true":
		case "false":
			return SkipOptedOut, nil
		default:
			return "", &Error{Problems: []Problem{{Key: AnnotationInject, Source: fromPod, Value: v, Msg: "is not true or false"}}}
		}
	} else if pod.Labels[LabelInject] != "true" {
		return SkipNotOptedIn, nil
	}
	if _, ok := pod.Annotations[AnnotationStatus]; ok || hasSidecar(pod) {
		return SkipAlreadyInjected, nil
	}
	return "", nil
}

func hasSidecar(pod *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == SidecarName {
				return true
			}
		}
	}
	return false
}

// Inject returns a copy of pod with the sidecar added, or pod itself and a skip reason, or an
// *Error listing every problem. ns may be nil (offline use), in which case the namespace is taken
// as enabled with no annotations. Inject does no I/O and never modifies its arguments.
func Inject(pod *corev1.Pod, ns *corev1.Namespace, cfg *Config) (*corev1.Pod, *Report, error) {
	reason, err := Decide(pod)
	if err != nil {
		return nil, nil, err
	}
	if reason == "" && ns != nil {
		if slices.Contains(SystemNamespaces, ns.Name) {
			reason = SkipSystemNamespace
		} else if ns.Labels[LabelInjection] != "enabled" {
			reason = SkipNamespaceNotEnable
		}
	}
	if reason != "" {
		return pod, &Report{Skipped: reason}, nil
	}

	var ps problems
	if pod.Spec.HostNetwork {
		ps.add("spec.hostNetwork", "", "true", "is not supported: a hostNetwork pod shares the node's ports, so traffic could bypass the sidecar")
	}
	s := resolve(pod, ns, cfg, &ps)
	out := pod.DeepCopy()
	in := newInjection(out, s, cfg, &ps)
	in.takeOverPorts()
	in.rewriteProbes()
	in.planCapture(ns)
	s.opts.AdminAddr = ":" + strconv.Itoa(int(s.adminPort))
	s.opts.Proxies, s.opts.Probes, s.opts.ProbeHeaders = in.proxies(), in.probeOptions(), in.probeHeaders()
	s.addOptionErrors(s.opts.ValidateWithoutSecrets(), &ps)
	if err := ps.err(); err != nil {
		return nil, nil, err
	}

	sidecar := in.sidecar()
	if s.native {
		out.Spec.InitContainers = slices.Insert(out.Spec.InitContainers, 0, sidecar)
	} else {
		out.Spec.Containers = append(out.Spec.Containers, sidecar)
	}
	if s.capture == capture.ModeInit {
		// First of all: no container, the sidecar included, runs before the rules are in place.
		out.Spec.InitContainers = slices.Insert(out.Spec.InitContainers, 0, in.captureInit())
	}
	st := in.status()
	if err := setStatus(out, st); err != nil {
		return nil, nil, err
	}
	return out, &Report{Status: st, Warnings: in.warnings}, nil
}

// injection is the work state of one Inject call.
type injection struct {
	pod *corev1.Pod
	s   *settings
	cfg *Config
	ps  *problems

	usedNumbers map[int32]string // port number → who uses it
	usedNames   map[string]bool

	// ports and probes are the one record of each port taken over and each probe rewritten; the
	// sidecar's container ports and options and the status annotation are derived from them.
	ports  []PortStatus
	probes []ProbeStatus
	// unprotected records the ports left alone as not HTTP.
	unprotected []UnprotectedPort
	warnings    []string
	// checkPort is the capture's check port; 0 with capture none.
	checkPort int32
}

func newInjection(pod *corev1.Pod, s *settings, cfg *Config, ps *problems) *injection {
	in := &injection{pod: pod, s: s, cfg: cfg, ps: ps, usedNumbers: map[int32]string{}, usedNames: map[string]bool{}}
	in.reserveUsedPorts()
	return in
}
