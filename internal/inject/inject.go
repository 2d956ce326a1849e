// Package inject is the pod mutation: a pure function from (pod, namespace, config) to the pod with
// the podgate sidecar added, its protected ports taken over and its probes rewritten. The webhook,
// the offline `injector inject` command and the golden tests all call the same Inject, so what the
// tests see is what the cluster gets.
package inject

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/podgate/podgate/internal/options"
)

// MaxProtectedPorts is the most ports one sidecar takes over. Real pods protect a handful; the cap
// keeps a hostile pod spec from making admission (and the sidecar's listeners) arbitrarily large.
const MaxProtectedPorts = 64

// maxPortNameLen is the IANA_SVC_NAME limit Kubernetes enforces on port names.
const maxPortNameLen = 15

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

// Status is recorded as JSON in the podgate.io/status annotation: what was injected, and the
// original probes, so the rewrite can be checked and reverted by hand.
type Status struct {
	Version   int          `json:"version"`
	Sidecar   string       `json:"sidecar"`
	Image     string       `json:"image"`
	Native    bool         `json:"native"`
	AdminPort int32        `json:"adminPort"`
	Ports     []PortStatus `json:"ports"`
	// Unprotected lists the app's ports left alone because they are not HTTP. They are recorded
	// apart from Ports so that nothing (the sidecar, traffic capture) ever treats them as protected.
	Unprotected []UnprotectedPort `json:"unprotected,omitempty"`
	Probes      []ProbeStatus     `json:"probes,omitempty"`
}

// PortStatus is one protected port.
type PortStatus struct {
	Container string `json:"container"`
	// Name is the port's original name, now on the sidecar (generated when the port had none).
	Name string `json:"name"`
	// AppName is the app port's new name; empty when the app port had no name.
	AppName   string `json:"appName,omitempty"`
	AppPort   int32  `json:"appPort"`
	ProxyPort int32  `json:"proxyPort"`
	// Protocol is what the sidecar speaks to the app on this port.
	Protocol PortProtocol `json:"protocol"`
}

// UnprotectedPort is an app port the sidecar did not take over: clients reach the app on it
// directly, unauthenticated.
type UnprotectedPort struct {
	Container string `json:"container"`
	Name      string `json:"name,omitempty"`
	Port      int32  `json:"port"`
	// Reason says why the port was left alone.
	Reason string `json:"reason"`
}

// ProbeStatus is one rewritten probe.
type ProbeStatus struct {
	Name      string        `json:"name"`
	Container string        `json:"container"`
	Kind      string        `json:"kind"`
	Target    string        `json:"target"`
	Original  *corev1.Probe `json:"original"`
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
	s.opts.AdminAddr = ":" + strconv.Itoa(int(s.adminPort))
	s.opts.Proxies, s.opts.Probes, s.opts.ProbeHeaders = in.proxies, in.probes, in.probeHeaders
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
	st := &Status{Version: 1, Sidecar: SidecarName, Image: s.image, Native: s.native, AdminPort: s.adminPort, Ports: in.ports,
		Unprotected: in.unprotected, Probes: in.probeStatus}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding %s: %w", AnnotationStatus, err)
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[AnnotationStatus] = string(b)
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

	// protected: container index → original port name/number → proxy port number
	byName   []map[string]int32
	byNumber map[int32]int32

	proxies      []options.Proxy
	probes       []options.Probe
	probeHeaders []options.ProbeHeader
	ports        []PortStatus
	unprotected  []UnprotectedPort
	probeStatus  []ProbeStatus
	sidecarPort  []corev1.ContainerPort
	warnings     []string
}

