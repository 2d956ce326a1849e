package sidecar

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podgate/podgate/internal/options"
	"github.com/podgate/podgate/internal/proxy"
	"github.com/podgate/podgate/internal/route"
)

// namedApp is an upstream that answers with its name, and echoes WebSockets on /ws. users counts
// the requests it received by X-Auth-Request-User.
func namedApp(t *testing.T, name string, users *sync.Map) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := users.LoadOrStore(r.Header.Get("X-Auth-Request-User"), new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		switch r.URL.Path {
		case "/ws":
			serveEcho(w, r)
			return
		case "/sse":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "data: %s first\n\n", name)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		fmt.Fprintf(w, "%s user=%s", name, r.Header.Get("X-Auth-Request-User"))
	}))
	t.Cleanup(s.Close)
	return s
}

// hostDialer resolves the routed upstreams' names to test servers on loopback: what cluster DNS does
// for the sidecar in a cluster. An unknown name fails like an NXDOMAIN; IP addresses are dialled as they are.
func hostDialer(hosts map[string]*httptest.Server) func(*url.URL) http.RoundTripper {
	return func(u *url.URL) http.RoundTripper {
		t := &http.Transport{ResponseHeaderTimeout: 5 * time.Second}
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			var d net.Dialer
			if net.ParseIP(host) != nil {
				return d.DialContext(ctx, network, addr)
			}
			s, ok := hosts[host]
			if !ok {
				return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
			}
			return d.DialContext(ctx, network, s.Listener.Addr().String())
		}
		return t
	}
}

func parseRoutes(t *testing.T, rules ...string) []route.Rule {
	t.Helper()
	var out []route.Rule
	for _, s := range rules {
		r, err := route.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// claimsFor returns the test IdP's claims for another user: name, groups and realm roles.
func claimsFor(e *env, user string, groups, roles []string) map[string]any {
	c := e.idp.Claims()
	c["preferred_username"] = user
	c["sub"] = "sub-" + strings.ToLower(user)
	c["groups"] = groups
	c["realm_access"] = map[string]any{"roles": roles}
	delete(c, "resource_access")
	return c
}

// routingEnv is a sidecar serving three routes on a listener (with or without an upstream of its
// own): alice by name, team-a by group, and a templated upstream per user with the realm role ide.
// users counts, by user, the requests any of the apps received.
func routingEnv(t *testing.T, withFallback bool) (e *env, apps map[string]*httptest.Server, users *sync.Map) {
	users = &sync.Map{}
	apps = map[string]*httptest.Server{
		"alice": namedApp(t, "alice", users), "ide-carol.apps.test": namedApp(t, "carol", users),
		"team.apps.test": namedApp(t, "team", users), "fallback": namedApp(t, "fallback", users),
	}
	hosts := map[string]*httptest.Server{"ide-carol.apps.test": apps["ide-carol.apps.test"], "team.apps.test": apps["team.apps.test"]}
	e = newEnv(t, envOpt{
		opts: func(o *options.Options) {
			o.Routes = parseRoutes(t,
				"user=alice => "+apps["alice"].URL,
				"group=/team-a => http://team.apps.test",
				"role=ide => http://ide-{user}.apps.test",
			)
			o.Proxies = []options.Proxy{{Listen: "127.0.0.1:0"}}
			if withFallback {
				u, _ := url.Parse(apps["fallback"].URL)
				o.Proxies[0].Upstream = u
			}
		},
		setup: func(a *App) { a.Handler.Upstreams().Transport = hostDialer(hosts) },
	})
	return e, apps, users
}

func TestRoutingByIdentity(t *testing.T) {
	e, _, _ := routingEnv(t, false)
	alice := bearer(e.idp.Mint(e.idp.Claims()))
	carol := bearer(e.idp.Mint(claimsFor(e, "carol", nil, []string{"ide"})))
	erin := bearer(e.idp.Mint(claimsFor(e, "erin", []string{"/team-a"}, []string{"ide"})))
	bob := bearer(e.idp.Mint(claimsFor(e, "bob", []string{"/other"}, []string{"user"})))

	for _, tc := range []struct {
		who  string
		hdr  map[string]string
		code int
		body string
	}{
		{"alice, by user=", alice, 200, "alice user=alice"},
		{"carol, templated", carol, 200, "carol user=carol"},
		{"erin: first match (group) wins over her role", erin, 200, "team user=erin"},
		{"bob matches nothing", bob, 403, "no service is routed to your account"},
	} {
		resp, body := do(t, nil, "GET", e.proxyURL+"/some/path", tc.hdr)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.who, resp.StatusCode, body, tc.code, tc.body)
		}
	}
	// An unauthenticated browser is sent to log in, not routed anywhere.
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/", map[string]string{"Accept": "text/html"}); resp.StatusCode != 302 {
		t.Errorf("no session: %d, want the login redirect", resp.StatusCode)
	}
	m := scrape(t, e)
	for _, want := range []string{`podgate_route_decisions_total{rule="1"} 1`, `podgate_route_decisions_total{rule="2"} 1`,
		`podgate_route_decisions_total{rule="3"} 1`, `podgate_route_decisions_total{rule="none"} 1`, "podgate_route_upstreams 3"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, user := range []string{"carol", "erin", "bob"} {
		if strings.Contains(m, user) {
			t.Errorf("metrics name the user %q:\n%s", user, m)
		}
	}
	if !e.logged("route chosen") || !e.logged("no route matches") {
		t.Error("routing decisions are not logged at debug level")
	}
}

