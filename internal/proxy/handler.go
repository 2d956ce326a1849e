// Package proxy is the sidecar's HTTP side: the authentication middleware in front of the app, the
// oauth2-proxy-compatible /oauth2/* endpoints (login, callback, sign-out, userinfo, forward-auth)
// and the reverse proxy to the app on loopback.
package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"

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

// RefreshMargin: a session's access token is refreshed when it has less than this left.
const RefreshMargin = 30 * time.Second

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
// that), else the session cookie, refreshed first when its access token is about to expire (the
// new cookie is written to w).
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (*principal, string, error) {
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
	sess, err := h.cfg.Store.Load(r)
	if err != nil {
		if !errors.Is(err, session.ErrNoSession) {
			h.cfg.Store.Clear(w, r)
			return nil, OutcomeUnauth, err
		}
		return nil, OutcomeUnauth, errNoCredentials
	}
	now := h.now()
	// A session written while the access token was not forwarded has none; once the configuration
	// forwards it, a refresh fetches one (the app must never get an empty bearer token).
	missing := h.cfg.PassAccessToken && sess.AccessToken == ""
	if missing || now.Add(RefreshMargin).After(sess.Expiry) {
		fresh, err := h.refreshShared(r.Context(), sess)
		if err == nil {
			err = h.cfg.Store.Save(w, r, fresh)
		}
		if err != nil {
			h.count(OutcomeRefreshFailed)
			h.log.Info("session refresh failed", zap.Error(err))
			if missing || now.After(sess.Expiry) {
				h.cfg.Store.Clear(w, r)
				return nil, OutcomeUnauth, err
			}
		} else {
			h.count(OutcomeRefreshed)
			sess = fresh
		}
	}
	return &principal{id: sess.Identity, accessToken: sess.AccessToken, idToken: sess.ForwardedIDToken}, OutcomeCookie, nil
}

// refreshResult is the outcome of redeeming one refresh token, shared by every request that
// carries the same session meanwhile.
type refreshResult struct {
	sess *session.Session
	err  error
}

const (
	// refreshReuse is how long requests still carrying the old cookie (sent before the browser
	// stored the new one) get the refreshed session instead of redeeming the token again — which
	// would fail with Keycloak's refresh-token rotation and multiply load on the token endpoint.
	refreshReuse = 30 * time.Second
	// refreshBackoff is how long a failed refresh is not retried for that session: while the IdP is
	// down, a busy session inside the refresh margin must not hit the token endpoint per request.
	refreshBackoff = 5 * time.Second
	// refreshTimeout bounds one refresh, whichever request waits for it.
	refreshTimeout = 15 * time.Second
)

// refreshShared redeems the session's refresh token once for all concurrent and closely following
// requests carrying it, and returns the new session (a copy: the old one is shared with caches).
func (h *Handler) refreshShared(ctx context.Context, old *session.Session) (*session.Session, error) {
	if old.RefreshToken == "" {
		return nil, errors.New("session has no refresh token")
	}
	key := sha256.Sum256([]byte(old.RefreshToken))
	mu := &h.refreshLocks[int(key[0])%len(h.refreshLocks)]
	mu.Lock()
	defer mu.Unlock()
	now := h.now()
	if res, ok := h.refreshed.Get(key, now); ok {
		return res.sess, res.err
	}
	// The refresh belongs to the session, not to the request that found it due: a browser cancels
	// requests on every navigation, and a cancelled refresh would be shared as a failure with the
	// session's next requests and log the user out. It gets its own deadline instead.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	fresh, err := h.refresh(ctx, old)
	ttl := refreshReuse
	if err != nil {
		ttl = refreshBackoff
	}
	h.refreshed.Put(key, refreshResult{fresh, err}, now.Add(ttl), now)
	return fresh, err
}

