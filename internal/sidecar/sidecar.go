// Package sidecar assembles the auth proxy from its options: provider discovery, verifier, session
// store, one protected listener per --proxy, the forward-auth listener and the admin listener, and
// runs them until the context ends, then shuts down gracefully.
package sidecar

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"crypto/tls"

	"go.uber.org/zap"

	"github.com/podgate/podgate/internal/admin"
	"github.com/podgate/podgate/internal/auth"
	"github.com/podgate/podgate/internal/memlimit"
	"github.com/podgate/podgate/internal/metrics"
	"github.com/podgate/podgate/internal/options"
	"github.com/podgate/podgate/internal/proxy"
	"github.com/podgate/podgate/internal/session"
)

// DefaultForwardAuthAddr is where forward-auth is served when there is no --proxy and no
// --forward-auth-addr.
const DefaultForwardAuthAddr = ":4180"

// App is one configured sidecar process.
type App struct {
	opts     *options.Options
	log      *zap.Logger
	Metrics  *metrics.Sidecar
	Provider *auth.Provider
	Handler  *proxy.Handler

	servers []*namedServer
	admin   *namedServer
}

type namedServer struct {
	role     string
	addr     string
	maxConns int
	srv      *http.Server
	ln       net.Listener
}

// New builds the App. It does no network I/O.
func New(o *options.Options, log *zap.Logger) (*App, error) {
	key, err := options.DecodeCookieSecret(o.CookieSecret)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", options.FlagCookieSecret, err)
	}
	codec, err := session.NewCodec(key)
	if err != nil {
		return nil, err
	}
	client, err := providerClient(o.ProviderCAFile)
	if err != nil {
		return nil, err
	}
	m := metrics.NewSidecar()
	keys := auth.NewKeySet("", client, o.JWKSRefreshMinInterval)
	keys.OnFetch = func(result string) { m.JWKSRefreshes.With(result).Inc() }
	verifier := auth.NewVerifier(keys, auth.VerifierConfig{
		Issuer: o.IssuerURL, Audiences: o.EffectiveAudiences(),
		Names: auth.ClaimNames{User: o.UserClaim, Groups: o.GroupsClaim},
	})
	verifier.OnCache = func(hit bool) {
		if hit {
			m.TokenCache.With("hit").Inc()
		} else {
			m.TokenCache.With("miss").Inc()
		}
	}
	provider := auth.NewProvider(o.IssuerURL, o.DiscoveryURL, client, keys, log)
	h := proxy.New(proxy.Config{
		Verifier: verifier, Provider: provider,
		Store:    session.NewStore(codec, o.EffectiveCookieName(), o.CookieSecure, o.CookieExpire, nil).WithDomain(o.CookieDomain),
		Policy:   auth.Policy{Roles: o.AllowedRoles, Groups: o.AllowedGroups, EmailDomains: o.AllowedEmailDomains},
		ClientID: o.ClientID, ClientSecret: o.ClientSecret, Scopes: o.Scopes,
		RedirectURL: o.RedirectURL, AllowedRedirectHosts: o.AllowedRedirectHosts,
		SkipAuth: o.SkipAuth, PassAccessToken: o.PassAccessToken, PassIDToken: o.PassIDToken, CookieSecure: o.CookieSecure,
		Routes: o.Routes, UpstreamTimeout: o.UpstreamTimeout,
		Metrics: m, Log: log,
	})
	a := &App{opts: o, log: log, Metrics: m, Provider: provider, Handler: h}
	log.Info("configuration",
		zap.String("issuer", o.IssuerURL), zap.String("discovery", o.DiscoveryURL), zap.String("clientId", o.ClientID),
		zap.Strings("audiences", o.EffectiveAudiences()), zap.Strings("allowedRoles", o.AllowedRoles),
		zap.Strings("allowedGroups", o.AllowedGroups), zap.Strings("allowedEmailDomains", o.AllowedEmailDomains),
		zap.Int("skipRules", len(o.SkipAuth)), zap.Int("proxies", len(o.Proxies)), zap.Int("probes", len(o.Probes)),
		zap.Int("routes", len(o.Routes)),
		zap.Bool("cookieSecure", o.CookieSecure), zap.String("cookieDomain", o.CookieDomain),
		zap.Bool("passAccessToken", o.PassAccessToken), zap.Bool("passIDToken", o.PassIDToken))
	for _, p := range o.Proxies {
		var next http.Handler
		if p.Upstream != nil {
			next = proxy.NewReverseProxy(p.Upstream, p.H2C, o.UpstreamTimeout, log)
		}
		if len(o.Routes) > 0 {
			next = h.Routes(next)
		}
		a.servers = append(a.servers, a.newServer("proxy", p.Listen, h.Protect(next), o.MaxConnections))
	}
	faAddr := o.ForwardAuthAddr
	if faAddr == "" && len(o.Proxies) == 0 {
		faAddr = DefaultForwardAuthAddr
	}
	if faAddr != "" {
		a.servers = append(a.servers, a.newServer("forwardAuth", faAddr, h.ForwardAuth(), o.MaxConnections))
	}
	if o.AdminAddr != "" {
		// The admin port has no connection cap: the kubelet's probes must always get through.
		a.admin = a.newServer("admin", o.AdminAddr, admin.Handler(admin.Config{
			Ready: provider.Ready, Metrics: m.Registry, Prober: admin.NewProber(o.Probes, o.ProbeHeaders),
		}), 0)
	}
	return a, nil
}

