//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/podgate/podgate/test/e2e/framework"
)

// Faults: what podgate does when a part it depends on fails under it, on the real cluster with the
// real Keycloak. Each test leaves the stack as it found it (Keycloak serving the imported realm,
// both injector replicas Ready), so it does not matter where in the run they fall.

// podRestarts is a pod's identity and its containers' restart counts, to prove a fault was
// survived without a pod restart (same UID) and without the sidecar restarting.
type podRestarts struct {
	uid      string
	restarts map[string]int32
}

// untilAccepted sends the bearer token to url every interval until the sidecar answers 200, and
// returns how many requests it refused first.
func untilAccepted(ctx context.Context, timeout, interval time.Duration, what, url, token string) (refused int, err error) {
	err = framework.Eventually(ctx, timeout, interval, what, func(ctx context.Context) (bool, string, error) {
		code, body := status(ctx, noRedirects, url, bearerHeader(token))
		if code != http.StatusOK {
			refused++
		}
		return code == http.StatusOK, fmt.Sprintf("HTTP %d: %.100s", code, body), nil
	})
	return refused, err
}

func restartsOf(t *testing.T, ns, selector string) map[string]podRestarts {
	t.Helper()
	pods, err := suite.Kube.Client.CoreV1().Pods(ns).List(suiteCtx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]podRestarts{}
	for _, p := range pods.Items {
		r := podRestarts{uid: string(p.UID), restarts: map[string]int32{}}
		for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			r.restarts[cs.Name] = cs.RestartCount
		}
		out[p.Name] = r
	}
	return out
}

// checkNoRestart fails the test when a pod of before is gone or one of its containers restarted.
func checkNoRestart(t *testing.T, ns, selector string, before map[string]podRestarts) {
	t.Helper()
	after := restartsOf(t, ns, selector)
	for name, b := range before {
		a, ok := after[name]
		if !ok || a.uid != b.uid {
			t.Errorf("pod %s/%s was replaced", ns, name)
			continue
		}
		for c, n := range b.restarts {
			if a.restarts[c] != n {
				t.Errorf("container %s of %s/%s restarted (%d → %d)", c, ns, name, n, a.restarts[c])
			}
		}
	}
}

// status GETs url with headers and returns the status and body; a transport error is status 0.
func status(ctx context.Context, client *http.Client, url string, headers map[string]string) (int, string) {
	code, body, err := get(ctx, client, url, headers)
	if err != nil {
		return 0, err.Error()
	}
	return code, string(body)
}

func bearerHeader(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok, "Accept": "application/json"}
}

