//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/podgate/podgate/test/e2e/framework"
)

// The injector and sidecar as deployed by manifests/overlays/e2e.
const (
	sidecarName   = "podgate-proxy"
	adminPort     = 4190
	injectedNS    = "e2e-injected"
	roleFromNSAnn = "--allowed-role=" + framework.AllowedRole
)

// noRedirects is an HTTP client that reports redirects instead of following them.
var noRedirects = &http.Client{
	Timeout:       15 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// 1. The injector Deployment becomes ready from the manifests; the webhook is registered.
func TestInjectorDeployedFromManifests(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	d, err := kube.Client.AppsV1().Deployments(framework.InjectorNamespace).Get(ctx, framework.InjectorDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.ReadyReplicas < 1 || d.Status.ReadyReplicas != *d.Spec.Replicas {
		t.Errorf("injector has %d of %d replicas ready", d.Status.ReadyReplicas, *d.Spec.Replicas)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != framework.InjectorImage {
		t.Errorf("injector image = %s, want the e2e build %s", img, framework.InjectorImage)
	}
	hooks, err := kube.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, cfg := range hooks.Items {
		for _, w := range cfg.Webhooks {
			if w.ClientConfig.Service == nil || w.ClientConfig.Service.Namespace != framework.InjectorNamespace {
				continue
			}
			found = true
			if len(w.ClientConfig.CABundle) == 0 {
				t.Errorf("webhook %s has no caBundle", w.Name)
			}
			if w.FailurePolicy == nil || *w.FailurePolicy != "Fail" {
				t.Errorf("webhook %s failurePolicy = %v, want Fail (an auth proxy must not fail open)", w.Name, w.FailurePolicy)
			}
			if w.SideEffects == nil || *w.SideEffects != "None" {
				t.Errorf("webhook %s sideEffects = %v, want None", w.Name, w.SideEffects)
			}
		}
	}
	if !found {
		t.Fatalf("no MutatingWebhookConfiguration points at a service in %s", framework.InjectorNamespace)
	}
}

// 2. An opted-in Deployment in a labelled, restricted namespace: pods Running and Ready with the
// sidecar as a native sidecar, ports and probes rewritten, the status annotation set.
func TestInjectedDeployment(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	pods := deployInjectedApp(t, injectedNS, "web", 2)
	for _, pod := range pods {
		t.Run(pod.Name, func(t *testing.T) { checkInjectedPod(t, &pod) })
	}

	// The restricted level is really enforced there: a privileged pod is refused, so the injected
	// pods above passed it.
	bad := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "privileged", Namespace: injectedNS},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: framework.EchoImage, ImagePullPolicy: corev1.PullNever,
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
		}}},
	}
	_, err := kube.Client.CoreV1().Pods(injectedNS).Create(ctx, bad, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Errorf("a privileged pod in %s: err = %v, want a PodSecurity violation", injectedNS, err)
	}
}

