package sidecar

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/podgate/podgate/internal/oidctest"
	"github.com/podgate/podgate/internal/options"
)

// TestPassIDToken: with --pass-id-token the session's ID token reaches the app (and the ingress, on
// /oauth2/auth's 202) as "X-OAUTH2-PROXY-ID-TOKEN: Bearer <token>", which Backstage's oauth2-proxy
// provider decodes without verifying: a client-sent copy must never pass, with or without the flag.
func TestPassIDToken(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.PassIDToken = true }})
	c, resp, _ := e.login("/page")
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	got := e.last().Header.Get("X-Oauth2-Proxy-Id-Token")
	if !strings.HasPrefix(got, "Bearer ey") || strings.Count(got, ".") != 2 {
		t.Fatalf("app saw X-OAUTH2-PROXY-ID-TOKEN %q, want Bearer <ID token>", got)
	}
	// A forged one is replaced by the session's own.
	do(t, c, "GET", e.proxyURL+"/again", map[string]string{"X-OAUTH2-PROXY-ID-TOKEN": "Bearer forged", "X_Oauth2_Proxy_Id_Token": "forged"})
	if vals := e.last().Header.Values("X-Oauth2-Proxy-Id-Token"); len(vals) != 1 || vals[0] != got {
		t.Errorf("with a forged header the app saw %q", vals)
	}
	// Forward-auth hands it to the ingress on the 202.
	u, _ := url.Parse(e.proxyURL)
	fa, _ := url.Parse(e.faURL)
	c.Jar.SetCookies(fa, c.Jar.Cookies(u))
	resp, _ = do(t, c, "GET", e.faURL+"/oauth2/auth", nil)
	if resp.StatusCode != 202 || resp.Header.Get("X-Oauth2-Proxy-Id-Token") != got {
		t.Errorf("forward-auth: %d %q", resp.StatusCode, resp.Header.Get("X-Oauth2-Proxy-Id-Token"))
	}
	// A bearer-token request has no ID token: nothing is sent, and a forged one is still stripped.
	do(t, nil, "GET", e.proxyURL+"/api", map[string]string{"Authorization": "Bearer " + e.idp.Mint(e.idp.Claims()), "X-OAUTH2-PROXY-ID-TOKEN": "Bearer forged"})
	if v := e.last().Header.Get("X-Oauth2-Proxy-Id-Token"); v != "" {
		t.Errorf("bearer request: app saw X-OAUTH2-PROXY-ID-TOKEN %q", v)
	}

	off := newEnv(t, envOpt{})
	off.login("/")
	do(t, nil, "GET", off.proxyURL+"/api", map[string]string{"Authorization": "Bearer " + off.idp.Mint(off.idp.Claims()), "X-OAUTH2-PROXY-ID-TOKEN": "Bearer forged"})
	if v := off.last().Header.Get("X-Oauth2-Proxy-Id-Token"); v != "" {
		t.Errorf("without --pass-id-token the app saw %q", v)
	}
}

// TestCookieDomainSession: with --cookie-domain the session cookies carry the domain, keep Secure,
// and lose the __Host- prefix browsers would refuse on a domain cookie.
func TestCookieDomainSession(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.CookieSecure = true; o.CookieDomain = "example.test" }})
	resp, _ := do(t, noRedirect(), "GET", e.faURL+"/oauth2/start?rd=/x", nil)
	idp, _ := url.Parse(resp.Header.Get("Location"))
	var csrf *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "_podgate_csrf" {
			csrf = ck
		}
	}
	if csrf == nil || csrf.Domain != "" {
		t.Fatalf("login cookie %+v: want _podgate_csrf, host-only", csrf)
	}
	// Follow the IdP by hand (the cookies are Secure, the test servers plain HTTP).
	resp, _ = do(t, noRedirect(), "GET", idp.String(), nil)
	cb, _ := url.Parse(resp.Header.Get("Location"))
	req, _ := http.NewRequest("GET", e.faURL+cb.RequestURI(), nil)
	req.AddCookie(&http.Cookie{Name: csrf.Name, Value: csrf.Value})
	resp, err := noRedirect().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session []*http.Cookie
	for _, ck := range resp.Cookies() {
		if strings.HasPrefix(ck.Name, "_podgate") && ck.Name != "_podgate_csrf" {
			session = append(session, ck)
		}
	}
	if resp.StatusCode != 302 || len(session) == 0 {
		t.Fatalf("callback: %d, session cookies %v", resp.StatusCode, session)
	}
	for _, ck := range session {
		if ck.Domain != "example.test" || !ck.Secure || strings.HasPrefix(ck.Name, "__Host-") {
			t.Errorf("session cookie %s: domain %q secure %v", ck.Name, ck.Domain, ck.Secure)
		}
	}
}