// Keycloak stopped mid-run: bearer traffic goes on from the cached keys (a token the sidecar never
// saw included), a signed-in browser keeps its session, a new browser login gets the sidecar's 503
// instead of a redirect to a dead address; once Keycloak is back (a fresh in-memory realm with new
// signing keys) logins and the new keys' tokens work with no pod restarted.
func TestFaultKeycloakStopped(t *testing.T) {
	requireDemo(t)
	ctx := suiteCtx
	kc := suite.Keycloak
	seen, err := kc.PasswordToken(ctx, framework.ClientID, framework.ClientSecret, framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	unseen, err := kc.ClientCredentialsToken(ctx, framework.RobotClientID, framework.RobotSecret)
	if err != nil {
		t.Fatal(err)
	}
	getEcho(t, ctx, noRedirects, framework.DemoURL+"/api/before", bearerHeader(seen.AccessToken))
	browser := framework.NewBrowser()
	if page, err := browser.Login(ctx, framework.DemoURL+"/", framework.AllowedUser, framework.AllowedPass); err != nil || page.Status != http.StatusOK {
		t.Fatalf("browser login before the outage: HTTP %d, %v", page.Status, err)
	}
	before := restartsOf(t, framework.DemoNamespace, "app=demo")

	// Whatever happens below, Keycloak serves again afterwards for the tests that follow.
	t.Cleanup(func() {
		if !kc.Serving(context.Background()) {
			if err := suite.StartKeycloak(context.WithoutCancel(suiteCtx)); err != nil {
				t.Errorf("starting Keycloak again: %v", err)
			}
		}
	})
	stopped := time.Now()
	if err := suite.StopKeycloak(ctx); err != nil {
		t.Fatal(err)
	}
	if kc.Serving(ctx) {
		t.Fatal("Keycloak still answers after keycloak.sh stop")
	}

	// During the outage. Bearer tokens: the one the sidecar verified before (its cache), and one it
	// never saw (verified with the keys it holds).
	var bearerOK, bearerTotal int
	for i := range 20 {
		for _, tok := range []string{seen.AccessToken, unseen.AccessToken} {
			bearerTotal++
			if code, body := status(ctx, noRedirects, fmt.Sprintf("%s/api/outage/%d", framework.DemoURL, i), bearerHeader(tok)); code == http.StatusOK {
				bearerOK++
			} else {
				t.Errorf("bearer request during the outage: HTTP %d: %.200s", code, body)
			}
		}
	}
	// The signed-in browser's session (its access token lives 5 minutes: no refresh due).
	if resp, err := browser.Get(ctx, framework.DemoURL+"/"); err != nil {
		t.Errorf("signed-in browser during the outage: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("signed-in browser during the outage: HTTP %d", resp.StatusCode)
		}
	}
	// A new browser login: the sidecar's 503, once its last look at Keycloak (kept a few seconds)
	// has passed.
	var loginCode int
	var loginBody, retryAfter string
	err = framework.Eventually(ctx, 30*time.Second, 500*time.Millisecond, "a login start answered 503", func(ctx context.Context) (bool, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, framework.DemoURL+"/", nil)
		req.Header.Set("Accept", "text/html")
		resp, err := noRedirects.Do(req)
		if err != nil {
			return false, err.Error(), nil
		}
		body, _ := readAll(resp)
		loginCode, loginBody, retryAfter = resp.StatusCode, body, resp.Header.Get("Retry-After")
		return loginCode == http.StatusServiceUnavailable, fmt.Sprintf("HTTP %d to %q", loginCode, resp.Header.Get("Location")), nil
	})
	loginRefusedAfter := time.Since(stopped)
	if err != nil {
		t.Error(err)
	} else if !strings.Contains(loginBody, "identity provider") || retryAfter == "" {
		t.Errorf("the 503 to a login start does not explain itself: Retry-After %q, %q", retryAfter, loginBody)
	}

	// Keycloak comes back.
	restart := time.Now()
	if err := suite.StartKeycloak(ctx); err != nil {
		t.Fatal(err)
	}
	down, boot := restart.Sub(stopped), time.Since(restart)
	// Its realm is imported afresh with new keys: the sidecar must learn them by itself.
	fresh, err := kc.PasswordToken(ctx, framework.ClientID, framework.ClientSecret, framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	oldKid, _ := framework.KeyID(seen.AccessToken)
	newKid, _ := framework.KeyID(fresh.AccessToken)
	back := time.Now()
	rejected, err := untilAccepted(ctx, time.Minute, time.Second, "a token of the restarted Keycloak accepted", framework.DemoURL+"/api/recovered", fresh.AccessToken)
	if err != nil {
		t.Error(err)
	}
	bearerBack := time.Since(back)
	var page framework.Page
	err = framework.Eventually(ctx, time.Minute, 2*time.Second, "a browser login after Keycloak's return", func(ctx context.Context) (bool, string, error) {
		var err error
		page, err = framework.NewBrowser().Login(ctx, framework.DemoURL+"/", framework.AllowedUser, framework.AllowedPass)
		if err != nil {
			return false, err.Error(), nil
		}
		return page.Status == http.StatusOK && strings.Contains(page.Body, "Hello, alice"), fmt.Sprintf("HTTP %d on %s", page.Status, page.URL), nil
	})
	if err != nil {
		t.Error(err)
	}
	loginBack := time.Since(back)
	checkNoRestart(t, framework.DemoNamespace, "app=demo", before)

	note("fault Keycloak stopped: down %.0fs (keycloak.sh stop, then up: %.0fs to serve the realm again); during it %d/%d bearer requests 200 (one token never seen before), the signed-in browser kept its session, a new login got %d (Retry-After %s) %.1fs after the stop",
		down.Seconds(), boot.Seconds(), bearerOK, bearerTotal, loginCode, retryAfter, loginRefusedAfter.Seconds())
	note("fault Keycloak back with new keys (kid %s → %s): its token accepted after %.1fs (%d refusals first), a browser login completed %.1fs after its return; no pod restarted",
		shortKid(oldKid), shortKid(newKid), bearerBack.Seconds(), rejected, loginBack.Seconds())
}

func shortKid(kid string) string {
	if len(kid) > 8 {
		return kid[:8] + "…"
	}
	return kid
}

// Keycloak's signing key rotated through its admin API: tokens signed by the new key are accepted
// with no restart (the unknown key id makes the sidecar fetch the key set once), tokens of the old
// key too while Keycloak still publishes it.
func TestFaultKeycloakKeyRotation(t *testing.T) {
	requireDemo(t)
	ctx := suiteCtx
	kc := suite.Keycloak
	old, err := kc.PasswordToken(ctx, framework.ClientID, framework.ClientSecret, framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	getEcho(t, ctx, noRedirects, framework.DemoURL+"/api/old-key", bearerHeader(old.AccessToken))
	before := restartsOf(t, framework.DemoNamespace, "app=demo")
	fetchesBefore := demoKeyFetches(t)

	id, err := kc.RotateSigningKey(ctx, "podgate-e2e-rotated")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := kc.DeleteComponent(context.WithoutCancel(suiteCtx), id); err != nil {
			t.Errorf("removing the rotated key: %v", err)
		}
	})
	rotated, err := kc.PasswordToken(ctx, framework.ClientID, framework.ClientSecret, framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	oldKid, _ := framework.KeyID(old.AccessToken)
	newKid, _ := framework.KeyID(rotated.AccessToken)
	if newKid == "" || newKid == oldKid {
		t.Fatalf("after the rotation Keycloak still signs with kid %q", oldKid)
	}
	start := time.Now()
	refused, err := untilAccepted(ctx, 30*time.Second, 500*time.Millisecond, "the new key's token accepted", framework.DemoURL+"/api/new-key", rotated.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	acceptedAfter := time.Since(start)
	echo := getEcho(t, ctx, noRedirects, framework.DemoURL+"/api/new-key", bearerHeader(rotated.AccessToken))
	checkIdentity(t, echo, framework.AllowedUser, "token of the rotated key")
	if code, body := status(ctx, noRedirects, framework.DemoURL+"/api/old-key", bearerHeader(old.AccessToken)); code != http.StatusOK {
		t.Errorf("a token of the old key, still published: HTTP %d: %.200s", code, body)
	}
	fetches := demoKeyFetches(t) - fetchesBefore
	checkNoRestart(t, framework.DemoNamespace, "app=demo", before)
	note("fault key rotation (admin API, rsa-generated at priority 200, kid %s → %s): the new key's token accepted after %.1fs (%d refusals first) with %.0f key set fetch(es) by the sidecar; the old key's token still accepted; no pod restarted",
		shortKid(oldKid), shortKid(newKid), acceptedAfter.Seconds(), refused, fetches)
}

// demoKeyFetches is the demo sidecar's count of completed key set fetches.
func demoKeyFetches(t *testing.T) float64 {
	t.Helper()
	pods, err := suite.Kube.Client.CoreV1().Pods(framework.DemoNamespace).List(suiteCtx, metav1.ListOptions{LabelSelector: "app=demo"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("demo pods: %d, %v", len(pods.Items), err)
	}
	code, body, err := get(suiteCtx, noRedirects, fmt.Sprintf("http://%s:%d/metrics", pods.Items[0].Status.PodIP, adminPort), nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("demo sidecar metrics: HTTP %d, %v", code, err)
	}
	n, err := framework.ParseCounter(string(body), "podgate_jwks_refreshes_total", map[string]string{"result": "ok"})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// One injector replica killed while a Deployment scales from 1 to 30: evicted through the
// Eviction API, as a node drain kills it (the PodDisruptionBudget allows one of two), so it gets
// its preStop pause, then SIGTERM. The other replica carries the burst: every pod is injected and
// no creation is refused; a replacement replica becomes Ready.
func TestFaultInjectorReplicaKilledDuringBurst(t *testing.T) {
	f := injectorBurstFault(t, "e2e-fault-burst", "evicted", func(ctx context.Context, victim corev1.Pod) error {
		err := suite.Kube.Client.CoreV1().Pods(framework.InjectorNamespace).EvictV1(ctx, &policyv1.Eviction{
			ObjectMeta: metav1.ObjectMeta{Name: victim.Name, Namespace: framework.InjectorNamespace},
		})
		if err != nil {
			return fmt.Errorf("evicting %s (the PodDisruptionBudget allows one of two): %w", victim.Name, err)
		}
		return nil
	})
	// The evicted replica is gone and its replacement serves.
	for _, p := range f.after {
		if p.UID == f.victim.UID {
			t.Errorf("the evicted injector pod %s is still serving", f.victim.Name)
		}
	}
	// Checked last: a refusal during the burst would have been reported by now.
	if len(f.failed) > 0 {
		t.Errorf("pod creations refused while an injector replica was evicted: %v", f.failed)
	}
	note("fault injector replica killed during a 30-pod burst (%d replicas, PDB %s): %s; a replacement replica Ready", f.replicas, f.pdb, f)
}

// One injector replica SIGKILLed (its container, through containerd) during the same burst: a crash
// or an OOM kill, with no preStop and no draining. The API server does not retry a webhook call,
// so admissions in flight to that replica, and those routed to it until its endpoint is removed,
// fail; the failure policy is Fail, so the pod is not created rather than created unprotected, and
// the ReplicaSet controller creates it again. So creations may be refused (they are counted), but
// every one of the 30 pods is created in the end, every one injected, and the killed container is
// restarted in place by the kubelet.
func TestFaultInjectorReplicaSIGKILLedDuringBurst(t *testing.T) {
	var restartsBefore int32
	f := injectorBurstFault(t, "e2e-fault-sigkill", "SIGKILLed", func(ctx context.Context, victim corev1.Pod) error {
		for _, cs := range victim.Status.ContainerStatuses {
			restartsBefore += cs.RestartCount
			if err := suite.KillContainer(ctx, cs.ContainerID); errors.Is(err, framework.ErrNoContainerRuntime) {
				t.Skipf("%s provider: %v", suite.Provider.Name(), err)
			} else if err != nil {
				return err
			}
		}
		return nil
	})
	// The kubelet notices the kill at its next relist and restarts the container in place; the
	// replica serves again once its readiness probe passes.
	err := framework.Eventually(suiteCtx, 2*time.Minute, 500*time.Millisecond, "the SIGKILLed injector container restarted and Ready", func(ctx context.Context) (bool, string, error) {
		p, err := suite.Kube.Client.CoreV1().Pods(framework.InjectorNamespace).Get(ctx, f.victim.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		var n int32
		for _, cs := range p.Status.ContainerStatuses {
			n += cs.RestartCount
		}
		ready := false
		for _, c := range p.Status.Conditions {
			ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
		}
		return p.UID == f.victim.UID && n > restartsBefore && ready, fmt.Sprintf("uid %s, restarts %d (before %d), ready %v", p.UID, n, restartsBefore, ready), nil
	})
	if err != nil {
		t.Error(err)
	}
	for _, m := range f.failed {
		if !strings.Contains(m, "podgate") && !strings.Contains(m, "webhook") {
			t.Errorf("a creation was refused for another reason than the killed webhook replica: %s", m)
		}
	}
	note("fault injector replica SIGKILLed during a 30-pod burst (%d replicas): %s; the killed container restarted in place", f.replicas, f)
}

// burstFault is what injectorBurstFault observed.
type burstFault struct {
	replicas int32
	pdb      string
	victim   corev1.Pod
	// after are the injector's pods once the replicas are Ready again.
	after []corev1.Pod
	// failed are the FailedCreate events of the burst's ReplicaSet.
	failed                       []string
	createdAtKill                int
	killedAt, createdIn, readyIn time.Duration
	// how the replica was killed, and pods how many the burst creates.
	how  string
	pods int
}

func (f burstFault) String() string {
	return fmt.Sprintf("%s %s %.2fs into the burst with %d pods created; all %d created and injected in %.1fs, Ready in %.1fs, %d creation(s) refused (FailedCreate)",
		f.victim.Name, f.how, f.killedAt.Seconds(), f.createdAtKill, f.pods, f.createdIn.Seconds(), f.readyIn.Seconds(), len(f.failed))
}

// injectorBurstFault scales a Deployment of injected pods in ns from 1 to 30 and, once a few of
// them exist, kills one of the injector's replicas with kill. It requires that every pod is in the
// end created and injected, that every pod becomes Ready and that the injector's replicas and its
// webhook serve again, and returns what it saw for the caller's own checks.
func injectorBurstFault(t *testing.T, ns, how string, kill func(context.Context, corev1.Pod) error) burstFault {
	ctx := suiteCtx
	kube := suite.Kube
	f := burstFault{how: how}
	d, err := kube.Client.AppsV1().Deployments(framework.InjectorNamespace).Get(ctx, framework.InjectorDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.replicas = *d.Spec.Replicas
	if f.replicas < 2 {
		t.Fatalf("the injector runs %d replica(s): one killed would stop every injected pod's creation (failurePolicy Fail)", f.replicas)
	}
	pdbs, err := kube.Client.PolicyV1().PodDisruptionBudgets(framework.InjectorNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, pdb := range pdbs.Items {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err == nil && sel.Matches(labels.Set(d.Spec.Template.Labels)) && pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.IntValue() >= 1 {
			f.pdb = pdb.Name
		}
	}
	if f.pdb == "" {
		t.Errorf("no PodDisruptionBudget with minAvailable ≥ 1 covers the injector's pods in %s", framework.InjectorNamespace)
	}
	injectors, err := kube.WaitPodsReady(ctx, framework.InjectorNamespace, framework.InjectorSelector, int(f.replicas), 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f.victim = injectors[0]

	const replicas = 30
	f.pods = replicas
	pods := deployInjectedApp(t, ns, "burst", 1)
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	checkInjectedPod(t, &pods[0])
	scale, err := kube.Client.AppsV1().Deployments(ns).GetScale(ctx, "burst", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = replicas
	start := time.Now()
	if _, err := kube.Client.AppsV1().Deployments(ns).UpdateScale(ctx, "burst", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The kill lands while the ReplicaSet controller is creating the pods.
	_ = framework.Eventually(ctx, 30*time.Second, 50*time.Millisecond, "the burst under way", func(ctx context.Context) (bool, string, error) {
		list, err := kube.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=burst"})
		if err != nil {
			return false, err.Error(), nil
		}
		f.createdAtKill = len(list.Items)
		return f.createdAtKill >= 4, "", nil
	})
	if err := kill(ctx, f.victim); err != nil {
		t.Fatal(err)
	}
	f.killedAt = time.Since(start)
	if f.createdAtKill >= replicas {
		t.Logf("the kill came after all %d pods were created; the burst was faster than the watch", replicas)
	}
	waitBurstInjected(ctx, t, ns, replicas)
	f.createdIn = time.Since(start)
	if _, err := kube.WaitPodsReady(ctx, ns, "app=burst", replicas, 4*time.Minute); err != nil {
		t.Error(err)
	}
	f.readyIn = time.Since(start)
	if f.after, err = kube.WaitPodsReady(ctx, framework.InjectorNamespace, framework.InjectorSelector, int(f.replicas), 2*time.Minute); err != nil {
		t.Error(err)
	}
	if err := suite.WaitWebhookServing(ctx); err != nil {
		t.Error(err)
	}
	f.failed = failedCreates(t, ns)
	return f
}

// The app container crashes (its process SIGKILLed): the sidecar, still running, answers 502 while
// nothing listens behind it, and the same pod serves again once the kubelet restarted the app; the
// sidecar itself never restarts.
func TestFaultAppContainerCrash(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	const ns = "e2e-fault-crash"
	pods := deployInjectedApp(t, ns, "crash", 1)
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	pod := pods[0]
	var appID string
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == "echo" {
			appID = cs.ContainerID
		}
	}
	var proxyPort int32
	for _, c := range pod.Spec.InitContainers {
		if c.Name == sidecarName {
			proxyPort = framework.PortByName(c.Ports, "http")
		}
	}
	if appID == "" || proxyPort == 0 {
		t.Fatalf("pod %s: app container ID %q, sidecar port %d", pod.Name, appID, proxyPort)
	}
	// Straight to the pod's sidecar port: through the Service, kube-proxy would stop routing to the
	// pod once its readiness probe fails, and the sidecar's own answer would not be seen.
	target := fmt.Sprintf("http://%s:%d/api/crash", pod.Status.PodIP, proxyPort)
	tok, err := suite.Keycloak.ClientCredentialsToken(ctx, framework.RobotClientID, framework.RobotSecret)
	if err != nil {
		t.Fatal(err)
	}
	getEcho(t, ctx, noRedirects, target, bearerHeader(tok.AccessToken))
	before := restartsOf(t, ns, "app=crash")

	start := time.Now()
	if err := suite.KillContainer(ctx, appID); errors.Is(err, framework.ErrNoContainerRuntime) {
		t.Skipf("%s provider: %v", suite.Provider.Name(), err)
	} else if err != nil {
		t.Fatal(err)
	}
	counts := map[int]int{}
	var firstBadGateway, recovered time.Duration
	var badGatewayBody string
	okBefore := 0 // answers still served in the moment before the kill took effect
	err = framework.Eventually(ctx, 2*time.Minute, 100*time.Millisecond, "the app answering again after its crash", func(ctx context.Context) (bool, string, error) {
		code, body := status(ctx, noRedirects, target, bearerHeader(tok.AccessToken))
		counts[code]++
		if code == http.StatusBadGateway && firstBadGateway == 0 {
			firstBadGateway, badGatewayBody = time.Since(start), body
		}
		// Recovered: the app answers again after the sidecar reported it gone.
		if code == http.StatusOK && counts[http.StatusBadGateway] > 0 {
			recovered = time.Since(start)
			return true, "", nil
		}
		if code == http.StatusOK {
			okBefore++
		}
		return false, fmt.Sprintf("HTTP %d: %.100s (answers so far %v)", code, body, counts), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for code, n := range counts {
		if code != http.StatusOK && code != http.StatusBadGateway {
			t.Errorf("%d answers with HTTP %d while the app was down, want only 502 from the sidecar", n, code)
		}
	}
	if !strings.Contains(badGatewayBody, "application") {
		t.Errorf("the 502 does not say the app is not responding: %q", badGatewayBody)
	}
	// The kubelet reports the restart in the pod's status a moment after the app serves again.
	b := before[pod.Name]
	var a podRestarts
	_ = framework.Eventually(ctx, 30*time.Second, 500*time.Millisecond, "the app's restart in the pod status", func(ctx context.Context) (bool, string, error) {
		a = restartsOf(t, ns, "app=crash")[pod.Name]
		return a.restarts["echo"] > b.restarts["echo"], fmt.Sprintf("restart count %d", a.restarts["echo"]), nil
	})
	if a.uid != b.uid || a.restarts["echo"] != b.restarts["echo"]+1 || a.restarts[sidecarName] != b.restarts[sidecarName] {
		t.Errorf("restarts: app %d → %d, sidecar %d → %d, same pod %t; want the app once, the sidecar never",
			b.restarts["echo"], a.restarts["echo"], b.restarts[sidecarName], a.restarts[sidecarName], a.uid == b.uid)
	}
	note("fault app container crash (SIGKILL): the sidecar answered 502 from %.1fs after the kill (%d × 502, %d × 200 before the crash took effect), the app answered again %.1fs after the kill (kubelet restart); app restarts %d → %d, sidecar %d → %d",
		firstBadGateway.Seconds(), counts[http.StatusBadGateway], okBefore, recovered.Seconds(),
		b.restarts["echo"], a.restarts["echo"], b.restarts[sidecarName], a.restarts[sidecarName])
}
