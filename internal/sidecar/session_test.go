package sidecar

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/podgate/podgate/internal/oidctest"
	"github.com/podgate/podgate/internal/options"
	"github.com/podgate/podgate/internal/session"
)

// sessionCookieBytes is what the browser sends as the proxy's cookies on an ordinary request
// ("name=value; " each), and the cookies themselves.
func sessionCookieBytes(e *env, c *http.Client, path string) (int, []*http.Cookie) {
	u, _ := url.Parse(e.proxyURL + path)
	n := 0
	var own []*http.Cookie
	for _, ck := range c.Jar.Cookies(u) {
		if strings.HasPrefix(ck.Name, "_podgate") {
			n += len(ck.Name) + 1 + len(ck.Value) + 2
			own = append(own, ck)
		}
	}
	return n, own
}

// TestSessionCookieSizeKeycloak logs in Keycloak-shaped users (the e2e realm's alice, and alice
// with 30 groups) and checks what every later request carries: one cookie, within 2 KB for alice,
// without the access token the configuration does not forward and without the ID token, which
// only the sign-out endpoint gets.
func TestSessionCookieSizeKeycloak(t *testing.T) {
	for _, tc := range []struct {
		groups, max int
	}{{1, 2048}, {30, 3000}} {
		e := newEnv(t, envOpt{idp: oidctest.Config{Keycloak: true, User: oidctest.KeycloakUser(tc.groups, 0)}})
		c, resp, _ := e.login("/")
		if resp.StatusCode != 200 {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		n, own := sessionCookieBytes(e, c, "/any/page")
		t.Logf("groups=%d: %d bytes of session cookies per request", tc.groups, n)
		if len(own) != 1 || n > tc.max {
			t.Errorf("groups=%d: %d cookies, %d bytes per request, want 1 and at most %d", tc.groups, len(own), n, tc.max)
		}
		st := testStore(t)
		sess, err := st.Load(st.Cookies(requestWith(own).Header))
		if err != nil {
			t.Fatal(err)
		}
		if sess.AccessToken != "" || sess.IDToken != "" || sess.RefreshToken == "" || len(sess.Identity.Groups) != tc.groups {
			t.Errorf("session holds at=%d it=%d rt=%d bytes, %d groups", len(sess.AccessToken), len(sess.IDToken),
				len(sess.RefreshToken), len(sess.Identity.Groups))
		}
		_, atSignOut := sessionCookieBytes(e, c, session.SignOutPath)
		if len(atSignOut) != 2 {
			t.Errorf("sign-out gets %d cookies, want the session and the ID token", len(atSignOut))
		}
	}
}

// testStore reads the sessions the test sidecars write (same key, default cookie name).
func testStore(t *testing.T) *session.Store {
	key, err := options.DecodeCookieSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := session.NewCodec(key)
	if err != nil {
		t.Fatal(err)
	}
	o := options.Defaults()
	o.CookieSecure = false
	return session.NewStore(codec, o.EffectiveCookieName(), false, time.Hour, nil)
}

func requestWith(cookies []*http.Cookie) *http.Request {
	r, _ := http.NewRequest("GET", "/", nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	return r
}

// TestPassAccessTokenAfterSessionWithoutOne: a session written while the access token was not
// forwarded holds none. Once the sidecar forwards it, that session is refreshed first, and the app
// never gets an empty bearer token; when the refresh fails, the user logs in again.
func TestPassAccessTokenAfterSessionWithoutOne(t *testing.T) {
	before := newEnv(t, envOpt{})
	c, resp, _ := before.login("/")
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	after := newEnv(t, envOpt{existing: before.idp, opts: func(o *options.Options) { o.PassAccessToken = true }})
	calls := before.idp.TokenCalls()
	if resp, _ := do(t, c, "GET", after.proxyURL+"/api", nil); resp.StatusCode != 200 {
		t.Fatalf("old session on the forwarding sidecar: %d", resp.StatusCode)
	}
	if got := after.last().Header.Get("Authorization"); !strings.HasPrefix(got, "Bearer ey") {
		t.Errorf("Authorization upstream = %q", got)
	}
	if before.idp.TokenCalls() != calls+1 {
		t.Errorf("%d token calls, want one refresh", before.idp.TokenCalls()-calls)
	}

	// A second browser with a session without access token, while the IdP is down: no bearer
	// token to forward, so no request reaches the app.
	c2, resp, _ := before.login("/")
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	seen := after.seenCount()
	before.idp.SetDown(true)
	defer before.idp.SetDown(false)
	if resp, _ := do(t, noRedirectJar(c2), "GET", after.proxyURL+"/api", map[string]string{"Accept": "application/json"}); resp.StatusCode != 401 {
		t.Errorf("session without access token, refresh failing: %d, want 401", resp.StatusCode)
	}
	if after.seenCount() != seen {
		t.Error("a request reached the app without the access token it forwards")
	}
}

func noRedirectJar(c *http.Client) *http.Client {
	return &http.Client{Jar: c.Jar, CheckRedirect: noRedirect().CheckRedirect}
}
