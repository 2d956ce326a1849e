package sidecar

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/podgate/podgate/internal/oidctest"
	"github.com/podgate/podgate/internal/options"
)

func TestBearerAccepted(t *testing.T) {
	e := newEnv(t, envOpt{})
	tok := e.idp.Mint(e.idp.Claims())
	resp, body := do(t, nil, "GET", e.proxyURL+"/api", bearer(tok))
	if resp.StatusCode != 200 || body != "upstream says hi" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	up := e.last()
	if up.Header.Get("X-Auth-Request-User") != "alice" || up.Header.Get("X-Auth-Request-Roles") != "user" {
		t.Errorf("identity headers: %v", up.Header)
	}
	if up.Header.Get("Authorization") != "" {
		t.Error("the consumed bearer token was forwarded without --pass-access-token")
	}
	// ES256 keys work too, and a password-grant token (as a CLI would get) is accepted.
	ec := e.idp.AddECKey()
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/api", bearer(oidctest.MintWith(ec, e.idp.Claims()))); resp.StatusCode != 200 {
		t.Errorf("ES256 token: %d", resp.StatusCode)
	}
	pw, err := e.idp.Password("alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/api", bearer(pw)); resp.StatusCode != 200 {
		t.Errorf("password grant token: %d", resp.StatusCode)
	}
}

func TestPassAccessToken(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.PassAccessToken = true }})
	tok := e.idp.Mint(e.idp.Claims())
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/api", bearer(tok)); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	if got := e.last().Header.Get("Authorization"); got != "Bearer "+tok {
		t.Errorf("Authorization upstream = %q", got)
	}
	_, _, _ = e.login("/")
	if got := e.last().Header.Get("Authorization"); !strings.HasPrefix(got, "Bearer ey") {
		t.Errorf("cookie session: Authorization upstream = %q", got)
	}
}

// TestBearerRejected presents every kind of bad token; each must be a 401 (never a 500), carry
// WWW-Authenticate, and never reach the app.
func TestBearerRejected(t *testing.T) {
	e := newEnv(t, envOpt{})
	good := e.idp.Claims()
	// with returns the good claims changed by key/value pairs (a nil value deletes the claim).
	with := func(kv ...any) map[string]any {
		c := map[string]any{}
		for kk, vv := range good {
			c[kk] = vv
		}
		for i := 0; i < len(kv); i += 2 {
			if k := kv[i].(string); kv[i+1] == nil {
				delete(c, k)
			} else {
				c[k] = kv[i+1]
			}
		}
		return c
	}
	key := e.idp.SigningKey()
	der, err := x509.MarshalPKIXPublicKey(key.Signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	valid := e.idp.Mint(good)
	parts := strings.Split(valid, ".")
	sig := []byte(parts[2])
	if sig[5] == 'A' {
		sig[5] = 'B'
	} else {
		sig[5] = 'A'
	}
	now := time.Now()
	cases := map[string]string{
		"alg none":                   oidctest.MintNone(good),
		"HMAC keyed with public PEM": oidctest.MintRaw(jose.SigningKey{Algorithm: jose.HS256, Key: pubPEM}, key.ID, good),
		"HMAC keyed with DER":        oidctest.MintRaw(jose.SigningKey{Algorithm: jose.HS256, Key: der}, key.ID, good),
		"expired":                    e.idp.Mint(with("exp", now.Add(-time.Hour).Unix())),
		"no exp":                     e.idp.Mint(with("exp", nil)),
		"not yet valid":              e.idp.Mint(with("nbf", now.Add(time.Hour).Unix())),
		"wrong issuer":               e.idp.Mint(with("iss", "https://evil.example/realms/x")),
		"issuer trailing slash":      e.idp.Mint(with("iss", e.idp.Issuer()+"/")),
		"wrong audience (account)":   e.idp.Mint(with("aud", "account")),
		"audience list without us":   e.idp.Mint(with("aud", []string{"account", "other"})),
		"tampered payload":           parts[0] + "." + strings.Split(e.idp.Mint(with("preferred_username", "admin")), ".")[1] + "." + parts[2],
		"tampered signature":         parts[0] + "." + parts[1] + "." + string(sig),
		"unknown kid, foreign key":   oidctest.MintWith(oidctest.NewUnpublishedKey(), good),
		"ID token (typ ID)":          e.idp.Mint(with("typ", "ID")),
		"refresh token (typ)":        e.idp.Mint(with("typ", "Refresh")),
		"no typ, nonce (ID token)":   e.idp.Mint(with("typ", nil, "nonce", "n-1")),
		"no typ, at_hash (ID token)": e.idp.Mint(with("typ", nil, "at_hash", "h")),
		"garbage":                    "not.a.jwt",
		"empty":                      "",
		"two dots only":              "..",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			before := e.seenCount()
			resp, _ := do(t, nil, "GET", e.proxyURL+"/api", bearer(tok))
			if resp.StatusCode != 401 {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
			if e.seenCount() != before {
				t.Error("rejected request reached the app")
			}
			// Forward-auth agrees.
			if resp, _ := do(t, nil, "GET", e.faURL+"/oauth2/auth", bearer(tok)); resp.StatusCode != 401 {
				t.Errorf("forward-auth: %d", resp.StatusCode)
			}
		})
	}
	// Nothing above may leak a token into the logs.
	for _, entry := range e.logs.All() {
		for _, f := range entry.Context {
			if strings.Contains(f.String, "eyJ") {
				t.Errorf("log %q field %s holds a token", entry.Message, f.Key)
			}
		}
		if strings.Contains(entry.Message, "eyJ") {
			t.Errorf("log message holds a token: %q", entry.Message)
		}
	}
}

