package options

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/pflag"

	"github.com/podgate/podgate/internal/route"
)

// AddFlags binds every option to a flag on fs. Defaults are whatever o holds when it is called,
// so bind a value obtained from Defaults.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.Var(newList(&o.Proxies, ParseProxy), FlagProxy, "protected listener `LISTEN=UPSTREAM`, e.g. :4180=http://127.0.0.1:8080, or h2c://127.0.0.1:9090 for an app that speaks only HTTP/2 cleartext (repeatable); none means forward-auth only")
	fs.Var(newList(&o.Routes, route.Parse), FlagRoute, "route by identity: `'MATCH => UPSTREAM'`, MATCH * or user=,group=,role=,email= conditions joined by ',' (all must hold), UPSTREAM an http(s) URL whose host labels may hold {user}, {preferred_username} or {sub} (repeatable, ordered; first match wins)")
	fs.StringVar(&o.AdminAddr, FlagAdminAddr, o.AdminAddr, "address for /ping, /ready, /metrics and probe pass-through (never expose it)")
	fs.StringVar(&o.ForwardAuthAddr, FlagForwardAuthAddr, o.ForwardAuthAddr, "address for forward-auth (/oauth2/auth and login endpoints); default :4180 when there is no --proxy")
	fs.Var(newList(&o.Probes, ParseProbe), FlagProbe, "app probe re-served on the admin port as /probe/NAME: `NAME=URL` (http|https|tcp|grpc on loopback; repeatable)")
	fs.Var(newList(&o.ProbeHeaders, ParseProbeHeader), FlagProbeHeader, "header of an HTTP probe, the only one the pass-through sends besides a kubelet's User-Agent and Accept: `PROBE=NAME:VALUE` (repeatable)")
	fs.IntVar(&o.MaxHeaderBytes, FlagMaxHeaderBytes, o.MaxHeaderBytes, "largest request header block accepted (bytes); larger gets 431")
	fs.IntVar(&o.MaxConnections, FlagMaxConnections, o.MaxConnections, "open connections per protected or forward-auth listener; more get 503 (0: no cap)")
	fs.Int64Var(&o.MemoryLimit, FlagMemoryLimit, o.MemoryLimit, "the container's memory limit in bytes; the Go soft memory limit becomes 85% of it (0: none)")
	fs.StringVar(&o.IssuerURL, FlagIssuerURL, o.IssuerURL, "OIDC issuer URL that tokens must carry (required)")
	fs.StringVar(&o.DiscoveryURL, FlagDiscoveryURL, o.DiscoveryURL, "where to fetch discovery, keys and tokens from, when it differs from the issuer URL (in-cluster address)")
	fs.StringVar(&o.ProviderCAFile, FlagProviderCAFile, o.ProviderCAFile, "PEM file of extra CAs trusted for TLS to the provider")
	fs.StringVar(&o.ClientID, FlagClientID, o.ClientID, "OAuth client id (required)")
	fs.StringVar(&o.ClientSecret, FlagClientSecret, o.ClientSecret, "OAuth client secret (prefer the file or "+EnvVar(FlagClientSecret)+")")
	fs.StringVar(&o.ClientSecretFile, FlagClientSecretFile, o.ClientSecretFile, "file holding the OAuth client secret")
	fs.StringVar(&o.CookieSecret, FlagCookieSecret, o.CookieSecret, "session encryption key: 16, 24 or 32 bytes, raw or base64 (prefer the file or "+EnvVar(FlagCookieSecret)+")")
	fs.StringVar(&o.CookieSecretFile, FlagCookieSecretFile, o.CookieSecretFile, "file holding the session encryption key")
	fs.StringVar(&o.CookieName, FlagCookieName, o.CookieName, "session cookie name (prefixed with __Host- when secure and host-only)")
	fs.StringVar(&o.CookieDomain, FlagCookieDomain, o.CookieDomain, "`DOMAIN` of the session cookie, for one login across its subdomains (drops the __Host- prefix; default host-only)")
	fs.BoolVar(&o.CookieSecure, FlagCookieSecure, o.CookieSecure, "mark cookies Secure (HTTPS only); turn off only for plain-HTTP development")
	fs.DurationVar(&o.CookieExpire, FlagCookieExpire, o.CookieExpire, "maximum session lifetime, refreshes included")
	fs.StringArrayVar(&o.Scopes, FlagScope, o.Scopes, "scope requested at login (repeatable)")
	fs.StringArrayVar(&o.Audiences, FlagAudience, o.Audiences, "accepted token audience (repeatable; default the client id)")
	fs.StringArrayVar(&o.AllowedRoles, FlagAllowedRole, o.AllowedRoles, "allow a Keycloak realm `ROLE` or CLIENT:ROLE (repeatable; any one suffices)")
	fs.StringArrayVar(&o.AllowedGroups, FlagAllowedGroup, o.AllowedGroups, "allow members of `GROUP` (repeatable; any one suffices)")
	fs.StringArrayVar(&o.AllowedEmailDomains, FlagAllowedEmailDomain, o.AllowedEmailDomains, "allow verified emails in `DOMAIN` (repeatable; * for any)")
	fs.StringVar(&o.UserClaim, FlagUserClaim, o.UserClaim, "claim sent to the app as the user (falls back to sub)")
	fs.StringVar(&o.GroupsClaim, FlagGroupsClaim, o.GroupsClaim, "claim holding the user's groups")
	fs.Var(newList(&o.SkipAuth, ParseSkipRule), FlagSkipAuth, "route needing no login: `[METHOD ]/prefix` or [METHOD ]=/exact (repeatable)")
	fs.StringVar(&o.RedirectURL, FlagRedirectURL, o.RedirectURL, "OAuth callback URL (default: https://<request host>/oauth2/callback)")
	fs.StringArrayVar(&o.AllowedRedirectHosts, FlagAllowedRedirectHost, o.AllowedRedirectHosts, "host allowed in an absolute rd= after login; *.example.com or .example.com for the domain and its subdomains (repeatable)")
	fs.BoolVar(&o.PassAccessToken, FlagPassAccessToken, o.PassAccessToken, "send the access token to the app as Authorization: Bearer")
	fs.BoolVar(&o.PassIDToken, FlagPassIDToken, o.PassIDToken, "send the session's ID token as X-OAUTH2-PROXY-ID-TOKEN: Bearer <token> (what Backstage's oauth2-proxy provider reads)")
	fs.DurationVar(&o.UpstreamTimeout, FlagUpstreamTimeout, o.UpstreamTimeout, "how long to wait for the app's response headers")
	fs.DurationVar(&o.JWKSRefreshMinInterval, FlagJWKSRefreshMinPeriod, o.JWKSRefreshMinInterval, "minimum time between key refetches triggered by an unknown key id")
	fs.DurationVar(&o.ShutdownGracePeriod, FlagShutdownGracePeriod, o.ShutdownGracePeriod, "time in-flight requests get to finish on SIGTERM")
	fs.StringVar(&o.LogLevel, FlagLogLevel, o.LogLevel, "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, FlagLogFormat, o.LogFormat, "json or console")
}

