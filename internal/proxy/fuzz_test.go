package proxy

import (
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/podgate/podgate/internal/options"
)

// FuzzNormalisePath: whatever the request target, a path accepted for skip matching is in normal
// form (cleaning it changes nothing but a trailing slash), holds no byte whose meaning depends on
// the decoder, and is exactly the path the app will be sent.
func FuzzNormalisePath(f *testing.F) {
	for _, s := range []string{"/", "/public/x", "/public/../admin", "/admin//../public", "/%70ublic", "/a%2fb", "/a;b", "//x", "/a/./b", "/caf%C3%A9/", "/a?b=/../c"} {
		f.Add(s)
	}
	m := skipMatcher{{Path: "/public"}, {Method: "GET", Path: "/healthz", Exact: true}}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		p, ok := NormalisePath(u)
		if !ok {
			if m.match("GET", u) {
				t.Fatalf("%q skipped without a normal path", target)
			}
			return
		}
		if p != u.Path || u.EscapedPath() != (&url.URL{Path: p}).EscapedPath() {
			t.Fatalf("%q: matched %q, the app gets %q", target, p, u.EscapedPath())
		}
		if c := path.Clean(p); c != strings.TrimSuffix(p, "/") && c != p {
			t.Fatalf("%q: %q is not normal (cleans to %q)", target, p, c)
		}
		if strings.ContainsAny(p, "\\;%\x00") {
			t.Fatalf("%q: ambiguous byte in %q", target, p)
		}
		m.match("GET", u)
	})
}

// FuzzSkipRule: a parsed rule never holds what NormalisePath refuses, so it can match something.
func FuzzSkipRule(f *testing.F) {
	for _, s := range []string{"/public", "GET =/healthz", "POST /api/hooks", "/a/../b", "=//x", "BREW /x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := options.ParseSkipRule(s)
		if err != nil {
			return
		}
		u := &url.URL{Path: r.Path}
		if _, ok := NormalisePath(u); !ok {
			t.Fatalf("rule %q (path %q) can never match: its own path is not normal", s, r.Path)
		}
	})
}

// FuzzValidRedirect: an accepted redirect never leaves for a host that is neither the request's
// nor allowed, however browsers read it.
func FuzzValidRedirect(f *testing.F) {
	for _, s := range []string{"/x", "//evil", "/\\evil", "https://app.example.com/x", "https:evil", "http://good@evil/", "/%2f%2fevil", "https://a.corp.example/", "javascript:alert(1)"} {
		f.Add(s)
	}
	allowed := []string{"app.example.com", ".corp.example"}
	f.Fuzz(func(t *testing.T, rd string) {
		if !ValidRedirect(rd, "proxy.local", allowed) {
			return
		}
		if strings.HasPrefix(rd, "/") {
			if strings.HasPrefix(rd, "//") || strings.ContainsAny(rd, "\\\t\r\n ") {
				t.Fatalf("%q accepted as a same-origin path", rd)
			}
			return
		}
		// What a browser would resolve it to, against the request's origin.
		base, _ := url.Parse("https://proxy.local/")
		u, err := base.Parse(rd)
		if err != nil {
			t.Fatalf("%q accepted but does not parse: %v", rd, err)
		}
		h := strings.ToLower(u.Hostname())
		if h != "proxy.local" && h != "app.example.com" && h != "corp.example" && !strings.HasSuffix(h, ".corp.example") {
			t.Fatalf("%q accepted, leads to %q", rd, h)
		}
	})
}

// FuzzBearerToken: whatever the Authorization header, a token is returned only for the Bearer
// scheme, and never with surrounding spaces.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  abc ", "Basic x", "Bearer", "Bearer\tx", "BEARER a.b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok, ok := bearerToken(http.Header{"Authorization": {v}})
		if !ok {
			return
		}
		if !strings.EqualFold(v[:7], "bearer ") || tok != strings.TrimSpace(tok) {
			t.Fatalf("%q → %q", v, tok)
		}
	})
}

// FuzzStripHeaders: after stripping, no identity or rerouting header is left in any spelling.
func FuzzStripHeaders(f *testing.F) {
	f.Add("X_Forwarded_User", "x-original-url", "keep-alive, X-Auth-Request-User")
	f.Fuzz(func(t *testing.T, a, b, conn string) {
		h := http.Header{a: {"v"}, b: {"v"}, "Connection": {conn}}
		stripSpoofable(h)
		stripRerouting(h)
		for k := range h {
			n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
			for _, s := range append(append([]string{}, spoofable...), rerouting...) {
				if n == s {
					t.Fatalf("%q survived", k)
				}
			}
		}
	})
}
