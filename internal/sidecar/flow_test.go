package sidecar

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/podgate/podgate/internal/auth"
	"github.com/podgate/podgate/internal/oidctest"
	"github.com/podgate/podgate/internal/options"
	"github.com/podgate/podgate/internal/session"
)

// TestBrowserLoginFlow walks the whole authorization-code flow with a cookie jar: protected page →
// IdP → callback → original URL, then checks what the app saw and what it never saw.
func TestBrowserLoginFlow(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.AllowedRoles = []string{"user"} }})
	c, resp, body := e.login("/page?x=1")
	if resp.StatusCode != 200 || body != "upstream says hi" {
		t.Fatalf("after login: %d %q", resp.StatusCode, body)
	}
	if resp.Request.URL.Path != "/page" || resp.Request.URL.RawQuery != "x=1" {
		t.Fatalf("landed on %s, want /page?x=1", resp.Request.URL)
	}
	up := e.last()
	if got := up.Header.Get("X-Auth-Request-User"); got != "alice" {
		t.Errorf("X-Auth-Request-User = %q", got)
	}
	for h, want := range map[string]string{
		"X-Auth-Request-Email": "alice@example.com", "X-Forwarded-Email": "alice@example.com",
		"X-Auth-Request-Groups": "/staff", "X-Forwarded-Groups": "/staff", "X-Auth-Request-Roles": "user",
		"X-Auth-Request-Preferred-Username": "alice", "X-Forwarded-Preferred-Username": "alice", "X-Forwarded-User": "alice",
	} {
		if got := up.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if cookieHeaderHas(up, "_podgate") {
		t.Errorf("session cookie forwarded to the app: %q", up.Header.Get("Cookie"))
	}
	if up.Header.Get("Authorization") != "" {
		t.Error("access token forwarded without --pass-access-token")
	}
	// The app's own cookie travels both ways; ours never reach the app.
	resp, _ = do(t, c, "GET", e.proxyURL+"/again", map[string]string{"Accept": "text/html"})
	if resp.StatusCode != 200 {
		t.Fatalf("second request: %d", resp.StatusCode)
	}
	up = e.last()
	if ck, err := up.Cookie("app"); err != nil || ck.Value != "from-app" {
		t.Errorf("app cookie not forwarded: %q", up.Header.Get("Cookie"))
	}
	if cookieHeaderHas(up, "_podgate") {
		t.Errorf("session cookie forwarded on second request: %q", up.Header.Get("Cookie"))
	}

	// userinfo with the session.
	resp, body = do(t, c, "GET", e.proxyURL+"/oauth2/userinfo", nil)
	var info map[string]any
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &info) != nil || info["email"] != "alice@example.com" {
		t.Fatalf("userinfo: %d %s", resp.StatusCode, body)
	}

	// Sign out: session cookies cleared, IdP end-session with id_token_hint and a return URL.
	nr := &http.Client{Jar: c.Jar, CheckRedirect: noRedirect().CheckRedirect}
	resp, _ = do(t, nr, "GET", e.proxyURL+"/oauth2/sign_out?rd=/bye", nil)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || !strings.HasPrefix(loc.String(), e.idp.URL()+"/logout") {
		t.Fatalf("sign_out: %d → %s", resp.StatusCode, loc)
	}
	if loc.Query().Get("id_token_hint") == "" || loc.Query().Get("post_logout_redirect_uri") != e.proxyURL+"/bye" {
		t.Errorf("end-session query = %v", loc.Query())
	}
	for _, path := range []string{"/", "/oauth2/sign_out"} {
		u, _ := url.Parse(e.proxyURL + path)
		for _, ck := range c.Jar.Cookies(u) {
			if strings.HasPrefix(ck.Name, "_podgate") {
				t.Errorf("cookie %s (at %s) survived sign-out", ck.Name, path)
			}
		}
	}
}

func TestSessionCookieAttributesSecure(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.CookieSecure = true }})
	resp, _ := do(t, nil, "GET", e.proxyURL+"/x", map[string]string{"Accept": "text/html"})
	if resp.StatusCode != 302 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("nonce") == "" {
		t.Fatalf("authorization request lacks PKCE/state/nonce: %v", q)
	}
	if !strings.HasPrefix(q.Get("redirect_uri"), "https://") {
		t.Errorf("redirect_uri %q is not https with --cookie-secure", q.Get("redirect_uri"))
	}
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"__Host-_podgate_csrf=", "Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(sc, want) {
			t.Errorf("CSRF cookie %q lacks %q", sc, want)
		}
	}
	if strings.Contains(sc, "Domain=") {
		t.Errorf("__Host- cookie must not carry Domain: %q", sc)
	}
}

