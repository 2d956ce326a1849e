package sidecar

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	"github.com/podgate/podgate/internal/oidctest"
	"github.com/podgate/podgate/internal/options"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// refusingAddr is a loopback address where connections are refused, for as long as the test runs:
// a socket bound to a port but never listening. A closed listener's port is no substitute: the
// kernel can hand it to the next test's server at once, and the proxy then reached a live upstream
// where a dead app was meant.
func refusingAddr(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*unix.SockaddrInet4).Port))
}

// env is one sidecar wired to a test IdP and a recording upstream, all on loopback.
type env struct {
	t        *testing.T
	idp      *oidctest.Provider
	app      *App
	upstream *httptest.Server
	logs     *observer.ObservedLogs

	mu   sync.Mutex
	seen []*http.Request

	proxyURL, adminURL, faURL string
}

type envOpt struct {
	idp     oidctest.Config
	opts    func(*options.Options)
	idpDown bool
	// existing, when set, is used instead of starting an IdP from idp.
	existing *oidctest.Provider
	// setup, when set, adjusts the App before it listens (e.g. the routed upstreams' transport).
	setup func(*App)
}

func newEnv(t *testing.T, eo envOpt) *env {
	t.Helper()
	if eo.idp.ClientSecret == "" {
		eo.idp.ClientSecret = "s3cret"
	}
	e := &env{t: t, idp: eo.existing}
	if e.idp == nil {
		e.idp = oidctest.Start(eo.idp)
		t.Cleanup(e.idp.Close)
	}
	if eo.idpDown {
		e.idp.SetDown(true)
	}
	e.upstream = httptest.NewServer(http.HandlerFunc(e.serveUpstream))
	t.Cleanup(e.upstream.Close)
	u, _ := url.Parse(e.upstream.URL)
	o := options.Defaults()
	o.IssuerURL = e.idp.Issuer()
	o.ClientID = e.idp.ClientID()
	o.ClientSecret = "s3cret"
	o.CookieSecret = testSecret
	o.CookieSecure = false
	o.AdminAddr = "127.0.0.1:0"
	o.ForwardAuthAddr = "127.0.0.1:0"
	o.Proxies = []options.Proxy{{Listen: "127.0.0.1:0", Upstream: u}}
	o.JWKSRefreshMinInterval = 0
	o.ShutdownGracePeriod = time.Second
	if eo.opts != nil {
		eo.opts(&o)
	}
	core, logs := observer.New(zap.DebugLevel)
	e.logs = logs
	app, err := New(&o, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	app.Provider.MaxBackoff = 50 * time.Millisecond
	if eo.setup != nil {
		eo.setup(app)
	}
	if err := app.Listen(); err != nil {
		t.Fatal(err)
	}
	e.app = app
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = app.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if len(o.Proxies) > 0 {
		e.proxyURL = "http://" + app.Addr("proxy", 0)
	}
	e.adminURL = "http://" + app.Addr("admin", 0)
	if a := app.Addr("forwardAuth", 0); a != "" {
		e.faURL = "http://" + a
	}
	if !eo.idpDown {
		e.waitReady()
	}
	return e
}

// waitReady polls /ready until the provider is discovered (no timing assertion: it only bounds
// how long a broken test hangs).
func (e *env) waitReady() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(e.adminURL + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatal("sidecar never became ready")
}

func (e *env) serveUpstream(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.seen = append(e.seen, r.Clone(context.Background()))
	e.mu.Unlock()
	switch r.URL.Path {
	case "/ws":
		serveEcho(w, r)
		return
	case "/sse":
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	http.SetCookie(w, &http.Cookie{Name: "app", Value: "from-app"})
	_, _ = io.WriteString(w, "upstream says hi")
}

// last returns the last request the upstream received, or nil.
func (e *env) last() *http.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.seen) == 0 {
		return nil
	}
	return e.seen[len(e.seen)-1]
}

func (e *env) seenCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.seen)
}

// do sends a request with headers and returns the response (body read and closed) without following
// redirects.
func do(t *testing.T, c *http.Client, method, u string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if c == nil {
		c = noRedirect()
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

// login runs the whole browser flow and returns the logged-in client and the final response body.
func (e *env) login(path string) (*http.Client, *http.Response, string) {
	e.t.Helper()
	c := browser(e.t)
	resp, body := do(e.t, c, "GET", e.proxyURL+path, map[string]string{"Accept": "text/html"})
	return c, resp, body
}

func bearer(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok, "Accept": "application/json"}
}

// cookieHeaderHas reports whether a request's Cookie header names a cookie starting with prefix.
func cookieHeaderHas(r *http.Request, prefix string) bool {
	for _, c := range r.Cookies() {
		if strings.HasPrefix(c.Name, prefix) {
			return true
		}
	}
	return false
}

// logged reports whether a log entry with message msg was written.
func (e *env) logged(msg string) bool {
	return len(e.logs.FilterMessage(msg).All()) > 0
}

// loggedError reports whether msg was logged with an error that contains errPart.
func (e *env) loggedError(msg, errPart string) bool {
	for _, entry := range e.logs.FilterMessage(msg).All() {
		if err, _ := entry.ContextMap()["error"].(string); strings.Contains(err, errPart) {
			return true
		}
	}
	return false
}

// dial opens a raw TCP connection with a deadline bounding how long a broken test can hang.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}
