package proxy

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/podgate/podgate/internal/auth"
	"github.com/podgate/podgate/internal/session"
)

// Endpoint paths, compatible with oauth2-proxy's.
const (
	PathStart    = "/oauth2/start"
	PathCallback = "/oauth2/callback"
	PathSignIn   = "/oauth2/sign_in"
	PathSignOut  = session.SignOutPath
	PathUserInfo = "/oauth2/userinfo"
	PathAuth     = "/oauth2/auth"
)

// Endpoints serves the /oauth2/* endpoints. Identity headers are stripped first here too.
func (h *Handler) Endpoints() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(PathStart, h.start)
	mux.HandleFunc(PathCallback, h.callback)
	mux.HandleFunc(PathSignIn, h.signIn)
	mux.HandleFunc(PathSignOut, h.signOut)
	mux.HandleFunc(PathUserInfo, h.userInfo)
	mux.HandleFunc(PathAuth, h.forwardAuth)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stripSpoofable(r.Header)
		mux.ServeHTTP(w, r)
	})
}

// ForwardAuth is the handler of a forward-auth-only listener: /oauth2/* and nothing else.
func (h *Handler) ForwardAuth() http.Handler {
	ep := h.Endpoints()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/oauth2/") {
			http.NotFound(w, r)
			return
		}
		ep.ServeHTTP(w, r)
	})
}

func (h *Handler) clientContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, h.cfg.Provider.HTTPClient())
}

func (h *Handler) oauthConfig(callback string) *oauth2.Config {
	ep := h.cfg.Provider.Endpoints()
	c := &oauth2.Config{ClientID: h.cfg.ClientID, ClientSecret: h.cfg.ClientSecret, Scopes: h.cfg.Scopes, RedirectURL: callback}
	if ep != nil {
		c.Endpoint = oauth2.Endpoint{AuthURL: ep.Auth, TokenURL: ep.Token}
	}
	return c
}