// deployInjectedApp deploys an opted-in echo app into a fresh injected namespace whose
// annotation (not the pod's) sets the allowed role: the injector must read the namespace through
// the API server, through the kubernetes Service.
func deployInjectedApp(t *testing.T, ns, name string, replicas int32) []corev1.Pod {
	t.Helper()
	ctx := suiteCtx
	kube := suite.Kube
	if err := kube.EnsureNamespace(ctx, ns, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	nsObj, err := kube.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsObj.Annotations = map[string]string{framework.AnnotationRoles: framework.AllowedRole}
	if _, err := kube.Client.CoreV1().Namespaces().Update(ctx, nsObj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kube.EnsureSidecarSecret(ctx, ns); err != nil {
		t.Fatal(err)
	}
	pods, err := kube.Deploy(ctx, framework.EchoApp{
		Namespace: ns, Name: name, Replicas: replicas,
		PodAnnotations: map[string]string{framework.AnnotationInject: "true"},
	}, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

// injectionStatus is the part of podgate.io/status the tests check.
type injectionStatus struct {
	Sidecar   string `json:"sidecar"`
	Native    bool   `json:"native"`
	AdminPort int32  `json:"adminPort"`
	Ports     []struct {
		Container string `json:"container"`
		Name      string `json:"name"`
		AppName   string `json:"appName"`
		AppPort   int32  `json:"appPort"`
		ProxyPort int32  `json:"proxyPort"`
	} `json:"ports"`
	Probes []struct {
		Name   string `json:"name"`
		Kind   string `json:"kind"`
		Target string `json:"target"`
	} `json:"probes"`
}

func checkInjectedPod(t *testing.T, pod *corev1.Pod) {
	if !framework.PodReady(pod) || pod.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s, ready %t: %s", pod.Status.Phase, framework.PodReady(pod), framework.PodStatusSummary(pod))
	}
	// Native sidecar: the first init container, restartPolicy Always, started before the app.
	if len(pod.Spec.InitContainers) == 0 || pod.Spec.InitContainers[0].Name != sidecarName {
		t.Fatalf("init containers %v, want %s first", containerNames(pod.Spec.InitContainers), sidecarName)
	}
	sc := pod.Spec.InitContainers[0]
	if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("sidecar restartPolicy = %v, want Always (native sidecar)", sc.RestartPolicy)
	}
	if sc.Image != framework.SidecarImage {
		t.Errorf("sidecar image = %s, want %s", sc.Image, framework.SidecarImage)
	}
	if !slices.Contains(sc.Args, roleFromNSAnn) {
		t.Errorf("sidecar args %v lack %s, which the namespace's annotation sets", sc.Args, roleFromNSAnn)
	}
	if s := sc.SecurityContext; s == nil || s.RunAsNonRoot == nil || !*s.RunAsNonRoot || s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem {
		t.Errorf("sidecar securityContext %+v, want non-root with a read-only root filesystem", s)
	}
	for _, st := range pod.Status.InitContainerStatuses {
		if st.Name == sidecarName && (st.Started == nil || !*st.Started || !st.Ready) {
			t.Errorf("sidecar status: started %v, ready %t", st.Started, st.Ready)
		}
	}
	// Ports: the sidecar took the name "http" (the Service's targetPort), the app's port was renamed.
	app := pod.Spec.Containers[0]
	proxyPort := portByName(sc.Ports, "http")
	if proxyPort == 0 {
		t.Errorf("sidecar ports %v lack the name http", sc.Ports)
	}
	if portByName(app.Ports, "http") != 0 || len(app.Ports) != 1 || app.Ports[0].ContainerPort != framework.EchoPort {
		t.Errorf("app ports %v, want port %d renamed away from http", app.Ports, framework.EchoPort)
	}
	// Probes: rewritten to the sidecar's admin port, which checks the app on localhost.
	for kind, p := range map[string]*corev1.Probe{"readiness": app.ReadinessProbe, "liveness": app.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != adminPort || !strings.HasPrefix(p.HTTPGet.Path, "/probe/") {
			t.Errorf("%s probe %+v, want httpGet /probe/... on the admin port %d", kind, p, adminPort)
		}
	}
	// The status annotation records all of it.
	var st injectionStatus
	if err := json.Unmarshal([]byte(pod.Annotations[framework.AnnotationStatus]), &st); err != nil {
		t.Fatalf("annotation %s = %q: %v", framework.AnnotationStatus, pod.Annotations[framework.AnnotationStatus], err)
	}
	if st.Sidecar != sidecarName || !st.Native || st.AdminPort != adminPort || len(st.Ports) != 1 ||
		st.Ports[0].Name != "http" || st.Ports[0].AppPort != framework.EchoPort || st.Ports[0].ProxyPort != proxyPort ||
		len(st.Probes) != 2 {
		t.Errorf("status annotation %+v does not match the pod", st)
	}
}

func containerNames(cs []corev1.Container) []string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return names
}

func portByName(ports []corev1.ContainerPort, name string) int32 {
	for _, p := range ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// 3. An opted-out or silent pod in a labelled namespace, a silent one in an unlabelled namespace:
// untouched. An opted-in pod in an unlabelled namespace is refused by the ValidatingAdmissionPolicy
// (it would run unprotected), with the label to set in the message.
func TestPodsNotOptedInAreUntouched(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	const plainNS, labelledNS = "e2e-untouched-plain", "e2e-untouched-labelled"
	if err := kube.EnsureNamespace(ctx, plainNS, nil); err != nil {
		t.Fatal(err)
	}
	if err := kube.EnsureNamespace(ctx, labelledNS, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, plainNS); deleteNamespace(kube, labelledNS) })
	app := framework.EchoApp{Namespace: plainNS, Name: "opted-in", Replicas: 1}.Deployment()
	_, err := kube.Client.CoreV1().Pods(plainNS).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "opted-in", Namespace: plainNS,
		Annotations: map[string]string{framework.AnnotationInject: "true"}}, Spec: app.Spec.Template.Spec}, metav1.CreateOptions{})
	if want := "kubectl label namespace " + plainNS + " podgate.io/injection=enabled"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("opted-in pod in an unlabelled namespace: err = %v, want a refusal naming %q", err, want)
	}
	cases := []struct{ name, ns, inject string }{
		{"silent-in-unlabelled-namespace", plainNS, ""},
		{"opted-out", labelledNS, "false"},
		{"no-annotation", labelledNS, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ann := map[string]string{}
			if c.inject != "" {
				ann[framework.AnnotationInject] = c.inject
			}
			d := framework.EchoApp{Namespace: c.ns, Name: c.name, Replicas: 1, PodAnnotations: ann}.Deployment()
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: c.name, Namespace: c.ns, Annotations: ann}, Spec: d.Spec.Template.Spec}
			created, err := kube.Client.CoreV1().Pods(c.ns).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(created.Spec.InitContainers) != 0 || len(created.Spec.Containers) != 1 {
				t.Errorf("pod has init containers %v and containers %v, want only the app",
					containerNames(created.Spec.InitContainers), containerNames(created.Spec.Containers))
			}
			if s, ok := created.Annotations[framework.AnnotationStatus]; ok {
				t.Errorf("pod got %s=%s", framework.AnnotationStatus, s)
			}
			if p := created.Spec.Containers[0].Ports[0]; p.Name != "http" {
				t.Errorf("app port renamed to %q", p.Name)
			}
		})
	}
}

