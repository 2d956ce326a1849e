//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/podgate/podgate/test/e2e/framework"
)

// Forward-auth: the sidecar on its own behind an ingress (Debian's nginx with auth_request).

// Forward-auth: the sidecar deployed on its own, Debian's nginx with auth_request in front of
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
