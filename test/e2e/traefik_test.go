//go:build e2e

package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podgate/podgate/test/e2e/framework"
)

// The users' own setup (the seed article): Traefik, built from source and running in the cluster
// as the ingress controller, their IngressRoutes, Ingress and Middlewares (test/e2e/traefik/users),
// podgate's standalone forward-auth service from manifests/forward-auth, Keycloak's real login form.
func TestTraefikForwardAuth(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	t.Cleanup(func() {
		for _, ns := range []string{framework.AppsNS, framework.ForwardAuthServiceNS, framework.TraefikNS} {
			deleteNamespace(kube, ns)
		}
	})
	if err := suite.DeployTraefik(ctx); err != nil {
		t.Fatal(err)
	}
	if err := suite.DeployForwardAuthService(ctx); err != nil {
		t.Fatal(err)
	}
	roots, err := suite.DeployTraefikApps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr := &traefikEnv{t: t, ctx: ctx, roots: roots}

	// Their configuration unchanged: the forbidden user's loop and the lost deep link are fixed in
	// podgate itself.
	t.Run("users config unchanged", func(t *testing.T) {
		tr.t = t
		tr.apply("before", func(m map[string]any) bool {
			return m["forwardAuth"] != nil && !strings.Contains(fmt.Sprint(m), "addAuthCookiesToResponse")
		})
		tr.aliceDeepLink()
		tr.bobForbiddenOnce()
	})
	// Their configuration as docs/migrating.md says (the two Middlewares changed): everything.
	t.Run("users config for podgate", func(t *testing.T) {
		tr.t = t
		tr.apply("after", func(m map[string]any) bool { return strings.Contains(fmt.Sprint(m), "addAuthCookiesToResponse") })
		b, loggedIn := tr.aliceDeepLink()
		tr.appCookiesWithoutSession(b)
		tr.ssoOnSibling(b)
		tr.spoofedWithSession(b)
		tr.bearerTokens()
		tr.bobForbiddenOnce()
		tr.oauth2IngressCarriesErrors()
		tr.refreshOnce(b, loggedIn)
	})
}

type traefikEnv struct {
	t     *testing.T
	ctx   context.Context
	roots *x509.CertPool
}

func appURL(host, pathAndQuery string) string { return "https://" + host + pathAndQuery }