// demoOnce deploys the demo app (injected echo behind a Service on a fixed ClusterIP) for the
// tests of the request path; it is the same app `make demo` shows.
var demoOnce = sync.OnceValue(func() error {
	_, err := suite.Kube.DeployDemo(suiteCtx)
	return err
})

func requireDemo(t *testing.T) {
	t.Helper()
	if err := demoOnce(); err != nil {
		t.Fatal(err)
	}
}

// 4. Through the Service (named targetPort, kube-proxy): no credentials → 302 to Keycloak for a
// browser, 401 for an API client.
func TestUnauthenticatedThroughService(t *testing.T) {
	requireDemo(t)
	ctx := suiteCtx
	var resp *http.Response
	err := framework.Eventually(ctx, 30*time.Second, 500*time.Millisecond, "GET "+framework.DemoURL, func(ctx context.Context) (bool, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, framework.DemoURL+"/private?x=1", nil)
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		r, err := noRedirects.Do(req)
		if err != nil {
			return false, err.Error(), nil
		}
		r.Body.Close()
		resp = r
		return true, "", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), suite.Keycloak.Issuer()+"/protocol/openid-connect/auth") {
		t.Fatalf("browser without a session: HTTP %d to %q, want 302 to Keycloak's authorization endpoint", resp.StatusCode, resp.Header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("client_id") != framework.ClientID || q.Get("code_challenge_method") != "S256" || q.Get("state") == "" ||
		q.Get("redirect_uri") != framework.DemoURL+"/oauth2/callback" {
		t.Errorf("authorization request %v: want client podgate, PKCE S256, a state and the callback on the Service", q)
	}

	for name, h := range map[string]map[string]string{
		"json":     {"Accept": "application/json"},
		"xhr":      {"X-Requested-With": "XMLHttpRequest"},
		"no token": {},
	} {
		status, body, err := get(ctx, noRedirects, framework.DemoURL+"/api", h)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusUnauthorized {
			t.Errorf("API client (%s) without credentials: HTTP %d (%s), want 401", name, status, body)
		}
	}
}

// 5. A browser logs in against the real Keycloak: it follows the redirect, submits Keycloak's
// form, comes back through the callback and gets the app; the app saw who logged in.
func TestBrowserLogin(t *testing.T) {
	requireDemo(t)
	ctx := suiteCtx
	b := framework.NewBrowser()
	page, err := b.Login(ctx, framework.DemoURL+"/after-login?x=1", framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	if page.Status != http.StatusOK || page.URL.Path != "/after-login" {
		t.Fatalf("login ended on %s with HTTP %d: %.300s", page.URL, page.Status, page.Body)
	}
	if !visited(b, suite.Keycloak.Issuer()+"/login-actions/authenticate") || !visited(b, framework.DemoURL+"/oauth2/callback?") {
		t.Errorf("the login did not pass Keycloak's form and the callback: %v", b.Visited)
	}
	var echo Echo
	if err := json.Unmarshal([]byte(page.Body), &echo); err != nil {
		t.Fatalf("app answer %q: %v", page.Body, err)
	}
	checkIdentity(t, echo, framework.AllowedUser, "cookie")

	// The session holds for the next requests, and the HTML page greets the user.
	resp, err := b.Get(ctx, framework.DemoURL+"/")
	if err != nil {
		t.Fatal(err)
	}
	home, _ := readAll(resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(home, "Hello, alice!") {
		t.Errorf("home page: HTTP %d %.200q, want the greeting for alice", resp.StatusCode, home)
	}

	// Signing out ends the Keycloak session too: coming back asks for the password again.
	resp, err = b.Get(ctx, framework.DemoURL+"/oauth2/sign_out?rd=%2Fagain")
	if err != nil {
		t.Fatal(err)
	}
	after, _ := readAll(resp)
	if _, _, err := framework.LoginForm(after); err != nil || !strings.HasPrefix(resp.Request.URL.String(), suite.Keycloak.Issuer()) {
		t.Errorf("after sign-out the browser ended on %s (HTTP %d), want Keycloak's login form: %v", resp.Request.URL, resp.StatusCode, err)
	}
	if !visited(b, suite.Keycloak.Issuer()+"/protocol/openid-connect/logout") {
		t.Errorf("sign-out did not go through Keycloak's end-session endpoint: %v", b.Visited)
	}

	// A user without the role logs in fine and is refused by podgate.
	bob := framework.NewBrowser()
	page, err = bob.Login(ctx, framework.DemoURL+"/after-login", framework.DeniedUser, framework.DeniedPass)
	if err != nil {
		t.Fatal(err)
	}
	if page.Status != http.StatusForbidden {
		t.Errorf("bob (no role) ended on %s with HTTP %d, want 403", page.URL, page.Status)
	}
}

func visited(b *framework.Browser, prefix string) bool {
	return slices.ContainsFunc(b.Visited, func(u string) bool { return strings.HasPrefix(u, prefix) })
}

// checkIdentity checks what the app received: the identity headers podgate sets, and nothing a
// client could have forged or that would leak the session.
func checkIdentity(t *testing.T, echo Echo, user, via string) {
	t.Helper()
	h := http.Header(echo.Headers)
	if got := h.Values("X-Auth-Request-User"); len(got) != 1 || got[0] != user {
		t.Errorf("(%s) app saw X-Auth-Request-User %q, want exactly [%s]", via, got, user)
	}
	if user == framework.AllowedUser {
		if g := h.Get("X-Auth-Request-Groups"); !strings.Contains(g, "staff") {
			t.Errorf("(%s) app saw X-Auth-Request-Groups %q, want staff", via, g)
		}
		if r := h.Get("X-Auth-Request-Roles"); !strings.Contains(r, framework.AllowedRole) || !strings.Contains(r, "podgate:reader") {
			t.Errorf("(%s) app saw X-Auth-Request-Roles %q, want %s and podgate:reader", via, r, framework.AllowedRole)
		}
		if e := h.Get("X-Auth-Request-Email"); e != "alice@example.com" {
			t.Errorf("(%s) app saw X-Auth-Request-Email %q", via, e)
		}
	}
	for name, values := range h {
		for _, v := range values {
			if strings.Contains(strings.ToLower(v), "mallory") {
				t.Errorf("(%s) a spoofed value reached the app: %s: %s", via, name, v)
			}
		}
	}
	if c := h.Get("Cookie"); strings.Contains(c, "_podgate") {
		t.Errorf("(%s) the session cookie reached the app: %.80s", via, c)
	}
}

func readAll(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b), err
}

// spoofed are identity headers a client might try to set itself.
var spoofed = map[string]string{
	"X-Auth-Request-User":            "mallory",
	"X-Auth-Request-Groups":          "mallory-admins",
	"X-Forwarded-User":               "mallory",
	"X-Forwarded-Email":              "mallory@example.com",
	"X-Forwarded-Access-Token":       "mallory-token",
	"X-Auth-Request-Email":           "mallory@example.com",
	"X-Auth-Request-Roles":           "mallory-role",
	"X-Forwarded-Groups":             "mallory-admins",
	"X-Forwarded-Preferred-Username": "mallory",
}

// 6. Bearer tokens from Keycloak: allowed → 200, no role → 403, expired or garbage → 401, and a
// spoofed identity header never reaches the app.
func TestBearerTokens(t *testing.T) {
	requireDemo(t)
	ctx := suiteCtx
	kc := suite.Keycloak
	alice, err := kc.PasswordToken(ctx, framework.ClientID, framework.ClientSecret, framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	robot, err := kc.ClientCredentialsToken(ctx, framework.RobotClientID, framework.RobotSecret)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := kc.PasswordToken(ctx, framework.ClientID, framework.ClientSecret, framework.DeniedUser, framework.DeniedPass)
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

	echo := getEcho(t, ctx, noRedirects, framework.DemoURL+"/api/alice", bearer(alice.AccessToken))
	checkIdentity(t, echo, framework.AllowedUser, "password grant")
	echo = getEcho(t, ctx, noRedirects, framework.DemoURL+"/api/robot", bearer(robot.AccessToken))
	checkIdentity(t, echo, "service-account-podgate-robot", "client credentials")

	withSpoof := bearer(alice.AccessToken)
	for k, v := range spoofed {
		withSpoof[k] = v
	}
	echo = getEcho(t, ctx, noRedirects, framework.DemoURL+"/api/spoofed", withSpoof)
	checkIdentity(t, echo, framework.AllowedUser, "bearer with spoofed headers")

	parts := strings.Split(alice.AccessToken, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	cases := []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"no role (bob)", bearer(bob.AccessToken), http.StatusForbidden},
		{"garbage", bearer("not-a-jwt"), http.StatusUnauthorized},
		{"tampered signature", bearer(tampered), http.StatusUnauthorized},
		{"truncated", bearer(alice.AccessToken[:len(alice.AccessToken)/2]), http.StatusUnauthorized},
		{"spoofed headers only", spoofed, http.StatusUnauthorized},
	}
	for _, c := range cases {
		expectRefused(t, c.name, c.headers, c.want)
	}
}

// expectRefused sends an API request to the demo app and checks podgate answered status itself.
func expectRefused(t *testing.T, name string, headers map[string]string, want int) {
	t.Helper()
	h := map[string]string{"Accept": "application/json"}
	for k, v := range headers {
		h[k] = v
	}
	status, body, err := get(suiteCtx, noRedirects, framework.DemoURL+"/api/denied", h)
	if err != nil {
		t.Fatal(err)
	}
	if status != want {
		t.Errorf("%s: HTTP %d (%.200s), want %d", name, status, body, want)
	}
	if strings.Contains(string(body), `"headers"`) {
		t.Errorf("%s: the app answered: %.200s", name, body)
	}
}

func tokenExpiry(t *testing.T, jwt string) time.Time {
	t.Helper()
	exp, ok := mustClaims(t, jwt)["exp"].(float64)
	if !ok {
		t.Fatal("token has no exp")
	}
	return time.Unix(int64(exp), 0)
}

// 7. Forward-auth: the sidecar deployed on its own, Debian's nginx with auth_request in front of
// the app, the same login and identity headers.
func TestForwardAuthWithNginx(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	if err := kube.DeployForwardAuth(ctx, suite.Keycloak.Issuer()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, framework.ForwardAuthNS) })
	if err := suite.Scripts.Run(ctx, "forwardauth/nginx.sh", "start", framework.NodeIP+":8088",
		framework.ForwardAuthSidecarIP+":4180", framework.ForwardAuthEchoIP+":80"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = suite.Scripts.Run(context.Background(), "forwardauth/nginx.sh", "stop") })

	// Not logged in: nginx's error_page sends the browser to the sidecar's sign-in, then Keycloak.
	// Retried until kube-proxy routes the new Services (nginx answers 502 until then).
	err := framework.Eventually(ctx, 30*time.Second, 500*time.Millisecond, "nginx sending a browser to sign in", func(ctx context.Context) (bool, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, framework.ForwardAuthURL+"/fa?x=1", nil)
		req.Header.Set("Accept", "text/html")
		resp, err := noRedirects.Do(req)
		if err != nil {
			return false, err.Error(), nil
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		return resp.StatusCode == http.StatusFound && strings.HasPrefix(loc, "/oauth2/start"),
			fmt.Sprintf("HTTP %d to %q, want 302 to /oauth2/start", resp.StatusCode, loc), nil
	})
	if err != nil {
		t.Fatal(err)
	}

	b := framework.NewBrowser()
	page, err := b.Login(ctx, framework.ForwardAuthURL+"/fa?x=1", framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	if page.Status != http.StatusOK || page.URL.Path != "/fa" || !visited(b, framework.ForwardAuthURL+"/oauth2/callback?") {
		t.Fatalf("forward-auth login ended on %s with HTTP %d (visited %v): %.300s", page.URL, page.Status, b.Visited, page.Body)
	}
	var echo Echo
	if err := json.Unmarshal([]byte(page.Body), &echo); err != nil {
		t.Fatalf("app answer %q: %v", page.Body, err)
	}
	if echo.Name != "app" {
		t.Errorf("answer from %q, want the app behind nginx", echo.Name)
	}
	h := http.Header(echo.Headers)
	if h.Get("X-Auth-Request-User") != framework.AllowedUser || !strings.Contains(h.Get("X-Auth-Request-Groups"), "staff") {
		t.Errorf("app behind nginx saw user %q, groups %q", h.Get("X-Auth-Request-User"), h.Get("X-Auth-Request-Groups"))
	}
	// nginx sets the upstream Cookie from the sidecar's X-Auth-Request-Cookie: never the session.
	if c := h.Get("Cookie"); strings.Contains(c, "_podgate") {
		t.Errorf("the app behind nginx received podgate's session cookie: %.80q", c)
	}

	// The same session with spoofed headers: nginx sets them from the sub-request, never passes them.
	spoofReq, _ := http.NewRequestWithContext(ctx, http.MethodGet, framework.ForwardAuthURL+"/fa/spoofed", nil)
	for k, v := range spoofed {
		spoofReq.Header.Set(k, v)
	}
	spoofResp, err := b.Client.Do(spoofReq)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := readAll(spoofResp)
	if err := json.Unmarshal([]byte(body), &echo); err != nil {
		t.Fatalf("spoofed request: HTTP %d %q: %v", spoofResp.StatusCode, body, err)
	}
	h = http.Header(echo.Headers)
	if got := h.Values("X-Auth-Request-User"); len(got) != 1 || got[0] != framework.AllowedUser {
		t.Errorf("with spoofed headers the app saw X-Auth-Request-User %q", got)
	}

	// Bearer tokens through nginx: alice allowed, bob forbidden.
	alice, err := suite.Keycloak.PasswordToken(ctx, framework.ClientID, framework.ClientSecret, framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	echo = getEcho(t, ctx, noRedirects, framework.ForwardAuthURL+"/fa/api", map[string]string{"Authorization": "Bearer " + alice.AccessToken})
	if http.Header(echo.Headers).Get("X-Auth-Request-User") != framework.AllowedUser {
		t.Errorf("bearer through nginx: app saw %v", echo.Headers)
	}
	bobBrowser := framework.NewBrowser()
	page, err = bobBrowser.Login(ctx, framework.ForwardAuthURL+"/fa", framework.DeniedUser, framework.DeniedPass)
	if err != nil {
		t.Fatal(err)
	}
	if page.Status != http.StatusForbidden {
		t.Errorf("bob through nginx: HTTP %d, want 403", page.Status)
	}
}

// 8. Fail closed: with the injector scaled to zero, an opted-in pod in a labelled namespace is
// rejected with a clear message; pods elsewhere, kube-system included, are unaffected.
func TestFailClosedWithoutInjector(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	const ns = "e2e-fail-closed"
	if err := kube.EnsureNamespace(ctx, ns, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	if err := kube.EnsureSidecarSecret(ctx, ns); err != nil {
		t.Fatal(err)
	}
	replicas := scaleInjector(t, 0)
	t.Cleanup(func() { scaleInjector(t, replicas) })

	pod := func(name, ns string, inject bool) *corev1.Pod {
		ann := map[string]string{}
		if inject {
			ann[framework.AnnotationInject] = "true"
		}
		d := framework.EchoApp{Namespace: ns, Name: name, Replicas: 1}.Deployment()
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: ann, Labels: map[string]string{"app": name}}, Spec: d.Spec.Template.Spec}
	}
	_, err := kube.Client.CoreV1().Pods(ns).Create(ctx, pod("opted-in", ns, true), metav1.CreateOptions{})
	if err == nil {
		t.Fatal("an opted-in pod was admitted while no injector runs: podgate failed open")
	}
	if msg := err.Error(); !strings.Contains(msg, "failed calling webhook") || !strings.Contains(msg, framework.InjectorService) {
		t.Errorf("rejection %q does not say which webhook failed", msg)
	} else {
		t.Logf("rejected as expected: %s", msg)
	}

	// Elsewhere pods are still created and run: kube-system, and a namespace without the label
	// (not opted in: an opted-in pod there is refused by the policy, TestPodsNotOptedInAreUntouched).
	const plainNS = "e2e-fail-closed-plain"
	if err := kube.EnsureNamespace(ctx, plainNS, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, plainNS) })
	for _, p := range []*corev1.Pod{pod("e2e-unaffected", "kube-system", false), pod("unaffected", plainNS, false)} {
		_ = kube.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
		if _, err := kube.Client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Errorf("pod in %s: %v", p.Namespace, err)
			continue
		}
		t.Cleanup(func() {
			_ = kube.Client.CoreV1().Pods(p.Namespace).Delete(context.Background(), p.Name, metav1.DeleteOptions{})
		})
		if _, err := kube.WaitPodsReady(ctx, p.Namespace, "app="+p.Name, 1, 2*time.Minute); err != nil {
			t.Error(err)
		}
	}
}

