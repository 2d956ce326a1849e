package inject

import (
	"errors"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestChoosePortProtocol(t *testing.T) {
	for _, c := range []struct {
		name, appProtocol string
		protect           bool
		protocol          PortProtocol
	}{
		{"http", "", true, ProtocolHTTP},
		{"", "", true, ProtocolHTTP},
		{"grafana", "", true, ProtocolHTTP},
		{"grpc", "", true, ProtocolHTTP}, // gRPC calls switch to HTTP/2 on their own
		{"web", "kubernetes.io/h2c", true, ProtocolH2C},
		{"api", "GRPC", true, ProtocolH2C},
		{"api", "h2c", true, ProtocolH2C},
		{"api", "http", true, ProtocolHTTP},
		{"ws", "kubernetes.io/ws", true, ProtocolHTTP},
		{"postgres", "", false, ""},
		{"redis", "", false, ""},
		{"tcp", "", false, ""},
		{"tcp-echo", "", false, ""},
		{"TCP-Echo", "", false, ""},
		{"postgres-web", "", true, ProtocolHTTP}, // names match exactly: unprotected only when sure
		{"tcpx", "", true, ProtocolHTTP},
		{"db", "postgresql", false, ""},
		{"web", "tcp", false, ""},
		{"web", "https", false, ""},
		{"postgres", "http", true, ProtocolHTTP}, // a declared protocol wins over the name
	} {
		got := choosePortProtocol(corev1.ContainerPort{Name: c.name, ContainerPort: 1234}, c.appProtocol)
		if got.protect != c.protect || got.protocol != c.protocol || (!got.protect && got.reason == "") {
			t.Errorf("name %q appProtocol %q: %+v, want protect=%v protocol=%q", c.name, c.appProtocol, got, c.protect, c.protocol)
		}
	}
}

// TestMixedPodWarnsAndRecords: in the mixed pod, the ports left alone are warned about (naming the
// port and the reason) and recorded apart from the protected ones; the sidecar gets no listener for
// them and the app keeps them as they were. A port pinned to h2c reaches the sidecar as such.
func TestMixedPodWarnsAndRecords(t *testing.T) {
	pod := validPod()
	pod.Annotations[AnnotationAppProtocols] = "grpc=grpc"
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{
		{Name: "http", ContainerPort: 8080}, {Name: "grpc", ContainerPort: 9090},
		{Name: "postgres", ContainerPort: 5432}, {ContainerPort: 8081}, {Name: "grafana", ContainerPort: 3000},
	}
	out, rep, err := Inject(pod, enabledNS(nil), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	var protected []string
	for _, p := range rep.Status.Ports {
		protected = append(protected, p.Name+"/"+string(p.Protocol))
	}
	if got := strings.Join(protected, ","); got != "http/http,grpc/h2c,http-8081/http,grafana/http" {
		t.Errorf("protected ports %s", got)
	}
	if u := rep.Status.Unprotected; len(u) != 1 || u[0].Name != "postgres" || u[0].Port != 5432 || u[0].Reason != `name "postgres" is not HTTP` {
		t.Errorf("unprotected %+v", u)
	}
	var warned bool
	for _, w := range rep.Warnings {
		if strings.Contains(w, `port postgres (5432): name "postgres" is not HTTP; not protected`) {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning about postgres in %q", rep.Warnings)
	}
	o := sidecarArgs(t, out)
	for _, p := range o.Proxies {
		if p.Upstream.Port() == "5432" {
			t.Errorf("the sidecar proxies the database port: %v", p)
		}
		if p.H2C != (p.Upstream.Port() == "9090") {
			t.Errorf("proxy %v: H2C = %v", p, p.H2C)
		}
	}
	if app := out.Spec.Containers[0]; app.Ports[2].Name != "postgres" || app.Ports[2].ContainerPort != 5432 {
		t.Errorf("the app's database port changed: %+v", app.Ports[2])
	}
}

// TestExplicitPortsDeniedWhenNotHTTP: podgate.io/ports naming a port declared non-HTTP is denied
// with the annotation and value named, as a typed *Error.
func TestExplicitPortsDeniedWhenNotHTTP(t *testing.T) {
	pod := validPod()
	pod.Annotations[AnnotationPorts] = "db"
	pod.Annotations[AnnotationAppProtocols] = "5432=mysql"
	pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "db", ContainerPort: 5432})
	_, _, err := Inject(pod, enabledNS(nil), testConfig())
	var e *Error
	if !errors.As(err, &e) || len(e.Problems) != 1 || e.Problems[0].Key != AnnotationPorts || e.Problems[0].Value != "db" ||
		!strings.Contains(e.Problems[0].Msg, `app protocol "mysql" is not HTTP`) {
		t.Fatalf("err = %v", err)
	}
}

// TestREADMEListsNonHTTPNames keeps the README's list of well-known non-HTTP names equal to the one
// the injector uses.
func TestREADMEListsNonHTTPNames(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := "Well-known non-HTTP names (`inject.NonHTTPPortNames`): `" + strings.Join(NonHTTPPortNames, "`, `") + "`."
	if !strings.Contains(strings.ReplaceAll(string(b), "\n", " "), want) {
		t.Errorf("README.md lacks the line\n%s", want)
	}
}
