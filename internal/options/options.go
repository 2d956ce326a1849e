// Package options is the sidecar's configuration and the one contract between the injector and the
// sidecar: the sidecar parses its flags (and PODGATE_* environment variables) into Options, and the
// injector renders an Options back into the command-line arguments it puts into the pod. The flag
// names therefore exist in exactly one place, and a round-trip test keeps the two directions honest.
package options

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/podgate/podgate/internal/route"
)

// EnvPrefix is prepended to a flag's upper-snake-case name to form the environment variable that
// sets it when the flag itself is absent: --issuer-url ⇔ PODGATE_ISSUER_URL.
const EnvPrefix = "PODGATE_"

// Flag names. They are constants because the injector refers to some of them (secrets go into the
// pod as environment variables, never as arguments).
const (
	FlagProxy                = "proxy"
	FlagRoute                = "route"
	FlagAdminAddr            = "admin-addr"
	FlagProbe                = "probe"
	FlagProbeHeader          = "probe-header"
	FlagMaxHeaderBytes       = "max-header-bytes"
	FlagMaxConnections       = "max-connections"
	FlagMemoryLimit          = "memory-limit"
	FlagIssuerURL            = "issuer-url"
	FlagDiscoveryURL         = "discovery-url"
	FlagProviderCAFile       = "provider-ca-file"
	FlagClientID             = "client-id"
	FlagClientSecret         = "client-secret"
	FlagClientSecretFile     = "client-secret-file"
	FlagCookieSecret         = "cookie-secret"
	FlagCookieSecretFile     = "cookie-secret-file"
	FlagCookieName           = "cookie-name"
	FlagCookieSecure         = "cookie-secure"
	FlagCookieExpire         = "cookie-expire"
	FlagCookieDomain         = "cookie-domain"
	FlagScope                = "scope"
	FlagAudience             = "audience"
	FlagAllowedRole          = "allowed-role"
	FlagAllowedGroup         = "allowed-group"
	FlagAllowedEmailDomain   = "allowed-email-domain"
	FlagUserClaim            = "user-claim"
	FlagGroupsClaim          = "groups-claim"
	FlagSkipAuth             = "skip-auth"
	FlagRedirectURL          = "redirect-url"
	FlagAllowedRedirectHost  = "allowed-redirect-host"
	FlagPassAccessToken      = "pass-access-token"
	FlagPassIDToken          = "pass-id-token"
	FlagUpstreamTimeout      = "upstream-timeout"
	FlagLogLevel             = "log-level"
	FlagLogFormat            = "log-format"
	FlagForwardAuthAddr      = "forward-auth-addr"
	FlagShutdownGracePeriod  = "shutdown-grace-period"
	FlagJWKSRefreshMinPeriod = "jwks-refresh-min-interval"
)

// secretFlags are never rendered by Args: a secret on a command line is visible in the pod spec and
// in every process listing. The injector passes them as environment variables from a Secret.
var secretFlags = map[string]bool{FlagClientSecret: true, FlagCookieSecret: true}

