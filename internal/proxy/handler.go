// Package proxy is the sidecar's HTTP side: the authentication middleware in front of the app, the
// oauth2-proxy-compatible /oauth2/* endpoints (login, callback, sign-out, userinfo, forward-auth)
// and the reverse proxy to the app on loopback.
package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/podgate/podgate/internal/auth"
	"github.com/podgate/podgate/internal/cache"
	"github.com/podgate/podgate/internal/metrics"
	"github.com/podgate/podgate/internal/options"
	"github.com/podgate/podgate/internal/route"
	"github.com/podgate/podgate/internal/session"
)

// Request outcomes, the label values of podgate_requests_total.
const (
	OutcomeBearer        = "bearer"
	OutcomeCookie        = "cookie"
	OutcomeSkipped       = "skipped"
	OutcomeLoginRedirect = "login_redirect"
	OutcomeUnauth        = "unauthenticated"
	OutcomeInvalidToken  = "invalid_token"
	OutcomeForbidden     = "forbidden"
	OutcomeUnavailable   = "unavailable"
	OutcomeLoginDone     = "login_completed"
	OutcomeLoginFailed   = "login_failed"
	OutcomeRefreshed     = "refreshed"
	OutcomeRefreshFailed = "refresh_failed"
	// OutcomeOverCapacity is a connection refused past --max-connections (counted per connection).
	OutcomeOverCapacity = "over_capacity"
)

// Config wires a Handler.
type Config struct {
	Verifier *auth.Verifier
	Provider *auth.Provider
	Store    *session.Store
	Policy   auth.Policy

	ClientID, ClientSecret string
	Scopes                 []string
	// RedirectURL is the fixed callback URL; empty derives it from each request.
	RedirectURL          string
	AllowedRedirectHosts []string
	SkipAuth             []options.SkipRule
	PassAccessToken      bool
	CookieSecure         bool
	// Routes pick each authenticated request's upstream (see Routes); UpstreamTimeout bounds the
	// wait for a routed upstream's response headers.
	Routes          []route.Rule
	UpstreamTimeout time.Duration
	// PassIDToken sends a session's ID token in HeaderIDToken (Backstage's oauth2-proxy provider).
	PassIDToken bool

	Metrics *metrics.Sidecar
	Log     *zap.Logger
	Now     func() time.Time
}

// Handler authenticates requests. It is shared by every listener of the process.
type Handler struct {
	cfg Config
	// refreshed and refreshLocks make one token-endpoint call per session refresh.
	refreshed    *cache.Cache[refreshResult]
	refreshLocks [64]sync.Mutex
	skip         skipMatcher
	routing      *routing
	now          func() time.Time
	m            *metrics.Sidecar
	log          *zap.Logger
}

// New returns a Handler.
func New(cfg Config) *Handler {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	m := cfg.Metrics
	if m == nil {
		m = metrics.NewSidecar()
	}
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	cfg.Log = log
	h := &Handler{cfg: cfg, skip: skipMatcher(cfg.SkipAuth), now: now, m: m, log: log, refreshed: cache.New[refreshResult](10000)}
	if h.routing = newRouting(cfg.Routes, cfg); h.routing != nil {
		m.Registry.NewGaugeFunc("podgate_route_upstreams", "Routed upstreams holding a connection pool.",
			func() float64 { return float64(h.routing.upstreams.Len()) })
		m.Registry.NewGaugeFunc("podgate_route_upstream_evictions", "Routed upstreams dropped (idle connections closed) to stay within the pool limit.",
			func() float64 { return float64(h.routing.upstreams.Evicted()) })
	}
	return h
}

func (h *Handler) count(outcome string) { h.m.Requests.With(outcome).Inc() }

// countRequest counts the outcome of a request on a protected listener, gRPC calls in their own
// series too.
func (h *Handler) countRequest(r *http.Request, outcome string) {
	h.count(outcome)
	if isGRPC(r) {
		h.m.GRPCRequests.With(outcome).Inc()
	}
}

