package inject

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/podgate/podgate/internal/capture"
)

// maxPortNameLen is the IANA_SVC_NAME limit Kubernetes enforces on port names.
const maxPortNameLen = 15

// reserveUsedPorts records every port number and name the pod already uses, so the sidecar's
// ports never collide with them, and checks that the admin port is free.
func (in *injection) reserveUsedPorts() {
	for _, cs := range [][]corev1.Container{in.pod.Spec.InitContainers, in.pod.Spec.Containers} {
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
	s := in.s
	if c, ok := in.usedNumbers[s.adminPort]; ok {
		key, src := AnnotationAdminPort, s.source[AnnotationAdminPort]
		if src == "" {
			src = fromConfig
		}
		in.ps.add(key, src, strconv.Itoa(int(s.adminPort)), "collides with a port of container %q; choose another admin port", c)
	}
	if in.usedNames[AdminPortName] {
		in.ps.add("spec.containers[].ports[].name", "", AdminPortName, "is reserved for the sidecar's admin port")
	}
	in.usedNumbers[s.adminPort] = SidecarName
}

// probeNumber is the port number a probe targets, 0 when it names the port or has none.
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

// MaxProtectedPorts is the most ports one sidecar takes over. Real pods protect a handful; the cap
// keeps a hostile pod spec from making admission (and the sidecar's listeners) arbitrarily large.
const MaxProtectedPorts = 64

// takeOverPorts moves every protected port to the sidecar in three steps: choose the ports,
// allocate each a free number on the sidecar, and give the sidecar the port's name while the app's
// port is renamed, so Services targeting the name reach the sidecar without being edited.
func (in *injection) takeOverPorts() {
	chosen := in.choosePorts()
	if !in.checkChosen(chosen) {
		return
	}
	next := in.cfg.ProxyPortBase
	for _, r := range chosen {
		c := &in.pod.Spec.Containers[r.container]
		p := &c.Ports[r.port]
		if p.HostPort != 0 {
			in.ps.add(fmt.Sprintf("spec.containers[%s].ports[%d].hostPort", c.Name, r.port), "", strconv.Itoa(int(p.HostPort)), "is not supported on a protected port: traffic to the host port would bypass the sidecar")
		}
		proxyPort, ok := in.allocateProxyPort(&next)
		if !ok {
			return
		}
		st := in.movePort(c, p, proxyPort)
		st.Protocol = r.protocol
		in.ports = append(in.ports, st)
	}
}

// portRef is one app container port: indexes into the pod's containers and that container's ports.
type portRef struct{ container, port int }

// chosenPort is a port to protect, and what the sidecar speaks to the app on it.
type chosenPort struct {
	portRef
	protocol PortProtocol
}

// choosePorts returns the ports to protect: the ones podgate.io/ports lists, or every TCP port of
// the app containers that may be HTTP when it is absent. Every step is linear in the pod's ports:
// a pod declaring thousands of duplicate ports, with a podgate.io/ports list repeating them, would
// otherwise take seconds per admission (a token × port × chosen scan) and stall pod creation in
// every injected namespace. Ports are indexed once, and tokens and choices deduplicated by set.
func (in *injection) choosePorts() []chosenPort {
	cs := in.pod.Spec.Containers
	in.checkAppProtocols()
	var chosen []chosenPort
	isChosen := map[portRef]bool{}
	choose := func(r portRef, protocol PortProtocol) {
		if !isChosen[r] {
			isChosen[r] = true
			chosen = append(chosen, chosenPort{r, protocol})
		}
	}
	if in.s.ports == nil {
		for ci := range cs {
			for pi, p := range cs[ci].Ports {
				if !isTCP(p) {
					continue
				}
				choice := choosePortProtocol(p, in.appProtocol(p))
				if !choice.protect {
					in.leaveAlone(cs[ci].Name, p, choice.reason)
					continue
				}
				choose(portRef{ci, pi}, choice.protocol)
			}
		}
		in.checkSomethingChosen(chosen)
		return chosen
	}
	byNumber, byName := map[int32][]portRef{}, map[string][]portRef{}
	for ci := range cs {
		for pi, p := range cs[ci].Ports {
			byNumber[p.ContainerPort] = append(byNumber[p.ContainerPort], portRef{ci, pi})
			if p.Name != "" {
				byName[p.Name] = append(byName[p.Name], portRef{ci, pi})
			}
		}
	}
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
			if protocol, ok := in.listedPortProtocol(tok, cs[r.container].Ports[r.port]); ok {
				choose(r, protocol)
			}
		}
	}
	return chosen
}