// Options configures one sidecar process. The zero value is not useful; start from Defaults.
type Options struct {
	// Proxies are the protected listeners, one per port the injector took over. Each accepts
	// traffic on Listen and forwards authenticated requests to Upstream (the app on 127.0.0.1).
	// With none, the process serves forward-auth only (a standalone deployment behind an ingress).
	Proxies []Proxy
	// Routes pick, in order, the upstream of each authenticated request on the proxies by the
	// caller's identity (--route 'MATCH => UPSTREAM'; the first matching rule wins). A request no
	// rule matches goes to its listener's upstream, or gets 403 on a listener without one.
	Routes []route.Rule
	// AdminAddr serves /ping, /ready, /metrics and the probe pass-through. It never requires
	// authentication, so it must not be exposed through a Service.
	AdminAddr string
	// ForwardAuthAddr, when set, serves the forward-auth endpoints (/oauth2/auth and the login
	// endpoints) on their own listener. With no proxies and no ForwardAuthAddr, ":4180" is used.
	ForwardAuthAddr string
	// Probes are the app's original kubelet probes, reachable through the admin port as
	// /probe/<name>, so probes neither need a login nor bypass it on the protected port.
	Probes []Probe
	// ProbeHeaders are the httpHeaders of the app's HTTP probes. The pass-through sends exactly
	// these (with a kubelet's User-Agent and Accept), never the other headers the caller of
	// /probe/<name> sent: the admin port needs no login, so those could be anyone's.
	ProbeHeaders []ProbeHeader
	// MaxHeaderBytes bounds a request's header block on every listener; a larger one gets 431.
	// Header memory is what a hostile, unauthenticated client controls most cheaply.
	MaxHeaderBytes int
	// MaxConnections caps the connections each protected or forward-auth listener holds open at
	// once; connections past it get 503 and are closed. 0 means no cap.
	MaxConnections int
	// MemoryLimit is the container's memory limit in bytes (the injector passes it through the
	// downward API as PODGATE_MEMORY_LIMIT). The Go runtime's soft limit is set to 85% of it, so the
	// garbage collector works harder before the kernel's OOM killer would act. 0: no soft limit.
	// GOMEMLIMIT, when set, wins.
	MemoryLimit int64

	// IssuerURL is the issuer every token must carry in "iss". Required.
	IssuerURL string
	// DiscoveryURL, when set, is where discovery, JWKS and the token endpoint are fetched from
	// (an in-cluster address), while tokens are still checked against IssuerURL (the address
	// browsers use). It solves the classic in-cluster versus external issuer mismatch.
	DiscoveryURL string
	// ProviderCAFile is a PEM bundle trusted for TLS to the provider, in addition to the system roots.
	ProviderCAFile string

	// ClientID is the OAuth client; by default also the only accepted audience.
	ClientID string
	// ClientSecret is the confidential client's secret. Prefer ClientSecretFile or the environment.
	ClientSecret     string
	ClientSecretFile string
	// CookieSecret encrypts and authenticates the session cookie (AES-GCM). It must be the same on
	// every replica and decode (base64 or raw) to 16, 24 or 32 bytes.
	CookieSecret     string
	CookieSecretFile string
	// CookieName names the session cookie. With CookieSecure and no CookieDomain the "__Host-"
	// prefix is added, which browsers only accept for Secure, host-only, Path=/ cookies: a
	// subdomain cannot overwrite it.
	CookieName   string
	CookieSecure bool
	// CookieDomain, when set, makes the session cookie a domain cookie (Domain=CookieDomain), sent
	// to every subdomain: one login serves all apps under it. The price is the "__Host-" prefix:
	// any host under the domain can then set or overwrite the cookie.
	CookieDomain string
	// CookieExpire bounds a session's life, refreshes included.
	CookieExpire time.Duration
	// Scopes requested at login.
	Scopes []string

	// Audiences accepted in "aud"; empty means the client id.
	Audiences []string
	// AllowedRoles: any one suffices. "role" is a Keycloak realm role, "client:role" a client role.
	AllowedRoles []string
	// AllowedGroups: any one suffices; a leading "/" is ignored on both sides.
	AllowedGroups []string
	// AllowedEmailDomains: the verified email must end in "@domain"; "*" allows any.
	AllowedEmailDomains []string
	// UserClaim names the claim sent to the app as the user; "sub" is used when it is absent.
	UserClaim string
	// GroupsClaim names the claim that lists the user's groups.
	GroupsClaim string

	// SkipAuth lists routes that need no login: "[METHOD ]/prefix" or "[METHOD ]=/exact".
	SkipAuth []SkipRule
	// RedirectURL is the OAuth callback; by default derived from the request's host.
	RedirectURL string
	// AllowedRedirectHosts may appear in an absolute "rd" after login; otherwise only
	// same-origin relative paths are accepted. "*.example.com" and ".example.com" both allow
	// example.com and every host under it.
	AllowedRedirectHosts []string
	// PassAccessToken sends the access token upstream as "Authorization: Bearer".
	PassAccessToken bool
	// PassIDToken sends the session's ID token as "X-OAUTH2-PROXY-ID-TOKEN: Bearer <token>", the
	// header Backstage's oauth2-proxy provider reads.
	PassIDToken bool
	// UpstreamTimeout bounds the wait for the app's response headers (not streaming bodies).
	UpstreamTimeout time.Duration
	// JWKSRefreshMinInterval rate-limits the JWKS refetch an unknown key id triggers.
	JWKSRefreshMinInterval time.Duration
	// ShutdownGracePeriod lets in-flight requests finish on SIGTERM.
	ShutdownGracePeriod time.Duration

	// LogLevel is one of debug, info, warn, error. LogFormat is json or console.
	LogLevel  string
	LogFormat string
}