func newInjection(pod *corev1.Pod, s *settings, cfg *Config, ps *problems) *injection {
	in := &injection{pod: pod, s: s, cfg: cfg, ps: ps,
		usedNumbers: map[int32]string{}, usedNames: map[string]bool{},
		byName: make([]map[string]int32, len(pod.Spec.Containers)), byNumber: map[int32]int32{}}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			c := &cs[i]
			for _, p := range c.Ports {
				in.usedNumbers[p.ContainerPort] = c.Name
				if p.Name != "" {
					in.usedNames[p.Name] = true
				}
			}
			// A probe may target a port the container never declared; the sidecar must not
			// take that number either.
			for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if n := probeNumber(pr); n > 0 {
					if _, ok := in.usedNumbers[n]; !ok {
						in.usedNumbers[n] = c.Name
					}
				}
			}
		}
	}
	if c, ok := in.usedNumbers[s.adminPort]; ok {
		key, src := AnnotationAdminPort, s.source[AnnotationAdminPort]
		if src == "" {
			src = fromConfig
		}
		ps.add(key, src, strconv.Itoa(int(s.adminPort)), "collides with a port of container %q; choose another admin port", c)
	}
	if in.usedNames[AdminPortName] {
		ps.add("spec.containers[].ports[].name", "", AdminPortName, "is reserved for the sidecar's admin port")
	}
	in.usedNumbers[s.adminPort] = SidecarName
	return in
}

func probeNumber(p *corev1.Probe) int32 {
	switch {
	case p == nil:
	case p.HTTPGet != nil && p.HTTPGet.Port.Type == intstr.Int:
		return p.HTTPGet.Port.IntVal
	case p.TCPSocket != nil && p.TCPSocket.Port.Type == intstr.Int:
		return p.TCPSocket.Port.IntVal
	case p.GRPC != nil:
		return p.GRPC.Port
	}
	return 0
}