// origin returns scheme://host of the request as the browser sees it. The scheme comes from
// X-Forwarded-Proto when an ingress set it to http or https, else from TLS or --cookie-secure.
func (h *Handler) origin(r *http.Request) string {
	scheme := "http"
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	} else if r.TLS != nil || h.cfg.CookieSecure {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (h *Handler) callbackURL(r *http.Request) string {
	if h.cfg.RedirectURL != "" {
		return h.cfg.RedirectURL
	}
	return h.origin(r) + PathCallback
}

// redirectTarget validates rd, falling back to "/".
func (h *Handler) redirectTarget(r *http.Request, rd string) string {
	if ValidRedirect(rd, r.Host, h.cfg.AllowedRedirectHosts) {
		return rd
	}
	if rd != "" {
		h.log.Info("redirect target rejected", zap.Int("length", len(rd)))
	}
	return "/"
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// startLogin begins the authorization-code flow: fresh state, nonce and PKCE verifier go into the
// encrypted, short-lived CSRF cookie; the browser goes to the IdP.
func (h *Handler) startLogin(w http.ResponseWriter, r *http.Request, rd string) {
	// An IdP that stopped answering gets the user a clear 503 here rather than a redirect to an
	// address their browser cannot reach (bearer tokens meanwhile verify from cached keys).
	if !h.cfg.Provider.Ready() || !h.cfg.Provider.Reachable(r.Context()) {
		unavailable(w)
		return
	}
	l := &session.Login{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(),
		Redirect: h.redirectTarget(r, rd), Callback: h.callbackURL(r)}
	h.cfg.Store.SaveLogin(w, l)
	u := h.oauthConfig(l.Callback).AuthCodeURL(l.State, oauth2.S256ChallengeOption(l.Verifier), oidc.Nonce(l.Nonce))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u, http.StatusFound)
}

func (h *Handler) start(w http.ResponseWriter, r *http.Request) {
	h.startLogin(w, r, r.URL.Query().Get("rd"))
}

// callback completes the login: the state must match the CSRF cookie's, the code is redeemed with
// the PKCE verifier, the ID token's nonce must match. Only then is the session written.
func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	failed := func(reason string) {
		h.count(OutcomeLoginFailed)
		h.log.Info("login failed", zap.String("reason", reason))
		h.cfg.Store.ClearLogin(w)
	}
	fail := func(code int, msg, reason string) {
		failed(reason)
		httpError(w, code, msg)
	}
	if !h.cfg.Provider.Ready() {
		failed("notReady")
		unavailable(w)
		return
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		fail(http.StatusForbidden, "the identity provider refused the login", "idpError")
		return
	}
	cookies := h.cfg.Store.Cookies(r.Header)
	l, err := h.cfg.Store.LoadLogin(cookies)
	if err != nil {
		fail(http.StatusForbidden, "login expired or started in another browser; start again", "noLoginCookie")
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(l.State)) != 1 {
		fail(http.StatusForbidden, "login state does not match; start again", "stateMismatch")
		return
	}
	ctx := h.clientContext(r.Context())
	tok, err := h.oauthConfig(l.Callback).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(l.Verifier))
	if err != nil {
		h.log.Info("code exchange failed", zap.Error(err))
		// No answer, or a 5xx (an IdP starting up, or its ingress with nothing behind it), means the
		// IdP is down; a 4xx is the IdP refusing the code.
		if re, ok := errors.AsType[*oauth2.RetrieveError](err); !ok || re.Response == nil || re.Response.StatusCode >= 500 {
			failed("unreachable")
			unavailable(w)
			return
		}
		fail(http.StatusBadGateway, "the identity provider did not accept the login code", "exchange")
		return
	}
	idToken, _ := tok.Extra("id_token").(string)
	id, err := h.identityFromTokens(ctx, tok.AccessToken, idToken, l.Nonce)
	if err != nil || idToken == "" {
		h.log.Info("token verification failed", zap.Error(err))
		fail(http.StatusForbidden, "the identity provider's tokens did not verify", "tokens")
		return
	}
	sess := &session.Session{AccessToken: h.kept(tok.AccessToken), RefreshToken: tok.RefreshToken,
		IDToken: idToken, ForwardedIDToken: h.keptIDToken(idToken), Expiry: tok.Expiry, Created: h.now(), Identity: id}
	if err := h.cfg.Store.Save(w, cookies, sess); err != nil {
		fail(http.StatusInternalServerError, "session could not be stored", "save")
		return
	}
	h.cfg.Store.ClearLogin(w)
	// A user the policy refuses keeps the session too, and is redirected like anyone else: the
	// page then answers with the forbidden page (once, with a way to sign out and switch account),
	// the code leaves the address bar, and sign-out has the ID token to end the IdP session. A 403
	// here instead would loop behind Traefik: its errors middleware drops the headers of a 401-403
	// (the session cookie with them) and calls sign_in, which would start the login again. The
	// session grants nothing: every request is authorized again.
	if ok, why := h.cfg.Policy.Allows(id); !ok {
		h.count(OutcomeForbidden)
		h.log.Info("login forbidden", zap.String("reason", why), zap.String("user", id.User))
	} else {
		h.count(OutcomeLoginDone)
		h.log.Info("login completed", zap.String("user", id.User))
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, l.Redirect, http.StatusFound)
}

var forbiddenPage = template.Must(template.New("").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Access denied</title>
<style>body{font-family:sans-serif;max-width:40em;margin:3em auto}</style></head>
<body><h1>Access denied</h1>
<p>You are signed in as <strong>{{.User}}</strong>, but this account is not allowed to open this page.</p>
<form method="post" action="{{.SignOut}}"><button type="submit">Sign out and switch account</button></form>
</body></html>
`))

// forbidden is the one answer to a caller who is signed in but not allowed (why says by what):
// counted, logged, and answered. A browser page load with somewhere to return to (rd) gets one page
// saying who they are signed in as, with a sign-out form that returns to rd (so they can sign in as
// someone else); a gRPC call gets PermissionDenied; anything else, forward-auth's sub-requests
// included (their ingress shows its own page or calls sign_in), a plain 403.
func (h *Handler) forbidden(w http.ResponseWriter, r *http.Request, id *auth.Identity, why error, rd string) {
	h.countRequest(r, OutcomeForbidden)
	h.log.Info("request forbidden", zap.String("reason", why.Error()), zap.String("path", r.URL.Path), zap.String("user", id.User))
	switch {
	case isGRPC(r):
		grpcError(w, grpcPermissionDenied, "signed in but not allowed to call this")
		return
	case rd == "" || !isBrowserNavigation(r):
		httpError(w, http.StatusForbidden, "you are signed in but not allowed to access this")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	_ = forbiddenPage.Execute(w, struct{ User, SignOut string }{id.User, PathSignOut + "?rd=" + url.QueryEscape(rd)})
}

var signInPage = template.Must(template.New("").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={{.}}"><title>Sign in</title></head>
<body><p>Sign-in required. <a href="{{.}}">Continue to sign in</a>.</p></body></html>
`))

