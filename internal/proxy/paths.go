package proxy

import (
	"net/url"
	"path"
	"strings"

	"github.com/podgate/podgate/internal/options"
)

// NormalisePath returns the path a skip rule is matched against: percent-decoded, dot segments
// resolved, duplicate slashes collapsed; query and fragment never take part. ok is false when the
// path's meaning depends on who decodes it — an encoded slash or backslash, an encoded '%' (double
// encoding), a backslash, NUL or other control byte, or a ';' (Tomcat-style path parameters such as
// "/public/..;/admin") — and such a path can never match a skip rule: it must authenticate.
func NormalisePath(u *url.URL) (p string, ok bool) {
	raw := u.EscapedPath()
	if !strings.HasPrefix(u.Path, "/") {
		return "", false
	}
	lower := strings.ToLower(raw)
	for _, bad := range []string{"%2f", "%5c", "%25", "%00"} {
		if strings.Contains(lower, bad) {
			return "", false
		}
	}
	for i := 0; i < len(u.Path); i++ {
		if c := u.Path[i]; c < 0x20 || c == 0x7f || c == '\\' || c == ';' {
			return "", false
		}
	}
	return path.Clean(u.Path), true
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