// takeOverPorts chooses the protected ports, gives each a new number on the sidecar under the
// port's original name, and renames the app's port, so Services targeting the name now reach
// the sidecar without being edited.
func (in *injection) takeOverPorts() {
	type ref struct{ c, p int }
	var chosen []ref
	protocolOf := map[ref]PortProtocol{}
	cs := in.pod.Spec.Containers
	in.checkAppProtocols()
	// Every step is linear in the pod's ports: a pod declaring thousands of duplicate ports, with a
	// podgate.io/ports list repeating them, once took seconds per admission (a token × port × chosen
	// scan), stalling pod creation in every injected namespace. Ports are indexed once, tokens and
	// choices deduplicated by set, and the number protected is capped.
	byNumber, byName := map[int32][]ref{}, map[string][]ref{}
	for ci := range cs {
		for pi, p := range cs[ci].Ports {
			byNumber[p.ContainerPort] = append(byNumber[p.ContainerPort], ref{ci, pi})
			if p.Name != "" {
				byName[p.Name] = append(byName[p.Name], ref{ci, pi})
			}
		}
	}
	choose := func(r ref, protocol PortProtocol) {
		if _, done := protocolOf[r]; !done {
			protocolOf[r] = protocol
			chosen = append(chosen, r)
		}
	}
	if in.s.ports == nil {
		for ci := range cs {
			for pi, p := range cs[ci].Ports {
				if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
					continue
				}
				choice := choosePortProtocol(p, in.appProtocol(p))
				if !choice.protect {
					in.leaveAlone(cs[ci].Name, p, choice.reason)
					continue
				}
				choose(ref{ci, pi}, choice.protocol)
			}
		}
		if len(chosen) == 0 && len(in.unprotected) > 0 {
			var left []string
			for _, u := range in.unprotected {
				left = append(left, u.describe()+": "+u.Reason)
			}
			in.ps.add(AnnotationPorts, "", "", "has nothing to protect: every TCP port is left alone as not HTTP (%s); list the HTTP port in %s or correct %s",
				strings.Join(left, "; "), AnnotationPorts, AnnotationAppProtocols)
		} else if len(chosen) == 0 {
			in.ps.add(AnnotationPorts, "", "", "has nothing to protect: the app containers declare no TCP containerPort; declare the port the app listens on")
		}
	} else {
		seen := map[string]bool{}
		for _, tok := range in.s.ports {
			if seen[tok] {
				continue
			}
			seen[tok] = true
			refs := byName[tok]
			if n, err := strconv.Atoi(tok); err == nil {
				refs = nil
				if n > 0 && n <= 65535 {
					refs = byNumber[int32(n)]
				}
			}
			if len(refs) == 0 {
				in.ps.add(AnnotationPorts, in.s.source[AnnotationPorts], tok, "matches no containerPort name or number of the app containers")
			}
			for _, r := range refs {
				p := cs[r.c].Ports[r.p]
				if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
					in.ps.add(AnnotationPorts, in.s.source[AnnotationPorts], tok, "names a %s port; only TCP ports can be protected", p.Protocol)
					continue
				}
				// Named explicitly, a port is protected whatever its name says; only a declared
				// protocol the sidecar cannot speak stops it.
				protocol := ProtocolHTTP
				if ap := in.appProtocol(p); ap != "" {
					choice := choosePortProtocol(p, ap)
					if !choice.protect {
						in.ps.add(AnnotationPorts, in.s.source[AnnotationPorts], tok, "names port %s, whose %s (%s): the sidecar can only protect HTTP; remove it from %s or correct its protocol",
							describePort(p), choice.reason, AnnotationAppProtocols, AnnotationPorts)
						continue
					}
					protocol = choice.protocol
				}
				choose(r, protocol)
			}
		}
	}
	if len(chosen) > MaxProtectedPorts {
		in.ps.add(AnnotationPorts, in.s.source[AnnotationPorts], "",
			"selects %d ports, more than the %d one sidecar protects; list the ports to protect, each declared once", len(chosen), MaxProtectedPorts)
		return
	}
	// A number declared twice among the protected ports (one pod, one network namespace: one
	// listener) would leave the second declaration's name pointing straight at the app.
	protected := map[int32]string{}
	for _, r := range chosen {
		c := &cs[r.c]
		n := c.Ports[r.p].ContainerPort
		if prev, dup := protected[n]; dup {
			in.ps.add(fmt.Sprintf("spec.containers[%s].ports[%d].containerPort", c.Name, r.p), "", strconv.Itoa(int(n)),
				"is declared more than once among the protected ports (also in container %q); declare each port once", prev)
			return
		}
		protected[n] = c.Name
	}

	next := in.cfg.ProxyPortBase
	for _, r := range chosen {
		c := &cs[r.c]
		p := &c.Ports[r.p]
		if p.HostPort != 0 {
			in.ps.add(fmt.Sprintf("spec.containers[%s].ports[%d].hostPort", c.Name, r.p), "", strconv.Itoa(int(p.HostPort)), "is not supported on a protected port: traffic to the host port would bypass the sidecar")
		}
		for {
			if next > 65535 {
				in.ps.add(AnnotationPorts, "", "", "too many ports: no free port number left above %d for the sidecar", in.cfg.ProxyPortBase)
				return
			}
			if _, used := in.usedNumbers[next]; !used {
				break
			}
			next++
		}
		proxyPort := next
		in.usedNumbers[proxyPort] = SidecarName
		name, appName := p.Name, ""
		if name == "" {
			name = in.uniqueName("http-" + strconv.Itoa(int(p.ContainerPort)))
			in.warnings = append(in.warnings, fmt.Sprintf("podgate: container %q port %d had no name; the sidecar took it over as %q: "+
				"Services must use targetPort: %s, a numeric targetPort %d reaches the app without authentication", c.Name, p.ContainerPort, name, name, p.ContainerPort))
		} else {
			appName = in.uniqueName("app-" + name)
			p.Name = appName
		}
		if in.byName[r.c] == nil {
			in.byName[r.c] = map[string]int32{}
		}
		if appName != "" {
			in.byName[r.c][name] = p.ContainerPort
			renameHookPorts(c, name, appName)
		}
		in.byNumber[p.ContainerPort] = p.ContainerPort
		in.sidecarPort = append(in.sidecarPort, corev1.ContainerPort{Name: name, ContainerPort: proxyPort, Protocol: corev1.ProtocolTCP})
		scheme := "http"
		if protocolOf[r] == ProtocolH2C {
			scheme = options.SchemeH2C
		}
		upstream := fmt.Sprintf(":%d=%s://127.0.0.1:%d", proxyPort, scheme, p.ContainerPort)
		px, err := options.ParseProxy(upstream)
		if err != nil {
			in.ps.add(AnnotationPorts, "", strconv.Itoa(int(p.ContainerPort)), "cannot be proxied: %v", err)
			continue
		}
		in.proxies = append(in.proxies, px)
		in.ports = append(in.ports, PortStatus{Container: c.Name, Name: name, AppName: appName, AppPort: p.ContainerPort, ProxyPort: proxyPort, Protocol: protocolOf[r]})
	}
}

