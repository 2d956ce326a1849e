package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// AllowedAlgorithms are the only JWS algorithms a token may use: asymmetric signatures. "none" and
// the HMAC family are absent on purpose: an HMAC "signature" keyed with a public key (the classic
// algorithm-confusion attack) can be forged by anyone who has fetched the JWKS.
var AllowedAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
}

// ErrUnknownKey means the token names a key id the key set does not hold, even after the
// (rate-limited) refetch.
var ErrUnknownKey = errors.New("token signed by an unknown key")

// KeySet is the provider's JWKS, cached in memory. An unknown key id triggers at most one refetch
// per MinInterval, so key rotation needs no restart while a flood of tokens with random key ids
// cannot turn the sidecar into a JWKS amplifier against the IdP. Fetch failures keep the keys
// already held, so tokens keep verifying while the IdP is briefly down.
//
// A fetch belongs to no request: it runs on its own context with its own timeout, and a request
// that triggered or joined it only waits for it. Were it bound to the triggering request, a client
// sending random key ids and hanging up would cancel every fetch while still starting the rate-limit
// window, and a real rotation would go unlearned until the periodic refresh, refusing every new
// token, logins included. For the same reason the window starts when a fetch completes, never when
// one starts.
type KeySet struct {
	client      *http.Client
	minInterval time.Duration
	now         func() time.Time
	// OnFetch is told the result of every fetch attempt ("ok", "error", "ratelimited").
	OnFetch func(result string)

	mu   sync.RWMutex
	keys []jose.JSONWebKey

	fetchMu  sync.Mutex // guards url, flight and lastDone
	url      string
	flight   *fetchFlight // the fetch in progress, shared by every caller meanwhile
	lastDone time.Time    // when the last fetch completed
}

// fetchFlight is one fetch; done is closed once err is set and any new keys are stored.
type fetchFlight struct {
	done chan struct{}
	err  error
}

// fetchTimeout bounds one fetch, whoever waits for it.
const fetchTimeout = 10 * time.Second

// NewKeySet returns an empty key set reading url with client. The url may be set later with
// SetURL, once discovery has found it.
func NewKeySet(url string, client *http.Client, minInterval time.Duration) *KeySet {
	return &KeySet{url: url, client: client, minInterval: minInterval, now: time.Now}
}

// SetURL changes where keys are fetched from (from the next fetch on).
func (k *KeySet) SetURL(url string) {
	k.fetchMu.Lock()
	k.url = url
	k.fetchMu.Unlock()
}

// Refresh fetches the key set now, regardless of the rate limit (start-up, periodic refresh), or
// joins the fetch already in progress. ctx bounds the wait, not the fetch.
func (k *KeySet) Refresh(ctx context.Context) error {
	k.fetchMu.Lock()
	f := k.startLocked()
	k.fetchMu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startLocked returns the fetch in progress, starting one when there is none. fetchMu is held.
func (k *KeySet) startLocked() *fetchFlight {
	if k.flight != nil {
		return k.flight
	}
	f := &fetchFlight{done: make(chan struct{})}
	k.flight = f
	go k.run(f, k.url)
	return f
}

func (k *KeySet) run(f *fetchFlight, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	keys, err := k.fetch(ctx, url)
	if err == nil {
		k.mu.Lock()
		k.keys = keys
		k.mu.Unlock()
	}
	k.fetchMu.Lock()
	k.flight, k.lastDone = nil, k.now()
	k.fetchMu.Unlock()
	f.err = err
	close(f.done)
	if err != nil {
		k.report("error")
	} else {
		k.report("ok")
	}
}

func (k *KeySet) report(result string) {
	if k.OnFetch != nil {
		k.OnFetch(result)
	}
}

func (k *KeySet) fetch(ctx context.Context, url string) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching keys: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading keys: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching keys: status %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decoding keys: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, key := range set.Keys {
		// Only public signature keys: a symmetric ("oct") or encryption key in a JWKS must
		// never become a verification key.
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		switch key.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("key set holds no usable signature keys")
	}
	return keys, nil
}

// candidates returns the keys a token with this key id may be verified with.
func (k *KeySet) candidates(kid string) []jose.JSONWebKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if kid == "" {
		return k.keys
	}
	for _, key := range k.keys {
		if key.KeyID == kid {
			return []jose.JSONWebKey{key}
		}
	}
	return nil
}

// VerifySignature implements oidc.KeySet: it parses jwt, restricted to AllowedAlgorithms, finds
// the key by id (refetching once, rate-limited, when the id is unknown) and verifies.
func (k *KeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSigned(jwt, AllowedAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must carry exactly one signature")
	}
	hdr := jws.Signatures[0].Header
	keys := k.candidates(hdr.KeyID)
	if len(keys) == 0 {
		keys = k.refetchFor(ctx, hdr.KeyID)
	}
	if len(keys) == 0 {
		return nil, ErrUnknownKey
	}
	for _, key := range keys {
		// A key that declares its algorithm only verifies that algorithm.
		if key.Algorithm != "" && key.Algorithm != hdr.Algorithm {
			continue
		}
		if payload, err := jws.Verify(key.Key); err == nil {
			return payload, nil
		}
	}
	return nil, errors.New("signature does not verify")
}

// refetchFor starts (or joins) a refetch for an unknown key id, unless a fetch completed less than
// minInterval ago, and waits for it as long as the request lasts.
func (k *KeySet) refetchFor(ctx context.Context, kid string) []jose.JSONWebKey {
	k.fetchMu.Lock()
	// Another request's fetch may have brought the key while this one waited for the lock.
	if keys := k.candidates(kid); len(keys) > 0 {
		k.fetchMu.Unlock()
		return keys
	}
	f := k.flight
	if f == nil {
		if !k.lastDone.IsZero() && k.now().Sub(k.lastDone) < k.minInterval {
			k.fetchMu.Unlock()
			k.report("ratelimited")
			return nil
		}
		f = k.startLocked()
	}
	k.fetchMu.Unlock()
	select {
	case <-f.done:
		return k.candidates(kid)
	case <-ctx.Done():
		return nil
	}
}
