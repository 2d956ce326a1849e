//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podgate/podgate/internal/capture"
	"github.com/podgate/podgate/internal/cni"
	"github.com/podgate/podgate/test/e2e/framework"
)

const (
	annotationCapture = "podgate.io/capture"
	captureNS         = "e2e-capture"
	captureInitNS     = "e2e-capture-init"
	captureClientNS   = "e2e-capture-client"
	captureInitName   = "podgate-capture"
)

// captureStatus is the part of podgate.io/status the capture tests check.
type captureStatus struct {
	Capture   string `json:"capture"`
	CheckPort int32  `json:"captureCheckPort"`
	AdminPort int32  `json:"adminPort"`
}

func statusOf(t *testing.T, pod *corev1.Pod) captureStatus {
	t.Helper()
	var st captureStatus
	if err := json.Unmarshal([]byte(pod.Annotations[framework.AnnotationStatus]), &st); err != nil {
		t.Fatalf("pod %s: %s: %v", pod.Name, framework.AnnotationStatus, err)
	}
	return st
}

// fetched is the echo app's /fetch answer: a request made from inside a pod.
type fetched struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
	Error  string `json:"error"`
}

// direct is a path into a pod that bypasses Services: the pod IP and the app's original port,
// from the node or from inside another pod.
type direct struct {
	name string
	// get returns the status and body of GET target with headers, as seen from that place.
	get func(t *testing.T, target string, headers map[string]string) (int, string)
}

func fromNode() direct {
	return direct{"from the node", func(t *testing.T, target string, headers map[string]string) (int, string) {
		t.Helper()
		status, body, err := get(suiteCtx, noRedirects, target, headers)
		if err != nil {
			t.Fatalf("from the node, GET %s: %v", target, err)
		}
		return status, string(body)
	}}
}

// fromPod relays through the /fetch route of an uninjected echo pod.
func fromPod(relayIP string) direct {
	return direct{"from another pod", func(t *testing.T, target string, headers map[string]string) (int, string) {
		t.Helper()
		q := url.Values{"url": {target}}
		for k, v := range headers {
			q.Add("header", k+": "+v)
		}
		status, body, err := get(suiteCtx, noRedirects, "http://"+net.JoinHostPort(relayIP, fmt.Sprint(framework.EchoPort))+"/fetch?"+q.Encode(), nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("relay pod: HTTP %d, %v: %s", status, err, body)
		}
		var f fetched
		if err := json.Unmarshal(body, &f); err != nil {
			t.Fatal(err)
		}
		if f.Error != "" {
			t.Fatalf("from another pod, GET %s: %s", target, f.Error)
		}
		return f.Status, f.Body
	}}
}