func TestAPIClientsGet401NotRedirect(t *testing.T) {
	e := newEnv(t, envOpt{})
	for name, hdr := range map[string]map[string]string{
		"json":             {"Accept": "application/json"},
		"xhr":              {"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"},
		"no accept (curl)": {},
		"probe-like":       {"User-Agent": "kube-probe/1.34"},
	} {
		resp, _ := do(t, nil, "GET", e.proxyURL+"/api", hdr)
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: %d %q", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	resp, _ := do(t, nil, "POST", e.proxyURL+"/form", map[string]string{"Accept": "text/html"})
	if resp.StatusCode != 401 {
		t.Errorf("browser POST without session: %d, want 401", resp.StatusCode)
	}
	if e.seenCount() != 0 {
		t.Fatal("unauthenticated request reached the app")
	}
}

func TestCallbackCSRF(t *testing.T) {
	e := newEnv(t, envOpt{})
	// Start a login to get a genuine CSRF cookie, but answer with a foreign state.
	c := browser(t)
	nr := &http.Client{Jar: c.Jar, CheckRedirect: noRedirect().CheckRedirect}
	resp, _ := do(t, nr, "GET", e.proxyURL+"/oauth2/start?rd=/x", nil)
	authURL := resp.Header.Get("Location")
	resp, _ = do(t, nr, "GET", authURL, nil) // IdP logs in and redirects to the callback
	cb, _ := url.Parse(resp.Header.Get("Location"))
	q := cb.Query()
	q.Set("state", "attacker-state")
	cb.RawQuery = q.Encode()
	resp, _ = do(t, nr, "GET", cb.String(), nil)
	if resp.StatusCode != 403 {
		t.Fatalf("foreign state: %d, want 403", resp.StatusCode)
	}
	// A callback without the CSRF cookie (no PKCE verifier, e.g. a link sent to a victim).
	resp, _ = do(t, nil, "GET", e.proxyURL+"/oauth2/callback?code=abc&state=xyz", nil)
	if resp.StatusCode != 403 {
		t.Fatalf("no CSRF cookie: %d, want 403", resp.StatusCode)
	}
	// A genuine code replayed into another browser's session (no cookie) fails too.
	resp, _ = do(t, nr, "GET", e.proxyURL+"/oauth2/start?rd=/x", nil)
	resp, _ = do(t, nr, "GET", resp.Header.Get("Location"), nil)
	genuine := resp.Header.Get("Location")
	resp, _ = do(t, nil, "GET", genuine, nil)
	if resp.StatusCode != 403 {
		t.Fatalf("code replayed without cookie: %d", resp.StatusCode)
	}
	if e.seenCount() != 0 {
		t.Fatal("a failed login reached the app")
	}
}

func TestTamperedAndExpiredCookies(t *testing.T) {
	e := newEnv(t, envOpt{})
	c, resp, _ := e.login("/")
	if resp.StatusCode != 200 {
		t.Fatal("login failed")
	}
	u, _ := url.Parse(e.proxyURL)
	var name, value string
	for _, ck := range c.Jar.Cookies(u) {
		if strings.HasPrefix(ck.Name, "_podgate") {
			name, value = ck.Name, ck.Value
		}
	}
	if name == "" {
		t.Fatal("no session cookie")
	}
	flipped := []byte(value)
	flipped[len(flipped)/2] ^= 1
	if flipped[len(flipped)/2] == value[len(value)/2] {
		t.Fatal("tamper did not change the cookie")
	}
	resp, _ = do(t, nil, "GET", e.proxyURL+"/", map[string]string{"Cookie": name + "=" + string(flipped), "Accept": "application/json"})
	if resp.StatusCode != 401 {
		t.Errorf("tampered cookie: %d", resp.StatusCode)
	}
	// A cookie sealed with the right key but for a session that began beyond --cookie-expire.
	key, _ := options.DecodeCookieSecret(testSecret)
	codec, _ := session.NewCodec(key)
	old := session.NewStore(codec, "_podgate", false, 12*time.Hour, func() time.Time { return time.Now().Add(-13 * time.Hour) })
	rec := &headerRecorder{h: http.Header{}}
	req, _ := http.NewRequest("GET", "/", nil)
	tok := e.idp.Mint(e.idp.Claims())
	if err := old.Save(rec, old.Cookies(req.Header), &session.Session{AccessToken: tok, Expiry: time.Now().Add(time.Hour),
		Created: time.Now().Add(-13 * time.Hour), Identity: &auth.Identity{User: "alice", Subject: "user-1"}}); err != nil {
		t.Fatal(err)
	}
	replay := (&http.Response{Header: rec.h}).Cookies()
	req2, _ := http.NewRequest("GET", e.proxyURL+"/", nil)
	req2.Header.Set("Accept", "application/json")
	for _, ck := range replay {
		req2.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	}
	r2, err := noRedirect().Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 401 {
		t.Errorf("replayed expired session: %d", r2.StatusCode)
	}
	if !strings.Contains(strings.Join(r2.Header.Values("Set-Cookie"), ";"), "Max-Age=0") {
		t.Errorf("expired session cookie not cleared: %q", r2.Header.Values("Set-Cookie"))
	}
}

type headerRecorder struct{ h http.Header }

func (r *headerRecorder) Header() http.Header         { return r.h }
func (r *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *headerRecorder) WriteHeader(int)             {}

func TestRefreshBeforeExpiry(t *testing.T) {
	// Access tokens living 10s are always inside the 30s refresh margin.
	e := newEnv(t, envOpt{idp: oidctest.Config{AccessTTL: 10 * time.Second}})
	c, resp, _ := e.login("/")
	if resp.StatusCode != 200 {
		t.Fatal("login failed")
	}
	u, _ := url.Parse(e.proxyURL)
	var oldCookie []string
	for _, ck := range c.Jar.Cookies(u) {
		oldCookie = append(oldCookie, ck.Name+"="+ck.Value)
	}
	before := e.idp.TokenCalls()
	resp, _ = do(t, c, "GET", e.proxyURL+"/next", map[string]string{"Accept": "application/json"})
	if resp.StatusCode != 200 {
		t.Fatalf("after refresh: %d", resp.StatusCode)
	}
	if e.idp.TokenCalls() != before+1 {
		t.Fatalf("token endpoint calls %d → %d, want one refresh", before, e.idp.TokenCalls())
	}
	if !strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), ";"), "_podgate") {
		t.Error("refreshed session not written back")
	}
	if e.last().Header.Get("X-Auth-Request-User") != "alice" {
		t.Error("identity lost on refresh")
	}
	// Requests still carrying the old cookie (in flight before the browser stored the new one)
	// reuse the refreshed session: the refresh token is redeemed once, not per request.
	for range 3 {
		resp, _ := do(t, nil, "GET", e.proxyURL+"/old", map[string]string{"Cookie": strings.Join(oldCookie, "; "), "Accept": "application/json"})
		if resp.StatusCode != 200 {
			t.Fatalf("old cookie after refresh: %d", resp.StatusCode)
		}
	}
	if e.idp.TokenCalls() != before+1 {
		t.Errorf("token endpoint called %d times for one session refresh", e.idp.TokenCalls()-before)
	}
}

