package auth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
)

// Endpoints are the provider's URLs after discovery. Browser-facing ones (Auth, EndSession) use the
// issuer's public address; server-to-server ones (Token, JWKS, UserInfo) the discovery address.
type Endpoints struct {
	Auth, Token, JWKS, UserInfo, EndSession string
}

// Provider discovers the OIDC provider in the background and reports readiness. Start-up never
// fails on an unreachable IdP: discovery is retried with backoff while requests get a clear 503,
// so a Keycloak restart does not crash-loop every protected pod.
type Provider struct {
	issuer, discovery string
	client            *http.Client
	keys              *KeySet
	log               *zap.Logger
	// RefreshEvery is how often keys are refetched once ready, so removed keys eventually go.
	RefreshEvery time.Duration
	// MaxBackoff caps the wait between discovery attempts.
	MaxBackoff time.Duration
	// ReachableFor and UnreachableFor are how long a reachability probe's answer stands (see
	// Reachable). A failure is kept shorter than a success, so logins resume within seconds of the
	// IdP's return; either way a flood of login starts costs the IdP one request per period.
	ReachableFor, UnreachableFor time.Duration

	endpoints atomic.Pointer[Endpoints]
	ready     atomic.Bool

	probeMu sync.Mutex   // guards probe and probed
	probe   *probeFlight // the reachability probe in progress
	probed  probeResult  // the last completed probe
}

// probeFlight is one reachability probe; done is closed once ok is set.
type probeFlight struct {
	done chan struct{}
	ok   bool
}

type probeResult struct {
	at time.Time
	ok bool
}

// probeTimeout bounds one reachability probe, whoever waits for it.
const probeTimeout = 3 * time.Second

// NewProvider returns a provider for issuer, fetched from discovery (or issuer when empty).
func NewProvider(issuer, discovery string, client *http.Client, keys *KeySet, log *zap.Logger) *Provider {
	return &Provider{issuer: strings.TrimSuffix(issuer, "/"), discovery: strings.TrimSuffix(discovery, "/"),
		client: client, keys: keys, log: log, RefreshEvery: 15 * time.Minute, MaxBackoff: 30 * time.Second,
		ReachableFor: 5 * time.Second, UnreachableFor: 2 * time.Second}
}

// Ready reports whether discovery succeeded and keys are loaded.
func (p *Provider) Ready() bool { return p.ready.Load() }

// Endpoints returns the discovered endpoints, or nil before discovery.
func (p *Provider) Endpoints() *Endpoints { return p.endpoints.Load() }

// Run discovers the provider, retrying with backoff, then keeps the keys fresh until ctx ends.
func (p *Provider) Run(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for {
		err := p.discover(ctx)
		if err == nil {
			break
		}
		p.log.Warn("provider discovery failed, retrying", zap.Error(err), zap.Duration("retryIn", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, p.MaxBackoff)
	}
	p.ready.Store(true)
	p.log.Info("provider ready", zap.String("issuer", p.issuer))
	t := time.NewTicker(p.RefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.keys.Refresh(ctx); err != nil {
				p.log.Warn("key refresh failed, keeping cached keys", zap.Error(err))
			}
		}
	}
}

func (p *Provider) discover(ctx context.Context) error {
	ctx = oidc.ClientContext(ctx, p.client)
	from := p.issuer
	if p.discovery != "" && p.discovery != p.issuer {
		// The discovery document fetched in-cluster names the public issuer; tokens are still
		// checked against --issuer-url by the verifier.
		from = p.discovery
		ctx = oidc.InsecureIssuerURLContext(ctx, p.issuer)
	}
	op, err := oidc.NewProvider(ctx, from)
	if err != nil {
		return err
	}
	var extra struct {
		JWKS       string `json:"jwks_uri"`
		UserInfo   string `json:"userinfo_endpoint"`
		EndSession string `json:"end_session_endpoint"`
	}
	if err := op.Claims(&extra); err != nil {
		return err
	}
	ep := &Endpoints{
		Auth:       p.front(op.Endpoint().AuthURL),
		Token:      p.back(op.Endpoint().TokenURL),
		JWKS:       p.back(extra.JWKS),
		UserInfo:   p.back(extra.UserInfo),
		EndSession: p.front(extra.EndSession),
	}
	if ep.Auth == "" || ep.Token == "" || ep.JWKS == "" {
		return errors.New("discovery document lacks authorization_endpoint, token_endpoint or jwks_uri")
	}
	p.keys.SetURL(ep.JWKS)
	if err := p.keys.Refresh(ctx); err != nil {
		return err
	}
	p.endpoints.Store(ep)
	return nil
}

// back maps a URL under the public issuer to the discovery address, for server-to-server calls
// when the IdP advertises its public address only.
func (p *Provider) back(u string) string {
	if p.discovery != "" && strings.HasPrefix(u, p.issuer+"/") {
		return p.discovery + strings.TrimPrefix(u, p.issuer)
	}
	return u
}

// front maps a URL under the discovery address to the public issuer, for browser redirects when
// the IdP advertises the address it was asked on.
func (p *Provider) front(u string) string {
	if p.discovery != "" && strings.HasPrefix(u, p.discovery+"/") {
		return p.issuer + strings.TrimPrefix(u, p.discovery)
	}
	return u
}

// Reachable reports whether the provider answers now: its key set endpoint answered 200 within
// the last few seconds. Before a browser is sent to the IdP to log in, this tells a stopped IdP
// from a working one, so the user gets a clear 503 from the sidecar instead of the browser's own
// connection error on the IdP's address. Bearer tokens never need it: they verify from cached keys.
//
// The probe belongs to no request, like a key fetch: it runs on its own timeout, shared by every
// caller meanwhile, and its answer is kept for a while, so clients starting logins cannot make the
// sidecar hammer the IdP, nor cancel the probe by hanging up. ctx bounds only the wait.
func (p *Provider) Reachable(ctx context.Context) bool {
	ep := p.Endpoints()
	if ep == nil {
		return false
	}
	p.probeMu.Lock()
	last := p.probed
	ttl := p.UnreachableFor
	if last.ok {
		ttl = p.ReachableFor
	}
	if !last.at.IsZero() && time.Since(last.at) < ttl {
		p.probeMu.Unlock()
		return last.ok
	}
	f := p.probe
	if f == nil {
		f = &probeFlight{done: make(chan struct{})}
		p.probe = f
		go p.runProbe(f, ep.JWKS)
	}
	p.probeMu.Unlock()
	select {
	case <-f.done:
		return f.ok
	case <-ctx.Done():
		return false
	}
}

func (p *Provider) runProbe(f *probeFlight, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	ok := false
	if req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil); err == nil {
		if resp, err := p.client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
		} else {
			p.log.Info("identity provider unreachable", zap.Error(err))
		}
	}
	p.probeMu.Lock()
	p.probe, p.probed = nil, probeResult{at: time.Now(), ok: ok}
	p.probeMu.Unlock()
	f.ok = ok
	close(f.done)
}

// HTTPClient is the client used for the provider (CA bundle, timeouts).
func (p *Provider) HTTPClient() *http.Client { return p.client }
