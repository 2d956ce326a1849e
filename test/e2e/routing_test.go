//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podgate/podgate/test/e2e/framework"
)

// routedEcho is what the echo app answers: which app and which pod served the request.
type routedEcho struct {
	Name    string              `json:"name"`
	Pod     string              `json:"pod"`
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
}

var (
	routingOnce sync.Once
	routingErr  error
)

// requireRouting deploys the routing setup once for the tests that need it.
func requireRouting(t *testing.T) {
	t.Helper()
	routingOnce.Do(func() {
		start := time.Now()
		routingErr = suite.Kube.DeployRouting(suiteCtx, suite.Keycloak.Issuer())
		note("routing setup (4 apps and the proxy) ready in %.0fs", time.Since(start).Seconds())
	})
	if routingErr != nil {
		t.Fatalf("routing setup: %v", routingErr)
	}
}

// TestClusterDNS: CoreDNS answers for the cluster's names on the kube-dns ClusterIP and resolves
// nothing outside the cluster (it forwards nowhere).
func TestClusterDNS(t *testing.T) {
	if suite.Provider.Name() != "local" {
		t.Skip("the cluster DNS under test is the local provider's")
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort(framework.ClusterDNSIP, "53"))
	}}
	ctx, cancel := context.WithTimeout(suiteCtx, 30*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, "kubernetes.default.svc.cluster.local")
	if err != nil || len(addrs) != 1 || addrs[0] != "198.19.0.1" {
		t.Errorf("kubernetes.default.svc.cluster.local: %v %v, want 198.19.0.1", addrs, err)
	}
	for _, name := range []string{"example.com", "keycloak.org", "localhost.localdomain"} {
		if addrs, err := r.LookupHost(ctx, name+"."); err == nil {
			t.Errorf("%s resolved to %v: cluster DNS must not forward outside the cluster", name, addrs)
		}
	}
	dns, err := suite.Kube.Client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil || dns.Spec.ClusterIP != framework.ClusterDNSIP {
		t.Errorf("kube-dns Service: %v", err)
	}
}

// loginRouted logs user in through Keycloak's form at the routing proxy and returns the browser and
// the app that answered the page the login returned to.
func loginRouted(t *testing.T, user, pass string) (*framework.Browser, framework.Page) {
	t.Helper()
	b := framework.NewBrowser()
	page, err := b.Login(suiteCtx, framework.RoutingURL+"/whoami?after=login", user, pass)
	if err != nil {
		t.Fatalf("%s: %v", user, err)
	}
	if !visited(b, suite.Keycloak.Issuer()+"/login-actions/authenticate") || !visited(b, framework.RoutingURL+"/oauth2/callback?") {
		t.Errorf("%s: the login did not pass Keycloak's form and the callback: %v", user, b.Visited)
	}
	return b, page
}

func decodeEcho(t *testing.T, who, body string) routedEcho {
	t.Helper()
	var e routedEcho
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("%s: app answer %.200q: %v", who, body, err)
	}
	return e
}

