package sidecar

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/podgate/podgate/internal/options"
)

// TestHeaderBlockBounded: an unauthenticated client controls header size most cheaply; past
// --max-header-bytes the answer is 431, whatever the route (skipped, protected, forward-auth, admin).
func TestHeaderBlockBounded(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) {
		o.SkipAuth = skipRules(t, "/public")
		o.MaxHeaderBytes = 16 << 10
	}})
	big := map[string]string{"Cookie": "x=" + strings.Repeat("a", 64<<10)}
	for _, s := range []string{e.proxyURL + "/public/x", e.proxyURL + "/private", e.faURL + "/oauth2/auth", e.adminURL + "/ping"} {
		u, _ := url.Parse(s)
		if code := rawRequest(t, u.Host, "GET", u.Path, big); code != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s with 64 KiB of headers: %d, want 431", s, code)
		}
	}
	// Within the bound, a large session cookie still passes.
	ok := map[string]string{"Cookie": "x=" + strings.Repeat("a", 12<<10)}
	if code := rawRequest(t, strings.TrimPrefix(e.proxyURL, "http://"), "GET", "/public/x", ok); code != 200 {
		t.Errorf("12 KiB of headers: %d, want 200", code)
	}
}

// TestConnectionCap: past --max-connections a connection gets 503 at once (never queued, never
// read into memory); once a slot frees, service resumes. The admin port is not capped.
func TestConnectionCap(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) {
		o.SkipAuth = skipRules(t, "/public")
		o.MaxConnections = 3
	}})
	addr := strings.TrimPrefix(e.proxyURL, "http://")
	var held []net.Conn
	for range 3 {
		c := dial(t, addr)
		// A slow client: half a header block, never finished.
		if _, err := io.WriteString(c, "GET /public/x HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	c := dial(t, addr)
	if _, err := io.WriteString(c, "GET /public/x HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("over the cap: %v, want a 503", err)
	}
	resp.Body.Close()
	c.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the cap: %d, want 503 with Retry-After", resp.StatusCode)
	}
	// The admin port still answers while the proxy is full.
	if resp, _ := do(t, nil, "GET", e.adminURL+"/ping", nil); resp.StatusCode != 200 {
		t.Errorf("admin while the proxy is at its cap: %d", resp.StatusCode)
	}
	held[0].Close()
	// A freed slot serves again (the close is seen asynchronously: retry a bounded number of times).
	for i := 0; ; i++ {
		code := rawRequest(t, addr, "GET", "/public/x", nil)
		if code == 200 {
			break
		}
		if i == 50 {
			t.Fatalf("after a slot was freed: %d", code)
		}
	}
	for _, c := range held[1:] {
		c.Close()
	}
	if body := scrape(t, e); !strings.Contains(body, `outcome="over_capacity"`) {
		t.Errorf("refused connections not counted:\n%s", body)
	}
}
