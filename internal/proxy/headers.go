package proxy

import (
	"net/http"
	"strings"

	"github.com/podgate/podgate/internal/auth"
)

// Identity headers sent to the app (and, on /oauth2/auth, to the ingress).
const (
	HeaderUser              = "X-Auth-Request-User"
	HeaderEmail             = "X-Auth-Request-Email"
	HeaderGroups            = "X-Auth-Request-Groups"
	HeaderRoles             = "X-Auth-Request-Roles"
	HeaderPreferredUsername = "X-Auth-Request-Preferred-Username"
	HeaderAccessToken       = "X-Auth-Request-Access-Token"
	HeaderFwdUser           = "X-Forwarded-User"
	HeaderFwdEmail          = "X-Forwarded-Email"
	HeaderFwdGroups         = "X-Forwarded-Groups"
	HeaderFwdPreferred      = "X-Forwarded-Preferred-Username"
	// HeaderIDToken carries "Bearer <ID token>" with --pass-id-token: the header Backstage's
	// oauth2-proxy provider reads (and decodes without verifying, so a client-sent copy must
	// never pass).
	HeaderIDToken = "X-Oauth2-Proxy-Id-Token"
	// HeaderAppCookie, on a 202 from /oauth2/auth, is the request's Cookie header without the
	// proxy's own cookies. The ingress cannot strip cookies itself, so it sets the upstream Cookie
	// from this (nginx: auth_request_set + proxy_set_header Cookie), and the session, several KB of
	// encrypted tokens, never reaches the app behind forward-auth either.
	HeaderAppCookie = "X-Auth-Request-Cookie"
)

// spoofable lists, lower-case with '-', every header the app may trust as coming from the proxy.
var spoofable = []string{
	"x-auth-request-user", "x-auth-request-email", "x-auth-request-groups", "x-auth-request-roles",
	"x-auth-request-preferred-username", "x-auth-request-access-token",
	"x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username",
	"x-forwarded-access-token", "x-podgate-upstream", "x-oauth2-proxy-id-token",
}

// rerouting lists, lower-case with '-', the headers some frameworks route on instead of the
// request line: IIS/Symfony/Laminas read X-Original-URL and X-Rewrite-URL as the path, and
// method-override middleware (Express, Rails, Spring's HiddenHttpMethodFilter) X-HTTP-Method-Override
// and its variants as the method. The proxy decides on the request line, so a client sending
// "GET /public" with "X-Original-URL: /admin" would reach /admin through a skip rule. Only an
// ingress in front may set them, and it talks to the app through the proxy, so none is legitimate
// here. (/oauth2/sign_in still reads nginx's X-Original-URL: these are stripped on the way to the
// app only.)
var rerouting = []string{"x-original-url", "x-rewrite-url", "x-http-method-override", "x-http-method", "x-method-override"}

// stripRerouting deletes every client-sent copy of the rerouting headers (any case, '_' for '-').
func stripRerouting(h http.Header) {
	for k := range h {
		if len(k) < len("x-http-method") || (k[0] != 'X' && k[0] != 'x') {
			continue
		}
		for _, s := range rerouting {
			if len(s) == len(k) && foldEqual(k, s) {
				delete(h, k)
				break
			}
		}
	}
}

// isSpoofable compares a header name case-insensitively with '_' equal to '-': CGI-style servers
// (and nginx with underscores_in_headers) map X_Forwarded_User and X-Forwarded-User to the same
// variable, so both spellings must go.
func isSpoofable(name string) bool {
	if len(name) < len("x-forwarded-user") || (name[0] != 'X' && name[0] != 'x') {
		return false
	}
	for _, s := range spoofable {
		if len(s) == len(name) && foldEqual(name, s) {
			return true
		}
	}
	return false
}

func foldEqual(name, lowerDash string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '_' {
			c = '-'
		} else if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lowerDash[i] {
			return false
		}
	}
	return true
}

// stripSpoofable deletes every client-sent copy of the identity headers. It runs on every route,
// skipped ones included: an app behind a skip rule may still read X-Forwarded-User.
//
// It also drops identity header names from Connection: a reverse proxy deletes the headers a
// client lists there as hop-by-hop, which would let "Connection: X-Auth-Request-User" remove the
// identity the proxy sets (the app would then see an anonymous request from an authenticated user).
func stripSpoofable(h http.Header) {
	for k := range h {
		if isSpoofable(k) {
			delete(h, k)
		}
	}
	conn := h["Connection"]
	for i, v := range conn {
		if !strings.Contains(v, ",") && !isSpoofable(strings.TrimSpace(v)) && !strings.EqualFold(strings.TrimSpace(v), "Authorization") {
			continue
		}
		var keep []string
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.TrimSpace(tok)
			if tok != "" && !isSpoofable(tok) && !strings.EqualFold(tok, "Authorization") {
				keep = append(keep, tok)
			}
		}
		conn[i] = strings.Join(keep, ", ")
	}
}

// clean drops control characters so a claim value can never split or corrupt a header.
func clean(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return strings.Map(func(r rune) rune {
				if r < 0x20 || r == 0x7f {
					return -1
				}
				return r
			}, s)
		}
	}
	return s
}

func joinClean(vals []string) string {
	if len(vals) == 1 {
		return clean(vals[0])
	}
	return clean(strings.Join(vals, ","))
}

// setIdentity writes the identity headers into h. The values share one backing array: this runs
// on every authenticated request and would otherwise allocate a slice per header.
func setIdentity(h http.Header, id *auth.Identity) {
	vals := make([]string, 0, 9)
	set := func(k, v string) {
		if v != "" {
			vals = append(vals, v)
			h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
	user, email, pref := clean(id.User), clean(id.Email), clean(id.PreferredUsername)
	set(HeaderUser, user)
	set(HeaderFwdUser, user)
	set(HeaderEmail, email)
	set(HeaderFwdEmail, email)
	set(HeaderPreferredUsername, pref)
	set(HeaderFwdPreferred, pref)
	if len(id.Groups) > 0 {
		g := joinClean(id.Groups)
		set(HeaderGroups, g)
		set(HeaderFwdGroups, g)
	}
	if len(id.Roles) > 0 {
		set(HeaderRoles, joinClean(id.Roles))
	}
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(h http.Header) (string, bool) {
	v := h.Get("Authorization")
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(v[7:]), true
}
