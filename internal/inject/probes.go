package inject

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

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
			port, ok := in.protectedProbePort(c.Name, orig)
			if !ok {
				continue
			}
			target, err := probeTarget(orig, port)
			if err != nil {
				in.ps.add(fmt.Sprintf("spec.containers[%s].%sProbe", c.Name, k.kind), "", orig.HTTPGet.Path, "cannot be passed through the sidecar: %v", err)
				continue
			}
			name := probeName(c.Name, k.suffix)
			in.probes = append(in.probes, ProbeStatus{Name: name, Container: c.Name, Kind: k.kind, Target: ProbeTarget{target}, Original: orig.DeepCopy()})
			*k.probe = in.viaAdminPort(orig, name)
		}
	}
}

// viaAdminPort is the probe with its check replaced by GET /probe/<name> on the admin port; the
// timing and thresholds stay, and so do the headers of an HTTP probe.
func (in *injection) viaAdminPort(orig *corev1.Probe, name string) *corev1.Probe {
	np := orig.DeepCopy()
	get := &corev1.HTTPGetAction{Path: "/probe/" + name, Port: intstr.FromInt32(in.s.adminPort), Scheme: corev1.URISchemeHTTP}
	if orig.HTTPGet != nil {
		get.HTTPHeaders = orig.HTTPGet.HTTPHeaders
	}
	np.ProbeHandler = corev1.ProbeHandler{HTTPGet: get}
	return np
}

// protectedProbePort returns the app port number a probe of the container targets, if that port
// is protected. Names resolve within the container (as the kubelet resolves them), and only a
// port that had a name can be named; numbers are pod-wide.
func (in *injection) protectedProbePort(container string, p *corev1.Probe) (int32, bool) {
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
	for _, tp := range in.ports {
		byName := port.Type == intstr.String && tp.Container == container && tp.AppName != "" && tp.Name == port.StrVal
		if byName || (port.Type == intstr.Int && tp.AppPort == port.IntVal) {
			return tp.AppPort, true
		}
	}
	return 0, false
}

// probeTarget is where the sidecar sends the probe's check: the app's port on loopback, with the
// probe's scheme, path and gRPC service.
func probeTarget(p *corev1.Probe, port int32) (*url.URL, error) {
	host := loopbackHostPort(port)
	switch {
	case p.HTTPGet != nil:
		// The kubelet reads the path as a request URI: a query travels with it, and a fragment
		// is never sent.
		path, _, _ := strings.Cut(p.HTTPGet.Path, "#")
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return nil, err
		}
		u.Scheme, u.Host = "http", host
		if p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			u.Scheme = "https"
		}
		return u, nil
	case p.GRPC != nil:
		u := &url.URL{Scheme: "grpc", Host: host}
		if p.GRPC.Service != nil && *p.GRPC.Service != "" {
			u.RawQuery = url.Values{"service": {*p.GRPC.Service}}.Encode()
		}
		return u, nil
	default:
		return &url.URL{Scheme: "tcp", Host: host}, nil
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
