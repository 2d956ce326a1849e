package sidecar

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podgate/podgate/internal/oidctest"
	"github.com/podgate/podgate/internal/options"
)

func skipRules(t *testing.T, rules ...string) []options.SkipRule {
	var out []options.SkipRule
	for _, r := range rules {
		sr, err := options.ParseSkipRule(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sr)
	}
	return out
}

var spoofHeaders = map[string]string{
	"X-Auth-Request-User": "root", "X-Auth-Request-Email": "root@evil", "X-Auth-Request-Groups": "admins",
	"X-Auth-Request-Roles": "admin", "X-Auth-Request-Preferred-Username": "root", "X-Auth-Request-Access-Token": "forged",
	"X-Forwarded-User": "root", "X-Forwarded-Email": "root@evil", "X-Forwarded-Groups": "admins",
	"X-Forwarded-Preferred-Username": "root", "X-Forwarded-Access-Token": "forged",
	"x_forwarded_user": "root", "X-AUTH-REQUEST-USER": "root",
}

// rawRequest sends a request line and headers verbatim (Go's client would canonicalise or refuse
// some of the spellings attackers use).
func rawRequest(t *testing.T, addr, method, target string, hdr map[string]string) int {
	t.Helper()
	conn := dial(t, addr)
	defer conn.Close()
	req := method + " " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n"
	for k, v := range hdr {
		req += k + ": " + v + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func assertNoSpoof(t *testing.T, r *http.Request, route string) {
	t.Helper()
	for k, vs := range r.Header {
		for _, v := range vs {
			if v == "root" || v == "admins" || v == "admin" || v == "forged" || v == "root@evil" {
				t.Errorf("%s: spoofed header %s: %s reached the app", route, k, v)
			}
		}
	}
}

func TestHeaderSpoofingStripped(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.SkipAuth = skipRules(t, "/public") }})
	addr := strings.TrimPrefix(e.proxyURL, "http://")
	// Skipped route: no login, but every identity header the client sent is gone.
	if code := rawRequest(t, addr, "GET", "/public/x", spoofHeaders); code != 200 {
		t.Fatalf("skipped route: %d", code)
	}
	assertNoSpoof(t, e.last(), "skipped")
	// Protected route with a valid token: the app sees the token's identity, not the spoof.
	hdr := map[string]string{"Authorization": "Bearer " + e.idp.Mint(e.idp.Claims())}
	for k, v := range spoofHeaders {
		hdr[k] = v
	}
	if code := rawRequest(t, addr, "GET", "/private", hdr); code != 200 {
		t.Fatalf("protected route: %d", code)
	}
	assertNoSpoof(t, e.last(), "protected")
	if e.last().Header.Get("X-Forwarded-User") != "alice" {
		t.Errorf("X-Forwarded-User = %q", e.last().Header.Get("X-Forwarded-User"))
	}
	// Listing identity headers as hop-by-hop must not make the proxy drop the ones it sets.
	hdr["Connection"] = "keep-alive, X-Auth-Request-User, x-forwarded-user,X-Auth-Request-Groups, Authorization"
	if code := rawRequest(t, addr, "GET", "/private", hdr); code != 200 {
		t.Fatalf("hop-by-hop abuse: %d", code)
	}
	for _, h := range []string{"X-Auth-Request-User", "X-Forwarded-User", "X-Auth-Request-Groups"} {
		if e.last().Header.Get(h) == "" {
			t.Errorf("Connection-listed %s was dropped before the app", h)
		}
	}
	// Forward-auth answers with the real identity only.
	resp, _ := do(t, nil, "GET", e.faURL+"/oauth2/auth", hdr)
	if resp.StatusCode != 202 || resp.Header.Get("X-Auth-Request-User") != "alice" || resp.Header.Get("X-Auth-Request-Access-Token") != "" {
		t.Errorf("forward-auth: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestSkipRuleBypassAttempts(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) {
		o.SkipAuth = skipRules(t, "/public", "GET =/healthz")
	}})
	addr := strings.TrimPrefix(e.proxyURL, "http://")
	allowed := []string{"/public", "/public/", "/public/a/b", "/public?x=/admin", "/healthz", "/public/a%20b"}
	for _, p := range allowed {
		if code := rawRequest(t, addr, "GET", p, nil); code != 200 {
			t.Errorf("GET %s: %d, want 200 (skipped)", p, code)
		}
	}
	before := e.seenCount()
	denied := []string{
		"/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2E/admin", "/public/..%2fadmin", "/public%2f..%2fadmin",
		"/public/..%5cadmin", "/public\\..\\admin", "/public/..;/admin", "/public;x=1/../admin", "/publicity",
		"/public%00/../admin", "/public/%252e%252e/admin", "/admin?/public", "/admin#/public", "/healthz/x",
		"/public/%2e%2e%2fadmin", "/./public/../admin", "/public/../../admin",
	}
	for _, p := range denied {
		if code := rawRequest(t, addr, "GET", p, nil); code != 401 && code != 400 {
			t.Errorf("GET %s: %d, want 401 (or 400 from the HTTP parser)", p, code)
		}
	}
	if code := rawRequest(t, addr, "POST", "/healthz", nil); code != 401 {
		t.Errorf("POST /healthz with a GET-only rule: %d", code)
	}
	if e.seenCount() != before {
		t.Errorf("%d bypass attempts reached the app", e.seenCount()-before)
	}
}