// TestOnlyAccessTokensAsBearer: the provider's ID token carries the client id as audience and is
// handed to the browser (it rides in the sign-out URL); it must not open the API. Access tokens pass
// however they say what they are: RFC 9068's "at+jwt" header or Keycloak's typ claim.
func TestOnlyAccessTokensAsBearer(t *testing.T) {
	e := newEnv(t, envOpt{})
	c, resp, _ := e.login("/")
	if resp.StatusCode != 200 {
		t.Fatal("login failed")
	}
	nr := &http.Client{Jar: c.Jar, CheckRedirect: noRedirect().CheckRedirect}
	resp, _ = do(t, nr, "GET", e.proxyURL+"/oauth2/sign_out", nil)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	idToken := loc.Query().Get("id_token_hint")
	if idToken == "" {
		t.Fatalf("no id_token_hint in the sign-out redirect %s", loc)
	}
	for _, u := range []string{e.proxyURL + "/api", e.faURL + "/oauth2/auth"} {
		if resp, _ := do(t, nil, "GET", u, bearer(idToken)); resp.StatusCode != 401 {
			t.Errorf("ID token from the sign-out URL as bearer on %s: %d, want 401", u, resp.StatusCode)
		}
	}
	key := e.idp.SigningKey()
	sk := jose.SigningKey{Algorithm: key.Alg, Key: key.Signer}
	noTyp := e.idp.Claims()
	delete(noTyp, "typ")
	for name, tok := range map[string]string{
		"typ Bearer claim":        e.idp.Mint(e.idp.Claims()),
		"at+jwt header, no claim": oidctest.MintTyped(sk, key.ID, "at+jwt", noTyp),
		"no typ anywhere":         e.idp.Mint(noTyp),
	} {
		if resp, _ := do(t, nil, "GET", e.proxyURL+"/api", bearer(tok)); resp.StatusCode != 200 {
			t.Errorf("access token (%s): %d, want 200", name, resp.StatusCode)
		}
	}
}

func TestExtraAudience(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.Audiences = []string{"account", "api"} }})
	c := e.idp.Claims()
	c["aud"] = []string{"account"}
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/", bearer(e.idp.Mint(c))); resp.StatusCode != 200 {
		t.Errorf("aud account with --audience=account: %d", resp.StatusCode)
	}
	c["aud"] = e.idp.ClientID()
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/", bearer(e.idp.Mint(c))); resp.StatusCode != 401 {
		t.Errorf("client id no longer accepted once --audience is set: %d", resp.StatusCode)
	}
}