// Header and connection bounds by default. 48 KiB of headers holds the largest session cookie
// (ten 3800-byte chunks) with room for the app's own cookies; 512 connections each filling that
// bound (a header block costs the server about twice its size while it is read) stay well inside
// the 128Mi the injector gives the sidecar.
const (
	DefaultMaxHeaderBytes = 48 << 10
	DefaultMaxConnections = 512
)

// Defaults returns the options a sidecar runs with when no flag says otherwise.
func Defaults() Options {
	return Options{
		AdminAddr:              ":4190",
		CookieName:             "_podgate",
		CookieSecure:           true,
		CookieExpire:           12 * time.Hour,
		Scopes:                 []string{"openid", "profile", "email"},
		UserClaim:              "preferred_username",
		GroupsClaim:            "groups",
		UpstreamTimeout:        60 * time.Second,
		MaxHeaderBytes:         DefaultMaxHeaderBytes,
		MaxConnections:         DefaultMaxConnections,
		JWKSRefreshMinInterval: 10 * time.Second,
		ShutdownGracePeriod:    5 * time.Second,
		LogLevel:               "info",
		LogFormat:              "json",
	}
}

// Proxy is one protected listener: --proxy LISTEN=UPSTREAM. Upstream is nil for "LISTEN=", a
// listener that serves the --route rules only.
type Proxy struct {
	Listen string
	// Upstream is the app: an http or https URL.
	Upstream *url.URL
	// H2C says the app speaks only HTTP/2 cleartext (its port's appProtocol is h2c, grpc or
	// kubernetes.io/h2c), so every request goes to it over HTTP/2. Without it the proxy uses
	// HTTP/1.1 and switches to HTTP/2 for gRPC requests only. It is spelt as the upstream scheme
	// h2c://, the way the flag reads.
	H2C bool
}

// SchemeH2C is the upstream scheme of --proxy for an app that speaks HTTP/2 cleartext only.
const SchemeH2C = "h2c"

func (p Proxy) String() string {
	if p.Upstream == nil {
		return p.Listen + "="
	}
	if p.H2C {
		u := *p.Upstream
		u.Scheme = SchemeH2C
		return p.Listen + "=" + u.String()
	}
	return p.Listen + "=" + p.Upstream.String()
}

// ParseProxy parses "LISTEN=UPSTREAM", e.g. ":4180=http://127.0.0.1:8080",
// ":4181=h2c://127.0.0.1:9090" (HTTP/2 cleartext to the app for every request), or "LISTEN="
// (routes only).
func ParseProxy(s string) (Proxy, error) {
	listen, upstream, ok := strings.Cut(s, "=")
	if !ok {
		return Proxy{}, fmt.Errorf("%q is not LISTEN=UPSTREAM", s)
	}
	if err := checkListenAddr(listen); err != nil {
		return Proxy{}, fmt.Errorf("%q: listen address: %w", s, err)
	}
	if upstream == "" {
		return Proxy{Listen: listen}, nil
	}
	u, err := url.Parse(upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != SchemeH2C) || u.Host == "" {
		return Proxy{}, fmt.Errorf("%q: upstream %q is not an http(s) or h2c URL with a host", s, upstream)
	}
	p := Proxy{Listen: listen, Upstream: u}
	if u.Scheme == SchemeH2C {
		u.Scheme, p.H2C = "http", true
	}
	return p, nil
}

