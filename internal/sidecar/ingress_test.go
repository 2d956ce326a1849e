package sidecar

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

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
