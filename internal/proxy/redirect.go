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
// reinterpret as another host is rejected: "//host", "/\host", "https:host", raw whitespace and
// control characters, and (see safeEscapes) their encodings and encoded slashes and backslashes
// where a decoding hop could turn them into another host; also user info ("good@evil").
func ValidRedirect(rd, requestHost string, allowedHosts []string) bool {
	if rd == "" || len(rd) > maxRedirectLen {
		return false
	}
	for i := 0; i < len(rd); i++ {
		if c := rd[i]; c <= 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	if !safeEscapes(rd) {
		return false
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

// safeEscapes reports whether rd's percent-encodings are harmless. Before the query, an encoded
// slash, backslash or control character is refused anywhere: a hop that decodes the path (a proxy,
// an app's own redirect) could make "/%2f/evil" or "/%5cevil" a way to another host. An encoded
// space is refused right after the leading slash ("/%20/evil", which a decoding and trimming hop
// turns into "//evil") and in an absolute URL's authority, and allowed further into the path, where
// deep links carry it ("/docs/my%20file"). The query and fragment are never reinterpreted as a
// host, so they may carry any encoding ("?next=%2Fhome", "?q=a%20b").
func safeEscapes(rd string) bool {
	head := rd
	if i := strings.IndexAny(rd, "?#"); i >= 0 {
		head = rd[:i]
	}
	lower := strings.ToLower(head)
	for _, bad := range []string{"%2f", "%5c", "%0", "%1", "%7f"} {
		if strings.Contains(lower, bad) {
			return false
		}
	}
	path := lower
	if i := strings.Index(lower, "://"); i >= 0 && !strings.HasPrefix(lower, "/") {
		rest := lower[i+3:]
		authority, p, _ := strings.Cut(rest, "/")
		if strings.Contains(authority, "%20") {
			return false
		}
		path = "/" + p
	}
	return !strings.HasPrefix(path, "/%20")
}
