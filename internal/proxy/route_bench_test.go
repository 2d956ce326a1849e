package proxy

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/podgate/podgate/internal/route"
)

// memTransport answers every request in memory: the benchmarks measure the proxy, not a network.
type memTransport struct{}

func (memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}},
		Body: io.NopCloser(strings.NewReader("ok")), Request: r, ProtoMajor: 1, ProtoMinor: 1}, nil
}

// BenchmarkRouting compares, in one run, a bearer request through the reverse proxy to a fixed
// upstream (baseline) with the same request routed: the third of three rules matching, its
// templated upstream filled from the token, the upstream's proxy taken from the pool.
func BenchmarkRouting(b *testing.B) {
	h, idp := benchSetup(b)
	hdr := http.Header{"Accept": {"application/json"}, "User-Agent": {"bench"}, "Authorization": {"Bearer " + idp.Mint(idp.Claims())}}
	b.Run("fixed", func(b *testing.B) {
		u, _ := url.Parse("http://app.apps.svc")
		benchServe(b, h.Protect(newReverseProxy(u, memTransport{}, zap.NewNop())), browserRequest(hdr))
	})
	b.Run("routed", func(b *testing.B) {
		var rules []route.Rule
		for _, s := range []string{"user=carol => http://carol.apps.svc", "group=/team-a => http://team-a.apps.svc", "role=user => http://ide-{user}.ide.svc"} {
			r, err := route.Parse(s)
			if err != nil {
				b.Fatal(err)
			}
			rules = append(rules, r)
		}
		cfg := h.cfg
		cfg.Routes = rules
		rh := New(cfg)
		rh.Upstreams().Transport = func(*url.URL) http.RoundTripper { return memTransport{} }
		benchServe(b, rh.Protect(rh.Routes(nil)), browserRequest(hdr))
	})
}