// maxConcurrentStreams caps the HTTP/2 streams of one client connection. A connection's header
// memory is this many header blocks at once (HPACK lets a client send them for a few bytes each),
// so it multiplies whatever bounds one request's headers; 100 is what nginx and most gRPC
// servers allow.
const maxConcurrentStreams = 100

// newServer builds one listener's server. It serves HTTP/1.1 and HTTP/2 cleartext with prior
// knowledge (as gRPC clients speak it inside a cluster) on every listener, so no port needs to declare
// its protocol to the sidecar. Header memory is what an unauthenticated client controls most cheaply
// (many slow connections each sending a large header block), so every listener bounds the header
// block (431 past it), the HTTP/2 streams per connection (maxConcurrentStreams), and the protected
// and forward-auth ones the number of connections (maxConns, 503 past it; 0: none).
func (a *App) newServer(role, addr string, h http.Handler, maxConns int) *namedServer {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &namedServer{role: role, addr: addr, maxConns: maxConns, srv: &http.Server{
		Handler:           h,
		Protocols:         protocols,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: maxConcurrentStreams},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    a.opts.MaxHeaderBytes,
		// No WriteTimeout: it would cut streaming responses, WebSockets and gRPC streams.
	}}
}

func providerClient(caFile string) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", options.FlagProviderCAFile, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--%s: %s holds no PEM certificate", options.FlagProviderCAFile, caFile)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: t, Timeout: 15 * time.Second}, nil
}

// Listen binds every listener: proxies and forward-auth first, admin last, so that /ping (the
// startup probe) cannot answer before the protected ports accept connections.
func (a *App) Listen() error {
	var errs []error
	all := a.servers
	if a.admin != nil {
		all = append(all[:len(all):len(all)], a.admin)
	}
	for _, s := range all {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s listener %s: %w", s.role, s.addr, err))
			continue
		}
		if s.maxConns > 0 {
			ln = newLimitListener(ln, s.maxConns, a.Metrics)
		}
		s.ln = ln
	}
	if err := errors.Join(errs...); err != nil {
		a.closeListeners()
		return err
	}
	return nil
}

func (a *App) closeListeners() {
	for _, s := range append(a.servers, a.admin) {
		if s != nil && s.ln != nil {
			_ = s.ln.Close()
		}
	}
}

// Addr returns the bound address of the first listener with role ("proxy", "forwardAuth",
// "admin"); index selects among proxies.
func (a *App) Addr(role string, index int) string {
	for _, s := range append(a.servers, a.admin) {
		if s != nil && s.role == role && s.ln != nil {
			if index == 0 {
				return s.ln.Addr().String()
			}
			index--
		}
	}
	return ""
}

// Serve runs discovery and every server until ctx ends, then gives in-flight requests
// --shutdown-grace-period to finish. Listen must have been called.
func (a *App) Serve(ctx context.Context) error {
	provCtx, stopProvider := context.WithCancel(ctx)
	defer stopProvider()
	go a.Provider.Run(provCtx)

	errc := make(chan error, len(a.servers)+1)
	var wg sync.WaitGroup
	serve := func(s *namedServer) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.log.Info("listening", zap.String("role", s.role), zap.String("addr", s.ln.Addr().String()))
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s server: %w", s.role, err)
			}
		}()
	}
	for _, s := range a.servers {
		serve(s)
	}
	if a.admin != nil {
		serve(a.admin)
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	a.log.Info("shutting down", zap.Duration("gracePeriod", a.opts.ShutdownGracePeriod))
	sctx, cancel := context.WithTimeout(context.Background(), a.opts.ShutdownGracePeriod)
	defer cancel()
	for _, s := range append(a.servers, a.admin) {
		if s == nil {
			continue
		}
		if err := s.srv.Shutdown(sctx); err != nil {
			_ = s.srv.Close()
		}
	}
	wg.Wait()
	return runErr
}

// Run is New, Listen and Serve, with the process's soft memory limit set first.
func Run(ctx context.Context, o *options.Options, log *zap.Logger) error {
	if soft := memlimit.Set(o.MemoryLimit); soft > 0 {
		log.Info("memory limit", zap.Int64("containerBytes", o.MemoryLimit), zap.Int64("goSoftLimitBytes", soft))
	}
	a, err := New(o, log)
	if err != nil {
		return err
	}
	if err := a.Listen(); err != nil {
		return err
	}
	return a.Serve(ctx)
}