// principal is an authenticated caller.
type principal struct {
	id          *auth.Identity
	accessToken string
	// idToken is the session's ID token when it is forwarded (--pass-id-token); empty otherwise
	// and for bearer tokens.
	idToken string
	bearer  bool
}

var (
	errNoCredentials = errors.New("no credentials")
	errNotReady      = errors.New("identity provider not ready")
)

// authenticate finds the caller's credentials: a bearer token if the request has one (then only
// that), else the session cookie of c (the request's Cookie header, split once), refreshed first
// when its access token is about to expire (the new cookie is written to w).
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, c session.Cookies) (*principal, string, error) {
	if !h.cfg.Provider.Ready() {
		return nil, OutcomeUnavailable, errNotReady
	}
	if tok, ok := bearerToken(r.Header); ok {
		id, err := h.cfg.Verifier.VerifyBearer(r.Context(), tok)
		if err != nil {
			return nil, OutcomeInvalidToken, err
		}
		return &principal{id: id, accessToken: tok, bearer: true}, OutcomeBearer, nil
	}
	sess, err := h.cfg.Store.Load(c)
	if err != nil {
		if !errors.Is(err, session.ErrNoSession) {
			h.cfg.Store.Clear(w, c)
			return nil, OutcomeUnauth, err
		}
		return nil, OutcomeUnauth, errNoCredentials
	}
	if sess, err = h.refreshIfDue(r.Context(), w, c, sess); err != nil {
		return nil, OutcomeUnauth, err
	}
	return &principal{id: sess.Identity, accessToken: sess.AccessToken, idToken: sess.ForwardedIDToken}, OutcomeCookie, nil
}

// authorize is authenticate, then the policy: the one step every request that needs a signed-in
// caller goes through (the protected listeners, forward-auth, sign_in). A caller who is signed in
// but not allowed comes back with OutcomeForbidden and an errForbidden.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, c session.Cookies) (*principal, string, error) {
	p, outcome, err := h.authenticate(w, r, c)
	if err != nil {
		return nil, outcome, err
	}
	if ok, why := h.cfg.Policy.Allows(p.id); !ok {
		return p, OutcomeForbidden, errForbidden{why}
	}
	return p, outcome, nil
}

// identityFromTokens builds the identity from a fresh token response: the ID token (verified,
// nonce checked when given) completed by the access token's claims when it is a JWT (Keycloak puts
// roles there only).
func (h *Handler) identityFromTokens(ctx context.Context, accessToken, idToken, nonce string) (*auth.Identity, error) {
	names := h.cfg.Verifier.Names()
	var id *auth.Identity
	if idToken != "" {
		c, err := h.cfg.Verifier.VerifyIDToken(ctx, idToken, h.cfg.ClientID, nonce)
		if err != nil {
			return nil, err
		}
		id = c.Identity(names)
	} else if nonce != "" {
		return nil, errors.New("token response has no id_token")
	}
	if c, err := h.cfg.Verifier.VerifyAccessToken(ctx, accessToken); err == nil {
		at := c.Identity(names)
		at.Merge(id)
		id = at
	}
	if id == nil {
		return nil, errors.New("no verifiable token in the token response")
	}
	return id, nil
}