// signIn is what Traefik's errors middleware (and nginx's error_page) call after a 401 from
// /oauth2/auth. It answers 302 to /oauth2/start with the original URL, and the same link as an HTML
// meta refresh, because an errors middleware may keep its own 401 status and drop Location.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	rd := h.originalURL(r)
	if p, outcome, err := h.authorize(w, r, h.cfg.Store.Cookies(r.Header)); outcome == OutcomeForbidden {
		h.forbidden(w, r, p.id, err, rd)
		return
	}
	target := PathStart + "?rd=" + url.QueryEscape(rd)
	w.Header().Set("Location", target)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusFound)
	_ = signInPage.Execute(w, target)
}

// originalURL finds where the user was going: rd, X-Auth-Request-Redirect, nginx's X-Original-URL,
// or Traefik's X-Forwarded-Proto/Host/Uri. Each candidate is validated like rd; "/" if none passes.
func (h *Handler) originalURL(r *http.Request) string {
	cands := []string{r.URL.Query().Get("rd"), r.Header.Get("X-Auth-Request-Redirect"), r.Header.Get("X-Original-URL"), forwardedURL(r)}
	if uri := r.Header.Get("X-Forwarded-Uri"); uri != "" && r.Header.Get("X-Forwarded-Host") == "" {
		cands = append(cands, uri)
	}
	for _, c := range cands {
		if c != "" && ValidRedirect(c, r.Host, h.cfg.AllowedRedirectHosts) && !isEndpoint(c) {
			return c
		}
	}
	return "/"
}