// deployCaptureApp deploys one opted-in echo pod (capture mode from the pod annotation, when set)
// into ns, with the labels given, and a Service on a numeric targetPort.
func deployCaptureApp(t *testing.T, ns string, labels map[string]string, mode string) (corev1.Pod, *corev1.Service) {
	t.Helper()
	ctx, kube := suiteCtx, suite.Kube
	if err := kube.EnsureNamespace(ctx, ns, labels); err != nil {
		t.Fatal(err)
	}
	if err := kube.EnsureSidecarSecret(ctx, ns); err != nil {
		t.Fatal(err)
	}
	ann := map[string]string{framework.AnnotationInject: "true", framework.AnnotationRoles: framework.AllowedRole}
	if mode != "" {
		ann[annotationCapture] = mode
	}
	pods, err := kube.Deploy(ctx, framework.EchoApp{Namespace: ns, Name: "web", Replicas: 1, PodAnnotations: ann}, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web-numeric", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(framework.EchoPort)}}},
	}
	_ = kube.Client.CoreV1().Services(ns).Delete(ctx, svc.Name, metav1.DeleteOptions{})
	if svc, err = kube.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A new Service answers once kube-proxy has programmed its ClusterIP (before that: refused).
	err = framework.Eventually(ctx, time.Minute, 500*time.Millisecond, "Service "+svc.Name+" routed", func(ctx context.Context) (bool, string, error) {
		_, _, err := get(ctx, noRedirects, "http://"+svc.Spec.ClusterIP+"/", nil)
		return err == nil, fmt.Sprint(err), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pods[0], svc
}

// relayPod is an uninjected echo pod in an unlabelled namespace: the "other pod" of the tests,
// and the proof that pods without podgate are untouched.
// Each test gets its own namespace ns (a deleted one stays Terminating for a while).
func relayPod(t *testing.T, ns string) corev1.Pod {
	t.Helper()
	ctx, kube := suiteCtx, suite.Kube
	if err := kube.EnsureNamespace(ctx, ns, map[string]string{framework.LabelPSAEnforce: framework.PSARestricted}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	pods, err := kube.Deploy(ctx, framework.EchoApp{Namespace: ns, Name: "relay", Replicas: 1}, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return pods[0]
}

// checkDirectAccess is the list of direct paths, against one captured pod.
func checkDirectAccess(t *testing.T, pod corev1.Pod, svc *corev1.Service, relay corev1.Pod) {
	t.Helper()
	alice, err := suite.Keycloak.PasswordToken(suiteCtx, framework.ClientID, framework.ClientSecret, framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	podURL := "http://" + net.JoinHostPort(pod.Status.PodIP, fmt.Sprint(framework.EchoPort))
	svcURL := "http://" + svc.Spec.ClusterIP
	browser := map[string]string{"Accept": "text/html"}
	api := map[string]string{"Accept": "application/json"}
	withSpoof := map[string]string{"Accept": "application/json"}
	maps := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	for k, v := range spoofed {
		withSpoof[k] = v
	}
	bearer := map[string]string{"Authorization": "Bearer " + alice.AccessToken}

	for _, from := range []direct{fromNode(), fromPod(relay.Status.PodIP)} {
		for _, target := range []struct{ name, url string }{{"pod IP:8080", podURL}, {"numeric targetPort Service", svcURL}} {
			via := from.name + ", " + target.name
			status, body := from.get(t, target.url+"/capture/browser", browser)
			if status != http.StatusFound || strings.Contains(body, `"headers"`) {
				t.Errorf("(%s) browser: HTTP %d, want 302 to the login from the sidecar: %.200s", via, status, body)
			}
			status, body = from.get(t, target.url+"/capture/api", api)
			if status != http.StatusUnauthorized || strings.Contains(body, `"headers"`) {
				t.Errorf("(%s) API client: HTTP %d, want 401 from the sidecar: %.200s", via, status, body)
			}
			status, body = from.get(t, target.url+"/capture/spoofed", withSpoof)
			if status != http.StatusUnauthorized || strings.Contains(body, "mallory") {
				t.Errorf("(%s) spoofed identity headers only: HTTP %d, want 401: %.200s", via, status, body)
			}
			status, body = from.get(t, target.url+"/capture/bearer", maps(bearer, withSpoof))
			var echo Echo
			if status != http.StatusOK || json.Unmarshal([]byte(body), &echo) != nil {
				t.Errorf("(%s) valid bearer token: HTTP %d, want 200 from the app: %.200s", via, status, body)
				continue
			}
			checkIdentity(t, echo, framework.AllowedUser, via+", bearer with spoofed headers")
		}
	}

	// The app reaches itself on localhost, directly: the request it makes to 127.0.0.1:8080 arrives
	// without identity headers (it did not pass the sidecar).
	q := url.Values{"url": {"http://127.0.0.1:8080/self"}}
	status, body, err := get(suiteCtx, noRedirects, podURL+"/fetch?"+q.Encode(), bearer)
	var f fetched
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &f) != nil {
		t.Fatalf("app fetching itself: HTTP %d, %v: %.200s", status, err, body)
	}
	var self Echo
	if f.Status != http.StatusOK || json.Unmarshal([]byte(f.Body), &self) != nil || self.Path != "/self" ||
		http.Header(self.Headers).Get("X-Auth-Request-User") != "" {
		t.Errorf("the app on 127.0.0.1:8080 answered %d %q %.200s, want itself, directly", f.Status, f.Error, f.Body)
	}
}

// Capture mode cni (the default): from the node and from another pod, the pod IP with the app's
// original port and a Service with a numeric targetPort reach the sidecar, never the app; a pod
// without podgate is untouched.
func TestCaptureCNI(t *testing.T) {
	kube := suite.Kube
	relay := relayPod(t, captureClientNS)
	pod, svc := deployCaptureApp(t, captureNS, framework.InjectedNamespaceLabels(), "")
	t.Cleanup(func() { deleteNamespace(kube, captureNS) })

	st := statusOf(t, &pod)
	if st.Capture != "cni" || st.CheckPort == 0 {
		t.Fatalf("status capture=%q checkPort=%d, want the default cni with a check port", st.Capture, st.CheckPort)
	}
	if !framework.PodReady(&pod) {
		t.Fatalf("pod not Ready: %s", framework.PodStatusSummary(&pod))
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == captureInitName {
			t.Errorf("cni mode has the init container %s", captureInitName)
		}
	}
	checkDirectAccess(t, pod, svc, relay)
	checkProbesPass(t, pod)
	checkRestrictedEnforced(t, captureNS)
	table := podNftTable(t, &pod)
	want := fmt.Sprintf("tcp dport %d redirect to :%d", framework.EchoPort, proxyPortOf(t, &pod, framework.EchoPort))
	if table != "" && (!strings.Contains(table, want) || !strings.Contains(table, fmt.Sprintf("tcp dport %d redirect to :%d", st.CheckPort, st.AdminPort)) ||
		!strings.Contains(table, `iifname "lo" accept`)) {
		t.Errorf("nft list table inet %s in the pod's netns:\n%s\nwant %q, the check port to the admin port, loopback exempt", capture.Table, table, want)
	}
	if relayTable := podNftTable(t, &relay); relayTable != "" && !strings.Contains(relayTable, "No such file or directory") {
		t.Errorf("the uninjected pod's netns has a podgate table:\n%s", relayTable)
	}

	// The pod without podgate answers on its own port, directly (the app's JSON, no identity).
	echo := getEcho(t, suiteCtx, noRedirects, "http://"+net.JoinHostPort(relay.Status.PodIP, fmt.Sprint(framework.EchoPort))+"/untouched", map[string]string{"Accept": "application/json"})
	if echo.Name != "relay" || http.Header(echo.Headers).Get("X-Auth-Request-User") != "" {
		t.Errorf("the uninjected pod answered %+v", echo)
	}
}

// Capture mode init: in a namespace whose Pod Security level allows NET_ADMIN (privileged), a first
// init container programs the same rules and the same direct paths are closed; in a restricted
// namespace the injector denies the pod and says why.
func TestCaptureInit(t *testing.T) {
	ctx, kube := suiteCtx, suite.Kube
	relay := relayPod(t, captureClientNS+"-init")
	labels := map[string]string{framework.LabelInjection: "enabled", framework.LabelPSAEnforce: "privileged"}
	pod, svc := deployCaptureApp(t, captureInitNS, labels, "init")
	t.Cleanup(func() { deleteNamespace(kube, captureInitNS) })
	if st := statusOf(t, &pod); st.Capture != "init" {
		t.Fatalf("status capture=%q, want init", st.Capture)
	}
	if len(pod.Spec.InitContainers) < 2 || pod.Spec.InitContainers[0].Name != captureInitName {
		t.Fatalf("init containers %v, want %s first", containerNames(pod.Spec.InitContainers), captureInitName)
	}
	sc := pod.Spec.InitContainers[0].SecurityContext
	if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN"}) ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || sc.Privileged == nil || *sc.Privileged {
		t.Errorf("init container security context %+v, want NET_ADMIN only", sc)
	}
	checkDirectAccess(t, pod, svc, relay)
	checkProbesPass(t, pod)
	if table := podNftTable(t, &pod); table != "" && !strings.Contains(table, fmt.Sprintf("tcp dport %d redirect to :%d", framework.EchoPort, proxyPortOf(t, &pod, framework.EchoPort))) {
		t.Errorf("nft list table inet %s in the init-mode pod's netns:\n%s", capture.Table, table)
	}

	// Restricted forbids NET_ADMIN: denied at admission, naming the annotation and the level.
	if err := kube.EnsureNamespace(ctx, captureNS+"-restricted", framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, captureNS+"-restricted") })
	d := framework.EchoApp{Namespace: captureNS + "-restricted", Name: "web", Replicas: 1,
		PodAnnotations: map[string]string{framework.AnnotationInject: "true", annotationCapture: "init"}}.Deployment()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: d.Namespace, Annotations: d.Spec.Template.Annotations}, Spec: d.Spec.Template.Spec}
	_, err := kube.Client.CoreV1().Pods(d.Namespace).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil || !strings.Contains(err.Error(), annotationCapture) || !strings.Contains(err.Error(), "NET_ADMIN") || !strings.Contains(err.Error(), "restricted") {
		t.Errorf("init mode in a restricted namespace: err = %v, want a denial naming %s, NET_ADMIN and the level", err, annotationCapture)
	}
}

