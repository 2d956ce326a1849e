package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"
)

// NewTransport returns the transport to one app on loopback: keep-alive connections kept idle in
// numbers matching a busy ingress, no proxy from the environment, no compression negotiation (the
// app's encoding passes through untouched), and timeout bounding the wait for response headers only,
// so long-lived streams are not cut. TLS to a loopback upstream is not verified: the app's
// certificate names its public host, never 127.0.0.1.
func NewTransport(upstream *url.URL, timeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	if upstream.Scheme == "https" {
		if ip := net.ParseIP(upstream.Hostname()); upstream.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback only, see above
		}
	}
	return t
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
func NewReverseProxy(upstream *url.URL, timeout time.Duration, log *zap.Logger) *httputil.ReverseProxy {
	return newReverseProxy(upstream, NewTransport(upstream, timeout), log)
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
			httpError(w, http.StatusBadGateway, "the application behind the auth proxy is not responding")
		},
	}
}
