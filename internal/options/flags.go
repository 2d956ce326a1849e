package options

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/podgate/podgate/internal/route"
)

// flagDef is one sidecar flag: its name, its help, and the field of an Options it binds. AddFlags
// and Args both walk flagDefs, so which flag sets which field is written down once.
type flagDef struct {
	name  string
	usage string
	bind  func(o *Options) pflag.Value
}

// flagDefs lists every flag. A back-quoted word in the usage names the value in the help.
var flagDefs = []flagDef{
	{FlagProxy, "protected listener `LISTEN=UPSTREAM`, e.g. :4180=http://127.0.0.1:8080, or h2c://127.0.0.1:9090 for an app that speaks only HTTP/2 cleartext (repeatable); none means forward-auth only",
		func(o *Options) pflag.Value { return newList(&o.Proxies, ParseProxy, Proxy.String) }},
	{FlagRoute, "route by identity: `'MATCH => UPSTREAM'`, MATCH * or user=,group=,role=,email= conditions joined by ',' (all must hold), UPSTREAM an http(s) URL whose host labels may hold {user}, {preferred_username} or {sub} (repeatable, ordered; first match wins)",
		func(o *Options) pflag.Value { return newList(&o.Routes, route.Parse, route.Rule.String) }},
	{FlagAdminAddr, "address for /ping, /ready, /metrics and probe pass-through (never expose it)",
		func(o *Options) pflag.Value { return (*stringValue)(&o.AdminAddr) }},
	{FlagForwardAuthAddr, "address for forward-auth (/oauth2/auth and login endpoints); default :4180 when there is no --proxy",
		func(o *Options) pflag.Value { return (*stringValue)(&o.ForwardAuthAddr) }},
	{FlagProbe, "app probe re-served on the admin port as /probe/NAME: `NAME=URL` (http|https|tcp|grpc on loopback; repeatable)",
		func(o *Options) pflag.Value { return newList(&o.Probes, ParseProbe, Probe.String) }},
	{FlagProbeHeader, "header of an HTTP probe, the only one the pass-through sends besides a kubelet's User-Agent and Accept: `PROBE=NAME:VALUE` (repeatable)",
		func(o *Options) pflag.Value { return newList(&o.ProbeHeaders, ParseProbeHeader, ProbeHeader.String) }},
	{FlagMaxHeaderBytes, "largest request header block accepted (bytes); larger gets 431",
		func(o *Options) pflag.Value { return (*intValue)(&o.MaxHeaderBytes) }},
	{FlagMaxConnections, "open connections per protected or forward-auth listener; more get 503 (0: no cap)",
		func(o *Options) pflag.Value { return (*intValue)(&o.MaxConnections) }},
	{FlagMemoryLimit, "the container's memory limit in bytes; the Go soft memory limit becomes 85% of it (0: none)",
		func(o *Options) pflag.Value { return (*int64Value)(&o.MemoryLimit) }},
	{FlagIssuerURL, "OIDC issuer URL that tokens must carry (required)",
		func(o *Options) pflag.Value { return (*stringValue)(&o.IssuerURL) }},
	{FlagDiscoveryURL, "where to fetch discovery, keys and tokens from, when it differs from the issuer URL (in-cluster address)",
		func(o *Options) pflag.Value { return (*stringValue)(&o.DiscoveryURL) }},
	{FlagProviderCAFile, "PEM file of extra CAs trusted for TLS to the provider",
		func(o *Options) pflag.Value { return (*stringValue)(&o.ProviderCAFile) }},
	{FlagClientID, "OAuth client id (required)",
		func(o *Options) pflag.Value { return (*stringValue)(&o.ClientID) }},
	{FlagClientSecret, "OAuth client secret (prefer the file or " + EnvVar(FlagClientSecret) + ")",
		func(o *Options) pflag.Value { return (*stringValue)(&o.ClientSecret) }},
	{FlagClientSecretFile, "file holding the OAuth client secret",
		func(o *Options) pflag.Value { return (*stringValue)(&o.ClientSecretFile) }},
	{FlagCookieSecret, "session encryption key: 16, 24 or 32 bytes, raw or base64 (prefer the file or " + EnvVar(FlagCookieSecret) + ")",
		func(o *Options) pflag.Value { return (*stringValue)(&o.CookieSecret) }},
	{FlagCookieSecretFile, "file holding the session encryption key",
		func(o *Options) pflag.Value { return (*stringValue)(&o.CookieSecretFile) }},
	{FlagCookieName, "session cookie name (prefixed with __Host- when secure and host-only)",
		func(o *Options) pflag.Value { return (*stringValue)(&o.CookieName) }},
	{FlagCookieDomain, "`DOMAIN` of the session cookie, for one login across its subdomains (drops the __Host- prefix; default host-only)",
		func(o *Options) pflag.Value { return (*stringValue)(&o.CookieDomain) }},
	{FlagCookieSecure, "mark cookies Secure (HTTPS only); turn off only for plain-HTTP development",
		func(o *Options) pflag.Value { return (*boolValue)(&o.CookieSecure) }},
	{FlagCookieExpire, "maximum session lifetime, refreshes included",
		func(o *Options) pflag.Value { return (*durationValue)(&o.CookieExpire) }},
	{FlagScope, "scope requested at login (repeatable)",
		func(o *Options) pflag.Value { return newStrings(&o.Scopes) }},
	{FlagAudience, "accepted token audience (repeatable; default the client id)",
		func(o *Options) pflag.Value { return newStrings(&o.Audiences) }},
	{FlagAllowedRole, "allow a Keycloak realm `ROLE` or CLIENT:ROLE (repeatable; any one suffices)",
		func(o *Options) pflag.Value { return newStrings(&o.AllowedRoles) }},
	{FlagAllowedGroup, "allow members of `GROUP` (repeatable; any one suffices)",
		func(o *Options) pflag.Value { return newStrings(&o.AllowedGroups) }},
	{FlagAllowedEmailDomain, "allow verified emails in `DOMAIN` (repeatable; * for any)",
		func(o *Options) pflag.Value { return newStrings(&o.AllowedEmailDomains) }},
	{FlagUserClaim, "claim sent to the app as the user (falls back to sub)",
		func(o *Options) pflag.Value { return (*stringValue)(&o.UserClaim) }},
	{FlagGroupsClaim, "claim holding the user's groups",
		func(o *Options) pflag.Value { return (*stringValue)(&o.GroupsClaim) }},
	{FlagSkipAuth, "route needing no login: `[METHOD ]/prefix` or [METHOD ]=/exact (repeatable)",
		func(o *Options) pflag.Value { return newList(&o.SkipAuth, ParseSkipRule, SkipRule.String) }},
	{FlagRedirectURL, "OAuth callback URL (default: https://<request host>/oauth2/callback)",
		func(o *Options) pflag.Value { return (*stringValue)(&o.RedirectURL) }},
	{FlagAllowedRedirectHost, "host allowed in an absolute rd= after login; *.example.com or .example.com for the domain and its subdomains (repeatable)",
		func(o *Options) pflag.Value { return newStrings(&o.AllowedRedirectHosts) }},
	{FlagPassAccessToken, "send the access token to the app as Authorization: Bearer",
		func(o *Options) pflag.Value { return (*boolValue)(&o.PassAccessToken) }},
	{FlagPassIDToken, "send the session's ID token as X-OAUTH2-PROXY-ID-TOKEN: Bearer <token> (what Backstage's oauth2-proxy provider reads)",
		func(o *Options) pflag.Value { return (*boolValue)(&o.PassIDToken) }},
	{FlagUpstreamTimeout, "how long to wait for the app's response headers",
		func(o *Options) pflag.Value { return (*durationValue)(&o.UpstreamTimeout) }},
	{FlagJWKSRefreshMinPeriod, "minimum time between key refetches triggered by an unknown key id",
		func(o *Options) pflag.Value { return (*durationValue)(&o.JWKSRefreshMinInterval) }},
	{FlagShutdownGracePeriod, "time in-flight requests get to finish on SIGTERM",
		func(o *Options) pflag.Value { return (*durationValue)(&o.ShutdownGracePeriod) }},
	{FlagLogLevel, "debug, info, warn or error",
		func(o *Options) pflag.Value { return (*stringValue)(&o.LogLevel) }},
	{FlagLogFormat, "json or console",
		func(o *Options) pflag.Value { return (*stringValue)(&o.LogFormat) }},
}