// scaleInjector sets the injector's replicas, waits for the pods to match, and returns the old count.
func scaleInjector(t *testing.T, replicas int32) int32 {
	t.Helper()
	ctx := context.WithoutCancel(suiteCtx)
	kube := suite.Kube
	deployments := kube.Client.AppsV1().Deployments(framework.InjectorNamespace)
	scale, err := deployments.GetScale(ctx, framework.InjectorDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old := scale.Spec.Replicas
	scale.Spec.Replicas = replicas
	if _, err := deployments.UpdateScale(ctx, framework.InjectorDeployment, scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.WaitPodsReady(ctx, framework.InjectorNamespace, framework.InjectorSelector, int(replicas), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if replicas > 0 {
		if err := suite.WaitWebhookServing(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return old
}

// 9. A burst: a Deployment scaled to 30 replicas; every pod injected, none rejected; the API
// server's admission latency for the webhook recorded.
func TestBurstOfThirtyPods(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	const ns, replicas = "e2e-burst", 30
	pods := deployInjectedApp(t, ns, "burst", 1)
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	checkInjectedPod(t, &pods[0])

	before, err := suite.WebhookLatency(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	deployments := kube.Client.AppsV1().Deployments(ns)
	scale, err := deployments.GetScale(ctx, "burst", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = replicas
	if _, err := deployments.UpdateScale(ctx, "burst", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Every pod is created (none rejected: the ReplicaSet would report FailedCreate) and injected.
	var created []corev1.Pod
	err = framework.Eventually(ctx, 2*time.Minute, time.Second, "30 pods created", func(ctx context.Context) (bool, string, error) {
		list, err := kube.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=burst"})
		if err != nil {
			return false, err.Error(), nil
		}
		created = list.Items
		return len(created) == replicas, fmt.Sprintf("%d created", len(created)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	createdIn := time.Since(start)
	for _, p := range created {
		if len(p.Spec.InitContainers) == 0 || p.Spec.InitContainers[0].Name != sidecarName || p.Annotations[framework.AnnotationStatus] == "" {
			t.Errorf("pod %s was not injected", p.Name)
		}
	}
	if failed := failedCreates(t, ns); len(failed) > 0 {
		t.Errorf("pod creations rejected during the burst: %v", failed)
	}
	if _, err := kube.WaitPodsReady(ctx, ns, "app=burst", replicas, 4*time.Minute); err != nil {
		t.Error(err)
	}
	readyIn := time.Since(start)

	after, err := suite.WebhookLatency(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := after.Minus(before)
	note("burst: %d pods created in %.1fs, all Ready in %.1fs", replicas, createdIn.Seconds(), readyIn.Seconds())
	note("webhook admission latency during the burst (apiserver_admission_webhook_admission_duration_seconds, %d calls): mean %.1f ms, p50 ≈ %.1f ms, p99 ≈ %.1f ms",
		int(d.Count), d.Mean()*1000, d.Quantile(0.5)*1000, d.Quantile(0.99)*1000)
	// Idle memory of the 30 sidecars (they answered only probes) and of the injector replicas.
	if mem, err := kube.ContainerMemory(ctx); err != nil {
		t.Logf("no memory figures: %v", err)
	} else {
		var sidecarWS, sidecarRSS, injectorWS []uint64
		for _, m := range mem {
			switch {
			case m.Namespace == ns && m.Container == sidecarName:
				sidecarWS, sidecarRSS = append(sidecarWS, m.WorkingSetBytes), append(sidecarRSS, m.RSSBytes)
			case m.Namespace == framework.InjectorNamespace:
				injectorWS = append(injectorWS, m.WorkingSetBytes)
			}
		}
		note("idle sidecar memory over %d pods (kubelet, cgroup; min / median / max): working set %s, anonymous RSS %s",
			len(sidecarWS), framework.MemorySpread(sidecarWS), framework.MemorySpread(sidecarRSS))
		note("injector working set per replica after the burst: %s", framework.MemorySpread(injectorWS))
	}
	if d.Count < replicas-1 {
		t.Errorf("the API server called the webhook %v times for %d new pods", d.Count, replicas-1)
	}
}

func failedCreates(t *testing.T, ns string) []string {
	t.Helper()
	events, err := suite.Kube.Client.CoreV1().Events(ns).List(suiteCtx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range events.Items {
		msgs = append(msgs, e.Message)
	}
	return msgs
}

// An expired token is refused. It is a real Keycloak token, minted at start-up by a client whose
// tokens live 10 s; this test runs last, so it has long expired beyond the sidecar's 30 s skew
// (it waits out the rest when run alone).
func TestExpiredBearerToken(t *testing.T) {
	requireDemo(t)
	if exp := tokenExpiry(t, expiredToken.AccessToken).Add(31 * time.Second); time.Until(exp) > 0 {
		t.Logf("waiting %s for the short-lived token to expire beyond the allowed skew", time.Until(exp).Round(time.Second))
		time.Sleep(time.Until(exp))
	}
	expectRefused(t, "expired", map[string]string{"Authorization": "Bearer " + expiredToken.AccessToken}, http.StatusUnauthorized)
}