// renameHookPorts follows the rename in the container's lifecycle hooks: a preStop or postStart
// that named the port would otherwise point at a name the container no longer has. Hooks run
// inside the pod, so they keep reaching the app directly.
func renameHookPorts(c *corev1.Container, from, to string) {
	if c.Lifecycle == nil {
		return
	}
	for _, h := range []*corev1.LifecycleHandler{c.Lifecycle.PostStart, c.Lifecycle.PreStop} {
		switch {
		case h == nil:
		case h.HTTPGet != nil && h.HTTPGet.Port.Type == intstr.String && h.HTTPGet.Port.StrVal == from:
			h.HTTPGet.Port = intstr.FromString(to)
		case h.TCPSocket != nil && h.TCPSocket.Port.Type == intstr.String && h.TCPSocket.Port.StrVal == from:
			h.TCPSocket.Port = intstr.FromString(to)
		}
	}
}

// uniqueName returns a valid IANA_SVC_NAME (≤ 15 characters) based on base that no port in the
// pod uses yet, and reserves it.
func (in *injection) uniqueName(base string) string {
	for i := 1; ; i++ {
		suffix := ""
		if i > 1 {
			suffix = "-" + strconv.Itoa(i)
		}
		stem := base
		if len(stem)+len(suffix) > maxPortNameLen {
			stem = stem[:maxPortNameLen-len(suffix)]
		}
		name := strings.TrimRight(strings.ReplaceAll(stem, "--", "-"), "-") + suffix
		if !in.usedNames[name] && len(validation.IsValidPortName(name)) == 0 {
			in.usedNames[name] = true
			return name
		}
	}
}

// rewriteProbes points every app probe aimed at a protected port at the sidecar's admin port,
// /probe/<name>, and tells the sidecar where the original probe went. The kubelet then neither
// needs a login (a 302 to the IdP would count as success, a 401 would kill the pod) nor gets a
// way around the proxy on the protected port.
func (in *injection) rewriteProbes() {
	cs := in.pod.Spec.Containers
	for ci := range cs {
		c := &cs[ci]
		for _, k := range []struct {
			kind, suffix string
			probe        **corev1.Probe
		}{{"liveness", "live", &c.LivenessProbe}, {"readiness", "ready", &c.ReadinessProbe}, {"startup", "start", &c.StartupProbe}} {
			orig := *k.probe
			port, ok := in.protectedProbePort(ci, orig)
			if !ok {
				continue
			}
			name := probeName(c.Name, k.suffix)
			target := probeTarget(orig, port)
			pr, err := options.ParseProbe(name + "=" + target)
			if err != nil {
				in.ps.add(fmt.Sprintf("spec.containers[%s].%sProbe", c.Name, k.kind), "", target, "cannot be passed through the sidecar: %v", err)
				continue
			}
			in.probes = append(in.probes, pr)
			in.probeStatus = append(in.probeStatus, ProbeStatus{Name: name, Container: c.Name, Kind: k.kind, Target: target, Original: orig.DeepCopy()})
			np := orig.DeepCopy()
			get := &corev1.HTTPGetAction{Path: "/probe/" + name, Port: intstr.FromInt32(in.s.adminPort), Scheme: corev1.URISchemeHTTP}
			if orig.HTTPGet != nil {
				get.HTTPHeaders = orig.HTTPGet.HTTPHeaders
				// The sidecar sends the app exactly these, not what the caller of /probe/<name> sent.
				for _, h := range orig.HTTPGet.HTTPHeaders {
					in.probeHeaders = append(in.probeHeaders, options.ProbeHeader{Probe: name, Name: h.Name, Value: h.Value})
				}
			}
			np.ProbeHandler = corev1.ProbeHandler{HTTPGet: get}
			*k.probe = np
		}
	}
}