// Probe is one of the app's kubelet probes, re-served by the sidecar: --probe NAME=URL, where URL
// is http://, https://, tcp:// or grpc:// on a loopback host (grpc takes ?service=NAME).
type Probe struct {
	Name   string
	Target *url.URL
}

func (p Probe) String() string { return p.Name + "=" + p.Target.String() }

// ProbeHeader is one configured header of an HTTP probe: --probe-header PROBE=NAME:VALUE.
type ProbeHeader struct {
	Probe, Name, Value string
}

func (h ProbeHeader) String() string { return h.Probe + "=" + h.Name + ":" + h.Value }

// ParseProbeHeader parses "PROBE=NAME:VALUE"; the value may hold ':' and is trimmed of spaces.
func ParseProbeHeader(s string) (ProbeHeader, error) {
	probe, rest, ok := strings.Cut(s, "=")
	name, value, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return ProbeHeader{}, fmt.Errorf("%q is not PROBE=NAME:VALUE", s)
	}
	h := ProbeHeader{Probe: probe, Name: name, Value: strings.TrimSpace(value)}
	if err := h.check(); err != nil {
		return ProbeHeader{}, fmt.Errorf("%q: %w", s, err)
	}
	return h, nil
}

// check validates a probe header however it was built (parsed, or by the injector from a pod).
func (h ProbeHeader) check() error {
	if !probeNameRE.MatchString(h.Probe) {
		return fmt.Errorf("probe name %q must be lower-case letters, digits and '-'", h.Probe)
	}
	if !httpguts.ValidHeaderFieldName(h.Name) {
		return fmt.Errorf("%q is not a header name", h.Name)
	}
	if !httpguts.ValidHeaderFieldValue(h.Value) {
		return fmt.Errorf("the value of header %q holds control characters", h.Name)
	}
	return nil
}

// cookieNameRE is compiled once: Validate runs for every injected pod, and compiling it there
// dominated the injector's cost per pod.
var cookieNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

var probeNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParseProbe parses "NAME=URL". The target must be on loopback: the pass-through is
// unauthenticated, so it must never become a way to reach anything but the pod's own app.
func ParseProbe(s string) (Probe, error) {
	name, target, ok := strings.Cut(s, "=")
	if !ok {
		return Probe{}, fmt.Errorf("%q is not NAME=URL", s)
	}
	if !probeNameRE.MatchString(name) {
		return Probe{}, fmt.Errorf("%q: name %q must be lower-case letters, digits and '-'", s, name)
	}
	u, err := url.Parse(target)
	if err != nil {
		return Probe{}, fmt.Errorf("%q: %v", s, err)
	}
	switch u.Scheme {
	case "http", "https", "tcp", "grpc":
	default:
		return Probe{}, fmt.Errorf("%q: scheme %q is not http, https, tcp or grpc", s, u.Scheme)
	}
	if !isLoopbackHost(u.Hostname()) || u.Port() == "" {
		return Probe{}, fmt.Errorf("%q: target must be a loopback host with a port", s)
	}
	return Probe{Name: name, Target: u}, nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// SkipRule is a route that needs no login. The proxy matches it against the normalised path.
type SkipRule struct {
	// Method is empty for any method.
	Method string
	Path   string
	// Exact matches Path only; otherwise Path is a prefix on a segment boundary.
	Exact bool
}

func (r SkipRule) String() string {
	s := r.Path
	if r.Exact {
		s = "=" + s
	}
	if r.Method != "" {
		s = r.Method + " " + s
	}
	return s
}

var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

// ParseSkipRule parses "[METHOD ]/prefix" or "[METHOD ]=/exact".
func ParseSkipRule(s string) (SkipRule, error) {
	var r SkipRule
	rest := strings.TrimSpace(s)
	if m, p, ok := strings.Cut(rest, " "); ok {
		if !slices.Contains(methods, m) {
			return r, fmt.Errorf("%q: method %q is not one of %s", s, m, strings.Join(methods, ", "))
		}
		r.Method, rest = m, strings.TrimSpace(p)
	}
	if strings.HasPrefix(rest, "=") {
		r.Exact, rest = true, rest[1:]
	}
	if !strings.HasPrefix(rest, "/") || strings.ContainsAny(rest, "?#%\\ \t\r\n") || strings.Contains(rest, "//") {
		return r, fmt.Errorf("%q: path must start with '/' and hold no '?', '#', '%%', '\\', '//' or spaces", s)
	}
	for _, seg := range strings.Split(rest, "/") {
		if seg == "." || seg == ".." {
			return r, fmt.Errorf("%q: path must not contain dot segments", s)
		}
	}
	// A request path holding these never skips authentication (see proxy.NormalisePath), so a
	// rule holding them could never match.
	if strings.ContainsFunc(rest, func(c rune) bool { return c < 0x20 || c == 0x7f || c == ';' }) {
		return r, fmt.Errorf("%q: path must not contain ';' or control characters", s)
	}
	r.Path = rest
	return r, nil
}

// DecodeCookieSecret returns the key bytes of a cookie secret: base64 (standard or URL, padded or
// not) when that decodes to a valid AES key length, otherwise the raw bytes.
func DecodeCookieSecret(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && validKeyLen(len(b)) {
			return b, nil
		}
	}
	if validKeyLen(len(s)) {
		return []byte(s), nil
	}
	return nil, fmt.Errorf("must be 16, 24 or 32 bytes, raw or base64-encoded (got %d characters)", len(s))
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }

