//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podgate/podgate/test/e2e/framework"
)

// The request path: through a Service to an injected app, as a browser (Keycloak's login form)
// and as an API client (bearer tokens).

// noRedirects is an HTTP client that reports redirects instead of following them.
var noRedirects = &http.Client{
	Timeout:       15 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
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

// Through the Service (named targetPort, kube-proxy): no credentials → 302 to Keycloak for a
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

// A browser logs in against the real Keycloak: it follows the redirect, submits Keycloak's
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

// Bearer tokens from Keycloak: allowed → 200, no role → 403, expired or garbage → 401, and a
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

// An expired token is refused. It is a real Keycloak token, minted at start-up by a client whose
// tokens live 10 s; when it has not yet expired beyond the sidecar's 30 s skew, the test waits out
// the rest (some seconds after the injection and request-path tests of a full run).
func TestExpiredBearerToken(t *testing.T) {
	requireDemo(t)
	if exp := tokenExpiry(t, expiredToken.AccessToken).Add(31 * time.Second); time.Until(exp) > 0 {
		t.Logf("waiting %s for the short-lived token to expire beyond the allowed skew", time.Until(exp).Round(time.Second))
		time.Sleep(time.Until(exp))
	}
	expectRefused(t, "expired", map[string]string{"Authorization": "Bearer " + expiredToken.AccessToken}, http.StatusUnauthorized)
}
