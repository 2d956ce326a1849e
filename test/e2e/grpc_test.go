//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podgate/podgate/test/e2e/framework"
)

const (
	grpcNS       = "e2e-grpc"
	grpcClientNS = "e2e-grpc-client"
	robotUser    = "service-account-podgate-robot"
)

// grpcResult mirrors the client's report (test/e2e/apps/grpc Result).
type grpcResult struct {
	Calls []struct {
		Name     string              `json:"name"`
		Code     string              `json:"code"`
		Message  string              `json:"message"`
		Identity map[string][]string `json:"identity"`
		Echoes   []string            `json:"echoes"`
		Health   string              `json:"health"`
	} `json:"calls"`
	TCPEcho string `json:"tcpEcho"`
}

// grpcStatus is the part of podgate.io/status this test checks.
type grpcStatus struct {
	Ports []struct {
		Name     string `json:"name"`
		AppPort  int32  `json:"appPort"`
		Protocol string `json:"protocol"`
	} `json:"ports"`
	Unprotected []struct {
		Name   string `json:"name"`
		Port   int32  `json:"port"`
		Reason string `json:"reason"`
	} `json:"unprotected"`
	Probes []struct {
		Kind   string `json:"kind"`
		Target string `json:"target"`
	} `json:"probes"`
}

// TestGRPC: a gRPC app (health and a bidi streaming method) injected in a restricted namespace,
// with a non-HTTP TCP echo on a second port. Its gRPC readiness probe passes through the sidecar's
// admin port; a client in another pod gets OK with a Keycloak client-credentials token and
// Unauthenticated without one; the echo port is left alone and answers directly.
func TestGRPC(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	if err := kube.EnsureNamespace(ctx, grpcNS, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	if err := kube.EnsureSidecarSecret(ctx, grpcNS); err != nil {
		t.Fatal(err)
	}
	// Ready means the rewritten gRPC readiness probe passed: kubelet → admin port → grpc.health.v1.
	pod, svcIP, err := kube.DeployGRPC(ctx, framework.GRPCApp{Namespace: grpcNS, Name: "greeter", PodAnnotations: map[string]string{
		framework.AnnotationInject: "true", framework.AnnotationRoles: framework.AllowedRole,
	}}, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	checkGRPCPod(t, pod)

	robot, err := suite.Keycloak.ClientCredentialsToken(ctx, framework.RobotClientID, framework.RobotSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.EnsureNamespace(ctx, grpcClientNS, map[string]string{framework.LabelPSAEnforce: framework.PSARestricted}); err != nil {
		t.Fatal(err)
	}
	out, err := kube.RunGRPCClient(ctx, grpcClientNS, "grpc-client", robot.AccessToken, []string{
		fmt.Sprintf("-target=%s:%d", svcIP, framework.GRPCPort),
		fmt.Sprintf("-tcp-echo=%s:%d", pod.Status.PodIP, framework.GRPCEchoPort),
	}, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var res grpcResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("client report %q: %v", out, err)
	}
	want := map[string]string{
		"unary with token": "OK", "unary without token": "Unauthenticated",
		"stream with token": "OK", "stream without token": "Unauthenticated",
		"health with token": "OK", "health without token": "Unauthenticated",
	}
	for _, c := range res.Calls {
		if c.Code != want[c.Name] {
			t.Errorf("%s: %s %q, want %s", c.Name, c.Code, c.Message, want[c.Name])
		}
		delete(want, c.Name)
		switch c.Name {
		case "unary with token":
			// The client also sent x-auth-request-user: mallory; only the sidecar's identity arrives,
			// and the consumed token does not.
			if u := c.Identity["x-auth-request-user"]; len(u) != 1 || u[0] != robotUser {
				t.Errorf("identity at the app: %v, want x-auth-request-user [%s]", c.Identity, robotUser)
			}
			if r := strings.Join(c.Identity["x-auth-request-roles"], ","); !strings.Contains(r, framework.AllowedRole) {
				t.Errorf("roles at the app: %q", r)
			}
			if a := c.Identity["authorization"]; len(a) != 0 {
				t.Errorf("the bearer token reached the app: %q", a)
			}
		case "stream with token":
			if strings.Join(c.Echoes, ",") != "one,two,three" {
				t.Errorf("stream echoes %q", c.Echoes)
			}
		case "health with token":
			if c.Health != "SERVING" {
				t.Errorf("health %q", c.Health)
			}
		case "unary without token":
			if !strings.Contains(c.Message, "authorization: Bearer") {
				t.Errorf("Unauthenticated message %q does not say what to send", c.Message)
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("calls missing from the report: %v", want)
	}
	if res.TCPEcho != "hello, not HTTP\n" {
		t.Errorf("TCP echo on the port left alone answered %q", res.TCPEcho)
	}
}

// checkGRPCPod: the gRPC port is taken over, the TCP echo port left alone (recorded as such), and
// the gRPC readiness probe rewritten to the admin port.
func checkGRPCPod(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	var st grpcStatus
	if err := json.Unmarshal([]byte(pod.Annotations[framework.AnnotationStatus]), &st); err != nil {
		t.Fatalf("status %q: %v", pod.Annotations[framework.AnnotationStatus], err)
	}
	if len(st.Ports) != 1 || st.Ports[0].Name != "grpc" || st.Ports[0].AppPort != framework.GRPCPort {
		t.Errorf("protected ports %+v, want only grpc", st.Ports)
	}
	if len(st.Unprotected) != 1 || st.Unprotected[0].Name != framework.GRPCEchoPortName || st.Unprotected[0].Port != framework.GRPCEchoPort || st.Unprotected[0].Reason == "" {
		t.Errorf("unprotected ports %+v, want %s with a reason", st.Unprotected, framework.GRPCEchoPortName)
	}
	if len(st.Probes) != 1 || st.Probes[0].Kind != "readiness" || st.Probes[0].Target != fmt.Sprintf("grpc://127.0.0.1:%d", framework.GRPCPort) {
		t.Errorf("probes %+v, want the gRPC readiness probe passed through", st.Probes)
	}
	app := pod.Spec.Containers[0]
	if p := app.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != adminPort {
		t.Errorf("readiness probe %+v, want httpGet on the admin port", p)
	}
	// The echo port is the app's, untouched; the sidecar has no port of that name or number.
	if framework.PortByName(app.Ports, framework.GRPCEchoPortName) != framework.GRPCEchoPort {
		t.Errorf("app ports %v lack %s unchanged", app.Ports, framework.GRPCEchoPortName)
	}
	sc := pod.Spec.InitContainers[0]
	if framework.PortByName(sc.Ports, framework.GRPCEchoPortName) != 0 || slices.ContainsFunc(sc.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == framework.GRPCEchoPort }) {
		t.Errorf("sidecar ports %v include the echo port", sc.Ports)
	}
	if framework.PortByName(sc.Ports, "grpc") == 0 {
		t.Errorf("sidecar ports %v lack grpc", sc.Ports)
	}
}
