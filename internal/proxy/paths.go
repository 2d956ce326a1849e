package proxy

import (
	"net/url"
	"path"
	"strings"

	"github.com/podgate/podgate/internal/options"
)

// NormalisePath returns the path a skip rule is matched against, and ok only when that is exactly
// the path the app receives: the request's raw path must already be in normal form. The proxy
// forwards the raw path, so deciding on a cleaned copy would let "/public/../admin" (or
// "/public//../admin", which path.Clean and RFC 3986 resolve differently) skip authentication and
// then be served by the app as the protected route it resolves to.
//
// Normal form means: absolute; no "." or ".." segment (raw or percent-encoded); no empty segment
// except a trailing slash (no "//", which some servers merge and others keep); percent-encoding
// exactly as Go writes it (no "/%70ublic" that decodes to a skipped prefix, no lower-case or
// gratuitous escapes); and none of the bytes whose meaning depends on who decodes the path — an
// encoded slash or backslash, an encoded '%' (double encoding), a backslash, NUL or other control
// byte, or a ';' (Tomcat-style path parameters such as "/public/..;/admin"). Anything else must
// authenticate. Browsers send normal paths, so the rule costs legitimate clients nothing.
func NormalisePath(u *url.URL) (p string, ok bool) {
	p = u.Path
	if !strings.HasPrefix(p, "/") || u.RawPath != "" || u.Opaque != "" {
		// RawPath is set only when the request spelled the path differently from its canonical
		// encoding.
		return "", false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' || c == ';' || c == '%' {
			return "", false
		}
	}
	for rest := p[1:]; rest != ""; {
		seg, tail, more := strings.Cut(rest, "/")
		if seg == "." || seg == ".." || (seg == "" && more) {
			return "", false
		}
		rest = tail
	}
	return p, true
}

// skipMatcher decides which requests need no login.
type skipMatcher []options.SkipRule

// match reports whether the request may skip authentication.
func (m skipMatcher) match(method string, u *url.URL) bool {
	if len(m) == 0 {
		return false
	}
	p, ok := NormalisePath(u)
	if !ok {
		return false
	}
	for _, r := range m {
		if r.Method != "" && r.Method != method {
			continue
		}
		rp := path.Clean(r.Path)
		if p == rp {
			return true
		}
		if !r.Exact && strings.HasPrefix(p, strings.TrimSuffix(rp, "/")+"/") {
			return true
		}
	}
	return false
}
