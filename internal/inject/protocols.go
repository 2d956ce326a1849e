package inject

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// PortProtocol is what the sidecar speaks to the app on a port it took over. Towards clients every
// sidecar listener serves HTTP/1.1 and HTTP/2 cleartext whatever the port's protocol.
type PortProtocol string

const (
	// ProtocolHTTP: HTTP/1.1 to the app, HTTP/2 cleartext for gRPC calls (which need it).
	ProtocolHTTP PortProtocol = "http"
	// ProtocolH2C: HTTP/2 cleartext to the app for every request; the port's app protocol pins it
	// (h2c, grpc, kubernetes.io/h2c, http2).
	ProtocolH2C PortProtocol = "h2c"
)

// h2cAppProtocols pin a port to HTTP/2 cleartext towards the app.
var h2cAppProtocols = []string{"h2c", "grpc", "kubernetes.io/h2c", "http2"}

// httpAppProtocols are cleartext HTTP/1.1 protocols the sidecar proxies as they are.
var httpAppProtocols = []string{"http", "kubernetes.io/ws", "ws", "websocket", "grpc-web"}

// NonHTTPPortNames are port names that say the port is not HTTP: well-known services whose clients
// would break behind an HTTP proxy. A port with one of these names (exactly), or named "tcp" or
// "tcp-…", is left alone unless podgate.io/ports names it. Names are matched exactly, never by
// prefix: leaving a port alone leaves it unprotected, so only a name that cannot mean HTTP counts.
var NonHTTPPortNames = []string{
	"amqp", "amqps", "cassandra", "cql", "dns", "kafka", "ldap", "ldaps", "memcache",
	"memcached", "mongo", "mongodb", "mqtt", "mssql", "mysql", "nats", "postgres", "postgresql",
	"rabbitmq", "redis", "smtp", "ssh", "tcp", "tls", "zookeeper",
}

// portChoice is the verdict on one app port: protected (and how the sidecar reaches it) or left
// alone (and why).
type portChoice struct {
	protect  bool
	protocol PortProtocol
	// reason, for a port left alone, says why, for the warning and the status.
	reason string
}

// choosePortProtocol decides a port's fate from its declared app protocol (podgate.io/app-protocols;
// "" when none) and its name. A declared protocol wins over the name.
func choosePortProtocol(p corev1.ContainerPort, appProtocol string) portChoice {
	if appProtocol != "" {
		ap := strings.ToLower(appProtocol)
		switch {
		case slices.Contains(h2cAppProtocols, ap):
			return portChoice{protect: true, protocol: ProtocolH2C}
		case slices.Contains(httpAppProtocols, ap):
			return portChoice{protect: true, protocol: ProtocolHTTP}
		}
		what := " is not HTTP"
		if strings.HasSuffix(ap, "https") || strings.HasSuffix(ap, "wss") || ap == "tls" {
			what = " is not cleartext HTTP" // the sidecar cannot terminate the app's TLS
		}
		return portChoice{reason: "app protocol " + strconv.Quote(appProtocol) + what}
	}
	name := strings.ToLower(p.Name)
	if strings.HasPrefix(name, "tcp-") || slices.Contains(NonHTTPPortNames, name) {
		return portChoice{reason: "name " + strconv.Quote(p.Name) + " is not HTTP"}
	}
	return portChoice{protect: true, protocol: ProtocolHTTP}
}

// appProtocol is the port's protocol from podgate.io/app-protocols, by name or number; "" when
// the annotation does not name it.
func (in *injection) appProtocol(p corev1.ContainerPort) string {
	if p.Name != "" {
		if ap, ok := in.s.appProtocols[p.Name]; ok {
			return ap
		}
	}
	return in.s.appProtocols[strconv.Itoa(int(p.ContainerPort))]
}

// checkAppProtocols reports podgate.io/app-protocols entries that name no TCP port of the app
// containers: a misspelt name would otherwise silently leave the port's protocol undeclared.
func (in *injection) checkAppProtocols() {
	for _, key := range slices.Sorted(maps.Keys(in.s.appProtocols)) {
		found := false
		for _, c := range in.pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == key || strconv.Itoa(int(p.ContainerPort)) == key {
					found = true
				}
			}
		}
		if !found {
			in.ps.add(AnnotationAppProtocols, fromPod, key, "matches no containerPort name or number of the app containers")
		}
	}
}

// leaveAlone records a port the sidecar does not take over, and warns: its clients reach the app
// unauthenticated.
func (in *injection) leaveAlone(container string, p corev1.ContainerPort, reason string) {
	u := UnprotectedPort{Container: container, Name: p.Name, Port: p.ContainerPort, Reason: reason}
	in.unprotected = append(in.unprotected, u)
	in.warnings = append(in.warnings, fmt.Sprintf("podgate: container %q port %s: %s; not protected, clients reach it directly "+
		"(list it in %s if it is HTTP)", container, u.describe(), reason, AnnotationPorts))
}

// describe is "name (number)", or the number alone for an unnamed port.
func (u UnprotectedPort) describe() string {
	return describePort(corev1.ContainerPort{Name: u.Name, ContainerPort: u.Port})
}

func describePort(p corev1.ContainerPort) string {
	if p.Name == "" {
		return strconv.Itoa(int(p.ContainerPort))
	}
	return p.Name + " (" + strconv.Itoa(int(p.ContainerPort)) + ")"
}