// listedPortProtocol is the protocol of a port podgate.io/ports names. Named explicitly, a port is
// protected whatever its name says; only a non-TCP port or a declared protocol the sidecar cannot
// speak stops it, with a denial.
func (in *injection) listedPortProtocol(tok string, p corev1.ContainerPort) (PortProtocol, bool) {
	if !isTCP(p) {
		in.ps.add(AnnotationPorts, in.s.source[AnnotationPorts], tok, "names a %s port; only TCP ports can be protected", p.Protocol)
		return "", false
	}
	ap := in.appProtocol(p)
	if ap == "" {
		return ProtocolHTTP, true
	}
	choice := choosePortProtocol(p, ap)
	if !choice.protect {
		in.ps.add(AnnotationPorts, in.s.source[AnnotationPorts], tok, "names port %s, whose %s (%s): the sidecar can only protect HTTP; remove it from %s or correct its protocol",
			describePort(p), choice.reason, AnnotationAppProtocols, AnnotationPorts)
		return "", false
	}
	return choice.protocol, true
}

// checkSomethingChosen denies a pod that asked for protection and has no port to protect, naming
// the ports left alone, if any, and why.
func (in *injection) checkSomethingChosen(chosen []chosenPort) {
	switch {
	case len(chosen) > 0:
	case len(in.unprotected) > 0:
		var left []string
		for _, u := range in.unprotected {
			left = append(left, u.describe()+": "+u.Reason)
		}
		in.ps.add(AnnotationPorts, "", "", "has nothing to protect: every TCP port is left alone as not HTTP (%s); list the HTTP port in %s or correct %s",
			strings.Join(left, "; "), AnnotationPorts, AnnotationAppProtocols)
	default:
		in.ps.add(AnnotationPorts, "", "", "has nothing to protect: the app containers declare no TCP containerPort; declare the port the app listens on")
	}
}

// checkChosen denies more ports than one sidecar protects, and a number declared twice among the
// protected ports (one pod, one network namespace: one listener), which would leave the second
// declaration's name pointing straight at the app.
func (in *injection) checkChosen(chosen []chosenPort) bool {
	if len(chosen) > MaxProtectedPorts {
		in.ps.add(AnnotationPorts, in.s.source[AnnotationPorts], "",
			"selects %d ports, more than the %d one sidecar protects; list the ports to protect, each declared once", len(chosen), MaxProtectedPorts)
		return false
	}
	protected := map[int32]string{}
	for _, r := range chosen {
		c := &in.pod.Spec.Containers[r.container]
		n := c.Ports[r.port].ContainerPort
		if prev, dup := protected[n]; dup {
			in.ps.add(fmt.Sprintf("spec.containers[%s].ports[%d].containerPort", c.Name, r.port), "", strconv.Itoa(int(n)),
				"is declared more than once among the protected ports (also in container %q); declare each port once", prev)
			return false
		}
		protected[n] = c.Name
	}
	return true
}

func isTCP(p corev1.ContainerPort) bool { return p.Protocol == "" || p.Protocol == corev1.ProtocolTCP }

// allocateProxyPort returns the first number from *next up that nothing in the pod uses, and
// reserves it for the sidecar.
func (in *injection) allocateProxyPort(next *int32) (int32, bool) {
	for ; *next <= 65535; *next++ {
		if _, used := in.usedNumbers[*next]; !used {
			in.usedNumbers[*next] = SidecarName
			return *next, true
		}
	}
	in.ps.add(AnnotationPorts, "", "", "too many ports: no free port number left above %d for the sidecar", in.cfg.ProxyPortBase)
	return 0, false
}

// movePort gives the port's name to the sidecar's proxyPort and the app's port a new name. A port
// without a name gets a generated one on the sidecar, with a warning: only a Service that targets
// the name reaches the sidecar.
func (in *injection) movePort(c *corev1.Container, p *corev1.ContainerPort, proxyPort int32) PortStatus {
	st := PortStatus{Container: c.Name, Name: p.Name, AppPort: p.ContainerPort, ProxyPort: proxyPort}
	if p.Name == "" {
		st.Name = in.uniqueName("http-" + strconv.Itoa(int(p.ContainerPort)))
		if in.s.capture != capture.ModeNone {
			// Captured: a numeric targetPort reaches the sidecar through the redirect.
			return st
		}
		in.warnings = append(in.warnings, fmt.Sprintf("podgate: container %q port %d had no name; the sidecar took it over as %q: "+
			"Services must use targetPort: %s, a numeric targetPort %d reaches the app without authentication", c.Name, p.ContainerPort, st.Name, st.Name, p.ContainerPort))
		return st
	}
	st.AppName = in.uniqueName("app-" + p.Name)
	p.Name = st.AppName
	renameHookPorts(c, st.Name, st.AppName)
	return st
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