// TestSkipRuleDotSegments: the app receives the raw path, so a path that only cleans to a skipped
// prefix must authenticate. "/admin//../public" is "/public" to path.Clean but "/admin/public" to
// RFC 3986 dot-segment removal (Flask, Express and most routers); each of these once reached the app
// unauthenticated.
func TestSkipRuleDotSegments(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.SkipAuth = skipRules(t, "/public", "GET =/healthz") }})
	addr := strings.TrimPrefix(e.proxyURL, "http://")
	before := e.seenCount()
	for _, p := range []string{
		"/admin//../public", "/admin//../public/x", "/admin/x//../../public", "/admin/.//../public",
		"/public/./a", "//public/a", "/x/../public/a", "/%70ublic/a", "/public/a/..", "/public/%2e",
		"/healthz/.", "/x/../healthz", "//healthz", "/admin/%2e%2e/public",
	} {
		if code := rawRequest(t, addr, "GET", p, nil); code != 401 && code != 400 {
			t.Errorf("GET %s: %d, want 401 (not normal, so not skipped)", p, code)
		}
	}
	if n := e.seenCount() - before; n != 0 {
		t.Errorf("%d requests whose raw path is not normal reached the app unauthenticated", n)
	}
}

// TestReroutingHeadersStripped: frameworks that route on X-Original-URL, X-Rewrite-URL or a method
// override would serve "GET /public" with "X-Original-URL: /admin" as /admin, past the skip rule.
func TestReroutingHeadersStripped(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.SkipAuth = skipRules(t, "GET /public") }})
	addr := strings.TrimPrefix(e.proxyURL, "http://")
	hostile := map[string]string{
		"X-Original-URL": "/admin", "x-rewrite-url": "/admin", "X-HTTP-Method-Override": "DELETE",
		"X-Http-Method": "DELETE", "X-Method-Override": "DELETE", "X_Original_URL": "/admin",
	}
	if code := rawRequest(t, addr, "GET", "/public/x", hostile); code != 200 {
		t.Fatalf("skipped route: %d", code)
	}
	for k := range e.last().Header {
		if n := strings.ToLower(strings.ReplaceAll(k, "_", "-")); n == "x-original-url" || n == "x-rewrite-url" || strings.Contains(n, "method") {
			t.Errorf("%s reached the app on a skipped route", k)
		}
	}
	hdr := map[string]string{"Authorization": "Bearer " + e.idp.Mint(e.idp.Claims())}
	for k, v := range hostile {
		hdr[k] = v
	}
	if code := rawRequest(t, addr, "GET", "/private", hdr); code != 200 {
		t.Fatalf("protected route: %d", code)
	}
	if v := e.last().Header.Get("X-Original-URL"); v != "" {
		t.Errorf("X-Original-URL %q reached the app on a protected route", v)
	}
}

