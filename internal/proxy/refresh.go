package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/podgate/podgate/internal/auth"
	"github.com/podgate/podgate/internal/session"
)

// RefreshMargin: a session's access token is refreshed when it has less than this left.
const RefreshMargin = 30 * time.Second

// refreshIfDue refreshes the session when its access token is about to expire, or when the
// configuration forwards an access token the session does not hold, and writes the new cookie to w.
// A failed refresh keeps the old session while its access token is still valid (the IdP may be
// briefly down); past that, or with no token to forward, the session is cleared and err returned.
func (h *Handler) refreshIfDue(ctx context.Context, w http.ResponseWriter, c session.Cookies, sess *session.Session) (*session.Session, error) {
	now := h.now()
	// A session written while the access token was not forwarded has none; once the configuration
	// forwards it, a refresh fetches one (the app must never get an empty bearer token).
	missing := h.cfg.PassAccessToken && sess.AccessToken == ""
	if !missing && !now.Add(RefreshMargin).After(sess.Expiry) {
		return sess, nil
	}
	fresh, err := h.refreshShared(ctx, sess)
	if err == nil {
		err = h.cfg.Store.Save(w, c, fresh)
	}
	if err == nil {
		h.count(OutcomeRefreshed)
		return fresh, nil
	}
	h.count(OutcomeRefreshFailed)
	h.log.Info("session refresh failed", zap.Error(err))
	if missing || now.After(sess.Expiry) {
		h.cfg.Store.Clear(w, c)
		return nil, err
	}
	return sess, nil
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
