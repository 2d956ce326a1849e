package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"
)

// NewTransport returns the round tripper to one app on loopback. It is the one place that chooses
// the protocol to the app, per request:
//
//   - HTTP/2 (cleartext for http, over TLS for https) when h2c pins the app to it (its port's
//     appProtocol is h2c, grpc or kubernetes.io/h2c) and for every gRPC call, which needs it;
//   - HTTP/1.1 otherwise, so an HTTP/1.1-only app keeps working for a client that happens to
//     speak HTTP/2 to the sidecar.
//
// Both keep idle connections in numbers matching a busy ingress, use no proxy from the
// environment and no compression negotiation (the app's encoding passes through untouched).
// timeout bounds the wait for response headers only, so long-lived streams are not cut; gRPC
// calls are exempt, since a streaming server may rightly send nothing until the client has, and
// the client's own deadline (grpc-timeout) bounds the call. TLS to a loopback upstream is not
// verified: the app's certificate names its public host, never 127.0.0.1.
func NewTransport(upstream *url.URL, h2c bool, timeout time.Duration) http.RoundTripper {
	return newTransport(upstream, h2c, timeout, appPool)
}

// poolLimits bound the idle connections a transport keeps.
type poolLimits struct {
	idle        int
	idleTimeout time.Duration
}

// appPool is the pool to the pod's own app: as many idle connections as a busy ingress uses.
var appPool = poolLimits{idle: 512, idleTimeout: 90 * time.Second}

func newTransport(upstream *url.URL, h2c bool, timeout time.Duration, limits poolLimits) *upstreamTransport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	var tlsConfig *tls.Config
	if upstream.Scheme == "https" {
		if ip := net.ParseIP(upstream.Hostname()); upstream.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
			tlsConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback only, see above
		}
	}
	newTransport := func(p *http.Protocols, headerTimeout time.Duration) *http.Transport {
		return &http.Transport{
			Protocols:             p,
			DialContext:           d.DialContext,
			TLSClientConfig:       tlsConfig,
			MaxIdleConns:          limits.idle,
			MaxIdleConnsPerHost:   limits.idle,
			IdleConnTimeout:       limits.idleTimeout,
			ResponseHeaderTimeout: headerTimeout,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true,
		}
	}
	h1 := new(http.Protocols)
	h1.SetHTTP1(true)
	h2 := new(http.Protocols)
	h2.SetHTTP2(true)
	h2.SetUnencryptedHTTP2(true)
	return &upstreamTransport{h1: newTransport(h1, timeout), h2: newTransport(h2, 0), pinned: h2c, timeout: timeout}
}

// upstreamTransport is NewTransport's choice, made per request.
type upstreamTransport struct {
	h1, h2  *http.Transport
	pinned  bool
	timeout time.Duration
}

// CloseIdleConnections closes the idle connections of both protocols' pools.
func (t *upstreamTransport) CloseIdleConnections() {
	t.h1.CloseIdleConnections()
	t.h2.CloseIdleConnections()
}

// errHeaderTimeout ends a non-gRPC request over HTTP/2 whose response headers took too long.
var errHeaderTimeout = errors.New("timeout awaiting response headers")

func (t *upstreamTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	grpc := isGRPC(r)
	if !t.pinned && !grpc {
		return t.h1.RoundTrip(r)
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	var timer *time.Timer
	if !grpc && t.timeout > 0 {
		// The HTTP/2 transport has no header timeout (gRPC is exempt); this request gets its own.
		timer = time.AfterFunc(t.timeout, func() { cancel(errHeaderTimeout) })
	}
	resp, err := t.h2.RoundTrip(r.WithContext(ctx))
	if timer != nil && !timer.Stop() && err != nil {
		// Not wrapping err: it says "context canceled", which would read as a client gone away.
		err = fmt.Errorf("%w after %s", errHeaderTimeout, t.timeout)
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = &endingBody{ReadCloser: resp.Body, end: func() { cancel(nil) }}
	return resp, nil
}

// endingBody ends the upstream request when the proxy closes the response body. Go's HTTP/2
// transport otherwise waits, on that close, for the request body to end too: when the app ends a
// stream while the client is still sending (a gRPC server returning an error mid-stream), the
// proxy would hold the finished response, trailers and all, and the call would hang until its
// deadline. The app has already ended the stream, so ending our side loses nothing.
type endingBody struct {
	io.ReadCloser
	end func()
}

func (b *endingBody) Close() error {
	b.end()
	return b.ReadCloser.Close()
}

// bufferPool recycles the buffers ReverseProxy copies bodies through. Without it every request
// allocates a fresh 32 KB buffer: three quarters of the bytes the proxy allocated under load, and
// most of its garbage-collection time.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

var copyBuffers = &bufferPool{}

// NewReverseProxy forwards to upstream. The original Host is kept (apps build URLs from it and
// WebSocket servers compare Origin with it); X-Forwarded-For is appended to, X-Forwarded-Host is
// the request's host, and X-Forwarded-Proto keeps an ingress's "https" (the sidecar itself speaks
// plain HTTP behind it). Upgrades (WebSockets) and streaming responses (text/event-stream, unknown
// length) are handled by httputil.ReverseProxy, which flushes those immediately.
func NewReverseProxy(upstream *url.URL, h2c bool, timeout time.Duration, log *zap.Logger) *httputil.ReverseProxy {
	return newReverseProxy(upstream, NewTransport(upstream, h2c, timeout), log)
}

// newReverseProxy is NewReverseProxy over a given transport (a routed upstream's, see Upstreams).
func newReverseProxy(upstream *url.URL, transport http.RoundTripper, log *zap.Logger) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			if p := pr.In.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
				pr.Out.Header.Set("X-Forwarded-Proto", p)
			}
		},
		Transport:  transport,
		BufferPool: copyBuffers,
		ErrorLog:   zap.NewStdLog(log),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the client went away
			}
			log.Warn("upstream unreachable", zap.Error(err), zap.String("path", r.URL.Path))
			if isGRPC(r) {
				grpcError(w, grpcUnavailable, "the application behind the auth proxy is not responding")
				return
			}
			httpError(w, http.StatusBadGateway, "the application behind the auth proxy is not responding")
		},
	}
}
