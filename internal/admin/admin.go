// Package admin serves the sidecar's unauthenticated operational endpoints on --admin-addr:
// liveness (/ping), readiness (/ready), metrics (/metrics) and the kubelet probe pass-through
// (/probe/<name>). It must never be exposed through a Service.
package admin

import (
	"net/http"

	"github.com/podgate/podgate/internal/metrics"
)

// Config wires the admin handler.
type Config struct {
	// Ready reports whether the IdP was discovered and its keys loaded.
	Ready   func() bool
	Metrics *metrics.Registry
	Prober  *Prober
}

// Handler returns the admin mux. /ping answers as soon as it is served; the caller starts serving
// it only after every proxy listener is bound, which makes it a valid startupProbe for the native
// sidecar (the app container starts only once the proxy accepts traffic).
func Handler(c Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("OK\n"))
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !c.Ready() {
			http.Error(w, "identity provider not discovered or keys not loaded yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("OK\n"))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		c.Metrics.Write(w)
	})
	if c.Prober != nil {
		mux.Handle("GET /probe/", c.Prober)
	}
	return mux
}