// apply applies the users' routes and the Middlewares of variant, then waits until Traefik serves
// them: its API shows the forwardAuth Middleware as live satisfying live, and app1's router enabled.
func (e *traefikEnv) apply(variant string, live func(map[string]any) bool) {
	e.t.Helper()
	if err := suite.ApplyTraefikConfig(e.ctx, variant); err != nil {
		e.t.Fatal(err)
	}
	pods, err := suite.Kube.Client.CoreV1().Pods(framework.TraefikNS).List(e.ctx, metav1.ListOptions{LabelSelector: "app=traefik"})
	if err != nil || len(pods.Items) == 0 {
		e.t.Fatalf("traefik pod: %v", err)
	}
	api := "http://" + pods.Items[0].Status.PodIP + ":9000/api/http/"
	err = framework.Eventually(e.ctx, time.Minute, 500*time.Millisecond, "Traefik serving the "+variant+" configuration", func(ctx context.Context) (bool, string, error) {
		var mw map[string]any
		if err := getJSON(ctx, api+"middlewares/apps-oauth2-proxy@kubernetescrd", &mw); err != nil {
			return false, err.Error(), nil
		}
		var routers []map[string]any
		if err := getJSON(ctx, api+"routers", &routers); err != nil {
			return false, err.Error(), nil
		}
		// Every router of the users' configuration must be live: app1's and app2's two routes
		// each, and the Ingress's /oauth2 route on each entry point.
		enabled, states := 0, []string{}
		for _, r := range routers {
			rule, _ := r["rule"].(string)
			if strings.Contains(rule, "podgate") { // the Ingress wildcard becomes HostRegexp(`...podgate\.test$`)
				states = append(states, fmt.Sprintf("%v: %v %v", r["name"], r["status"], r["error"]))
				if r["status"] == "enabled" {
					enabled++
				}
			}
		}
		return live(mw) && enabled == len(states) && enabled >= 5, fmt.Sprintf("middleware %v; routers %v", mw, states), nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func getJSON(ctx context.Context, u string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := noRedirects.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d: %.200s", u, resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

// deepLink is a page of app1 with a query, the URL a user bookmarked.
const deepLink = "/reports/2026/q3?sort=desc&filter=a+b"

// aliceDeepLink: alice opens a deep link on app1, is sent to Keycloak, signs in and lands on that
// exact URL; the app saw her identity and not the session. It returns her browser and when she
// logged in.
func (e *traefikEnv) aliceDeepLink() (*framework.Browser, time.Time) {
	t := e.t
	t.Helper()
	b := framework.NewTraefikBrowser(e.roots)
	loggedIn := time.Now()
	page, err := b.Login(e.ctx, appURL(framework.App1Host, deepLink), framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	if page.Status != http.StatusOK || page.URL.String() != appURL(framework.App1Host, deepLink) {
		t.Fatalf("alice's deep link ended on %s with HTTP %d (visited %v): %.300s", page.URL, page.Status, b.Visited, page.Body)
	}
	if n := countVisits(b, appURL(framework.App1Host, "/oauth2/callback?")); n != 1 {
		t.Errorf("the login went through the callback %d times: %v", n, b.Visited)
	}
	var echo Echo
	if err := json.Unmarshal([]byte(page.Body), &echo); err != nil {
		t.Fatalf("app answer %.200q: %v", page.Body, err)
	}
	if echo.Name != "app1" || echo.Path != "/reports/2026/q3" {
		t.Errorf("answer from %s for %s, want app1 and the deep link's path", echo.Name, echo.Path)
	}
	h := http.Header(echo.Headers)
	if got := h.Values("X-Auth-Request-User"); len(got) != 1 || got[0] != framework.AllowedUser {
		t.Errorf("app saw X-Auth-Request-User %q", got)
	}
	return b, loggedIn
}

func countVisits(b *framework.Browser, prefix string) int {
	n := 0
	for _, u := range b.Visited {
		if strings.HasPrefix(u, prefix) {
			n++
		}
	}
	return n
}

// appCookiesWithoutSession: with Cookie in authResponseHeaders the app gets its own cookies and
// never podgate's session; identity headers complete.
func (e *traefikEnv) appCookiesWithoutSession(b *framework.Browser) {
	t := e.t
	t.Helper()
	u, _ := url.Parse(appURL(framework.App1Host, "/"))
	b.Client.Jar.SetCookies(u, []*http.Cookie{{Name: "app_pref", Value: "dark", Path: "/"}})
	echo := getEcho(t, e.ctx, b.Client, appURL(framework.App1Host, "/cookies"), map[string]string{"Accept": "application/json"})
	checkIdentity(t, echo, framework.AllowedUser, "Traefik, session")
	if c := http.Header(echo.Headers).Get("Cookie"); c != "app_pref=dark" {
		t.Errorf("app behind Traefik got Cookie %.120q, want only its own app_pref=dark", c)
	}
}

// ssoOnSibling: the same browser opens app2 on a sibling subdomain: no Keycloak, no callback, no
// password: the domain session cookie (--cookie-domain) is enough.
func (e *traefikEnv) ssoOnSibling(b *framework.Browser) {
	t := e.t
	t.Helper()
	before := len(b.Visited)
	resp, err := b.Get(e.ctx, appURL(framework.App2Host, "/sso?from=app1"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := readAll(resp)
	if resp.StatusCode != http.StatusOK || len(b.Visited) != before+1 {
		t.Fatalf("app2: HTTP %d after %v, want 200 straight away", resp.StatusCode, b.Visited[before:])
	}
	var echo Echo
	if err := json.Unmarshal([]byte(body), &echo); err != nil || echo.Name != "app2" {
		t.Fatalf("app2 answer %.200q: %v", body, err)
	}
	checkIdentity(t, echo, framework.AllowedUser, "Traefik, sibling subdomain")
}

// spoofedWithSession: identity headers a client sends itself never reach the app.
func (e *traefikEnv) spoofedWithSession(b *framework.Browser) {
	t := e.t
	t.Helper()
	h := map[string]string{"Accept": "application/json", "X-Oauth2-Proxy-Id-Token": "Bearer mallory"}
	for k, v := range spoofed {
		h[k] = v
	}
	echo := getEcho(t, e.ctx, b.Client, appURL(framework.App1Host, "/spoofed"), h)
	checkIdentity(t, echo, framework.AllowedUser, "Traefik, session with spoofed headers")
}

// bearerTokens: API clients through Traefik: a valid token 200, bob's 403, a bad one 401, spoofed
// headers stripped.
func (e *traefikEnv) bearerTokens() {
	t := e.t
	t.Helper()
	api := framework.NewTraefikBrowser(e.roots).Client
	api.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	alice, err := suite.Keycloak.PasswordToken(e.ctx, framework.TraefikClientID, framework.TraefikClientSecret, framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := suite.Keycloak.PasswordToken(e.ctx, framework.TraefikClientID, framework.TraefikClientSecret, framework.DeniedUser, framework.DeniedPass)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{"Accept": "application/json", "Authorization": "Bearer " + alice.AccessToken}
	for k, v := range spoofed {
		h[k] = v
	}
	echo := getEcho(t, e.ctx, api, appURL(framework.App1Host, "/api/items"), h)
	checkIdentity(t, echo, framework.AllowedUser, "Traefik, bearer with spoofed headers")
	parts := strings.Split(alice.AccessToken, ".")
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"no role (bob)", bob.AccessToken, http.StatusForbidden},
		{"garbage", "not-a-jwt", http.StatusUnauthorized},
		{"tampered signature", parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])), http.StatusUnauthorized},
	} {
		status, body, err := get(e.ctx, api, appURL(framework.App1Host, "/api/items"), map[string]string{"Accept": "application/json", "Authorization": "Bearer " + c.token})
		if err != nil {
			t.Fatal(err)
		}
		if status != c.want || strings.Contains(string(body), `"headers"`) {
			t.Errorf("bearer %s through Traefik: HTTP %d (%.120s), want %d from podgate", c.name, status, body, c.want)
		}
	}
}

var signOutFormRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)

// bobForbiddenOnce: bob has no role. After Keycloak he gets one 403 page on the very URL he asked
// for (no code in the address bar, no second trip to Keycloak), naming him, with a sign-out form
// that ends his Keycloak session: the next visit asks for a password again.
func (e *traefikEnv) bobForbiddenOnce() {
	t := e.t
	t.Helper()
	b := framework.NewTraefikBrowser(e.roots)
	want := appURL(framework.App1Host, "/admin/page?tab=2")
	page, err := b.Login(e.ctx, want, framework.DeniedUser, framework.DeniedPass)
	if err != nil {
		t.Fatal(err)
	}
	authorizations := countVisits(b, suite.Keycloak.Issuer()+"/protocol/openid-connect/auth")
	callbacks := countVisits(b, appURL(framework.App1Host, "/oauth2/callback?"))
	// Both configurations run this; the note says which one it measured.
	note("traefik, %s: bob (no role) reached the 403 page after %d requests (%d to Keycloak's authorization endpoint, %d callback)", t.Name(), len(b.Visited), authorizations, callbacks)
	if page.Status != http.StatusForbidden || page.URL.String() != want {
		t.Fatalf("bob ended on %s with HTTP %d, want one 403 on %s; visited %v", page.URL, page.Status, want, b.Visited)
	}
	if authorizations != 1 || callbacks != 1 || len(b.Visited) > 5 {
		t.Errorf("bob's login is not one round: %d authorization requests, %d callbacks, %d requests: %v", authorizations, callbacks, len(b.Visited), b.Visited)
	}
	m := signOutFormRE.FindStringSubmatch(page.Body)
	if m == nil || !strings.Contains(page.Body, framework.DeniedUser) {
		t.Fatalf("the 403 page names no user or has no sign-out form: %.400s", page.Body)
	}
	action, err := page.URL.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, action.String(), nil)
	req.Header.Set("Origin", "https://"+framework.App1Host)
	req.Header.Set("Accept", "text/html")
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := readAll(resp)
	if _, _, err := framework.LoginForm(after); err != nil || !strings.HasPrefix(resp.Request.URL.String(), suite.Keycloak.Issuer()) {
		t.Errorf("after signing out bob ended on %s (HTTP %d), want Keycloak's login form: %v", resp.Request.URL, resp.StatusCode, err)
	}
	if !visited(b, suite.Keycloak.Issuer()+"/protocol/openid-connect/logout") {
		t.Errorf("bob's sign-out did not end his Keycloak session: %v", b.Visited)
	}
}

// oauth2IngressCarriesErrors: the users' Ingress serves /oauth2 on every *.podgate.test host with
// the errors middleware: a host without an IngressRoute of its own gets podgate's sign-in page for
// a 401 there, not a 404.
func (e *traefikEnv) oauth2IngressCarriesErrors() {
	t := e.t
	t.Helper()
	api := framework.NewTraefikBrowser(e.roots).Client
	api.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	status, body, err := get(e.ctx, api, appURL("other."+framework.TraefikDomain, "/oauth2/userinfo"), map[string]string{"Accept": "text/html"})
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusUnauthorized || !strings.Contains(string(body), "/oauth2/start") {
		t.Errorf("/oauth2 through the users' Ingress: HTTP %d %.200q, want the errors middleware's sign-in page", status, body)
	}
}

// refreshOnce: alice's access token lives 40 s; after it has expired her requests go on working,
// the first of them refreshes the session and hands the browser the new cookie through
// addAuthCookiesToResponse, and the next ones carry it: no further refresh.
func (e *traefikEnv) refreshOnce(b *framework.Browser, loggedIn time.Time) {
	t := e.t
	t.Helper()
	wait := time.Until(loggedIn.Add(framework.TraefikTokenLifespan + 2*time.Second))
	select {
	case <-e.ctx.Done():
		t.Fatal(e.ctx.Err())
	case <-time.After(wait):
	}
	u, _ := url.Parse(appURL(framework.App1Host, "/"))
	session := func() string {
		var parts []string
		for _, c := range b.Client.Jar.Cookies(u) {
			if strings.HasPrefix(c.Name, "_podgate") {
				parts = append(parts, c.Name+"="+c.Value)
			}
		}
		return strings.Join(parts, ";")
	}
	stale, refreshedBefore := session(), e.refreshed()
	echo := getEcho(t, e.ctx, b.Client, appURL(framework.App1Host, "/after-expiry"), map[string]string{"Accept": "application/json"})
	checkIdentity(t, echo, framework.AllowedUser, "Traefik, after the access token expired")
	fresh := session()
	if fresh == stale || fresh == "" {
		t.Fatalf("the browser's session cookie did not change after the access token expired")
	}
	// The refreshed token is due again 10 s later (40 s life, 30 s margin): the requests that
	// follow within 8 s must not refresh. On a slow machine fewer of them fit.
	refreshedAt, requests := time.Now(), 1
	for i := 0; i < 4 && time.Since(refreshedAt) < 8*time.Second; i++ {
		getEcho(t, e.ctx, b.Client, appURL(framework.App1Host, fmt.Sprintf("/next/%d", i)), map[string]string{"Accept": "application/json"})
		requests++
	}
	refreshes := e.refreshed() - refreshedBefore
	note("traefik: %d session refresh(es) for %d requests after the access token expired", int(refreshes), requests)
	if requests < 2 || refreshes != 1 || session() != fresh {
		t.Errorf("%v refreshes for %d requests after expiry, want 1 (the browser must carry the refreshed cookie)", refreshes, requests)
	}
}

// refreshed sums podgate_requests_total{outcome="refreshed"} over the forward-auth replicas.
func (e *traefikEnv) refreshed() float64 {
	e.t.Helper()
	pods, err := suite.Kube.Client.CoreV1().Pods(framework.ForwardAuthServiceNS).List(e.ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + framework.ForwardAuthServiceName})
	if err != nil {
		e.t.Fatal(err)
	}
	var total float64
	for _, p := range pods.Items {
		status, body, err := get(e.ctx, noRedirects, "http://"+p.Status.PodIP+":4190/metrics", nil)
		if err != nil || status != http.StatusOK {
			e.t.Fatalf("metrics of %s: %d %v", p.Name, status, err)
		}
		n, err := framework.ParseCounter(string(body), "podgate_requests_total", map[string]string{"outcome": "refreshed"})
		if err != nil {
			e.t.Fatal(err)
		}
		total += n
	}
	return total
}
