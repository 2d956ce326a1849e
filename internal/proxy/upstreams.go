package proxy

import (
	"container/list"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Limits of the routed upstreams' connection pools. A thousand users each with their own upstream
// must not hold a thousand idle connection pools: at most MaxUpstreams transports are kept (the
// least recently used one is dropped and its idle connections closed when a new upstream comes),
// each keeps at most UpstreamIdlePerHost idle connections, and an idle connection is closed after
// UpstreamIdleTimeout. Idle sockets therefore stay below MaxUpstreams*UpstreamIdlePerHost whatever
// the number of users; connections in use (a WebSocket, a stream) are not cut by any of this.
const (
	MaxUpstreams        = 256
	UpstreamIdlePerHost = 4
	UpstreamIdleTimeout = 90 * time.Second
)

// Upstreams hands out the reverse proxy of a routed upstream, one per upstream URL, each with its
// own pooled transport, created on first use and bounded as described above. It is the one place
// that decides how the proxy connects to a routed upstream: Transport builds that connection pool.
type Upstreams struct {
	// Transport returns the transport of a new upstream (NewTransport with the routed limits when nil).
	Transport func(upstream *url.URL) http.RoundTripper
	// Max is the number of upstreams kept (MaxUpstreams when 0).
	Max int

	timeout time.Duration
	log     *zap.Logger

	mu    sync.Mutex
	lru   *list.List // of *upstream, most recently used first
	byURL map[string]*list.Element
	// evicted counts transports dropped to stay within Max.
	evicted uint64
}

type upstream struct {
	key   string
	rp    *httputil.ReverseProxy
	close func()
}

// NewUpstreams returns an empty pool; timeout bounds the wait for an upstream's response headers.
func NewUpstreams(timeout time.Duration, log *zap.Logger) *Upstreams {
	if log == nil {
		log = zap.NewNop()
	}
	return &Upstreams{timeout: timeout, log: log, lru: list.New(), byURL: map[string]*list.Element{}}
}

// routedTransport is NewTransport with the per-upstream limits of a pool of many upstreams.
func (p *Upstreams) routedTransport(u *url.URL) http.RoundTripper {
	return newTransport(u, false, p.timeout, poolLimits{idle: UpstreamIdlePerHost, idleTimeout: UpstreamIdleTimeout})
}

// Get returns the reverse proxy to u, creating it (and dropping the least recently used one beyond
// Max) when u is new.
func (p *Upstreams) Get(u *url.URL) http.Handler {
	key := u.String()
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.byURL[key]; ok {
		p.lru.MoveToFront(e)
		return e.Value.(*upstream).rp
	}
	newTransport := p.Transport
	if newTransport == nil {
		newTransport = p.routedTransport
	}
	t := newTransport(u)
	up := &upstream{key: key, rp: newReverseProxy(u, t, p.log), close: func() {}}
	if c, ok := t.(interface{ CloseIdleConnections() }); ok {
		up.close = c.CloseIdleConnections
	}
	p.byURL[key] = p.lru.PushFront(up)
	limit := p.Max
	if limit <= 0 {
		limit = MaxUpstreams
	}
	for p.lru.Len() > limit {
		old := p.lru.Remove(p.lru.Back()).(*upstream)
		delete(p.byURL, old.key)
		p.evicted++
		// Requests in flight on the dropped transport finish normally; their connections then sit
		// idle in it until UpstreamIdleTimeout closes them.
		old.close()
	}
	return up.rp
}

// Len is the number of upstreams held.
func (p *Upstreams) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lru.Len()
}

// Evicted is the number of upstreams dropped to stay within Max.
func (p *Upstreams) Evicted() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.evicted
}
