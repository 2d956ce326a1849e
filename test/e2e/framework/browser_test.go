package framework

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// loginPage mimics the parts of Keycloak's login page the Browser relies on: an HTML-escaped
// action with a query string, a hidden field, and unrelated forms around it.
const loginPage = `<!DOCTYPE html><html><body>
<form id="kc-select-locale" action="/locale" method="get"><input name="kc_locale" value="en"></form>
<form id="kc-form-login" onsubmit="login.disabled = true; return true;" action="%s/login-actions/authenticate?session_code=abc&amp;execution=e1&amp;client_id=podgate" method="post">
  <input tabindex="1" id="username" class="pf-c-form-control" name="username" value="" type="text" autofocus>
  <input tabindex="2" id="password" class="pf-c-form-control" name="password" type="password">
  <input type="hidden" id="id-hidden-input" name="credentialId" value="">
  <input tabindex="4" class="pf-c-button" name="login" id="kc-login" type="submit" value="Sign In"/>
</form></body></html>`

// fakeIdP serves a login form and redirects back with a code, checking what a real IdP checks:
// its own cookie, the unescaped query of the form action, and the credentials.
func fakeIdP(t *testing.T) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/auth":
			http.SetCookie(w, &http.Cookie{Name: "AUTH_SESSION_ID", Value: "s1", Path: "/"})
			http.SetCookie(w, &http.Cookie{Name: "redirect", Value: url.QueryEscape(r.URL.Query().Get("redirect_uri")), Path: "/"})
			fmt.Fprintf(w, loginPage, srv.URL)
		case "/login-actions/authenticate":
			c, err := r.Cookie("AUTH_SESSION_ID")
			q := r.URL.Query()
			if err != nil || c.Value != "s1" || q.Get("session_code") != "abc" || q.Get("execution") != "e1" {
				http.Error(w, "session expired", http.StatusBadRequest)
				return
			}
			if r.PostFormValue("username") != "alice" || r.PostFormValue("password") != "secret" {
				fmt.Fprintf(w, loginPage, srv.URL) // Keycloak re-renders the form with an error
				return
			}
			rc, _ := r.Cookie("redirect")
			back, _ := url.QueryUnescape(rc.Value)
			http.Redirect(w, r, back+"?code=c1&state=st", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fakeApp is a protected page behind a login redirect, like the sidecar in front of an app.
func fakeApp(t *testing.T, idp string) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/callback":
			if r.URL.Query().Get("code") != "c1" || r.URL.Query().Get("state") != "st" {
				http.Error(w, "bad callback", http.StatusForbidden)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: "session", Value: "alice", Path: "/"})
			http.Redirect(w, r, "/page", http.StatusFound)
		case "/page":
			if c, err := r.Cookie("session"); err == nil {
				fmt.Fprintf(w, "hello %s", c.Value)
				return
			}
			http.Redirect(w, r, idp+"/auth?redirect_uri="+url.QueryEscape(srv.URL+"/callback"), http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestBrowserLogin(t *testing.T) {
	idp := fakeIdP(t)
	app := fakeApp(t, idp.URL)
	b := NewBrowser()
	page, err := b.Login(context.Background(), app.URL+"/page", "alice", "secret")
	if err != nil {
		t.Fatal(err)
	}
	if page.Status != http.StatusOK || page.Body != "hello alice" || page.URL.Path != "/page" {
		t.Fatalf("ended on %s (HTTP %d) with %q, want the protected page greeting alice", page.URL, page.Status, page.Body)
	}
	var sawCallback bool
	for _, v := range b.Visited {
		sawCallback = sawCallback || strings.Contains(v, "/callback?code=c1")
	}
	if !sawCallback {
		t.Errorf("visited %v, want the callback among them", b.Visited)
	}
}

func TestBrowserLoginWrongPassword(t *testing.T) {
	idp := fakeIdP(t)
	app := fakeApp(t, idp.URL)
	page, err := NewBrowser().Login(context.Background(), app.URL+"/page", "alice", "wrong")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page.Body, "hello") || !strings.HasPrefix(page.URL.String(), idp.URL) {
		t.Fatalf("a wrong password ended on %s with %q, want Keycloak's form again", page.URL, page.Body)
	}
}

func TestLoginForm(t *testing.T) {
	tests := []struct {
		name, page, action, err string
		fields                  url.Values
	}{
		{
			name:   "keycloak",
			page:   fmt.Sprintf(loginPage, "http://kc"),
			action: "http://kc/login-actions/authenticate?session_code=abc&execution=e1&client_id=podgate",
			fields: url.Values{"username": {""}, "password": {""}, "credentialId": {""}, "login": {"Sign In"}},
		},
		{name: "no form", page: "<html><body>Forbidden</body></html>", err: "no form with a password field"},
		{name: "no password field", page: `<form action="/x"><input name="q"></form>`, err: "no form with a password field"},
		{name: "no action", page: `<form method="post"><input type="password" name="p"></form>`, err: "no action"},
		{name: "unterminated", page: `<form action="/x"><input type="password" name="p">`, err: "no form with a password field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			action, fields, err := LoginForm(tt.page)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if action != tt.action {
				t.Errorf("action = %q, want %q", action, tt.action)
			}
			if fields.Encode() != tt.fields.Encode() {
				t.Errorf("fields = %v, want %v", fields, tt.fields)
			}
		})
	}
}

func TestClaims(t *testing.T) {
	// {"alg":"none"}.{"sub":"alice","groups":["/staff"]}.sig
	claims, err := Claims("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImdyb3VwcyI6WyIvc3RhZmYiXX0.c2ln")
	if err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != "alice" || fmt.Sprint(claims["groups"]) != "[/staff]" {
		t.Errorf("claims = %v", claims)
	}
	for _, bad := range []string{"", "a.b", "a.!!!.c", "a.bm90IGpzb24.c"} {
		if _, err := Claims(bad); err == nil {
			t.Errorf("Claims(%q) succeeded, want an error", bad)
		}
	}
}