func TestKeyRotationRefetch(t *testing.T) {
	e := newEnv(t, envOpt{})
	before := e.idp.JWKSFetches()
	e.idp.Rotate(false) // the old key is gone from the JWKS, a new one signs
	tok := e.idp.Mint(e.idp.Claims())
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/", bearer(tok)); resp.StatusCode != 200 {
		t.Fatalf("token from rotated key: %d", resp.StatusCode)
	}
	if got := e.idp.JWKSFetches() - before; got != 1 {
		t.Errorf("JWKS fetched %d times for one unknown kid, want 1", got)
	}
	// Cached: the same token again costs no fetch and no signature check.
	for range 3 {
		do(t, nil, "GET", e.proxyURL+"/", bearer(tok))
	}
	if got := e.idp.JWKSFetches() - before; got != 1 {
		t.Errorf("JWKS fetched %d times after repeats", got)
	}
	body := scrape(t, e)
	if !strings.Contains(body, `podgate_token_cache_total{result="hit"} 3`) {
		t.Errorf("cache hits not counted:\n%s", body)
	}
}

func TestKeyRefetchRateLimited(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.JWKSRefreshMinInterval = time.Hour }})
	before := e.idp.JWKSFetches()
	for range 5 {
		tok := oidctest.MintWith(oidctest.NewUnpublishedKey(), e.idp.Claims())
		if resp, _ := do(t, nil, "GET", e.proxyURL+"/", bearer(tok)); resp.StatusCode != 401 {
			t.Fatalf("unknown kid: %d", resp.StatusCode)
		}
	}
	if got := e.idp.JWKSFetches() - before; got != 0 {
		t.Errorf("%d JWKS fetches within the minimum interval, want 0", got)
	}
	if body := scrape(t, e); !strings.Contains(body, `podgate_jwks_refreshes_total{result="ratelimited"} 5`) {
		t.Errorf("rate-limited refetches not counted:\n%s", body)
	}
}

// TestKeyRefetchNotStarvedByHangups: a client that sends an unknown kid and hangs up must neither
// cancel the refetch it triggered nor leave a rate-limit window behind with nothing learned. The IdP
// rotated its key; the attacker's request is abandoned while the (slow) fetch runs; the first token
// of the new key must then verify without another fetch.
func TestKeyRefetchNotStarvedByHangups(t *testing.T) {
	e := newEnv(t, envOpt{opts: func(o *options.Options) { o.JWKSRefreshMinInterval = 500 * time.Millisecond }})
	time.Sleep(600 * time.Millisecond) // past the window the start-up fetch opened
	e.idp.Rotate(true)
	e.idp.SetDelays(300*time.Millisecond, 0)
	before := e.idp.JWKSFetches()
	junk := oidctest.MintWith(oidctest.NewUnpublishedKey(), e.idp.Claims())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.proxyURL+"/", nil)
	req.Header.Set("Authorization", "Bearer "+junk)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the hostile request was answered (%d) before the client hung up", resp.StatusCode)
	}
	cancel()
	// The legitimate token waits for the fetch still in flight (or finds its keys).
	tok := e.idp.Mint(e.idp.Claims())
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/", bearer(tok)); resp.StatusCode != 200 {
		t.Fatalf("token of the rotated key after a hung-up refetch: %d, want 200", resp.StatusCode)
	}
	if got := e.idp.JWKSFetches() - before; got != 1 {
		t.Errorf("%d JWKS fetches, want the 1 the hung-up request triggered", got)
	}
}