// refresh redeems the refresh token and returns the updated session. The identity comes from the
// new tokens only (the ID token completed by the access token, or the access token alone), else
// from userinfo with the new access token; never from the old session, whose roles and groups the
// IdP may have revoked since. It must name the same subject.
func (h *Handler) refresh(ctx context.Context, old *session.Session) (*session.Session, error) {
	ctx = h.clientContext(ctx)
	tok, err := h.oauthConfig("").TokenSource(ctx, &oauth2.Token{RefreshToken: old.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return nil, err
	}
	fresh := *old
	idToken, _ := tok.Extra("id_token").(string)
	id, err := h.identityFromTokens(ctx, tok.AccessToken, idToken, "")
	if err != nil && idToken == "" {
		id, err = h.userInfoIdentity(ctx, tok.AccessToken)
	}
	if err != nil {
		return nil, err
	}
	if id.Subject != old.Identity.Subject {
		return nil, errors.New("refreshed tokens name another subject")
	}
	if idToken != "" {
		fresh.IDToken, fresh.ForwardedIDToken = idToken, idToken
	}
	fresh.ForwardedIDToken = h.keptIDToken(fresh.ForwardedIDToken)
	if id.Expiry.IsZero() || tok.Expiry.Before(id.Expiry) {
		id.Expiry = tok.Expiry
	}
	fresh.AccessToken, fresh.Expiry, fresh.Identity = h.kept(tok.AccessToken), tok.Expiry, id
	if tok.RefreshToken != "" {
		fresh.RefreshToken = tok.RefreshToken
	}
	return &fresh, nil
}

// kept returns the access token to store in the session: only when it is forwarded to the app.
func (h *Handler) kept(accessToken string) string {
	if !h.cfg.PassAccessToken {
		return ""
	}
	return accessToken
}

// keptIDToken returns the ID token to store in the session cookie: only when it is forwarded to
// the app (the ID token cookie, sent to sign-out only, holds it in any case). A session written
// before --pass-id-token was set gets it with its next refresh.
func (h *Handler) keptIDToken(idToken string) string {
	if !h.cfg.PassIDToken {
		return ""
	}
	return idToken
}

// maxUserInfo bounds the userinfo response read.
const maxUserInfo = 1 << 20

// userInfoIdentity asks the provider's userinfo endpoint who accessToken belongs to: the identity
// source when the token response carries no verifiable JWT. The answer comes over the provider
// client's own connection, so it is as trusted as the token endpoint's.
func (h *Handler) userInfoIdentity(ctx context.Context, accessToken string) (*auth.Identity, error) {
	ep := h.cfg.Provider.Endpoints()
	if ep == nil || ep.UserInfo == "" {
		return nil, errors.New("no verifiable token in the token response and no userinfo endpoint")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.UserInfo, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := h.cfg.Provider.HTTPClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("userinfo refused the refreshed access token")
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUserInfo))
	if err != nil {
		return nil, err
	}
	c, err := auth.ParseClaims(body)
	if err != nil {
		return nil, err
	}
	if c.String("sub") == "" {
		return nil, errors.New("userinfo names no subject")
	}
	return c.Identity(h.cfg.Verifier.Names()), nil
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
		if h.skip.match(r.Method, r.URL) {
			h.countRequest(r, OutcomeSkipped)
			h.cfg.Store.StripCookies(r.Header)
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		p, outcome, err := h.authenticate(w, r)
		if err == nil {
			if ok, why := h.cfg.Policy.Allows(p.id); !ok {
				outcome, err = OutcomeForbidden, errForbidden{why}
			}
		}
		h.m.AuthLatency.Observe(time.Since(start))
		if err != nil {
			user := ""
			if p != nil {
				user = p.id.User
			}
			h.deny(w, r, outcome, user, err)
			return
		}
		h.countRequest(r, outcome)
		h.cfg.Store.StripCookies(r.Header)
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
// but not allowed, a redirect to login for a browser page load, 401 otherwise. A gRPC call gets
// the same answers as gRPC statuses, and never a redirect.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request, outcome, user string, err error) {
	if isGRPC(r) {
		h.denyGRPC(w, r, outcome, err)
		return
	}
	switch {
	case outcome == OutcomeUnavailable:
		h.count(outcome)
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, "the identity provider is not reachable yet; try again shortly")
	case outcome == OutcomeForbidden:
		h.log.Info("request forbidden", zap.String("reason", err.Error()), zap.String("path", r.URL.Path))
		h.forbidden(w, r, user, r.URL.RequestURI())
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

// denyGRPC is deny for a gRPC call: Unavailable before the IdP is ready, PermissionDenied when
// authenticated but not allowed, Unauthenticated otherwise. The message says what to send, never
// why a token failed in detail (that goes to the log).
func (h *Handler) denyGRPC(w http.ResponseWriter, r *http.Request, outcome string, err error) {
	h.countRequest(r, outcome)
	switch outcome {
	case OutcomeUnavailable:
		grpcError(w, grpcUnavailable, "the identity provider is not reachable yet; try again shortly")
	case OutcomeForbidden:
		h.log.Info("request forbidden", zap.String("reason", err.Error()), zap.String("path", r.URL.Path))
		grpcError(w, grpcPermissionDenied, "signed in but not allowed to call this")
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

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(http.StatusText(code) + ": " + msg + "\n"))
}
