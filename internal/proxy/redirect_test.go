package proxy

import (
	"net/url"
	"testing"
)

func TestValidRedirectRejectsOpenRedirectPayloads(t *testing.T) {
	allowed := []string{"app.example.com", ".corp.example"}
	bad := []string{
		"", "//evil.com", "///evil.com", "////evil.com", "/\\evil.com", "\\\\evil.com", "\\/evil.com",
		"/\\/evil.com", "https:evil.com", "https:/evil.com", "http:\\\\evil.com", "//evil.com/%2f..",
		"https://evil.com", "http://evil.com/", "https://app.example.com.evil.com/", "https://evil.com#app.example.com",
		"https://app.example.com@evil.com/", "https://user:pw@app.example.com/", "https://evil.com\\@app.example.com/",
		"javascript:alert(1)", "JavaScript://app.example.com/%0aalert(1)", "data:text/html,<script>", "ftp://app.example.com/",
		"/%2fevil.com", "/%2Fevil.com", "/%5cevil.com", "/%5Cevil.com", "/%09/evil.com", "/%0d/evil.com", "/%0a/evil.com",
		"/\t/evil.com", "/\n/evil.com", "/\r/evil.com", "\t//evil.com", " //evil.com", "/ /evil.com", "/%20/evil.com",
		"/\x00/evil.com", "/x\x7f", "evil.com", "evil.com/path", "./evil", "../evil", "?rd=//evil.com", "#//evil.com",
		"https://evil.corp.example.evil/", "https://corp.example.evil/", "https://xcorp.example/",
		"http://[::1]/", "https://app.example.com%2f@evil.com/", "//app.example.com", "https:///evil.com",
		"/" + string(make([]byte, 3000)),
		// Encodings a decoding hop could turn into another host, before the query and in any case.
		"/%20//evil.com", "/%20%2f/evil.com", "https://app.example.com%20.evil.com/", "https://evil.com%20/",
		"/a%2f%2fevil.com", "/a/%5c%5cevil.com", "/a%0a/b", "/%2F%2Fevil.com?x=1", "https://app.example.com/%2f%2fevil.com",
		"/ok path", "/ok?q=a b", "/ok#a\b",
	}
	for _, rd := range bad {
		if ValidRedirect(rd, "app.example.com", allowed) {
			t.Errorf("accepted %q", rd)
		}
	}
	good := []string{
		"/", "/path", "/path?q=1&r=2", "/path#frag", "/a/b/../c", "/%E2%9C%93",
		"https://app.example.com/", "http://app.example.com/x", "https://APP.example.com/x",
		"https://a.corp.example/", "https://corp.example/x", "https://proxy.local:8443/self",
		// Deep links: an encoded space in the path, any encoding in the query and fragment.
		"/docs/my%20file", "/a/b%20c/d?x=1", "/search?q=a%20b&next=%2Fhome%2F%5Cx", "/p?u=https%3A%2F%2Fx.example%2F",
		"/p#sec%20tion%2F2", "https://app.example.com/my%20docs?q=%0a",
	}
	for _, rd := range good {
		if !ValidRedirect(rd, "proxy.local:8443", allowed) {
			t.Errorf("rejected %q", rd)
		}
	}
}

// TestNormalisePath: only a path already in normal form can be matched against skip rules, because
// the app receives the raw path. The cases include those path.Clean and RFC 3986 dot-segment
// removal resolve differently ("/a//../b": "/b" for one, "/a/b" for the other).
func TestNormalisePath(t *testing.T) {
	for _, raw := range []string{"/", "/a/b", "/a/b/", "/a/b%20c", "/caf%C3%A9", "/a/.well-known/x", "/a/..b/c.", "/a/b?x=/../c"} {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			t.Fatal(err)
		}
		want := u.Path
		if got, ok := NormalisePath(u); !ok || got != want {
			t.Errorf("%s → %q %v, want %q", raw, got, ok, want)
		}
	}
	for _, raw := range []string{
		"/a%2fb", "/a%2Fb", "/a%5cb", "/a%25b", "/a;b", "/a%00b", "/a%3bb",
		"/a//b", "//a", "/a/./b", "/a/../b", "/../../b", "/a/%2e%2e/b", "/a/%2E/b", "/a/.", "/a/..",
		"/a//../b", "/a/b//..", "/a/.//b", "/%61", "/caf%c3%a9", "/a%2db", "/a\\b", "/.", "/..",
	} {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := NormalisePath(u); ok {
			t.Errorf("%s → %q accepted as normal", raw, got)
		}
	}
}

// TestValidRedirectWildcardHosts: "*.example.com" and ".example.com" both allow the domain and every
// host under it, and nothing that merely ends in the same letters.
func TestValidRedirectWildcardHosts(t *testing.T) {
	for _, pattern := range []string{"*.example.com", ".example.com", "*.EXAMPLE.com"} {
		allowed := []string{pattern}
		for _, rd := range []string{"https://app1.example.com/deep?x=1", "https://a.b.example.com/", "https://example.com/", "http://app2.example.com:8443/"} {
			if !ValidRedirect(rd, "proxy.local", allowed) {
				t.Errorf("%s: rejected %q", pattern, rd)
			}
		}
		for _, rd := range []string{"https://evilexample.com/", "https://example.com.evil.org/", "https://app.example.com@evil.org/",
			"https://evil.org/?x=.example.com", "https://evil.org#.example.com", "//app1.example.com/"} {
			if ValidRedirect(rd, "proxy.local", allowed) {
				t.Errorf("%s: accepted %q", pattern, rd)
			}
		}
	}
}