func checkListenAddr(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not 1-65535", port)
	}
	return nil
}

// Validate reports every problem at once, each naming its flag, so a bad configuration is fixed in
// one round. It expects secrets already loaded (see LoadSecretFiles).
func (o *Options) Validate() error { return o.validate(true) }

// ValidateWithoutSecrets is Validate minus the secret checks. The injector uses it on the options it
// renders into a pod: the secrets reach the sidecar as environment variables from a Secret the
// injector never reads, so only the sidecar itself can check them.
func (o *Options) ValidateWithoutSecrets() error { return o.validate(false) }

func (o *Options) validate(checkSecrets bool) error {
	var errs []error
	fail := func(flag string, err error) { errs = append(errs, &FlagError{Flag: flag, Err: err}) }
	bad := func(flag, format string, a ...any) { fail(flag, fmt.Errorf(format, a...)) }
	if o.IssuerURL == "" {
		fail(FlagIssuerURL, ErrRequired)
	} else if err := checkHTTPURL(o.IssuerURL); err != nil {
		fail(FlagIssuerURL, err)
	}
	if o.DiscoveryURL != "" {
		if err := checkHTTPURL(o.DiscoveryURL); err != nil {
			fail(FlagDiscoveryURL, err)
		}
	}
	if o.ClientID == "" {
		fail(FlagClientID, ErrRequired)
	}
	if checkSecrets {
		if o.CookieSecret == "" {
			fail(FlagCookieSecret, fmt.Errorf("%w (or --%s, or %s)", ErrRequired, FlagCookieSecretFile, EnvVar(FlagCookieSecret)))
		} else if _, err := DecodeCookieSecret(o.CookieSecret); err != nil {
			fail(FlagCookieSecret, err)
		}
	}
	if !cookieNameRE.MatchString(o.CookieName) {
		bad(FlagCookieName, "%q must be 1-64 letters, digits, '_' or '-'", o.CookieName)
	}
	if o.CookieExpire < time.Minute {
		bad(FlagCookieExpire, "%s is shorter than one minute", o.CookieExpire)
	}
	if !slices.Contains(o.Scopes, "openid") {
		bad(FlagScope, "must include openid")
	}
	if o.AdminAddr != "" {
		if err := checkListenAddr(o.AdminAddr); err != nil {
			bad(FlagAdminAddr, "%q: %v", o.AdminAddr, err)
		}
	}
	if o.ForwardAuthAddr != "" {
		if err := checkListenAddr(o.ForwardAuthAddr); err != nil {
			bad(FlagForwardAuthAddr, "%q: %v", o.ForwardAuthAddr, err)
		}
	}
	seen := map[string]string{}
	claim := func(flag, addr string) {
		if addr == "" {
			return
		}
		_, port, _ := net.SplitHostPort(addr)
		if prev, dup := seen[port]; dup {
			bad(flag, "port %s of %q is already used by --%s", port, addr, prev)
		}
		seen[port] = flag
	}
	claim(FlagAdminAddr, o.AdminAddr)
	claim(FlagForwardAuthAddr, o.ForwardAuthAddr)
	for _, p := range o.Proxies {
		claim(FlagProxy, p.Listen)
	}
	o.validateRoutes(bad)
	names := map[string]bool{}
	for _, p := range o.Probes {
		if names[p.Name] {
			bad(FlagProbe, "name %q is used twice", p.Name)
		}
		names[p.Name] = true
	}
	for _, h := range o.ProbeHeaders {
		if err := h.check(); err != nil {
			bad(FlagProbeHeader, "%v", err)
		} else if !names[h.Probe] {
			bad(FlagProbeHeader, "%q names no --%s", h.String(), FlagProbe)
		}
	}
	if o.MaxHeaderBytes < 1024 {
		bad(FlagMaxHeaderBytes, "%d is below 1024", o.MaxHeaderBytes)
	}
	if o.MemoryLimit < 0 {
		bad(FlagMemoryLimit, "%d must not be negative", o.MemoryLimit)
	}
	if o.MaxConnections < 0 {
		bad(FlagMaxConnections, "%d must not be negative", o.MaxConnections)
	}
	for _, r := range o.AllowedRoles {
		if r == "" || strings.Count(r, ":") > 1 || strings.HasPrefix(r, ":") || strings.HasSuffix(r, ":") {
			bad(FlagAllowedRole, "%q is not ROLE or CLIENT:ROLE", r)
		}
	}
	for _, g := range o.AllowedGroups {
		if strings.Trim(g, "/") == "" {
			bad(FlagAllowedGroup, "%q is empty", g)
		}
	}
	for _, d := range o.AllowedEmailDomains {
		if d == "" || strings.ContainsAny(d, "@ /") {
			bad(FlagAllowedEmailDomain, "%q is not a domain (or *)", d)
		}
	}
	if o.UserClaim == "" {
		bad(FlagUserClaim, "is empty")
	}
	if o.GroupsClaim == "" {
		bad(FlagGroupsClaim, "is empty")
	}
	if o.RedirectURL != "" {
		if err := checkHTTPURL(o.RedirectURL); err != nil {
			fail(FlagRedirectURL, err)
		}
	}
	for _, h := range o.AllowedRedirectHosts {
		if err := CheckRedirectHost(h); err != nil {
			bad(FlagAllowedRedirectHost, "%v", err)
		}
	}
	if o.CookieDomain != "" {
		if d := strings.TrimPrefix(o.CookieDomain, "."); !isDNSName(d) || !strings.Contains(d, ".") {
			bad(FlagCookieDomain, "%q is not a domain name with at least two labels (browsers refuse cookies for a top-level domain)", o.CookieDomain)
		}
	}
	if o.UpstreamTimeout <= 0 {
		bad(FlagUpstreamTimeout, "%s must be positive", o.UpstreamTimeout)
	}
	if o.JWKSRefreshMinInterval < 0 {
		bad(FlagJWKSRefreshMinPeriod, "%s must not be negative", o.JWKSRefreshMinInterval)
	}
	if o.ShutdownGracePeriod < 0 {
		bad(FlagShutdownGracePeriod, "%s must not be negative", o.ShutdownGracePeriod)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, o.LogLevel) {
		bad(FlagLogLevel, "%q is not debug, info, warn or error", o.LogLevel)
	}
	if !slices.Contains([]string{"json", "console"}, o.LogFormat) {
		bad(FlagLogFormat, "%q is not json or console", o.LogFormat)
	}
	return errors.Join(errs...)
}