// TestRefreshSurvivesCancelledRequest: a browser cancels requests all the time (navigation, closed
// tab). The request that happens to trigger a session refresh must not take the refresh down with it:
// the failure would be shared with the next requests and log the user out.
func TestRefreshSurvivesCancelledRequest(t *testing.T) {
	// Access tokens issued already expired (within the verifier's skew): every request refreshes.
	e := newEnv(t, envOpt{idp: oidctest.Config{AccessTTL: -10 * time.Second}})
	c, resp, _ := e.login("/")
	if resp.StatusCode != 200 {
		t.Fatal("login failed")
	}
	u, _ := url.Parse(e.proxyURL)
	var cookie []string
	for _, ck := range c.Jar.Cookies(u) {
		cookie = append(cookie, ck.Name+"="+ck.Value)
	}
	e.idp.SetDelays(0, 400*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.proxyURL+"/cancelled", nil)
	req.Header.Set("Cookie", strings.Join(cookie, "; "))
	req.Header.Set("Accept", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the request was answered (%d) before the client hung up", resp.StatusCode)
	}
	cancel()
	e.idp.SetDelays(0, 0)
	resp, _ = do(t, nil, "GET", e.proxyURL+"/next", map[string]string{"Cookie": strings.Join(cookie, "; "), "Accept": "text/html"})
	if resp.StatusCode != 200 {
		t.Fatalf("after a cancelled request during the refresh: %d (%s), want 200", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestUnverifiedAuthorizationWithCookie: with a valid session cookie, an Authorization header the
// proxy did not verify (another scheme, or a bearer spelled so the proxy does not read it as one)
// must not reach the app next to the session's identity.
func TestUnverifiedAuthorizationWithCookie(t *testing.T) {
	e := newEnv(t, envOpt{})
	c, resp, _ := e.login("/")
	if resp.StatusCode != 200 {
		t.Fatal("login failed")
	}
	for _, forged := range []string{"Basic cm9vdDpyb290", "Bearer\tforged", "Token forged", "Bearer"} {
		resp, _ := do(t, c, "GET", e.proxyURL+"/api", map[string]string{"Authorization": forged, "Accept": "application/json"})
		if resp.StatusCode != 200 {
			t.Fatalf("%q with a cookie session: %d", forged, resp.StatusCode)
		}
		if got := e.last().Header.Values("Authorization"); len(got) != 0 {
			t.Errorf("unverified Authorization %q reached the app next to a cookie session", got)
		}
		if e.last().Header.Get("X-Auth-Request-User") != "alice" {
			t.Errorf("identity missing")
		}
	}
}

// TestSignOutCrossSite: another site linking or embedding /oauth2/sign_out must not end the user's
// session (nor the Keycloak one); a plain link from the app's own pages, or a typed URL, still signs
// out at once, and the page a cross-site request gets signs out when its link is followed.
func TestSignOutCrossSite(t *testing.T) {
	e := newEnv(t, envOpt{})
	c, resp, _ := e.login("/")
	if resp.StatusCode != 200 {
		t.Fatal("login failed")
	}
	nr := &http.Client{Jar: c.Jar, CheckRedirect: noRedirect().CheckRedirect}
	host := strings.TrimPrefix(e.proxyURL, "http://")
	for name, hdr := range map[string]map[string]string{
		"Sec-Fetch-Site cross-site":              {"Sec-Fetch-Site": "cross-site", "Referer": e.proxyURL + "/"},
		"Sec-Fetch-Site same-site, foreign host": {"Sec-Fetch-Site": "same-site", "Referer": "http://other." + host + "/"},
		"Sec-Fetch-Site same-site, no referrer":  {"Sec-Fetch-Site": "same-site"},
		"old browser, foreign Referer":           {"Referer": "https://evil.example/page"},
		"old browser, foreign Origin":            {"Origin": "https://evil.example"},
		"opaque origin":                          {"Origin": "null"},
	} {
		resp, body := do(t, nr, "GET", e.proxyURL+"/oauth2/sign_out?rd=/bye", hdr)
		if resp.StatusCode != 200 || resp.Header.Get("Location") != "" || len(resp.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("%s: %d Location=%q Set-Cookie=%q, want the confirmation page and nothing cleared",
				name, resp.StatusCode, resp.Header.Get("Location"), resp.Header.Values("Set-Cookie"))
		}
		if !strings.Contains(body, `href="/oauth2/sign_out?rd=%2Fbye"`) || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: confirmation page %q (X-Frame-Options %q)", name, body, resp.Header.Get("X-Frame-Options"))
		}
		if e.idp.LastEndSession() != nil {
			t.Fatalf("%s: the IdP session was ended", name)
		}
	}
	if resp, _ := do(t, nr, "GET", e.proxyURL+"/", map[string]string{"Accept": "application/json"}); resp.StatusCode != 200 {
		t.Fatalf("session gone after cross-site sign-out attempts: %d", resp.StatusCode)
	}
	for name, hdr := range map[string]map[string]string{
		"link from the app (same-origin)":      {"Sec-Fetch-Site": "same-origin", "Referer": e.proxyURL + "/page"},
		"typed URL":                            {"Sec-Fetch-Site": "none"},
		"old browser, link from the app":       {"Referer": e.proxyURL + "/page"},
		"no browser headers at all (scripted)": nil,
	} {
		resp, _ := do(t, nr, "GET", e.proxyURL+"/oauth2/sign_out?rd=/bye", hdr)
		if resp.StatusCode != 302 || !strings.HasPrefix(resp.Header.Get("Location"), e.idp.URL()+"/logout") {
			t.Errorf("%s: %d → %q, want the IdP's end-session", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// TestRefreshDropsRevokedRoles: a role removed at the IdP must be gone after the next refresh, also
// when the refresh response has no ID token (the identity then comes from the new access token, or
// from userinfo when that is opaque), never from the old session's claims.
func TestRefreshDropsRevokedRoles(t *testing.T) {
	for name, cfg := range map[string]oidctest.Config{
		"JWT access token":    {RefreshWithoutIDToken: true},
		"opaque access token": {RefreshWithoutIDToken: true, OpaqueAccessTokens: true},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.AccessTTL = 10 * time.Second // always inside the refresh margin
			cfg.User = oidctest.User{Subject: "user-1", Claims: map[string]any{
				"preferred_username": "alice", "groups": []string{"/staff", "/admins"},
				"realm_access": map[string]any{"roles": []string{"user", "admin"}},
			}}
			e := newEnv(t, envOpt{idp: cfg})
			c, resp, _ := e.login("/")
			if resp.StatusCode != 200 {
				t.Fatal("login failed")
			}
			e.idp.SetUser(oidctest.User{Subject: "user-1", Claims: map[string]any{
				"preferred_username": "alice", "groups": []string{"/staff"},
				"realm_access": map[string]any{"roles": []string{"user"}},
			}})
			before := e.idp.TokenCalls()
			if resp, _ := do(t, c, "GET", e.proxyURL+"/after", map[string]string{"Accept": "application/json"}); resp.StatusCode != 200 {
				t.Fatalf("after refresh: %d", resp.StatusCode)
			}
			if e.idp.TokenCalls() == before {
				t.Fatal("no refresh happened")
			}
			up := e.last()
			if got := up.Header.Get("X-Auth-Request-Groups"); got != "/staff" {
				t.Errorf("groups after refresh %q, want /staff (the revoked group survived)", got)
			}
			if got := up.Header.Get("X-Auth-Request-User"); got != "alice" {
				t.Errorf("user after refresh %q", got)
			}
			if name == "JWT access token" {
				// The opaque case has no roles anywhere (roles are in the access token only).
				if got := up.Header.Get("X-Auth-Request-Roles"); got != "user" {
					t.Errorf("roles after refresh %q, want user (the revoked role survived)", got)
				}
			}
		})
	}
}

func TestLargeSessionSplitAndNeverForwarded(t *testing.T) {
	groups := make([]string, 60)
	for i := range groups {
		groups[i] = "/department/team-with-a-long-name-" + strings.Repeat("x", 5) + string(rune('a'+i%26)) + "-" + time.Duration(i).String()
	}
	e := newEnv(t, envOpt{idp: oidctest.Config{User: oidctest.User{Subject: "big", Claims: map[string]any{
		"preferred_username": "big", "groups": groups}}}})
	c, resp, _ := e.login("/")
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	u, _ := url.Parse(e.proxyURL)
	chunks := 0
	for _, ck := range c.Jar.Cookies(u) {
		if strings.HasPrefix(ck.Name, "_podgate_") && ck.Name != "_podgate_csrf" {
			chunks++
			if len(ck.Value) > session.ChunkSize {
				t.Errorf("chunk %s is %d bytes", ck.Name, len(ck.Value))
			}
		}
	}
	if chunks < 2 {
		t.Fatalf("session not split: %d chunks", chunks)
	}
	resp, _ = do(t, c, "GET", e.proxyURL+"/after", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("split session not accepted: %d", resp.StatusCode)
	}
	up := e.last()
	if cookieHeaderHas(up, "_podgate") {
		t.Fatalf("split session forwarded: %d bytes of Cookie", len(up.Header.Get("Cookie")))
	}
	if !strings.Contains(up.Header.Get("X-Auth-Request-Groups"), "team-with-a-long-name") {
		t.Error("groups missing")
	}
}

func TestOpenRedirectAfterLogin(t *testing.T) {
	e := newEnv(t, envOpt{})
	for _, rd := range []string{"//evil.example", "https://evil.example/", "/\\evil.example", "/ok/path?q=1"} {
		c := browser(t)
		resp, _ := do(t, c, "GET", e.proxyURL+"/oauth2/start?rd="+url.QueryEscape(rd), nil)
		got := resp.Request.URL
		if got.Host != strings.TrimPrefix(e.proxyURL, "http://") {
			t.Errorf("rd=%q landed on %s", rd, got)
		}
		want := "/"
		if rd == "/ok/path?q=1" {
			want = rd
		}
		if got.RequestURI() != want {
			t.Errorf("rd=%q landed on %s, want %s", rd, got.RequestURI(), want)
		}
	}
}
