package inject

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/podgate/podgate/internal/capture"
	"github.com/podgate/podgate/internal/options"
)

// Status is recorded as JSON in the podgate.io/status annotation: what was injected, and the
// original probes, so the rewrite can be checked and reverted by hand.
type Status struct {
	Version   int    `json:"version"`
	Sidecar   string `json:"sidecar"`
	Image     string `json:"image"`
	Native    bool   `json:"native"`
	AdminPort int32  `json:"adminPort"`
	// Capture is the capture mode, and CaptureCheckPort the port the capture redirects to the
	// admin port (0 with mode none). The podgate-cni plugin and init mode's container read these
	// and Ports as a capture.Status: exactly the ports listed in Ports are redirected.
	Capture          capture.Mode `json:"capture"`
	CaptureCheckPort int32        `json:"captureCheckPort,omitempty"`
	Ports            []PortStatus `json:"ports"`
	// Unprotected lists the app's ports left alone because they are not HTTP. They are recorded
	// apart from Ports so that nothing (the sidecar, traffic capture) ever treats them as protected.
	Unprotected []UnprotectedPort `json:"unprotected,omitempty"`
	Probes      []ProbeStatus     `json:"probes,omitempty"`
}

// PortStatus is one protected port, and the one record Inject keeps of it: the sidecar's
// container port and --proxy option are derived from it.
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

// sidecarPort is the port on the sidecar that Services now reach under the port's name.
func (p PortStatus) sidecarPort() corev1.ContainerPort {
	return corev1.ContainerPort{Name: p.Name, ContainerPort: p.ProxyPort, Protocol: corev1.ProtocolTCP}
}

// proxy is the sidecar's listener for the port: the proxy port forwarding to the app on loopback,
// over HTTP/2 cleartext for every request when the port's protocol pins it.
func (p PortStatus) proxy() options.Proxy {
	return options.Proxy{
		Listen:   ":" + strconv.Itoa(int(p.ProxyPort)),
		Upstream: &url.URL{Scheme: "http", Host: loopbackHostPort(p.AppPort)},
		H2C:      p.Protocol == ProtocolH2C,
	}
}

// ProbeStatus is one rewritten probe, and the one record Inject keeps of it: the sidecar's --probe
// option is derived from it.
type ProbeStatus struct {
	Name      string        `json:"name"`
	Container string        `json:"container"`
	Kind      string        `json:"kind"`
	Target    ProbeTarget   `json:"target"`
	Original  *corev1.Probe `json:"original"`
}

// option is the sidecar's pass-through for the probe, served on the admin port as /probe/<Name>.
func (p ProbeStatus) option() options.Probe {
	return options.Probe{Name: p.Name, Target: p.Target.URL}
}

// ProbeTarget is where a rewritten probe's check really goes: the app on loopback. It is written
// to the status as its URL string.
type ProbeTarget struct{ *url.URL }

// MarshalText writes the URL.
func (t ProbeTarget) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads a status written by MarshalText.
func (t *ProbeTarget) UnmarshalText(b []byte) error {
	u, err := url.Parse(string(b))
	if err != nil {
		return err
	}
	t.URL = u
	return nil
}

// status is what the annotation records of this injection.
func (in *injection) status() *Status {
	return &Status{Version: 1, Sidecar: SidecarName, Image: in.s.image, Native: in.s.native, AdminPort: in.s.adminPort,
		Capture: in.s.capture, CaptureCheckPort: in.checkPort, Ports: in.ports, Unprotected: in.unprotected, Probes: in.probes}
}

// proxies are the sidecar's --proxy options, one per port taken over.
func (in *injection) proxies() []options.Proxy {
	var out []options.Proxy
	for _, p := range in.ports {
		out = append(out, p.proxy())
	}
	return out
}

// probeHeaders are the sidecar's --probe-header options: the httpHeaders of each rewritten HTTP
// probe. The sidecar sends the app exactly these, not what the caller of /probe/<name> sent.
func (in *injection) probeHeaders() []options.ProbeHeader {
	var out []options.ProbeHeader
	for _, p := range in.probes {
		if p.Original.HTTPGet == nil {
			continue
		}
		for _, h := range p.Original.HTTPGet.HTTPHeaders {
			out = append(out, options.ProbeHeader{Probe: p.Name, Name: h.Name, Value: h.Value})
		}
	}
	return out
}

// probeOptions are the sidecar's --probe options, one per probe rewritten.
func (in *injection) probeOptions() []options.Probe {
	var out []options.Probe
	for _, p := range in.probes {
		out = append(out, p.option())
	}
	return out
}

// setStatus records st in the pod's status annotation.
func setStatus(pod *corev1.Pod, st *Status) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", AnnotationStatus, err)
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationStatus] = string(b)
	return nil
}

func loopbackHostPort(port int32) string { return "127.0.0.1:" + strconv.Itoa(int(port)) }