// Nothing a caller sends besides their credentials changes where the request goes: not the path,
// the Host, an absolute request target, nor any header naming another upstream or user.
func TestRoutingIgnoresEverythingButIdentity(t *testing.T) {
	e, _, _ := routingEnv(t, false)
	tok := "Bearer " + e.idp.Mint(e.idp.Claims())
	addr := strings.TrimPrefix(e.proxyURL, "http://")
	carolHost := "ide-carol.apps.test"
	for _, target := range []string{
		"/", "/../", "/%2e%2e/", "//ide-carol.apps.test/", "/ide-carol.apps.test/",
		"http://ide-carol.apps.test/", "http://team.apps.test/x", "/?upstream=http://ide-carol.apps.test",
	} {
		for _, hdr := range []map[string]string{
			{"Host": carolHost},
			{"X-Podgate-Upstream": "http://ide-carol.apps.test", "X-Forwarded-Host": carolHost},
			{"X-Auth-Request-User": "carol", "X-Forwarded-User": "carol", "X-Auth-Request-Groups": "/team-a"},
			{"X-Original-URL": "http://ide-carol.apps.test/", "X-Forwarded-Uri": "/", "Forwarded": "host=" + carolHost},
		} {
			h := map[string]string{"Authorization": tok}
			for k, v := range hdr {
				h[k] = v
			}
			conn := dial(t, addr)
			host := addr
			if v, ok := h["Host"]; ok {
				host = v
				delete(h, "Host")
			}
			req := "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n"
			for k, v := range h {
				req += k + ": " + v + "\r\n"
			}
			if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(conn)
			conn.Close()
			got := string(b)
			if strings.Contains(got, "carol") || strings.Contains(got, "team user") {
				t.Errorf("GET %s with %v reached another upstream:\n%s", target, hdr, got)
			}
			// Origin-form and absolute-form targets are valid requests: they must reach alice's app.
			if (target == "/" || strings.HasPrefix(target, "http://")) && !strings.Contains(got, "alice user=alice") {
				t.Errorf("GET %s with %v: not answered by alice's app:\n%s", target, hdr, got)
			}
		}
	}
}

func TestRoutingRefusesHostileClaims(t *testing.T) {
	e, _, users := routingEnv(t, true)
	hostile := []string{"xcarol.team", "x@team.apps.test", "x:80", "x/../carol", "x%2eteam", "x\u212a", "x" + strings.Repeat("a", 63), "x-"}
	for _, v := range hostile {
		tok := bearer(e.idp.Mint(claimsFor(e, v, nil, []string{"ide"})))
		resp, body := do(t, nil, "GET", e.proxyURL+"/", tok)
		if resp.StatusCode != 403 || !strings.Contains(body, "account name cannot be used") {
			t.Errorf("user %q: %d %q, want 403", v, resp.StatusCode, body)
		}
		resp, _ = do(t, nil, "GET", e.faURL+"/oauth2/auth", tok)
		if resp.StatusCode != 403 || resp.Header.Get("X-Podgate-Upstream") != "" {
			t.Errorf("forward-auth, user %q: %d %q", v, resp.StatusCode, resp.Header.Get("X-Podgate-Upstream"))
		}
	}
	for _, v := range hostile {
		if _, ok := users.Load(v); ok {
			t.Errorf("a request of user %q reached an app (the fallback included)", v)
		}
	}
	refused := e.logs.FilterMessage("route refused: claim value cannot be a host label").All()
	if len(refused) == 0 {
		t.Fatal("refusals are not logged")
	}
	if v := refused[0].ContextMap()["value"]; v != "xcarol.team" {
		t.Errorf("log line names value %v", v)
	}
	if !strings.Contains(scrape(t, e), `podgate_route_refusals_total{rule="3"} 16`) {
		t.Errorf("refusals not counted by rule:\n%s", scrape(t, e))
	}
	// Upper case maps (DNS is case-insensitive): "Carol" reaches carol's app.
	resp, body := do(t, nil, "GET", e.proxyURL+"/", bearer(e.idp.Mint(claimsFor(e, "Carol", nil, []string{"ide"}))))
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "carol ") {
		t.Errorf("Carol: %d %q", resp.StatusCode, body)
	}
	// With a listener upstream, a caller no rule matches goes there.
	resp, body = do(t, nil, "GET", e.proxyURL+"/", bearer(e.idp.Mint(claimsFor(e, "bob", nil, nil))))
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "fallback ") {
		t.Errorf("bob with a fallback upstream: %d %q", resp.StatusCode, body)
	}
}