// NewFlagSet returns a flag set bound to o.
func NewFlagSet(name string, o *Options) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = true
	o.AddFlags(fs)
	return fs
}

// Parse builds Options from defaults, then the environment (PODGATE_<FLAG>), then args, which win.
// It loads the secret files and validates, returning every problem found. pflag.ErrHelp is
// returned as is for -h/--help.
func Parse(args []string, lookupEnv func(string) (string, bool)) (*Options, error) {
	o := Defaults()
	fs := NewFlagSet("sidecar", &o)
	// ParseAll with a setter that records a bad value and carries on, so one run names every
	// malformed flag, not only the first; only a structural error (an unknown flag) stops it.
	var errs []error
	failed := map[string]bool{}
	if err := fs.ParseAll(args, func(f *pflag.Flag, value string) error {
		if err := fs.Set(f.Name, value); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %v", f.Name, unwrapSetError(err)))
			failed[f.Name] = true
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || failed[f.Name] {
			return
		}
		env := EnvVar(f.Name)
		v, ok := lookupEnv(env)
		if !ok {
			return
		}
		vals := []string{v}
		if _, isList := f.Value.(pflag.SliceValue); isList {
			vals = splitList(v)
		}
		for _, s := range vals {
			if err := fs.Set(f.Name, s); err != nil {
				errs = append(errs, fmt.Errorf("--%s (from %s): %v", f.Name, env, err))
			}
		}
	})
	if err := o.LoadSecretFiles(); err != nil {
		errs = append(errs, err)
	}
	if err := o.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &o, nil
}

