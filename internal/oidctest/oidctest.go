// Package oidctest is an in-process OpenID Connect provider over real HTTP on loopback, for tests
// and benchmarks: discovery, a JWKS that can rotate, an authorize endpoint that logs a configured
// user straight in, a token endpoint (authorization_code with PKCE, refresh_token, password,
// client_credentials), end-session and userinfo. It mints tokens with arbitrary claims, algorithms
// and key ids, so tests can present every kind of bad token. It is not a real IdP: never deploy it.
package oidctest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// User is who the provider logs in. Claims are added to every token issued for the user.
type User struct {
	Subject string
	Claims  map[string]any
}

// Config configures a Provider. Zero values get sensible defaults.
type Config struct {
	ClientID, ClientSecret string
	// Issuer overrides the "iss" of discovery and tokens (default: the server's URL), to test the
	// in-cluster versus external issuer mismatch.
	Issuer string
	// AccessTTL is the access token lifetime (default 5 minutes).
	AccessTTL time.Duration
	// AccessAudience is the access token's "aud" (default the client id).
	AccessAudience []string
	User           User
	// TLS serves HTTPS with a self-signed certificate (see CACertPEM).
	TLS bool
	// Keycloak shapes tokens the way Keycloak 26 issues them: jti, sid, acr and auth_time, the
	// realm's default roles, the "account" client's roles and audience, allowed-origins, scope,
	// at_hash in the ID token and an HS512-signed JWT as refresh token. Sizes measured against such
	// a provider (session cookies, identity headers) are then those a Keycloak realm produces.
	Keycloak bool
	// RefreshWithoutIDToken answers the refresh grant without an id_token (providers may).
	RefreshWithoutIDToken bool
	// OpaqueAccessTokens issues access tokens that are not JWTs (the identity then comes from the
	// ID token or userinfo).
	OpaqueAccessTokens bool
}

// Key is one signing key.
type Key struct {
	ID     string
	Alg    jose.SignatureAlgorithm
	Signer crypto.Signer
}

// Provider is a running test IdP.
type Provider struct {
	srv *httptest.Server
	cfg Config

	// refreshKey signs Keycloak-shaped refresh tokens (Keycloak uses a realm HMAC key for them).
	refreshKey []byte

	mu        sync.Mutex
	keys      []*Key // keys[0] signs; all are published unless unpublished
	published map[string]bool
	codes     map[string]codeGrant
	refresh   map[string]User
	user      User
	lastEnd   url.Values

	down        atomic.Bool
	jwksDelay   atomic.Int64 // nanoseconds the JWKS endpoint waits before answering
	tokenDelay  atomic.Int64 // nanoseconds the token endpoint waits before answering
	jwksFetches atomic.Int64
	tokenCalls  atomic.Int64
}

type codeGrant struct {
	clientID, redirectURI, nonce, challenge string
	user                                    User
}

// Start runs a provider on 127.0.0.1.
func Start(cfg Config) *Provider {
	if cfg.ClientID == "" {
		cfg.ClientID = "app"
	}
	if cfg.AccessTTL == 0 {
		cfg.AccessTTL = 5 * time.Minute
	}
	if cfg.User.Subject == "" {
		cfg.User = User{Subject: "user-1", Claims: map[string]any{
			"preferred_username": "alice", "email": "alice@example.com", "email_verified": true,
			"groups": []string{"/staff"}, "realm_access": map[string]any{"roles": []string{"user"}},
		}}
	}
	p := &Provider{cfg: cfg, published: map[string]bool{}, codes: map[string]codeGrant{}, refresh: map[string]User{}, user: cfg.User,
		refreshKey: make([]byte, 64)}
	_, _ = rand.Read(p.refreshKey)
	p.Rotate(false)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("/jwks", p.jwks)
	mux.HandleFunc("/auth", p.authorize)
	mux.HandleFunc("/token", p.token)
	mux.HandleFunc("/logout", p.endSession)
	mux.HandleFunc("/userinfo", p.userinfo)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	})
	p.srv = httptest.NewUnstartedServer(h)
	// Tests present untrusted certificates on purpose; the handshake errors are expected noise.
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if cfg.TLS {
		p.srv.StartTLS()
	} else {
		p.srv.Start()
	}
	return p
}

// Close stops the server.
func (p *Provider) Close() { p.srv.Close() }

// CACertPEM returns the PEM of the TLS server's certificate (nil without TLS).
func (p *Provider) CACertPEM() []byte {
	if p.srv.Certificate() == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
}

// URL is the server's address (and the issuer unless Config.Issuer is set).
func (p *Provider) URL() string { return p.srv.URL }

// Issuer is the "iss" of discovery and tokens.
func (p *Provider) Issuer() string {
	if p.cfg.Issuer != "" {
		return p.cfg.Issuer
	}
	return p.srv.URL
}

// ClientID returns the configured client id.
func (p *Provider) ClientID() string { return p.cfg.ClientID }

