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
	}
	for _, rd := range good {
		if !ValidRedirect(rd, "proxy.local:8443", allowed) {
			t.Errorf("rejected %q", rd)
		}
	}
}

func TestNormalisePath(t *testing.T) {
	cases := map[string]string{
		"/a/b": "/a/b", "/a//b": "/a/b", "/a/./b": "/a/b", "/a/../b": "/b", "/../../b": "/b",
		"/a/%2e%2e/b": "/b", "/a/b/": "/a/b", "/%61": "/a",
	}
	for raw, want := range cases {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := NormalisePath(u)
		if !ok || got != want {
			t.Errorf("%s → %q %v, want %q", raw, got, ok, want)
		}
	}
	for _, raw := range []string{"/a%2fb", "/a%2Fb", "/a%5cb", "/a%25b", "/a;b", "/a%00b", "/a%3bb"} {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := NormalisePath(u); ok {
			t.Errorf("%s → %q accepted as unambiguous", raw, got)
		}
	}
}