// ParseOS is Parse with the process's arguments and environment.
func ParseOS() (*Options, error) { return Parse(os.Args[1:], os.LookupEnv) }

// unwrapSetError drops pflag's own "invalid argument ... for flag" wrapping, which repeats the
// flag name and value that the caller's message already carries.
func unwrapSetError(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// splitList splits an environment value holding a list: comma-separated, blanks dropped.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Args renders o as the command-line arguments that parse back into it: only options that differ
// from Defaults, in a stable order, one --flag=value per list element. Secrets are never rendered.
func (o *Options) Args() []string {
	// One flag set, bound to a scratch Options, serves every call: pflag values read through
	// pointers, so copying o into the scratch is enough, and the injector (which renders args for
	// every pod it mutates) does not rebuild ~30 flags each time.
	render.Lock()
	defer render.Unlock()
	if render.fs == nil {
		render.fs = NewFlagSet("render", &render.opts)
	}
	render.opts = *o
	defer func() { render.opts = Options{} }()
	defaults := defaultValues()
	var args []string
	render.fs.VisitAll(func(f *pflag.Flag) {
		if secretFlags[f.Name] {
			return
		}
		d := defaults[f.Name]
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			got, want := sv.GetSlice(), d.list
			if !equalStrings(got, want) {
				for _, s := range got {
					args = append(args, "--"+f.Name+"="+s)
				}
			}
			return
		}
		if f.Value.String() != d.value {
			args = append(args, "--"+f.Name+"="+f.Value.String())
		}
	})
	return args
}

var render struct {
	sync.Mutex
	fs   *pflag.FlagSet
	opts Options
}

type defaultValue struct {
	value string
	list  []string
}

// defaultValues renders Defaults once: Args runs for every pod the injector mutates.
var defaultValues = sync.OnceValue(func() map[string]defaultValue {
	def := Defaults()
	m := map[string]defaultValue{}
	NewFlagSet("defaults", &def).VisitAll(func(f *pflag.Flag) {
		d := defaultValue{value: f.Value.String()}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			d.list = sv.GetSlice()
		}
		m[f.Name] = d
	})
	return m
})

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// listValue is a repeatable flag whose elements are parsed into T. The first Set replaces the
// default, later ones append, as pflag's own StringArray does.
type listValue[T fmt.Stringer] struct {
	dst     *[]T
	parse   func(string) (T, error)
	changed bool
}

func newList[T fmt.Stringer](dst *[]T, parse func(string) (T, error)) *listValue[T] {
	return &listValue[T]{dst: dst, parse: parse}
}

func (v *listValue[T]) Set(s string) error {
	t, err := v.parse(s)
	if err != nil {
		return err
	}
	if !v.changed {
		*v.dst, v.changed = nil, true
	}
	*v.dst = append(*v.dst, t)
	return nil
}

func (v *listValue[T]) Type() string { return "stringArray" }

func (v *listValue[T]) String() string { return "[" + strings.Join(v.GetSlice(), ",") + "]" }

func (v *listValue[T]) GetSlice() []string {
	out := make([]string, 0, len(*v.dst))
	for _, t := range *v.dst {
		out = append(out, t.String())
	}
	return out
}

func (v *listValue[T]) Append(s string) error { return v.Set(s) }

func (v *listValue[T]) Replace(ss []string) error {
	var out []T
	for _, s := range ss {
		t, err := v.parse(s)
		if err != nil {
			return err
		}
		out = append(out, t)
	}
	*v.dst, v.changed = out, true
	return nil
}