// Protect returns the middleware for a protected listener: /oauth2/* endpoints, skip rules, then
// authentication and authorization in front of next (the reverse proxy to the app).
func (h *Handler) Protect(next http.Handler) http.Handler {
	endpoints := h.Endpoints()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stripSpoofable(r.Header)
		if strings.HasPrefix(r.URL.Path, "/oauth2/") {
			endpoints.ServeHTTP(w, r)
			return
		}
		stripRerouting(r.Header)
		cookies := h.cfg.Store.Cookies(r.Header)
		if h.skip.match(r.Method, r.URL) {
			h.countRequest(r, OutcomeSkipped)
			h.cfg.Store.StripCookies(r.Header, cookies)
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		p, outcome, err := h.authorize(w, r, cookies)
		h.m.AuthLatency.Observe(time.Since(start))
		if err != nil {
			h.deny(w, r, p, outcome, err)
			return
		}
		h.countRequest(r, outcome)
		h.cfg.Store.StripCookies(r.Header, cookies)
		setIdentity(r.Header, p.id)
		if h.cfg.PassIDToken && p.idToken != "" {
			r.Header[HeaderIDToken] = []string{"Bearer " + p.idToken}
		}
		// Whatever Authorization the app receives is one the proxy verified, or none: with a cookie
		// session, a client-sent "Authorization: Basic …" or "Bearer<TAB>forged" (not a bearer
		// header to the proxy) would otherwise reach the app next to a real identity, and an app
		// that trusts the header because the proxy sits in front would take it as verified.
		if h.cfg.PassAccessToken {
			r.Header["Authorization"] = []string{"Bearer " + p.accessToken}
		} else {
			delete(r.Header, "Authorization")
		}
		next.ServeHTTP(w, h.withIdentity(r, p.id))
	})
}

type errForbidden struct{ kind string }

func (e errForbidden) Error() string { return "not allowed by " + e.kind + " policy" }

// deny answers a request that may not pass: 503 before the IdP is ready, 403 when authenticated
// but not allowed (p is the caller then), a redirect to login for a browser page load, 401
// otherwise. A gRPC call gets the same answers as gRPC statuses, and never a redirect.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request, p *principal, outcome string, err error) {
	if outcome == OutcomeForbidden {
		h.forbidden(w, r, p.id, err, r.URL.RequestURI())
		return
	}
	if isGRPC(r) {
		h.denyGRPC(w, r, outcome, err)
		return
	}
	switch {
	case outcome == OutcomeUnavailable:
		h.count(outcome)
		unavailable(w)
	case outcome == OutcomeUnauth && isBrowserNavigation(r):
		h.count(OutcomeLoginRedirect)
		h.startLogin(w, r, r.URL.RequestURI())
	default:
		h.count(outcome)
		if outcome == OutcomeInvalidToken {
			h.log.Info("bearer token rejected", zap.Error(err))
			w.Header().Set("WWW-Authenticate", `Bearer realm="podgate", error="invalid_token"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="podgate"`)
		}
		httpError(w, http.StatusUnauthorized, "authentication required")
	}
}

// denyGRPC is deny for an unauthenticated gRPC call: Unavailable before the IdP is ready,
// Unauthenticated otherwise. The message says what to send, never why a token failed in detail
// (that goes to the log).
func (h *Handler) denyGRPC(w http.ResponseWriter, r *http.Request, outcome string, err error) {
	h.countRequest(r, outcome)
	switch outcome {
	case OutcomeUnavailable:
		grpcError(w, grpcUnavailable, msgUnavailable)
	case OutcomeInvalidToken:
		h.log.Info("bearer token rejected", zap.Error(err))
		grpcError(w, grpcUnauthenticated, "invalid bearer token")
	default:
		grpcError(w, grpcUnauthenticated, "authentication required: send the metadata authorization: Bearer <access token>")
	}
}

// isBrowserNavigation: a GET or HEAD that accepts HTML and does not look like an API call. Anything
// else (API clients, XHR, probes, curl) gets a 401: a redirect to the IdP would look like success
// to a kubelet probe and like garbage to a JSON client.
func isBrowserNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	if _, ok := bearerToken(r.Header); ok {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// msgUnavailable is what a caller is told while the identity provider has not been reached.
const msgUnavailable = "the identity provider is not reachable yet; try again shortly"

// unavailable answers while the identity provider has not been reached: nothing can be
// authenticated yet, and the client may retry shortly.
func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	httpError(w, http.StatusServiceUnavailable, msgUnavailable)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(http.StatusText(code) + ": " + msg + "\n"))
}
