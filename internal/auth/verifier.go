package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/podgate/podgate/internal/cache"
)

// Skew is the clock difference tolerated on exp and nbf. Small on purpose: go-oidc's own five
// minutes on nbf is generous for a pod whose clock is NTP-synchronised with the IdP's.
const Skew = 30 * time.Second

// Verification errors. They all mean 401: a token that fails any check is simply not a credential.
var (
	ErrExpired     = errors.New("token expired")
	ErrNotYetValid = errors.New("token not yet valid")
	ErrAudience    = errors.New("token audience not accepted")
	ErrNonce       = errors.New("id token nonce does not match")
)

// Verifier checks JWTs offline: signature with the provider's keys (go-oidc with our KeySet, so
// only AllowedAlgorithms parse), issuer, audience, exp and nbf. Verified bearer tokens are cached
// until they expire, keyed by a SHA-256 of the token, so the hot path is a hash and a map lookup.
type Verifier struct {
	oidc      *oidc.IDTokenVerifier
	audiences []string
	names     ClaimNames
	now       func() time.Time
	cache     *cache.Cache[*Identity]
	// OnCache is told whether a bearer verification was served from the cache.
	OnCache func(hit bool)
}

// VerifierConfig configures NewVerifier.
type VerifierConfig struct {
	Issuer    string
	Audiences []string
	Names     ClaimNames
	// CacheSize bounds the number of cached verified tokens (default 10000).
	CacheSize int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// NewVerifier returns a verifier using keys.
func NewVerifier(keys *KeySet, c VerifierConfig) *Verifier {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	size := c.CacheSize
	if size <= 0 {
		size = 10000
	}
	algs := make([]string, len(AllowedAlgorithms))
	for i, a := range AllowedAlgorithms {
		algs[i] = string(a)
	}
	return &Verifier{
		// go-oidc checks signature and issuer; audience, exp and nbf are checked here, with
		// several accepted audiences and a small symmetric skew.
		oidc: oidc.NewVerifier(c.Issuer, keys, &oidc.Config{
			SkipClientIDCheck: true, SkipExpiryCheck: true, SupportedSigningAlgs: algs, Now: now,
		}),
		audiences: c.Audiences,
		names:     c.Names,
		now:       now,
		cache:     cache.New[*Identity](size),
	}
}

// verify checks signature, issuer, exp and nbf and returns the claims.
func (v *Verifier) verify(ctx context.Context, raw string) (Claims, error) {
	tok, err := v.oidc.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	var c Claims
	if err := tok.Claims(&c); err != nil {
		return nil, err
	}
	now := v.now()
	exp, ok := c.Time("exp")
	if !ok {
		return nil, fmt.Errorf("%w: no exp claim", ErrExpired)
	}
	if now.After(exp.Add(Skew)) {
		return nil, ErrExpired
	}
	if nbf, ok := c.Time("nbf"); ok && now.Add(Skew).Before(nbf) {
		return nil, ErrNotYetValid
	}
	return c, nil
}

// VerifyBearer verifies an access token presented by a client and returns its identity. ID and
// refresh tokens are refused even when signed by the provider for this client (isAccessToken).
func (v *Verifier) VerifyBearer(ctx context.Context, raw string) (*Identity, error) {
	key := sha256.Sum256([]byte(raw))
	now := v.now()
	if id, ok := v.cache.Get(key, now); ok {
		v.report(true)
		return id, nil
	}
	v.report(false)
	hdr, err := ParseTokenHeader(raw)
	if err != nil {
		return nil, err
	}
	c, err := v.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if !isAccessToken(hdr, c) {
		return nil, ErrNotAccessToken
	}
	if !slices.ContainsFunc(c.Audiences(), func(a string) bool { return slices.Contains(v.audiences, a) }) {
		return nil, ErrAudience
	}
	id := c.Identity(v.names)
	v.cache.Put(key, id, id.Expiry.Add(Skew), now)
	return id, nil
}

func (v *Verifier) report(hit bool) {
	if v.OnCache != nil {
		v.OnCache(hit)
	}
}

// VerifyIDToken verifies an ID token from the token endpoint: audience must include clientID
// and, when nonce is not empty, the nonce claim must equal it.
func (v *Verifier) VerifyIDToken(ctx context.Context, raw, clientID, nonce string) (Claims, error) {
	c, err := v.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(c.Audiences(), clientID) {
		return nil, ErrAudience
	}
	if nonce != "" && c.String("nonce") != nonce {
		return nil, ErrNonce
	}
	return c, nil
}

// VerifyAccessToken verifies an access token received from the token endpoint. Its audience is
// not checked (Keycloak puts "account" there unless an audience mapper is set, and this token came
// straight from the provider); it is read for the roles the ID token usually lacks.
func (v *Verifier) VerifyAccessToken(ctx context.Context, raw string) (Claims, error) {
	return v.verify(ctx, raw)
}

// Names returns the claim names identities are built with.
func (v *Verifier) Names() ClaimNames { return v.names }