func scrape(t *testing.T, e *env) string {
	resp, err := http.Get(e.adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestIdPDownAtStartThenUp(t *testing.T) {
	e := newEnv(t, envOpt{idpDown: true})
	resp, _ := do(t, nil, "GET", e.adminURL+"/ping", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/ping while IdP down: %d", resp.StatusCode)
	}
	if resp, _ := do(t, nil, "GET", e.adminURL+"/ready", nil); resp.StatusCode != 503 {
		t.Fatalf("/ready while IdP down: %d", resp.StatusCode)
	}
	// Every path that needs the IdP answers the same 503, with Retry-After and one wording.
	var first string
	for _, path := range []string{"/", "/oauth2/start?rd=/x", "/oauth2/callback?code=c&state=s", "/oauth2/userinfo", "/oauth2/auth", "/oauth2/sign_in"} {
		resp, body := do(t, nil, "GET", e.proxyURL+path, map[string]string{"Accept": "text/html"})
		if path == "/oauth2/sign_in" {
			// sign_in only sends the browser on to /oauth2/start, which then answers the 503.
			if resp.StatusCode != 302 {
				t.Errorf("%s while IdP down: %d %q", path, resp.StatusCode, body)
			}
			continue
		}
		if resp.StatusCode != 503 || !strings.Contains(body, "identity provider") || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s while IdP down: %d %q (Retry-After %q)", path, resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
		if first == "" {
			first = body
		} else if body != first {
			t.Errorf("%s while IdP down says %q, / says %q", path, body, first)
		}
	}
	e.idp.SetDown(false)
	e.waitReady()
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/", bearer(e.idp.Mint(e.idp.Claims()))); resp.StatusCode != 200 {
		t.Fatalf("after IdP came up: %d", resp.StatusCode)
	}
}

func TestIdPDownLaterBearerStillVerified(t *testing.T) {
	e := newEnv(t, envOpt{})
	e.idp.SetDown(true)
	fresh := e.idp.Mint(e.idp.Claims()) // never seen: verified from cached keys, not the token cache
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/", bearer(fresh)); resp.StatusCode != 200 {
		t.Fatalf("bearer with IdP down: %d", resp.StatusCode)
	}
	if resp, _ := do(t, nil, "GET", e.adminURL+"/ready", nil); resp.StatusCode != 200 {
		t.Errorf("/ready flapped on an IdP outage: %d", resp.StatusCode)
	}
}

// TestDiscoveryURLWithExternalIssuer: discovery and keys come from the in-cluster address while
// tokens must carry the public issuer, and browsers are sent to the public address.
func TestDiscoveryURLWithExternalIssuer(t *testing.T) {
	const external = "https://login.example.test/realms/demo"
	idp := oidctest.Start(oidctest.Config{Issuer: external, ClientSecret: "s3cret"})
	defer idp.Close()
	e := newEnv(t, envOpt{existing: idp, opts: func(o *options.Options) {
		o.IssuerURL = external
		o.DiscoveryURL = idp.URL()
	}})
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/", bearer(idp.Mint(idp.Claims()))); resp.StatusCode != 200 {
		t.Fatalf("token with external issuer: %d", resp.StatusCode)
	}
	c := idp.Claims()
	c["iss"] = idp.URL()
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/", bearer(idp.Mint(c))); resp.StatusCode != 401 {
		t.Fatalf("token with the in-cluster issuer must not pass: %d", resp.StatusCode)
	}
	resp, _ := do(t, nil, "GET", e.proxyURL+"/", map[string]string{"Accept": "text/html"})
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, external+"/auth?") {
		t.Fatalf("login redirect %q does not use the public issuer address", loc)
	}
}

// TestProviderOverTLSWithCAFile: an https IdP signed by a private CA is trusted through
// --provider-ca-file, and only through it.
func TestProviderOverTLSWithCAFile(t *testing.T) {
	idp := oidctest.Start(oidctest.Config{TLS: true, ClientSecret: "s3cret"})
	defer idp.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, idp.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpt{existing: idp, opts: func(o *options.Options) { o.ProviderCAFile = ca }})
	if resp, _ := do(t, nil, "GET", e.proxyURL+"/", bearer(idp.Mint(idp.Claims()))); resp.StatusCode != 200 {
		t.Fatalf("bearer with TLS IdP: %d", resp.StatusCode)
	}
	// Without the CA the IdP is not trusted: never ready.
	untrusted := newEnv(t, envOpt{existing: idp, idpDown: true})
	idp.SetDown(false) // the IdP answers; the sidecar must still refuse its certificate
	// Wait until a discovery attempt has reached the IdP and failed on its certificate (the
	// bound only limits how long a broken test hangs), then the sidecar must still not be ready.
	for deadline := time.Now().Add(10 * time.Second); !untrusted.loggedError("provider discovery failed, retrying", "certificate"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no discovery attempt failed on the untrusted certificate within 10 s")
		}
	}
	if resp, _ := do(t, nil, "GET", untrusted.adminURL+"/ready", nil); resp.StatusCode != 503 {
		t.Fatalf("untrusted TLS IdP made the sidecar ready: %d", resp.StatusCode)
	}
}