// protectedProbePort returns the app port number a probe targets, if that port is protected.
// Names resolve within the container (as the kubelet resolves them); numbers are pod-wide.
func (in *injection) protectedProbePort(ci int, p *corev1.Probe) (int32, bool) {
	if p == nil {
		return 0, false
	}
	var port intstr.IntOrString
	switch {
	case p.HTTPGet != nil:
		port = p.HTTPGet.Port
	case p.TCPSocket != nil:
		port = p.TCPSocket.Port
	case p.GRPC != nil:
		port = intstr.FromInt32(p.GRPC.Port)
	default:
		return 0, false
	}
	if port.Type == intstr.String {
		n, ok := in.byName[ci][port.StrVal]
		return n, ok
	}
	n, ok := in.byNumber[port.IntVal]
	return n, ok
}

func probeTarget(p *corev1.Probe, port int32) string {
	hostPort := "127.0.0.1:" + strconv.Itoa(int(port))
	switch {
	case p.HTTPGet != nil:
		scheme := "http"
		if p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		path := p.HTTPGet.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		return scheme + "://" + hostPort + path
	case p.GRPC != nil:
		t := "grpc://" + hostPort
		if p.GRPC.Service != nil && *p.GRPC.Service != "" {
			t += "?service=" + *p.GRPC.Service
		}
		return t
	default:
		return "tcp://" + hostPort
	}
}

// probeName is "<container>-<suffix>", shortened with a hash when it would pass the 63 characters
// options.ParseProbe allows, so distinct containers keep distinct names.
func probeName(container, suffix string) string {
	name := container + "-" + suffix
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:4])
	keep := 63 - len(suffix) - len(h) - 2
	return strings.TrimRight(container[:keep], "-") + "-" + h + "-" + suffix
}

func (in *injection) sidecar() corev1.Container {
	s := in.s
	admin := intstr.FromInt32(s.adminPort)
	httpGet := func(path string) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: admin, Scheme: corev1.URISchemeHTTP}}
	}
	secretEnv := func(flag, key string, optional bool) corev1.EnvVar {
		return corev1.EnvVar{Name: options.EnvVar(flag), ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: s.secret}, Key: key, Optional: &optional}}}
	}
	yes, no := true, false
	uid, gid := in.cfg.RunAsUser, in.cfg.RunAsGroup
	c := corev1.Container{
		Name:            SidecarName,
		Image:           s.image,
		ImagePullPolicy: in.cfg.ImagePullPolicy,
		Args:            s.opts.Args(),
		Env: []corev1.EnvVar{
			secretEnv(options.FlagClientSecret, SecretKeyClientSecret, true),
			secretEnv(options.FlagCookieSecret, SecretKeyCookieSecret, false),
			// The sidecar sets its Go soft memory limit from its own container's limit, so a
			// hostile client's garbage is collected before the OOM killer acts. (Without a limit
			// the downward API gives the node's allocatable memory: no effective soft limit.)
			{Name: options.EnvVar(options.FlagMemoryLimit), ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
				ContainerName: SidecarName, Resource: "limits.memory"}}},
		},
		Ports:     append(in.sidecarPort, corev1.ContainerPort{Name: AdminPortName, ContainerPort: s.adminPort, Protocol: corev1.ProtocolTCP}),
		Resources: s.resources,
		// Startup gates the app (native sidecar): /ping answers once every listener is bound.
		StartupProbe:   &corev1.Probe{ProbeHandler: httpGet("/ping"), PeriodSeconds: 1, FailureThreshold: 60, TimeoutSeconds: 1},
		ReadinessProbe: &corev1.Probe{ProbeHandler: httpGet("/ready"), PeriodSeconds: 5, FailureThreshold: 3, TimeoutSeconds: 2},
		LivenessProbe:  &corev1.Probe{ProbeHandler: httpGet("/ping"), PeriodSeconds: 10, FailureThreshold: 3, TimeoutSeconds: 2},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             &yes,
			RunAsUser:                &uid,
			RunAsGroup:               &gid,
			ReadOnlyRootFilesystem:   &yes,
			AllowPrivilegeEscalation: &no,
			Privileged:               &no,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if s.native {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
	}
	return c
}