// validateRoutes checks what a single --route cannot: the rules' order, and that every request of a
// listener without upstream has somewhere to go.
func (o *Options) validateRoutes(bad func(flag, format string, a ...any)) {
	if err := route.CheckOrder(o.Routes); err != nil {
		for _, e := range unjoin(err) {
			bad(FlagRoute, "%v", e)
		}
	}
	for _, p := range o.Proxies {
		if p.Upstream != nil {
			continue
		}
		if len(o.Routes) == 0 {
			bad(FlagProxy, "%q has no upstream, and there is no --%s to serve on it", p.String(), FlagRoute)
		}
		if len(o.SkipAuth) > 0 {
			bad(FlagSkipAuth, "%q has no upstream: a skipped request carries no identity to route by, so --%s needs every --%s to have one", p.String(), FlagSkipAuth, FlagProxy)
		}
	}
}

// unjoin returns the errors an errors.Join holds, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// CheckRedirectHost accepts what --allowed-redirect-host may hold: a host name or IP address with
// an optional port, or "*.domain" / ".domain" for the domain and every host under it. A value no
// URL host could ever match (a bare "*", a wildcard inside a label or under a single label, empty
// labels, characters no host has) is an error: silently accepting it would leave the operator
// believing a redirect target is allowed.
func CheckRedirectHost(h string) error {
	host, wildcard := h, false
	switch {
	case strings.HasPrefix(h, "*."):
		host, wildcard = h[2:], true
	case strings.HasPrefix(h, "."):
		host, wildcard = h[1:], true
	}
	if p := strings.LastIndexByte(host, ':'); p >= 0 && !strings.Contains(host, "]") {
		if wildcard {
			return fmt.Errorf("%q: a wildcard is matched against host names without their port; drop the port", h)
		}
		if n, err := strconv.Atoi(host[p+1:]); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q is not 1-65535", h, host[p+1:])
		}
		host = host[:p]
	}
	if wildcard && !strings.Contains(host, ".") {
		return fmt.Errorf("%q: a wildcard needs a domain of at least two labels (it would allow a whole top-level domain)", h)
	}
	if !isDNSName(host) && (wildcard || net.ParseIP(strings.Trim(host, "[]")) == nil) {
		return fmt.Errorf("%q is not a host name, an IP address, *.domain or .domain", h)
	}
	return nil
}