// SetDown makes every endpoint answer 503 (IdP outage) or serve again.
func (p *Provider) SetDown(down bool) { p.down.Store(down) }

// SetDelays makes the JWKS and token endpoints wait before answering (a slow IdP), so tests can
// hang up on a request while the fetch it triggered is still running.
func (p *Provider) SetDelays(jwks, token time.Duration) {
	p.jwksDelay.Store(int64(jwks))
	p.tokenDelay.Store(int64(token))
}

// JWKSFetches counts JWKS requests served.
func (p *Provider) JWKSFetches() int64 { return p.jwksFetches.Load() }

// TokenCalls counts token endpoint requests.
func (p *Provider) TokenCalls() int64 { return p.tokenCalls.Load() }

// SetUser changes who logs in next.
func (p *Provider) SetUser(u User) {
	p.mu.Lock()
	p.user = u
	p.mu.Unlock()
}

// LastEndSession returns the query of the last end-session request.
func (p *Provider) LastEndSession() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastEnd
}

// Rotate makes a new RSA key the signing key. With keepOld the previous keys stay published.
func (p *Provider) Rotate(keepOld bool) *Key {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	key := &Key{ID: randomID(), Alg: jose.RS256, Signer: k}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !keepOld {
		p.published = map[string]bool{}
	}
	p.keys = append([]*Key{key}, p.keys...)
	p.published[key.ID] = true
	return key
}

// AddECKey publishes an ES256 key (not the default signer) and returns it.
func (p *Provider) AddECKey() *Key {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	key := &Key{ID: randomID(), Alg: jose.ES256, Signer: k}
	p.mu.Lock()
	p.keys = append(p.keys, key)
	p.published[key.ID] = true
	p.mu.Unlock()
	return key
}

// NewUnpublishedKey returns a key the JWKS does not hold (a forger's key, or one not yet rotated in).
func NewUnpublishedKey() *Key {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return &Key{ID: randomID(), Alg: jose.RS256, Signer: k}
}

// SigningKey returns the current signing key.
func (p *Provider) SigningKey() *Key {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[0]
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Claims returns the standard claims of an access token for the configured user, valid now.
func (p *Provider) Claims() map[string]any {
	p.mu.Lock()
	u := p.user
	p.mu.Unlock()
	return p.userClaims(u, "Bearer", p.accessAudience())
}

func (p *Provider) accessAudience() any {
	if len(p.cfg.AccessAudience) > 0 {
		return p.cfg.AccessAudience
	}
	return p.cfg.ClientID
}

func (p *Provider) userClaims(u User, typ string, aud any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": p.Issuer(), "sub": u.Subject, "aud": aud, "azp": p.cfg.ClientID, "typ": typ,
		"iat": now.Unix(), "exp": now.Add(p.cfg.AccessTTL).Unix(),
	}
	if p.cfg.Keycloak {
		p.keycloakClaims(c, typ)
	}
	maps.Copy(c, u.Claims)
	if p.cfg.Keycloak && typ == "Bearer" {
		mergeKeycloakRoles(c)
	}
	return c
}

// Mint signs claims with the current signing key.
func (p *Provider) Mint(claims map[string]any) string {
	return MintWith(p.SigningKey(), claims)
}

// MintWith signs claims with key (its ID becomes the kid header).
func MintWith(key *Key, claims map[string]any) string {
	return MintRaw(jose.SigningKey{Algorithm: key.Alg, Key: key.Signer}, key.ID, claims)
}

// MintRaw signs claims with any go-jose signing key (HMAC included, for confusion attacks).
func MintRaw(sk jose.SigningKey, kid string, claims map[string]any) string {
	return MintTyped(sk, kid, "JWT", claims)
}

// MintTyped is MintRaw with the header's "typ" (RFC 9068 access tokens carry "at+jwt").
func MintTyped(sk jose.SigningKey, kid, typ string, claims map[string]any) string {
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(sk, opts)
	if err != nil {
		panic(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return out
}

// MintNone returns an unsigned token with alg "none".
func MintNone(claims map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	b, _ := json.Marshal(claims)
	return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
}

// sleep waits d, or less if the caller hangs up first; it reports whether the caller is still there.
func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	base := p.srv.URL
	writeJSON(w, 200, map[string]any{
		"issuer":                                p.Issuer(),
		"authorization_endpoint":                base + "/auth",
		"token_endpoint":                        base + "/token",
		"jwks_uri":                              base + "/jwks",
		"userinfo_endpoint":                     base + "/userinfo",
		"end_session_endpoint":                  base + "/logout",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		"code_challenge_methods_supported":      []string{"S256"},
	})
}

func (p *Provider) jwks(w http.ResponseWriter, r *http.Request) {
	p.jwksFetches.Add(1)
	if !sleep(r, time.Duration(p.jwksDelay.Load())) {
		return
	}
	p.mu.Lock()
	var set jose.JSONWebKeySet
	for _, k := range p.keys {
		if p.published[k.ID] {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Signer.Public(), KeyID: k.ID, Algorithm: string(k.Alg), Use: "sig"})
		}
	}
	p.mu.Unlock()
	writeJSON(w, 200, set)
}