// Capture mode none is today's behaviour by explicit choice only, and the API server relays the
// injector's warning.
func TestCaptureNoneWarns(t *testing.T) {
	ctx, kube := suiteCtx, suite.Kube
	ns := captureNS + "-none"
	if err := kube.EnsureNamespace(ctx, ns, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: %s
  annotations: {%q: "true", %q: "none"}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: echo
    image: %s
    ports: [{name: http, containerPort: 8080}]
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`, ns, framework.AnnotationInject, annotationCapture, framework.EchoImage)
	out, err := kube.RunCombined(ctx, manifest, "create", "--dry-run=server", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Warning:") || !strings.Contains(out, annotationCapture) || !strings.Contains(out, "without authentication") {
		t.Errorf("kubectl create with capture none printed %q, want the injector's warning", out)
	}
}

// Fail closed: with the node agent removed, the plugin is no longer in the chain; a cni-mode pod
// then never starts its app (the sidecar's startup probe goes through the capture's check port,
// which nothing answers without the rules), and its app port does not serve.
func TestCaptureFailsClosedWithoutAgent(t *testing.T) {
	ctx, kube := suiteCtx, suite.Kube
	conflist := localConflist(t)
	if _, err := kube.Run(ctx, "", "-n", framework.CNIAgentNamespace, "delete", "daemonset", framework.CNIAgentDaemonSet, "--wait=true"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.WithoutCancel(suiteCtx)
		if err := suite.DeployInjector(ctx); err != nil {
			t.Errorf("redeploying the node agent: %v", err)
		}
	})
	if conflist != "" {
		err := framework.Eventually(ctx, time.Minute, 500*time.Millisecond, "the agent's uninstall", func(context.Context) (bool, string, error) {
			b, err := os.ReadFile(conflist)
			return err == nil && !strings.Contains(string(b), "podgate-cni"), string(b), nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ns := captureNS + "-noagent"
	if err := kube.EnsureNamespace(ctx, ns, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	if err := kube.EnsureSidecarSecret(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := framework.EchoApp{Namespace: ns, Name: "web", Replicas: 1,
		PodAnnotations: map[string]string{framework.AnnotationInject: "true", framework.AnnotationRoles: framework.AllowedRole}}
	if _, err := kube.Client.AppsV1().Deployments(ns).Create(ctx, app.Deployment(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Wait until the sidecar runs and its startup probe has failed through the check port.
	var pod corev1.Pod
	var probeEvent string
	err := framework.Eventually(ctx, 2*time.Minute, time.Second, "the sidecar's startup probe failing on the check port", func(ctx context.Context) (bool, string, error) {
		list, err := kube.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(list.Items) != 1 {
			return false, fmt.Sprint("pods: ", err), nil
		}
		pod = list.Items[0]
		events, err := kube.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name})
		if err != nil {
			return false, err.Error(), nil
		}
		for _, e := range events.Items {
			if e.Reason == "Unhealthy" && strings.Contains(e.Message, "Startup probe failed") {
				probeEvent = e.Message
				return true, "", nil
			}
		}
		return false, framework.PodStatusSummary(&pod), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st := statusOf(t, &pod)
	if !strings.Contains(probeEvent, fmt.Sprintf(":%d/", st.CheckPort)) || !strings.Contains(probeEvent, "podgate-capture") {
		t.Errorf("startup probe event %q does not name the check port %d and podgate-capture", probeEvent, st.CheckPort)
	}
	// Hold on a while longer: the app container never starts, the pod is never Ready, and the app
	// port answers nothing.
	time.Sleep(5 * time.Second)
	got, err := kube.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if framework.PodReady(got) {
		t.Errorf("pod without capture became Ready: %s", framework.PodStatusSummary(got))
	}
	for _, cs := range got.Status.ContainerStatuses {
		if cs.Name == "echo" && (cs.State.Running != nil || cs.RestartCount > 0 || cs.State.Terminated != nil) {
			t.Errorf("the app container started without capture: %+v", cs.State)
		}
	}
	if got.Status.PodIP != "" {
		status, body, err := get(ctx, noRedirects, "http://"+net.JoinHostPort(got.Status.PodIP, fmt.Sprint(framework.EchoPort))+"/", nil)
		if err == nil {
			t.Errorf("pod IP:8080 answered HTTP %d without capture: %.200s", status, body)
		}
	}
	note("fail closed without the node agent: app container never started; %s", probeEvent)

	if conflist != "" {
		pluginMissing(t, conflist)
	}
}

// pluginMissing: a conflist that names podgate-cni on a node without its binary (an agent killed
// halfway, a node image without the plugin) fails every new sandbox with an error naming the
// plugin, so an opted-in pod never runs there either.
func pluginMissing(t *testing.T, conflist string) {
	t.Helper()
	ctx, kube := suiteCtx, suite.Kube
	orig, err := os.ReadFile(conflist)
	if err != nil {
		t.Fatal(err)
	}
	chained, _, err := cni.Chain(orig, cni.Entry{})
	if err != nil {
		t.Fatal(err)
	}
	writeConflist := func(b []byte) {
		tmp := filepath.Join(filepath.Dir(conflist), ".e2e-conflist.tmp")
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, conflist); err != nil {
			t.Fatal(err)
		}
	}
	writeConflist(chained)
	t.Cleanup(func() { writeConflist(orig) })
	time.Sleep(2 * time.Second) // containerd reloads the conflist on its own file watch
	ns := captureNS + "-missing"
	if err := kube.EnsureNamespace(ctx, ns, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	if err := kube.EnsureSidecarSecret(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := framework.EchoApp{Namespace: ns, Name: "web", Replicas: 1, PodAnnotations: map[string]string{framework.AnnotationInject: "true"}}
	if _, err := kube.Client.AppsV1().Deployments(ns).Create(ctx, app.Deployment(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var msg string
	err = framework.Eventually(ctx, 2*time.Minute, time.Second, "the sandbox failing on the missing plugin", func(ctx context.Context) (bool, string, error) {
		events, err := kube.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreatePodSandBox"})
		if err != nil {
			return false, err.Error(), nil
		}
		for _, e := range events.Items {
			if strings.Contains(e.Message, "podgate-cni") {
				msg = e.Message
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d sandbox failures so far", len(events.Items)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := kube.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Status.PodIP != "" || framework.PodReady(&p) {
			t.Errorf("pod %s got a network without the plugin: %s", p.Name, framework.PodStatusSummary(&p))
		}
	}
	note("fail closed with the plugin missing: %.400s", msg)
}

// A port left alone as not HTTP (status "unprotected") is not redirected: the gRPC app's tcp-echo
// answers directly on the pod IP from the node and from another pod, while its gRPC port on the
// same pod IP reaches the sidecar, and the pod's table has no rule for the echo port.
func TestCaptureLeavesUnprotectedPortsAlone(t *testing.T) {
	ctx, kube := suiteCtx, suite.Kube
	ns := captureNS + "-grpc"
	relay := relayPod(t, captureClientNS+"-grpc")
	if err := kube.EnsureNamespace(ctx, ns, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	if err := kube.EnsureSidecarSecret(ctx, ns); err != nil {
		t.Fatal(err)
	}
	pod, _, err := kube.DeployGRPC(ctx, framework.GRPCApp{Namespace: ns, Name: "greeter", PodAnnotations: map[string]string{
		framework.AnnotationInject: "true", framework.AnnotationRoles: framework.AllowedRole,
	}}, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	checkGRPCPod(t, pod)
	if st := statusOf(t, pod); st.Capture != "cni" || st.CheckPort == 0 {
		t.Fatalf("status capture=%q checkPort=%d, want cni", st.Capture, st.CheckPort)
	}
	// Not HTTP: the bytes come back unchanged (the sidecar would answer 400 to them).
	echoAddr := net.JoinHostPort(pod.Status.PodIP, fmt.Sprint(framework.GRPCEchoPort))
	if got, err := tcpEchoOnce(echoAddr, "hello, not HTTP\n"); err != nil || got != "hello, not HTTP\n" {
		t.Errorf("from the node, %s (%s, unprotected) answered %q, %v; want the app's echo", echoAddr, framework.GRPCEchoPortName, got, err)
	}
	// From another pod: an HTTP request to the echo port comes back as the app echoes it (the
	// request line itself), never as the sidecar's answer.
	q := url.Values{"url": {"http://" + echoAddr + "/not-http"}}
	status, body, err := get(ctx, noRedirects, "http://"+net.JoinHostPort(relay.Status.PodIP, fmt.Sprint(framework.EchoPort))+"/fetch?"+q.Encode(), nil)
	var f fetched
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &f) != nil {
		t.Fatalf("relay: HTTP %d, %v: %.200s", status, err, body)
	}
	if f.Status != 0 || !strings.Contains(f.Error, "malformed HTTP") {
		t.Errorf("from another pod, %s answered HTTP %d %q (%s); want the app's raw echo, which is not HTTP", echoAddr, f.Status, f.Body, f.Error)
	}
	// The gRPC port on the same pod IP is captured: an HTTP/1.1 API client gets the sidecar's 401.
	grpcURL := "http://" + net.JoinHostPort(pod.Status.PodIP, fmt.Sprint(framework.GRPCPort)) + "/"
	if status, body, err := get(ctx, noRedirects, grpcURL, map[string]string{"Accept": "application/json"}); err != nil || status != http.StatusUnauthorized {
		t.Errorf("from the node, %s: HTTP %d, %v: %.200s; want 401 from the sidecar", grpcURL, status, err, body)
	}
	if table := podNftTable(t, pod); table != "" {
		if !strings.Contains(table, fmt.Sprintf("tcp dport %d redirect", framework.GRPCPort)) || strings.Contains(table, fmt.Sprintf("dport %d ", framework.GRPCEchoPort)) {
			t.Errorf("nft list table inet %s in the gRPC pod's netns:\n%s\nwant %d redirected and %d not", capture.Table, table, framework.GRPCPort, framework.GRPCEchoPort)
		}
	}
}

// tcpEchoOnce sends msg to addr and reads back as many bytes.
func tcpEchoOnce(addr, msg string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	n, err := io.ReadFull(c, buf)
	return string(buf[:n]), err
}

// checkProbesPass: the app's probes were rewritten to the sidecar's admin port and pass through it
// (the app container is ready and never restarted), and the sidecar's startup probe, which goes
// through the capture's check port, passed.
func checkProbesPass(t *testing.T, pod corev1.Pod) {
	t.Helper()
	for _, c := range pod.Spec.Containers {
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			if p != nil && (p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != int(statusOf(t, &pod).AdminPort)) {
				t.Errorf("container %s probe %+v is not on the admin port", c.Name, p.ProbeHandler)
			}
		}
	}
	got, err := suite.Kube.Client.CoreV1().Pods(pod.Namespace).Get(suiteCtx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	statuses := append(slices.Clone(got.Status.InitContainerStatuses), got.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if cs.Name == captureInitName {
			continue
		}
		if !cs.Ready || cs.RestartCount != 0 || (cs.Started != nil && !*cs.Started) {
			t.Errorf("container %s: ready %v, started %v, restarts %d", cs.Name, cs.Ready, cs.Started, cs.RestartCount)
		}
	}
	if !framework.PodReady(got) {
		t.Errorf("pod not Ready: %s", framework.PodStatusSummary(got))
	}
}

// checkRestrictedEnforced: the namespace enforces Pod Security restricted, so the captured pod in
// it passed restricted admission: a pod asking for NET_ADMIN is refused there.
func checkRestrictedEnforced(t *testing.T, ns string) {
	t.Helper()
	ctx := suiteCtx
	n, err := suite.Kube.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Labels[framework.LabelPSAEnforce] != framework.PSARestricted {
		t.Fatalf("namespace %s labels %v, want %s=%s", ns, n.Labels, framework.LabelPSAEnforce, framework.PSARestricted)
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "net-admin", Namespace: ns, Annotations: map[string]string{framework.AnnotationInject: "false"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: framework.EchoImage,
			SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}}}}},
	}
	_, err = suite.Kube.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil || !strings.Contains(err.Error(), "restricted") {
		t.Errorf("a NET_ADMIN pod in %s: err = %v, want Pod Security restricted to refuse it", ns, err)
	}
}

// proxyPortOf is the sidecar port the status gives for appPort.
func proxyPortOf(t *testing.T, pod *corev1.Pod, appPort int32) int32 {
	t.Helper()
	var st struct {
		Ports []struct {
			AppPort   int32 `json:"appPort"`
			ProxyPort int32 `json:"proxyPort"`
		} `json:"ports"`
	}
	if err := json.Unmarshal([]byte(pod.Annotations[framework.AnnotationStatus]), &st); err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Ports {
		if p.AppPort == appPort {
			return p.ProxyPort
		}
	}
	t.Fatalf("pod %s: no protected port %d in its status", pod.Name, appPort)
	return 0
}

// podNftTable is what the README's node check shows for a pod: `nft list table inet podgate` run in
// the pod's network namespace, found among the node's namespaces by the pod IP ("" for providers
// whose node is not this host). A namespace without the table gives nft's error text.
func podNftTable(t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	if suite.Provider.Name() != "local" {
		t.Logf("the %s node is not this host: its pod network namespaces are not checked", suite.Provider.Name())
		return ""
	}
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		addrs, err := exec.Command("ip", "netns", "exec", e.Name(), "ip", "-o", "addr", "show").Output()
		if err != nil || !strings.Contains(string(addrs), " "+pod.Status.PodIP+"/") {
			continue
		}
		out, _ := exec.Command("ip", "netns", "exec", e.Name(), "nft", "list", "table", "inet", capture.Table).CombinedOutput()
		return string(out)
	}
	t.Fatalf("no network namespace on the node holds pod %s's IP %s", pod.Name, pod.Status.PodIP)
	return ""
}

// localConflist is the local cluster's conflist on this host ("" for other providers).
func localConflist(t *testing.T) string {
	t.Helper()
	_, conf, _ := suite.Provider.CNIDirs()
	if suite.Provider.Name() != "local" {
		return ""
	}
	return filepath.Join(conf, "10-podgate-e2e.conflist")
}

// noteCaptureCost records what capture adds to a pod's start: the plugin's own run time for each
// ADD of the pods in ns (from its log on the node), plus starting the binary (measured by running
// it with CNI_COMMAND=VERSION), against the p50 of the same pods' creation to Ready.
func noteCaptureCost(t *testing.T, ns string, pods []corev1.Pod) {
	t.Helper()
	bin, _, logFile := suite.Provider.CNIDirs()
	if suite.Provider.Name() != "local" {
		t.Logf("capture cost: the plugin log is inside the %s node; not recorded", suite.Provider.Name())
		return
	}
	f, err := os.Open(logFile)
	if err != nil {
		t.Errorf("capture cost: %v", err)
		return
	}
	defer f.Close()
	var add []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l struct {
			Command    string  `json:"command"`
			Pod        string  `json:"pod"`
			Captured   bool    `json:"captured"`
			DurationMs float64 `json:"durationMs"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Command == "add" && l.Captured && strings.HasPrefix(l.Pod, ns+"/") {
			add = append(add, l.DurationMs)
		}
	}
	if len(add) < len(pods) {
		t.Errorf("capture cost: %d captured ADDs logged for %d pods in %s", len(add), len(pods), ns)
		return
	}
	var starts []float64
	for range 10 {
		start := time.Now()
		cmd := exec.Command(filepath.Join(bin, "podgate-cni"))
		cmd.Env = []string{"CNI_COMMAND=VERSION"}
		cmd.Stdin = strings.NewReader(`{"cniVersion":"0.4.0"}`)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("capture cost: running the installed plugin: %v: %s", err, out)
			return
		}
		starts = append(starts, float64(time.Since(start).Microseconds())/1000)
	}
	var startup []float64
	for _, p := range pods {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				startup = append(startup, c.LastTransitionTime.Sub(p.CreationTimestamp.Time).Seconds()*1000)
			}
		}
	}
	addP50, execP50, startP50 := median(add), median(starts), median(startup)
	note("capture cost per pod (%d pods in %s, p50): plugin ADD %.1f ms + binary start %.1f ms = %.1f ms (goal < 100 ms); pod creation to Ready p50 %.0f ms (1 s resolution), so capture is %.1f%% of it",
		len(add), ns, addP50, execP50, addP50+execP50, startP50, 100*(addP50+execP50)/startP50)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