func TestForwardAuth(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) {
		o.AllowedGroups = []string{"staff"}
		o.SkipAuth = skipRules(t, "/public")
		o.AllowedRedirectHosts = []string{"app.example.test"}
	}})
	tok := e.idp.Mint(e.idp.Claims())
	resp, body := do(t, nil, "GET", e.faURL+"/oauth2/auth", bearer(tok))
	if resp.StatusCode != 202 {
		t.Fatalf("allowed: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Auth-Request-User") != "alice" || resp.Header.Get("X-Auth-Request-Groups") != "/staff" || resp.Header.Get("X-Auth-Request-Email") != "alice@example.com" {
		t.Errorf("identity headers: %v", resp.Header)
	}
	if resp, _ := do(t, nil, "GET", e.faURL+"/oauth2/auth", map[string]string{"Accept": "text/html"}); resp.StatusCode != 401 {
		t.Errorf("no credentials: %d (forward-auth never redirects)", resp.StatusCode)
	}
	c := e.idp.Claims()
	c["groups"] = []string{"/other"}
	if resp, _ := do(t, nil, "GET", e.faURL+"/oauth2/auth", bearer(e.idp.Mint(c))); resp.StatusCode != 403 {
		t.Errorf("wrong group: %d", resp.StatusCode)
	}
	// Skip rules are not applied here: a spoofed X-Forwarded-Uri gets no free pass.
	resp, _ = do(t, nil, "GET", e.faURL+"/oauth2/auth", map[string]string{"X-Forwarded-Uri": "/public/../admin", "X-Original-URL": "/public"})
	if resp.StatusCode != 401 {
		t.Errorf("spoofed X-Forwarded-Uri: %d", resp.StatusCode)
	}
	// Non-/oauth2 paths do not exist on the forward-auth listener.
	if resp, _ := do(t, nil, "GET", e.faURL+"/anything", bearer(tok)); resp.StatusCode != 404 {
		t.Errorf("forward-auth listener served /anything: %d", resp.StatusCode)
	}
	// Traefik's errors middleware calls /oauth2/sign_in with the original request's X-Forwarded-*:
	// the answer leads to /oauth2/start with the original URL, as a redirect and as a meta refresh.
	resp, body = do(t, nil, "GET", e.faURL+"/oauth2/sign_in", map[string]string{
		"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.test", "X-Forwarded-Uri": "/deep/page?a=1"})
	want := "/oauth2/start?rd=" + url.QueryEscape("https://app.example.test/deep/page?a=1")
	if resp.StatusCode != 302 || resp.Header.Get("Location") != want || !strings.Contains(body, `http-equiv="refresh"`) {
		t.Fatalf("sign_in: %d %q %q", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	// nginx passes X-Original-URL; a hostile one falls back to "/".
	resp, _ = do(t, nil, "GET", e.faURL+"/oauth2/sign_in", map[string]string{"X-Original-URL": "https://evil.example/"})
	if resp.Header.Get("Location") != "/oauth2/start?rd=%2F" {
		t.Errorf("hostile X-Original-URL: %q", resp.Header.Get("Location"))
	}
	// The full flow through the forward-auth listener ends with a session /oauth2/auth accepts.
	b := browser(t)
	resp, _ = do(t, b, "GET", e.faURL+"/oauth2/start?rd=/done", nil)
	if resp.Request.URL.Path != "/done" || resp.StatusCode != 404 {
		t.Fatalf("login via forward-auth ended at %s (%d)", resp.Request.URL, resp.StatusCode)
	}
	resp, _ = do(t, b, "GET", e.faURL+"/oauth2/auth", nil)
	if resp.StatusCode != 202 || resp.Header.Get("X-Forwarded-User") != "alice" {
		t.Errorf("forward-auth with session: %d", resp.StatusCode)
	}
	// The ingress forwards the app's cookies from X-Auth-Request-Cookie: the session is not among
	// them; with no app cookie the header is absent, so the ingress sends no Cookie at all.
	if got := resp.Header.Get("X-Auth-Request-Cookie"); got != "" {
		t.Errorf("session-only request: X-Auth-Request-Cookie = %q, want none", got)
	}
	u, _ := url.Parse(e.faURL)
	b.Jar.SetCookies(u, []*http.Cookie{{Name: "app_pref", Value: "dark"}, {Name: "cart", Value: "3"}})
	resp, _ = do(t, b, "GET", e.faURL+"/oauth2/auth", nil)
	got := resp.Header.Get("X-Auth-Request-Cookie")
	if resp.StatusCode != 202 || !strings.Contains(got, "app_pref=dark") || !strings.Contains(got, "cart=3") || strings.Contains(got, "_podgate") {
		t.Errorf("app cookies for the ingress: %d %q", resp.StatusCode, got)
	}
	// The same as Cookie, for Traefik's authResponseHeaders.
	if c := resp.Header.Get("Cookie"); c != got {
		t.Errorf("Cookie on the 202 = %q, want %q", c, got)
	}
}

func TestForwardAuthOnlyMode(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.Proxies = nil; o.ForwardAuthAddr = "127.0.0.1:0" }})
	if resp, _ := do(t, nil, "GET", e.faURL+"/oauth2/auth", bearer(e.idp.Mint(e.idp.Claims()))); resp.StatusCode != 202 {
		t.Fatalf("forward-auth only: %d", resp.StatusCode)
	}
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) {
		o.AllowedRoles = []string{"admin", "app:reader"}
		o.AllowedGroups = []string{"/team-a", "team-b"}
		o.AllowedEmailDomains = []string{"example.com"}
	}})
	mk := func(mut func(c map[string]any)) string {
		c := e.idp.Claims()
		c["groups"] = []string{"team-a"}
		c["realm_access"] = map[string]any{"roles": []string{"admin"}}
		mut(c)
		return e.idp.Mint(c)
	}
	cases := []struct {
		name string
		tok  string
		want int
	}{
		{"all kinds pass", mk(func(map[string]any) {}), 200},
		{"client role", mk(func(c map[string]any) {
			c["realm_access"] = map[string]any{"roles": []string{"user"}}
			c["resource_access"] = map[string]any{"app": map[string]any{"roles": []string{"reader"}}}
		}), 200},
		{"client role of another client", mk(func(c map[string]any) {
			c["realm_access"] = map[string]any{"roles": []string{"user"}}
			c["resource_access"] = map[string]any{"other": map[string]any{"roles": []string{"reader"}}}
		}), 403},
		{"realm role named like client role", mk(func(c map[string]any) {
			c["realm_access"] = map[string]any{"roles": []string{"reader"}}
		}), 403},
		{"group with leading slash", mk(func(c map[string]any) { c["groups"] = []string{"/team-b"} }), 200},
		{"no group", mk(func(c map[string]any) { delete(c, "groups") }), 403},
		{"subgroup is not the group", mk(func(c map[string]any) { c["groups"] = []string{"/team-a/sub"} }), 403},
		{"email other domain", mk(func(c map[string]any) { c["email"] = "alice@evil.com" }), 403},
		{"email look-alike domain", mk(func(c map[string]any) { c["email"] = "alice@example.com.evil.com" }), 403},
		{"email unverified", mk(func(c map[string]any) { c["email_verified"] = false }), 403},
		{"email verified as string", mk(func(c map[string]any) { c["email_verified"] = "true" }), 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if resp, _ := do(t, nil, "GET", e.proxyURL+"/", bearer(tc.tok)); resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	// A browser login that is not allowed ends at the page asked for (the code gone from the
	// address bar) with one 403 page naming the user and offering sign-out. The session it keeps
	// grants nothing: every request is authorized again.
	e.idp.SetUser(oidctest.User{Subject: "u2", Claims: map[string]any{"preferred_username": "mallory", "email": "m@evil.com", "email_verified": true}})
	before := e.seenCount()
	c, resp, body := e.login("/deep?x=1")
	if resp.StatusCode != 403 || resp.Request.URL.RequestURI() != "/deep?x=1" {
		t.Fatalf("forbidden login: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	if !strings.Contains(body, "mallory") || !strings.Contains(body, `<form method="post" action="/oauth2/sign_out?rd=%2Fdeep%3Fx%3D1"`) {
		t.Errorf("forbidden page: %s", body)
	}
	u, _ := url.Parse(e.proxyURL)
	if !slices.ContainsFunc(c.Jar.Cookies(u), func(ck *http.Cookie) bool { return strings.HasPrefix(ck.Name, "_podgate") }) {
		t.Error("the forbidden user has no session: sign-out could not end the IdP session")
	}
	if resp, _ := do(t, c, "GET", e.proxyURL+"/again", map[string]string{"Accept": "application/json"}); resp.StatusCode != 403 {
		t.Errorf("the forbidden user's session opened the app: %d", resp.StatusCode)
	}
	if e.seenCount() != before {
		t.Error("a forbidden request reached the app")
	}
	resp, _ = do(t, noRedirectJar(c), "POST", e.proxyURL+"/oauth2/sign_out?rd=%2Fdeep%3Fx%3D1", nil)
	if resp.StatusCode != 302 || !strings.Contains(resp.Header.Get("Location"), "id_token_hint=") {
		t.Errorf("sign-out of the forbidden user: %d to %q, want the IdP's end-session with id_token_hint", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestWebSocketThroughProxy(t *testing.T) {
	e := newEnv(t, envOpt{})
	addr := strings.TrimPrefix(e.proxyURL, "http://")
	reply, code := wsEcho(t, addr, map[string]string{"Authorization": "Bearer " + e.idp.Mint(e.idp.Claims())}, "hello")
	if code != 101 || reply != "echo: hello" {
		t.Fatalf("websocket: %d %q", code, reply)
	}
	up := e.last()
	if up.Host != addr || up.Header.Get("Origin") != "http://"+addr {
		t.Errorf("upstream saw Host %q Origin %q; both must be the client's", up.Host, up.Header.Get("Origin"))
	}
	if _, code := wsEcho(t, addr, nil, "hello"); code != 401 {
		t.Errorf("unauthenticated websocket: %d", code)
	}
}

func TestStreamingAndForwardedHeaders(t *testing.T) {
	e := newEnv(t, envOpt{})
	req, _ := http.NewRequest("GET", e.proxyURL+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+e.idp.Mint(e.idp.Claims()))
	req.Header.Set("X-Forwarded-Proto", "https")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The first event arrives while the upstream keeps the stream open: it was flushed through.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("stream: %q %v", line, err)
	}
	up := e.last()
	if up.Header.Get("X-Forwarded-For") != "127.0.0.1" || up.Header.Get("X-Forwarded-Proto") != "https" ||
		up.Header.Get("X-Forwarded-Host") != strings.TrimPrefix(e.proxyURL, "http://") {
		t.Errorf("forwarded headers: %v", up.Header)
	}
}

func TestBadGatewayWhenAppDown(t *testing.T) {
	u := &url.URL{Scheme: "http", Host: refusingAddr(t)}
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.Proxies = []options.Proxy{{Listen: "127.0.0.1:0", Upstream: u}} }})
	resp, body := do(t, nil, "GET", e.proxyURL+"/", bearer(e.idp.Mint(e.idp.Claims())))
	if resp.StatusCode != 502 || !strings.Contains(body, "application") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

func TestProbePassThrough(t *testing.T) {
	probeSeen := make(chan http.Header, 16)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			probeSeen <- r.Header.Clone()
			if r.Header.Get("X-Probe") != "yes" {
				w.WriteHeader(400)
				return
			}
			w.WriteHeader(204)
		default:
			w.WriteHeader(500)
		}
	}))
	defer app.Close()
	tlsApp := httptest.NewTLSServer(app.Config.Handler)
	defer tlsApp.Close()
	grpcOK := startGRPCHealth(t, 1)
	grpcBad := startGRPCHealth(t, 2)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	probes := []string{
		"live=" + app.URL + "/healthz", "broken=" + app.URL + "/fail", "live-tls=" + tlsApp.URL + "/healthz",
		"tcp-ok=tcp://" + strings.TrimPrefix(app.URL, "http://"), "tcp-closed=tcp://" + closedAddr,
		"grpc-ok=grpc://" + grpcOK + "?service=x", "grpc-not-serving=grpc://" + grpcBad,
	}
	e := newEnv(t, envOpt{opts: func(o *options.Options) {
		for _, p := range probes {
			pr, err := options.ParseProbe(p)
			if err != nil {
				t.Fatal(err)
			}
			o.Probes = append(o.Probes, pr)
		}
		for _, h := range []string{"live=X-Probe: yes", "live-tls=X-Probe:yes"} {
			ph, err := options.ParseProbeHeader(h)
			if err != nil {
				t.Fatal(err)
			}
			o.ProbeHeaders = append(o.ProbeHeaders, ph)
		}
	}})
	// The caller of /probe/<name> needs no login: of what it sends, only a kubelet's User-Agent
	// and Accept reach the app, next to the probe's configured headers (which win).
	hostile := map[string]string{"X-Probe": "no", "User-Agent": "kube-probe/1.34", "Accept": "*/*",
		"Authorization": "Bearer forged", "Cookie": "_podgate=forged; app=1", "X-Forwarded-User": "root",
		"X-Auth-Request-User": "root", "X-Original-URL": "/admin"}
	for name, want := range map[string]int{"live": 204, "live-tls": 204, "broken": 500, "tcp-ok": 200, "tcp-closed": 503,
		"grpc-ok": 200, "grpc-not-serving": 503, "unknown": 404} {
		resp, body := do(t, nil, "GET", e.adminURL+"/probe/"+name, hostile)
		if resp.StatusCode != want {
			t.Errorf("probe %s: %d (%s), want %d", name, resp.StatusCode, strings.TrimSpace(body), want)
		}
	}
	for range 2 {
		got := <-probeSeen
		delete(got, "Accept-Encoding") // added by the transport, not forwarded
		want := http.Header{"User-Agent": {"kube-probe/1.34"}, "Accept": {"*/*"}, "X-Probe": {"yes"}}
		if len(got) != len(want) || got.Get("User-Agent") != "kube-probe/1.34" || got.Get("X-Probe") != "yes" || got.Get("Accept") != "*/*" {
			t.Errorf("the app's probe endpoint received %v, want only %v", got, want)
		}
	}
}