// authorize logs the configured user in at once and redirects back with a code.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || q.Get("client_id") != p.cfg.ClientID || q.Get("redirect_uri") == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "PKCE S256 required", http.StatusBadRequest)
		return
	}
	code := randomID()
	p.mu.Lock()
	p.codes[code] = codeGrant{clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"),
		nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), user: p.user}
	p.mu.Unlock()
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (p *Provider) clientAuthOK(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == p.cfg.ClientID && subtle.ConstantTimeCompare([]byte(secret), []byte(p.cfg.ClientSecret)) == 1
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	p.tokenCalls.Add(1)
	if !sleep(r, time.Duration(p.tokenDelay.Load())) {
		return
	}
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		writeJSON(w, 400, map[string]string{"error": "invalid_request"})
		return
	}
	if !p.clientAuthOK(r) {
		writeJSON(w, 401, map[string]string{"error": "invalid_client"})
		return
	}
	f := r.PostForm
	var u User
	nonce := ""
	withID := true
	switch f.Get("grant_type") {
	case "authorization_code":
		p.mu.Lock()
		g, ok := p.codes[f.Get("code")]
		delete(p.codes, f.Get("code")) // single use
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		if !ok || g.redirectURI != f.Get("redirect_uri") || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
			return
		}
		u, nonce = g.user, g.nonce
	case "refresh_token":
		p.mu.Lock()
		_, ok := p.refresh[f.Get("refresh_token")]
		u = p.user // what the IdP knows now: roles removed since the login are gone
		p.mu.Unlock()
		if !ok {
			writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
			return
		}
		withID = !p.cfg.RefreshWithoutIDToken
	case "password":
		p.mu.Lock()
		u = p.user
		p.mu.Unlock()
		if f.Get("username") == "" || f.Get("password") == "" {
			writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
			return
		}
	case "client_credentials":
		u, withID = User{Subject: "service-account-" + p.cfg.ClientID, Claims: map[string]any{"preferred_username": "service-account-" + p.cfg.ClientID}}, false
	default:
		writeJSON(w, 400, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	at := p.Mint(p.userClaims(u, "Bearer", p.accessAudience()))
	if p.cfg.OpaqueAccessTokens {
		at = randomID()
	}
	resp := map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   int(p.cfg.AccessTTL.Seconds()),
	}
	if withID {
		idc := p.userClaims(u, "ID", p.cfg.ClientID)
		if nonce != "" {
			idc["nonce"] = nonce
		}
		// Like Keycloak's, roles stay out of the ID token.
		delete(idc, "realm_access")
		delete(idc, "resource_access")
		delete(idc, "allowed-origins")
		delete(idc, "scope")
		if p.cfg.Keycloak {
			idc["at_hash"] = atHash()
		}
		resp["id_token"] = p.Mint(idc)
	}
	if withID || f.Get("grant_type") == "refresh_token" {
		rt := randomID()
		if p.cfg.Keycloak {
			rt = p.keycloakRefreshToken(u)
		}
		p.mu.Lock()
		p.refresh[rt] = u
		p.mu.Unlock()
		resp["refresh_token"] = rt
	}
	writeJSON(w, 200, resp)
}

func (p *Provider) endSession(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.lastEnd = r.URL.Query()
	p.mu.Unlock()
	if back := r.URL.Query().Get("post_logout_redirect_uri"); back != "" {
		http.Redirect(w, r, back, http.StatusFound)
		return
	}
	fmt.Fprintln(w, "logged out")
}

func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		writeJSON(w, 401, map[string]string{"error": "invalid_token"})
		return
	}
	p.mu.Lock()
	u := p.user
	p.mu.Unlock()
	writeJSON(w, 200, p.userClaims(u, "", p.cfg.ClientID))
}

// Password runs the password grant and returns the access token (like a CLI client would).
func (p *Provider) Password(username, password string) (string, error) {
	return PasswordGrant(context.Background(), p.srv.Client(), p.srv.URL+"/token",
		Client{ID: p.cfg.ClientID, Secret: p.cfg.ClientSecret}, username, password)
}

// Client is the OAuth client a grant is made for.
type Client struct{ ID, Secret string }

// PasswordGrant runs the password grant against tokenURL and returns the access token: for a
// process that holds no Provider, such as the benchmark's soak, whose IdP runs in another process.
func PasswordGrant(ctx context.Context, hc *http.Client, tokenURL string, c Client, username, password string) (string, error) {
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password},
		"client_id": {c.ID}, "client_secret": {c.Secret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		return "", fmt.Errorf("password grant: %s", resp.Status)
	}
	return body.AccessToken, nil
}