func TestForwardAuthNamesUpstream(t *testing.T) {
	e, apps, _ := routingEnv(t, false)
	resp, _ := do(t, nil, "GET", e.faURL+"/oauth2/auth", bearer(e.idp.Mint(claimsFor(e, "carol", nil, []string{"ide"}))))
	if resp.StatusCode != 202 || resp.Header.Get("X-Podgate-Upstream") != "http://ide-carol.apps.test" {
		t.Errorf("carol: %d %q", resp.StatusCode, resp.Header.Get("X-Podgate-Upstream"))
	}
	resp, _ = do(t, nil, "GET", e.faURL+"/oauth2/auth", map[string]string{
		"Authorization": "Bearer " + e.idp.Mint(e.idp.Claims()), "X-Podgate-Upstream": "http://ide-carol.apps.test"})
	if resp.StatusCode != 202 || resp.Header.Get("X-Podgate-Upstream") != apps["alice"].URL {
		t.Errorf("alice: %d %q", resp.StatusCode, resp.Header.Get("X-Podgate-Upstream"))
	}
	resp, _ = do(t, nil, "GET", e.faURL+"/oauth2/auth", bearer(e.idp.Mint(claimsFor(e, "bob", nil, nil))))
	if resp.StatusCode != 403 {
		t.Errorf("bob: %d, want 403", resp.StatusCode)
	}
}

// WebSockets and streams work through a routed (templated) upstream as through a fixed one.
func TestWebSocketAndStreamThroughRoutedUpstream(t *testing.T) {
	e, _, _ := routingEnv(t, false)
	addr := strings.TrimPrefix(e.proxyURL, "http://")
	tok := "Bearer " + e.idp.Mint(claimsFor(e, "carol", nil, []string{"ide"}))
	reply, code := wsEcho(t, addr, map[string]string{"Authorization": tok}, "hello carol")
	if code != 101 || reply != "echo: hello carol" {
		t.Fatalf("websocket: %d %q", code, reply)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.proxyURL+"/sse", nil)
	req.Header.Set("Authorization", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The first event arrives while carol's app keeps the stream open: it was flushed through.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: carol first\n" {
		t.Fatalf("stream: %q %v", line, err)
	}
}

// A thousand users' upstreams: the pool keeps at most Max transports and closes the idle
// connections of those it drops, so the sockets held stay bounded.
func TestUpstreamPoolBounded(t *testing.T) {
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	s.Config.ConnState = func(c net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch st {
		case http.StateNew:
			open[c] = true
		case http.StateClosed, http.StateHijacked:
			delete(open, c)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	pool := proxy.NewUpstreams(5*time.Second, nil)
	pool.Max = 8
	pool.Transport = func(u *url.URL) http.RoundTripper {
		tr := &http.Transport{ResponseHeaderTimeout: 5 * time.Second}
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, s.Listener.Addr().String())
		}
		return tr
	}
	for i := range 1000 {
		u, _ := url.Parse(fmt.Sprintf("http://ide-user%d.apps.test", i))
		rec := httptest.NewRecorder()
		pool.Get(u).ServeHTTP(rec, httptest.NewRequest("GET", "http://proxy/", nil))
		if rec.Code != 200 {
			t.Fatalf("upstream %d: %d", i, rec.Code)
		}
	}
	if pool.Len() != 8 || pool.Evicted() != 992 {
		t.Errorf("pool holds %d upstreams, evicted %d; want 8 and 992", pool.Len(), pool.Evicted())
	}
	// Closing is asynchronous on the server side: wait (bounded) for it to see the closes.
	deadline := time.Now().Add(5 * time.Second)
	n := 0
	for time.Now().Before(deadline) {
		mu.Lock()
		n = len(open)
		mu.Unlock()
		if n <= 8 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n > 8 {
		t.Errorf("%d connections still open after 1000 upstreams through a pool of 8", n)
	}
}