var signOutPage = template.Must(template.New("").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Sign out</title></head>
<body><p>Another site asked to sign you out. <a href="{{.}}">Sign out</a></p></body></html>
`))

// crossSite reports whether a request was started by another site: the browser's Sec-Fetch-Site,
// else the Origin or Referer host compared with the request's own (and --allowed-redirect-host). A
// request with none of them (typed URL, old client, referrer stripped) is not cross-site: there is
// nothing to tell, and a plain link from the app's own pages must keep working.
func (h *Handler) crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return false
	case "cross-site":
		return true
	}
	// "same-site" (a sibling subdomain) or no Sec-Fetch-Site: decide on the host that sent it.
	from := r.Header.Get("Origin")
	if from == "" || from == "null" {
		from = r.Header.Get("Referer")
	}
	if from == "" {
		return r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Origin") == "null"
	}
	u, err := url.Parse(from)
	if err != nil || u.Host == "" {
		return true
	}
	return !ValidRedirect(u.Scheme+"://"+u.Host+"/", r.Host, h.cfg.AllowedRedirectHosts)
}

// isEndpoint: the URL is one of the /oauth2/ endpoints. They are never a place to return to after
// login: the errors middleware also catches a failed callback, and returning to that callback (its
// code spent, its state gone) would fail and log in again, forever.
func isEndpoint(rd string) bool {
	u, err := url.Parse(rd)
	return err == nil && strings.HasPrefix(u.Path, "/oauth2/")
}

// forwardedURL is the URL the browser asked for, as Traefik's forwardAuth (and Caddy's forward_auth)
// describe it to the auth server: X-Forwarded-Proto, -Host and -Uri.
func forwardedURL(r *http.Request) string {
	uri, host := r.Header.Get("X-Forwarded-Uri"), r.Header.Get("X-Forwarded-Host")
	if uri == "" || host == "" {
		return ""
	}
	proto := r.Header.Get("X-Forwarded-Proto")
	if proto != "http" {
		proto = "https"
	}
	return proto + "://" + host + uri
}

// redirectsFromAuth reports whether a forward-auth sub-request without credentials may be answered
// with the login redirect itself: a page load by a browser (X-Forwarded-Method GET or HEAD, HTML
// accepted, no XHR), from an ingress that hands the auth server's non-2xx answer to the browser as
// it is. Traefik's forwardAuth does, and says so with X-Forwarded-Uri; nginx's auth_request does not
// (anything but 2xx, 401 and 403 is a 500 there), and nginx, ingress-nginx and podgate's examples
// send X-Original-URL. Answering the redirect here keeps the deep link, which Traefik's errors
// middleware (the 401 path to /oauth2/sign_in) loses unless its query carries {url}.
func redirectsFromAuth(r *http.Request) bool {
	if r.Header.Get("X-Original-URL") != "" || forwardedURL(r) == "" || r.Header.Get("X-Requested-With") != "" {
		return false
	}
	if m := r.Header.Get("X-Forwarded-Method"); m != http.MethodGet && m != http.MethodHead {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// signOut clears the session and, when the IdP has an end-session endpoint, ends the IdP session
// too (id_token_hint, post_logout_redirect_uri), so the next visit really asks for a login.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	rd := h.redirectTarget(r, r.URL.Query().Get("rd"))
	// Sign-out is a GET (a plain link from the app's pages), so any site could embed it and end the
	// user's Keycloak session (logout CSRF). A cross-site request gets a page whose link, followed
	// from this origin, signs out; nothing is cleared until then. The page may not be framed, so
	// the click cannot be hijacked either.
	if h.crossSite(r) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		w.WriteHeader(http.StatusOK)
		_ = signOutPage.Execute(w, PathSignOut+"?rd="+url.QueryEscape(rd))
		return
	}
	cookies := h.cfg.Store.Cookies(r.Header)
	idToken := h.cfg.Store.LoadIDToken(cookies)
	h.cfg.Store.Clear(w, cookies)
	h.cfg.Store.ClearLogin(w)
	w.Header().Set("Cache-Control", "no-store")
	ep := h.cfg.Provider.Endpoints()
	if ep == nil || ep.EndSession == "" {
		http.Redirect(w, r, rd, http.StatusFound)
		return
	}
	back := rd
	if strings.HasPrefix(back, "/") {
		back = h.origin(r) + back
	}
	v := url.Values{"post_logout_redirect_uri": {back}, "client_id": {h.cfg.ClientID}}
	if idToken != "" {
		v.Set("id_token_hint", idToken)
	}
	sep := "?"
	if strings.Contains(ep.EndSession, "?") {
		sep = "&"
	}
	http.Redirect(w, r, ep.EndSession+sep+v.Encode(), http.StatusFound)
}

// userInfo returns the caller's identity as JSON.
func (h *Handler) userInfo(w http.ResponseWriter, r *http.Request) {
	p, outcome, err := h.authenticate(w, r, h.cfg.Store.Cookies(r.Header))
	if err != nil {
		if outcome == OutcomeUnavailable {
			unavailable(w)
			return
		}
		httpError(w, http.StatusUnauthorized, "authentication required")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"user": p.id.User, "email": p.id.Email, "preferredUsername": p.id.PreferredUsername,
		"groups": p.id.Groups, "roles": p.id.Roles,
	})
}

// forwardAuth answers an ingress's sub-request: 202 with identity headers, 401 or 403. Skip rules
// are deliberately not applied: the ingress decides which routes need auth, and matching the
// client-controllable X-Forwarded-Uri against skip rules would let any client pick a skipped path.
func (h *Handler) forwardAuth(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	cookies := h.cfg.Store.Cookies(r.Header)
	p, outcome, err := h.authorize(w, r, cookies)
	var upstream *url.URL
	if err == nil {
		if upstream, err = h.forwardAuthRoute(r, p.id); err != nil {
			outcome = OutcomeForbidden
		}
	}
	h.m.AuthLatency.Observe(h.now().Sub(start))
	w.Header().Set("Cache-Control", "no-store")
	if outcome == OutcomeForbidden {
		// No rd: the ingress answers the browser itself (nginx) or calls sign_in (Traefik).
		h.forbidden(w, r, p.id, err, "")
		return
	}
	h.count(outcome)
	switch {
	case err == nil:
		setIdentity(w.Header(), p.id)
		if h.cfg.PassAccessToken {
			w.Header().Set(HeaderAccessToken, p.accessToken)
			w.Header().Set("Authorization", "Bearer "+p.accessToken)
		}
		if h.cfg.PassIDToken && p.idToken != "" {
			w.Header()[HeaderIDToken] = []string{"Bearer " + p.idToken}
		}
		// The app's cookies without the session, twice: X-Auth-Request-Cookie for nginx
		// (auth_request_set), Cookie for Traefik (authResponseHeaders: [Cookie] replaces the
		// request's Cookie with it, or removes it when absent).
		if app := cookies.App(); app != "" {
			w.Header().Set(HeaderAppCookie, app)
			w.Header().Set("Cookie", app)
		}
		if upstream != nil {
			w.Header().Set(HeaderUpstream, upstream.String())
		}
		w.WriteHeader(http.StatusAccepted)
	case outcome == OutcomeUnavailable:
		unavailable(w)
	case outcome == OutcomeUnauth && redirectsFromAuth(r):
		// The login starts for the host the browser is on (the sub-request's own Host names the
		// auth service): callback and deep link are validated against X-Forwarded-Host.
		fr := *r
		fr.Host = r.Header.Get("X-Forwarded-Host")
		h.startLogin(w, &fr, forwardedURL(r))
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="podgate"`)
		httpError(w, http.StatusUnauthorized, "authentication required")
	}
}