// TestForwardAuthTraefikNavigation: a page load without a session, described the way Traefik's
// forwardAuth describes it (X-Forwarded-Method/Proto/Host/Uri), is answered with the login redirect
// itself, which Traefik hands to the browser: the deep link survives, the callback is on the
// browser's host. nginx's sub-request (X-Original-URL), API calls and XHR still get a 401.
func TestForwardAuthTraefikNavigation(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.Proxies = nil }})
	traefik := map[string]string{"Accept": "text/html,application/xhtml+xml", "X-Forwarded-Method": "GET",
		"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app1.example.test", "X-Forwarded-Uri": "/deep/link?x=1&y=two"}
	resp, _ := do(t, noRedirect(), "GET", e.faURL+"/oauth2/auth", traefik)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || loc == nil || !strings.HasPrefix(loc.String(), e.idp.URL()) {
		t.Fatalf("Traefik navigation: %d to %q, want 302 to the IdP", resp.StatusCode, resp.Header.Get("Location"))
	}
	if cb := loc.Query().Get("redirect_uri"); cb != "https://app1.example.test/oauth2/callback" {
		t.Errorf("callback %q, want the browser's host", cb)
	}
	// The login cookie holds the deep link: complete the login and land there.
	var csrf *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "_podgate_csrf" {
			csrf = ck
		}
	}
	if csrf == nil {
		t.Fatal("no login cookie on the redirect")
	}
	resp, _ = do(t, noRedirect(), "GET", loc.String(), nil)
	cb, _ := url.Parse(resp.Header.Get("Location"))
	req, _ := http.NewRequest("GET", e.faURL+cb.RequestURI(), nil)
	req.Host = "app1.example.test"
	req.AddCookie(&http.Cookie{Name: csrf.Name, Value: csrf.Value})
	resp, err := noRedirect().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Location"); got != "https://app1.example.test/deep/link?x=1&y=two" {
		t.Errorf("after login the browser goes to %q, want the deep link", got)
	}

	for name, change := range map[string]func(h map[string]string){
		"nginx (X-Original-URL)": func(h map[string]string) { h["X-Original-URL"] = "https://app1.example.test/deep" },
		"API client":             func(h map[string]string) { h["Accept"] = "application/json" },
		"XHR":                    func(h map[string]string) { h["X-Requested-With"] = "XMLHttpRequest" },
		"POST":                   func(h map[string]string) { h["X-Forwarded-Method"] = "POST" },
		"no X-Forwarded-Uri":     func(h map[string]string) { delete(h, "X-Forwarded-Uri") },
		"foreign host":           func(h map[string]string) { h["X-Forwarded-Uri"] = "//evil.example/" },
	} {
		h := map[string]string{}
		for k, v := range traefik {
			h[k] = v
		}
		change(h)
		resp, _ := do(t, noRedirect(), "GET", e.faURL+"/oauth2/auth", h)
		if name == "foreign host" {
			// Still a redirect to the IdP, but the target is refused: after login the browser lands on "/".
			if resp.StatusCode != 302 {
				t.Errorf("%s: %d", name, resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != 401 {
			t.Errorf("%s: %d, want 401", name, resp.StatusCode)
		}
	}
}

// TestSignInNeverReturnsToEndpoints: Traefik's errors middleware also catches a failed callback and
// passes its URL as rd={url}; returning there after the next login would fail again, forever.
func TestSignInNeverReturnsToEndpoints(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.Proxies = nil }})
	for rd, want := range map[string]string{
		"https://app.example.test/oauth2/callback?code=x&state=y": "/",
		"/oauth2/start?rd=/x":                   "/",
		"https://app.example.test/reports?id=7": "https://app.example.test/reports?id=7",
		"https://evil.example/reports":          "/",
	} {
		req, _ := http.NewRequest("GET", e.faURL+"/oauth2/sign_in?rd="+url.QueryEscape(rd), nil)
		req.Host = "app.example.test"
		resp, err := noRedirect().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Location"); got != "/oauth2/start?rd="+url.QueryEscape(want) {
			t.Errorf("sign_in?rd=%s → %q, want rd %q", rd, got, want)
		}
	}
}

// TestForbiddenPageEscapes: the forbidden page shows the user name from the token; a name built to
// be markup is shown as text, and an rd built to break out of the form's action stays inside it.
func TestForbiddenPageEscapes(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.AllowedRoles = []string{"admin"} }})
	e.idp.SetUser(oidctest.User{Subject: "x", Claims: map[string]any{"preferred_username": `<img src=x onerror=alert(1)>"`}})
	_, resp, body := e.login(`/p?q="><script>alert(1)</script>`)
	if resp.StatusCode != 403 {
		t.Fatalf("forbidden login: %d", resp.StatusCode)
	}
	if strings.Contains(body, "<img") || strings.Contains(body, "<script") || !strings.Contains(body, "&lt;img") {
		t.Errorf("the forbidden page did not escape: %s", body)
	}
}