// AddFlags binds every option to a flag on fs. Defaults are whatever o holds when it is called,
// so bind a value obtained from Defaults.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	for _, d := range flagDefs {
		v := d.bind(o)
		f := fs.VarPF(v, d.name, "", d.usage)
		if _, ok := v.(*boolValue); ok {
			f.NoOptDefVal = "true" // --flag alone means true, as pflag's own BoolVar does
		}
	}
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
			errs = append(errs, &FlagError{Flag: f.Name, Err: unwrapSetError(err)})
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
				errs = append(errs, &FlagError{Flag: f.Name, Env: env, Err: err})
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
// from Defaults, sorted by flag name, one --flag=value per list element. Secrets are never
// rendered. It only reads o (the values it binds are never set), so the injector can render the
// arguments of pods admitted concurrently without sharing anything mutable.
func (o *Options) Args() []string {
	defaults := defaultValues()
	var args []string
	for i, d := range sortedFlagDefs() {
		if secretFlags[d.name] {
			continue
		}
		v := d.bind(o)
		if sv, ok := v.(pflag.SliceValue); ok {
			if got := sv.GetSlice(); !slices.Equal(got, defaults[i].list) {
				for _, s := range got {
					args = append(args, "--"+d.name+"="+s)
				}
			}
			continue
		}
		if s := v.String(); s != defaults[i].value {
			args = append(args, "--"+d.name+"="+s)
		}
	}
	return args
}

