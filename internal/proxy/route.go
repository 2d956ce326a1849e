package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"go.uber.org/zap"

	"github.com/podgate/podgate/internal/auth"
	"github.com/podgate/podgate/internal/route"
)

// HeaderUpstream, on a 202 from /oauth2/auth when --route rules are set, is the upstream the
// caller's request is routed to, for an ingress that can route on an auth response header. Client
// copies are stripped like the identity headers: an app (or an ingress passing it on) must never
// take a client's word for it.
const HeaderUpstream = "X-Podgate-Upstream"

// Route metric labels besides a rule's number.
const (
	RouteNone    = "none"
	RouteRefused = "refused"
)

// maxLoggedValue bounds a refused claim value in a log line: a claim can be as long as a token.
const maxLoggedValue = 80

type identityKey struct{}

// routing holds what the routes need: the rules, their metric labels and the upstream pool.
type routing struct {
	rules     []route.Rule
	labels    []string // labels[i] is rule i+1's number
	upstreams *Upstreams
}

func newRouting(rules []route.Rule, cfg Config) *routing {
	if len(rules) == 0 {
		return nil
	}
	rt := &routing{rules: rules, upstreams: NewUpstreams(cfg.UpstreamTimeout, cfg.Log)}
	for i := range rules {
		rt.labels = append(rt.labels, strconv.Itoa(i+1))
	}
	return rt
}

// Upstreams is the routed upstreams' pool (nil without routes), for metrics and tests.
func (h *Handler) Upstreams() *Upstreams {
	if h.routing == nil {
		return nil
	}
	return h.routing.upstreams
}

// withIdentity hands the authenticated identity to Routes, only when there are routes to pick.
func (h *Handler) withIdentity(r *http.Request, id *auth.Identity) *http.Request {
	if h.routing == nil {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
}

// errNoRoute: the caller matches no rule and there is no upstream to fall back to.
var errNoRoute = errors.New("no route matches")

// pickUpstream returns the upstream of the first rule matching id, with the rule's number. With no
// rule matching it returns nil and 0. A templated upstream whose claim value cannot fill its label
// is a *route.RefusedError, logged with the rule and the (truncated) value.
func (h *Handler) pickUpstream(r *http.Request, id *auth.Identity) (*url.URL, int, error) {
	rt := h.routing
	n := route.Pick(rt.rules, id)
	if n == 0 {
		h.m.Routes.With(RouteNone).Inc()
		h.log.Debug("no route matches", zap.String("user", id.User), zap.String("path", r.URL.Path))
		return nil, 0, nil
	}
	target, err := rt.rules[n-1].Upstream.Resolve(id)
	if err != nil {
		h.m.Routes.With(RouteRefused).Inc()
		h.m.RouteRefusals.With(rt.labels[n-1]).Inc()
		var re *route.RefusedError
		if errors.As(err, &re) {
			v := re.Value
			if len(v) > maxLoggedValue {
				v = v[:maxLoggedValue] + "..."
			}
			h.log.Info("route refused: claim value cannot be a host label", zap.Int("rule", n),
				zap.String("placeholder", string(re.Placeholder)), zap.String("reason", string(re.Reason)),
				zap.String("value", v), zap.Int("valueBytes", len(re.Value)))
		}
		return nil, n, err
	}
	h.m.Routes.With(rt.labels[n-1]).Inc()
	h.log.Debug("route chosen", zap.Int("rule", n), zap.String("user", id.User), zap.String("upstream", target.Host),
		zap.String("path", r.URL.Path))
	return target, n, nil
}

// Routes returns the handler behind Protect on a listener that serves routes: each authenticated
// request goes to the upstream of the first rule its caller matches; with none matching, to
// fallback (the listener's own upstream); with no fallback either, 403. A request that carries no
// identity (a --skip-auth route) goes to fallback. The request's path, Host and headers play no
// part in the choice: only the verified identity does.
func (h *Handler) Routes(fallback http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := r.Context().Value(identityKey{}).(*auth.Identity)
		var target *url.URL
		var err error
		if id != nil {
			target, _, err = h.pickUpstream(r, id)
		}
		switch {
		case err != nil:
			httpError(w, http.StatusForbidden, "you are signed in, but your account name cannot be used to find your service")
		case target != nil:
			h.routing.upstreams.Get(target).ServeHTTP(w, r)
		case fallback != nil:
			fallback.ServeHTTP(w, r)
		default:
			httpError(w, http.StatusForbidden, "you are signed in, but no service is routed to your account")
		}
	})
}

// forwardAuthRoute is the routing decision of /oauth2/auth: the upstream to name in
// X-Podgate-Upstream, or an error (403) when no rule matches or the claim value is refused.
func (h *Handler) forwardAuthRoute(r *http.Request, id *auth.Identity) (*url.URL, error) {
	if h.routing == nil {
		return nil, nil
	}
	target, _, err := h.pickUpstream(r, id)
	if err == nil && target == nil {
		err = errNoRoute
	}
	return target, err
}
