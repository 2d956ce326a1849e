package proxy

import (
	"net/url"
	"strings"
)

// maxRedirectLen bounds rd; longer values are rejected rather than truncated.
const maxRedirectLen = 2048

// ValidRedirect reports whether rd is a safe place to send the browser after login or logout:
// a same-origin relative path, or an absolute http(s) URL whose host is the request's own host or
// in allowedHosts ("*.example.com" and ".example.com" allow the domain and its subdomains). Everything browsers are known to
// reinterpret as another host is rejected: "//host", "/\host", "https:host", whitespace and control
// characters (raw or percent-encoded), encoded slashes and backslashes, user info ("good@evil").
func ValidRedirect(rd, requestHost string, allowedHosts []string) bool {
	if rd == "" || len(rd) > maxRedirectLen {
		return false
	}
	for i := 0; i < len(rd); i++ {
		if c := rd[i]; c <= 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	lower := strings.ToLower(rd)
	for _, bad := range []string{"%2f", "%5c", "%0", "%1", "%7f", "%20"} {
		if strings.Contains(lower, bad) {
			return false
		}
	}
	u, err := url.Parse(rd)
	if err != nil || u.User != nil || u.Opaque != "" {
		return false
	}
	if strings.HasPrefix(rd, "/") {
		return !strings.HasPrefix(rd, "//") && u.Scheme == "" && u.Host == ""
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !strings.HasPrefix(rd[len(u.Scheme):], "://") {
		return false
	}
	if strings.EqualFold(u.Host, requestHost) {
		return true
	}
	host := strings.ToLower(u.Hostname())
	for _, a := range allowedHosts {
		a = strings.TrimPrefix(strings.ToLower(a), "*")
		if strings.HasPrefix(a, ".") {
			if strings.HasSuffix(host, a) || host == a[1:] {
				return true
			}
		} else if host == a || strings.EqualFold(u.Host, a) {
			return true
		}
	}
	return false
}