// routedGet sends a request with the browser's session cookies (as JSON, no redirects followed),
// with extra headers; "Host" sets the Host header. via, when set, is the proxy to send an
// absolute-form request to: the URL's own host is then a routed app's, the connection the proxy's.
func routedGet(ctx context.Context, b *framework.Browser, target string, hdr map[string]string, via string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, "", err
	}
	proxyURL, _ := url.Parse(framework.RoutingURL)
	for _, c := range b.Client.Jar.Cookies(proxyURL) {
		req.AddCookie(c)
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	tr := &http.Transport{}
	if via != "" {
		p, _ := url.Parse(via)
		tr.Proxy = http.ProxyURL(p)
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	body, err := readAll(resp)
	return resp.StatusCode, body, err
}

// TestRoutingByIdentity: one podgate proxy in front of per-user IDEs and a team's app, each user
// logging in through Keycloak's form in a browser and landing on their own app, whatever else they
// send; a user no rule matches, and one whose name cannot be a DNS label, get 403.
func TestRoutingByIdentity(t *testing.T) {
	requireRouting(t)
	ctx := suiteCtx
	alice, page := loginRouted(t, framework.AllowedUser, framework.AllowedPass)
	if page.Status != http.StatusOK || decodeEcho(t, "alice", page.Body).Name != "ide-alice" {
		t.Fatalf("alice ended on %s with HTTP %d: %.300s", page.URL, page.Status, page.Body)
	}
	carol, page := loginRouted(t, framework.RoutedUser, framework.RoutedPass)
	if page.Status != http.StatusOK || decodeEcho(t, "carol", page.Body).Name != "ide-carol" {
		t.Fatalf("carol ended on %s with HTTP %d: %.300s", page.URL, page.Status, page.Body)
	}
	_, page = loginRouted(t, framework.TeamUser, framework.TeamPass)
	if page.Status != http.StatusOK || decodeEcho(t, "erin", page.Body).Name != "team-app" {
		t.Errorf("erin (group %s) ended on %s with HTTP %d: %.300s", framework.RoutingTeamGroup, page.URL, page.Status, page.Body)
	}
	_, page = loginRouted(t, framework.DeniedUser, framework.DeniedPass)
	if page.Status != http.StatusForbidden || !strings.Contains(page.Body, "no service is routed to your account") {
		t.Errorf("bob (no rule matches) ended on %s with HTTP %d: %.300s", page.URL, page.Status, page.Body)
	}

	// The HTML page shows which app and pod answered.
	resp, err := alice.Get(ctx, framework.RoutingURL+"/")
	if err != nil {
		t.Fatal(err)
	}
	home, _ := readAll(resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(home, "Served by <b>ide-alice</b>") {
		t.Errorf("alice's home page: HTTP %d %.300q", resp.StatusCode, home)
	}

	// Neither alice nor carol reaches the other's app, whatever path, Host, or headers they send.
	other := map[string]string{"ide-alice": "ide-carol", "ide-carol": "ide-alice"}
	for own, b := range map[string]*framework.Browser{"ide-alice": alice, "ide-carol": carol} {
		otherHost := framework.RoutingHost(other[own])
		attempts := []struct {
			target string
			hdr    map[string]string
			via    string
		}{
			{framework.RoutingURL + "/whoami", nil, ""},
			{framework.RoutingURL + "/../" + other[own], nil, ""},
			{framework.RoutingURL + "/%2e%2e/" + other[own], nil, ""},
			{framework.RoutingURL + "//" + otherHost + "/", nil, ""},
			{framework.RoutingURL + "/whoami", map[string]string{"Host": otherHost}, ""},
			{framework.RoutingURL + "/whoami", map[string]string{"X-Podgate-Upstream": "http://" + otherHost, "X-Forwarded-Host": otherHost, "Forwarded": "host=" + otherHost}, ""},
			{framework.RoutingURL + "/whoami", map[string]string{"X-Auth-Request-User": "carol", "X-Forwarded-User": "alice", "X-Auth-Request-Groups": framework.RoutingTeamGroup}, ""},
			{framework.RoutingURL + "/whoami", map[string]string{"X-Original-URL": "http://" + otherHost + "/", "X-Forwarded-Uri": "/"}, ""},
			{"http://" + otherHost + "/whoami", nil, framework.RoutingURL},
		}
		for _, a := range attempts {
			code, body, err := routedGet(ctx, b, a.target, a.hdr, a.via)
			if err != nil {
				t.Errorf("%s: GET %s %v: %v", own, a.target, a.hdr, err)
				continue
			}
			// Only the echo app answers JSON naming itself; a refusal or the app's own redirect of
			// an unclean path (HTTP 301) is fine as long as it comes from the caller's own app or
			// from nobody.
			var e routedEcho
			if json.Unmarshal([]byte(body), &e) != nil {
				if code == http.StatusOK {
					t.Errorf("%s: GET %s %v: HTTP 200 that is not the echo app's: %.200s", own, a.target, a.hdr, body)
				}
				continue
			}
			if e.Name != own {
				t.Errorf("%s: GET %s %v (via %q) was answered by %s (pod %s)", own, a.target, a.hdr, a.via, e.Name, e.Pod)
			}
		}
	}

	// /oauth2/auth names the upstream for an ingress that routes on it; a client's copy never counts.
	code, _, err := routedGet(ctx, carol, framework.RoutingURL+"/oauth2/auth", map[string]string{"X-Podgate-Upstream": "http://evil.example"}, "")
	if err != nil || code != http.StatusAccepted {
		t.Errorf("carol /oauth2/auth: HTTP %d %v", code, err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, framework.RoutingURL+"/oauth2/auth", nil)
	resp, err = carol.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = readAll(resp)
	if got, want := resp.Header.Get("X-Podgate-Upstream"), "http://"+framework.RoutingHost("ide-carol"); resp.StatusCode != http.StatusAccepted || got != want {
		t.Errorf("carol /oauth2/auth: HTTP %d X-Podgate-Upstream %q, want 202 %q", resp.StatusCode, got, want)
	}
}

// TestRoutingUserNamesThatAreNotDNSLabels: the templated rule fills {user} only with a DNS label.
// Keycloak stores user names lower-cased, so "Dave" logs in (typed in any case) as dave and reaches
// ide-dave; "frank.li" holds a dot, which would add a label, and is refused with a 403 and a log line.
func TestRoutingUserNamesThatAreNotDNSLabels(t *testing.T) {
	requireRouting(t)
	ctx := suiteCtx
	tok, err := suite.Keycloak.PasswordToken(ctx, framework.ClientID, framework.ClientSecret, framework.UppercaseUser, framework.UppercasePass)
	if err != nil {
		t.Fatal(err)
	}
	claims, _ := framework.Claims(tok.AccessToken)
	note("routing: Keycloak user created as %q has preferred_username %q", framework.UppercaseUser, claims["preferred_username"])
	_, page := loginRouted(t, framework.UppercaseUser, framework.UppercasePass)
	if page.Status != http.StatusOK || decodeEcho(t, "Dave", page.Body).Name != "ide-dave" {
		t.Errorf("Dave ended on %s with HTTP %d: %.300s", page.URL, page.Status, page.Body)
	}
	_, page = loginRouted(t, framework.DottedUser, framework.DottedPass)
	if page.Status != http.StatusForbidden || !strings.Contains(page.Body, "account name cannot be used") {
		t.Errorf("frank.li ended on %s with HTTP %d: %.300s", page.URL, page.Status, page.Body)
	}
	// The container runtime copies the proxy's stdout into the log file on its own schedule, so the
	// line written before the 403 can reach `kubectl logs` a moment after the response.
	err = framework.Eventually(ctx, 15*time.Second, 250*time.Millisecond, "the refused user name's log line", func(ctx context.Context) (bool, string, error) {
		logs, err := suite.Kube.Run(ctx, "", "-n", framework.RoutingNS, "logs", "deployment/routing-proxy")
		if err != nil {
			return false, err.Error(), nil
		}
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "route refused") && strings.Contains(line, `"value":"frank.li"`) && strings.Contains(line, `"rule":3`) {
				return true, "", nil
			}
		}
		return false, "not in the last lines:\n" + lastLines(logs, 20), nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestRoutedWebSocket: a WebSocket through a routed upstream opens for the logged-in user, reaches
// their own app and stays open across messages; without a session it is refused.
func TestRoutedWebSocket(t *testing.T) {
	requireRouting(t)
	ctx := suiteCtx
	carol, _ := loginRouted(t, framework.RoutedUser, framework.RoutedPass)
	ws, code, err := carol.DialWebSocket(ctx, framework.RoutingURL+"/ws")
	if err != nil || code != http.StatusSwitchingProtocols {
		t.Fatalf("carol's WebSocket: HTTP %d %v", code, err)
	}
	defer ws.Close()
	for i := range 3 {
		msg := fmt.Sprintf("hello %d", i)
		reply, err := ws.Echo(msg)
		if err != nil || !strings.HasPrefix(reply, "ide-carol ") || !strings.HasSuffix(reply, ": "+msg) {
			t.Fatalf("message %d: %q %v", i, reply, err)
		}
		time.Sleep(2 * time.Second) // the connection stays open between messages
	}
	if _, code, err := framework.NewBrowser().DialWebSocket(ctx, framework.RoutingURL+"/ws"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("WebSocket without a session: HTTP %d %v, want 401", code, err)
	}
}

// TestRoutingMetrics: decisions are counted by rule number, never by user.
func TestRoutingMetrics(t *testing.T) {
	requireRouting(t)
	ctx := suiteCtx
	loginRouted(t, framework.RoutedUser, framework.RoutedPass)
	pods, err := suite.Kube.Client.CoreV1().Pods(framework.RoutingNS).List(ctx, metav1.ListOptions{LabelSelector: "app=routing-proxy"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("routing proxy pod: %v", err)
	}
	m, err := suite.Kube.PodGet(ctx, framework.RoutingNS, pods.Items[0].Name, "4190", "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m, `podgate_route_decisions_total{rule="3"}`) || !strings.Contains(m, "podgate_route_upstreams ") {
		t.Errorf("route metrics missing:\n%s", m)
	}
	for _, user := range []string{"carol", "alice", "frank", "dave"} {
		if strings.Contains(m, user) {
			t.Errorf("metrics name %q", user)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