// startGRPCHealth serves grpc.health.v1.Health/Check over HTTP/2 cleartext with a fixed status,
// framed per the gRPC wire protocol (length-prefixed protobuf, grpc-status in trailers).
func startGRPCHealth(t *testing.T, status byte) string {
	srv := &http.Server{Protocols: new(http.Protocols), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/grpc.health.v1.Health/Check" || r.Header.Get("Content-Type") != "application/grpc" || r.ProtoMajor != 2 {
			w.WriteHeader(400)
			return
		}
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		msg := []byte{0x08, status}
		frame := make([]byte, 5)
		binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
		_, _ = w.Write(append(frame, msg...))
		w.Header().Set("Grpc-Status", "0")
	})}
	srv.Protocols.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func TestSignInForbiddenAndUserinfoUnauthenticated(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.AllowedRoles = []string{"admin"} }})
	// A signed-in user the policy refuses gets a 403 from sign_in, not another login round.
	resp, signInBody := do(t, nil, "GET", e.faURL+"/oauth2/sign_in", bearer(e.idp.Mint(e.idp.Claims())))
	if resp.StatusCode != 403 {
		t.Errorf("sign_in for a forbidden user: %d", resp.StatusCode)
	}
	resp, proxyBody := do(t, nil, "GET", e.proxyURL+"/x", bearer(e.idp.Mint(e.idp.Claims())))
	if resp.StatusCode != 403 {
		t.Errorf("forbidden user through the proxy: %d", resp.StatusCode)
	}
	// Forward-auth, sign_in and the proxy give the same answer to the same refusal.
	resp, authBody := do(t, nil, "GET", e.faURL+"/oauth2/auth", bearer(e.idp.Mint(e.idp.Claims())))
	if resp.StatusCode != 403 || authBody != proxyBody || signInBody != proxyBody {
		t.Errorf("forbidden answers differ: auth %d %q, sign_in %q, proxy %q", resp.StatusCode, authBody, signInBody, proxyBody)
	}
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/oauth2/userinfo", nil); resp.StatusCode != 401 {
		t.Errorf("userinfo without credentials: %d", resp.StatusCode)
	}
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/oauth2/nope", nil); resp.StatusCode != 404 {
		t.Errorf("unknown /oauth2 path: %d", resp.StatusCode)
	}
	if e.seenCount() != 0 {
		t.Error("/oauth2/* reached the app")
	}
	body := scrape(t, e)
	for _, want := range []string{`podgate_requests_total{outcome="forbidden"}`, "podgate_auth_duration_seconds_count", `podgate_jwks_refreshes_total{result="ok"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
}