// sortedFlagDefs is flagDefs in the order Args renders them.
var sortedFlagDefs = sync.OnceValue(func() []flagDef {
	return slices.SortedFunc(slices.Values(flagDefs), func(a, b flagDef) int { return strings.Compare(a.name, b.name) })
})

type defaultValue struct {
	value string
	list  []string
}

// defaultValues renders Defaults once, in the order of sortedFlagDefs: Args runs for every pod the
// injector mutates.
var defaultValues = sync.OnceValue(func() []defaultValue {
	def := Defaults()
	var out []defaultValue
	for _, d := range sortedFlagDefs() {
		v := d.bind(&def)
		dv := defaultValue{value: v.String()}
		if sv, ok := v.(pflag.SliceValue); ok {
			dv.list = sv.GetSlice()
		}
		out = append(out, dv)
	}
	return out
})

// listValue is a repeatable flag whose elements are parsed into T. The first Set replaces the
// default, later ones append, as pflag's own StringArray does.
type listValue[T any] struct {
	dst     *[]T
	parse   func(string) (T, error)
	format  func(T) string
	changed bool
}

func newList[T any](dst *[]T, parse func(string) (T, error), format func(T) string) *listValue[T] {
	return &listValue[T]{dst: dst, parse: parse, format: format}
}

// newStrings is a repeatable flag of plain strings.
func newStrings(dst *[]string) *listValue[string] {
	return newList(dst, func(s string) (string, error) { return s, nil }, func(s string) string { return s })
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

// String is empty for an empty list, so the help shows no "(default [])".
func (v *listValue[T]) String() string {
	if len(*v.dst) == 0 {
		return ""
	}
	return "[" + strings.Join(v.GetSlice(), ",") + "]"
}

func (v *listValue[T]) GetSlice() []string {
	out := make([]string, 0, len(*v.dst))
	for _, t := range *v.dst {
		out = append(out, v.format(t))
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

// stringValue, boolValue, intValue, int64Value and durationValue are pflag's plain values, bound
// to an Options field.
type (
	stringValue   string
	boolValue     bool
	intValue      int
	int64Value    int64
	durationValue time.Duration
)

func (v *intValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if err != nil {
		return err
	}
	*v = intValue(n)
	return nil
}
func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Type() string   { return "int" }

func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return err
	}
	*v = int64Value(n)
	return nil
}
func (v *int64Value) String() string { return strconv.FormatInt(int64(*v), 10) }
func (v *int64Value) Type() string   { return "int64" }

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Type() string       { return "string" }

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) Type() string     { return "bool" }
func (v *boolValue) IsBoolFlag() bool { return true }

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*v = durationValue(d)
	return nil
}
func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Type() string   { return "duration" }
