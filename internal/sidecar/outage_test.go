package sidecar

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/podgate/podgate/internal/oidctest"
)

// noProbeCache makes every login start probe the IdP, so a test sees an outage at once.
func noProbeCache(a *App) { a.Provider.ReachableFor, a.Provider.UnreachableFor = 0, 0 }

// TestLoginWhileIdPDown: with the IdP answering 503 (down behind its ingress, or starting), a
// browser starting a login gets a clear 503 from the sidecar, not a redirect to a dead IdP, while
// a bearer token it never saw still verifies from the cached keys; once the IdP answers again the
// same browser logs in.
func TestLoginWhileIdPDown(t *testing.T) {
	e := newEnv(t, envOpt{setup: noProbeCache})
	e.idp.SetDown(true)
	resp, body := do(t, nil, "GET", e.proxyURL+"/page", map[string]string{"Accept": "text/html"})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "identity provider") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("login start with the IdP down: HTTP %d, Location %q, Retry-After %q: %q",
			resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Retry-After"), body)
	}
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/api", bearer(e.idp.Mint(e.idp.Claims()))); resp.StatusCode != http.StatusOK {
		t.Errorf("a new bearer token with the IdP down: HTTP %d, want 200 from the cached keys", resp.StatusCode)
	}
	e.idp.SetDown(false)
	if _, resp, body := e.login("/page"); resp.StatusCode != http.StatusOK || body != "upstream says hi" {
		t.Fatalf("login after the IdP came back: HTTP %d %q", resp.StatusCode, body)
	}
}

// TestCallbackWhileIdPStopped: the IdP stops (its listener closed: connection refused) between
// sending the browser back with a code and the sidecar redeeming it. The callback answers 503 with
// Retry-After, not 502, and a new login start answers 503 too.
func TestCallbackWhileIdPStopped(t *testing.T) {
	idp := oidctest.Start(oidctest.Config{ClientSecret: "s3cret"})
	defer idp.Close()
	e := newEnv(t, envOpt{existing: idp, setup: noProbeCache})
	c := browser(t)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := do(t, c, "GET", e.proxyURL+"/page", map[string]string{"Accept": "text/html"})
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), idp.URL()) {
		t.Fatalf("login start: HTTP %d to %q, want 302 to the IdP", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = do(t, c, "GET", resp.Header.Get("Location"), nil)
	callback := resp.Header.Get("Location")
	if u, err := url.Parse(callback); err != nil || u.Query().Get("code") == "" {
		t.Fatalf("the IdP sent the browser to %q, want the callback with a code", callback)
	}
	idp.Close()
	resp, body := do(t, c, "GET", callback, map[string]string{"Accept": "text/html"})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "identity provider") {
		t.Errorf("callback with the IdP stopped: HTTP %d, Retry-After %q: %q; want 503", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	resp, body = do(t, c, "GET", e.proxyURL+"/page", map[string]string{"Accept": "text/html"})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("login start with the IdP stopped: HTTP %d to %q: %q; want 503", resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

// TestLoginStartsDoNotHammerTheIdP: the reachability probe behind a login start is shared and its
// answer kept, so a crowd of login starts (a client looping on /oauth2/start) costs the IdP one
// probe, up or down.
func TestLoginStartsDoNotHammerTheIdP(t *testing.T) {
	e := newEnv(t, envOpt{})
	for _, down := range []bool{false, true} {
		e.idp.SetDown(down)
		before := e.idp.JWKSFetches()
		for range 50 {
			do(t, nil, "GET", e.proxyURL+"/oauth2/start?rd=/", nil)
		}
		if n := e.idp.JWKSFetches() - before; n > 1 {
			t.Errorf("IdP down=%t: 50 login starts made %d probes, want at most 1", down, n)
		}
	}
}
