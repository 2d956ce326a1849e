//go:build e2e

package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/podgate/podgate/test/e2e/framework"
)

// sessionCookieLimit is the size goal of what a logged-in browser sends as podgate's cookies on
// every request, for the realm's alice with real Keycloak tokens.
const sessionCookieLimit = 2048

// TestSessionCookieSize logs alice in through Keycloak and measures the Cookie bytes podgate's
// session costs every later request: one cookie, within sessionCookieLimit, and the ID token
// cookie only where sign-out uses it.
func TestSessionCookieSize(t *testing.T) {
	requireDemo(t)
	b := framework.NewBrowser()
	page, err := b.Login(suiteCtx, framework.DemoURL+"/", framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	if page.Status != http.StatusOK {
		t.Fatalf("login ended on %s with HTTP %d", page.URL, page.Status)
	}
	own := func(path string) (n int, names []string) {
		u, _ := url.Parse(framework.DemoURL + path)
		for _, c := range b.Client.Jar.Cookies(u) {
			if strings.Contains(c.Name, "_podgate") {
				n += len(c.Name) + 1 + len(c.Value) + 2
				names = append(names, c.Name)
			}
		}
		return n, names
	}
	n, names := own("/any/page")
	note("session cookies per request for %s with Keycloak's tokens: %d bytes (%s)", framework.AllowedUser, n, strings.Join(names, ", "))
	if len(names) != 1 || n > sessionCookieLimit {
		t.Errorf("every request carries %d bytes in %d cookies %v, want one within %d", n, len(names), names, sessionCookieLimit)
	}
	if _, atSignOut := own("/oauth2/sign_out"); len(atSignOut) != 2 {
		t.Errorf("sign-out gets cookies %v, want the session and the ID token", atSignOut)
	}
}