// isDNSName: dot-separated labels of 1-63 letters, digits and '-', not starting or ending with '-'.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.User != nil || u.Fragment != "" || u.RawQuery != "" {
		return fmt.Errorf("%q must not carry user info, a query or a fragment", s)
	}
	return nil
}

// LoadSecretFiles reads the *-file flags into the secret fields, trimming one trailing newline as
// Kubernetes Secrets mounted from files often carry one. A secret given both ways is an error:
// silently preferring one would hide a mistake.
func (o *Options) LoadSecretFiles() error {
	var errs []error
	load := func(flag, path string, dst *string) {
		if path == "" {
			return
		}
		if *dst != "" {
			errs = append(errs, &FlagError{Flag: flag, Err: fmt.Errorf("set either it or --%s, not both", strings.TrimSuffix(flag, "-file"))})
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &FlagError{Flag: flag, Err: err})
			return
		}
		*dst = strings.TrimRight(string(b), "\r\n")
	}
	load(FlagClientSecretFile, o.ClientSecretFile, &o.ClientSecret)
	load(FlagCookieSecretFile, o.CookieSecretFile, &o.CookieSecret)
	return errors.Join(errs...)
}

// EffectiveAudiences returns the audiences a token may carry.
func (o *Options) EffectiveAudiences() []string {
	if len(o.Audiences) > 0 {
		return o.Audiences
	}
	return []string{o.ClientID}
}

// EffectiveCookieName applies the "__Host-" prefix when the cookie is Secure and host-only.
func (o *Options) EffectiveCookieName() string {
	if o.CookieSecure && o.CookieDomain == "" {
		return "__Host-" + o.CookieName
	}
	return o.CookieName
}

func envName(flag string) string {
	return strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// EnvVar returns the environment variable that sets flag, e.g. PODGATE_COOKIE_SECRET.
func EnvVar(flag string) string { return EnvPrefix + envName(flag) }
