package options

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const testCookieSecret = "0123456789abcdef0123456789abcdef"

func noEnv(string) (string, bool) { return "", false }

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func validArgs() []string {
	return []string{
		"--issuer-url=https://kc.example.com/realms/demo",
		"--client-id=app",
		"--cookie-secret=" + testCookieSecret,
	}
}

// TestArgsRoundTrip is the contract between injector and sidecar: whatever the injector renders
// parses back into the same options (secrets excepted, which travel as environment variables).
func TestArgsRoundTrip(t *testing.T) {
	args := append(validArgs(),
		"--proxy=:4180=http://127.0.0.1:8080",
		"--proxy=:4181=http://127.0.0.1:9090",
		"--proxy=:4182=h2c://127.0.0.1:9091",
		"--probe=app-live=http://127.0.0.1:8080/healthz",
		"--probe=app-ready=tcp://127.0.0.1:8080",
		"--probe=app-start=grpc://127.0.0.1:9090?service=x",
		"--discovery-url=http://keycloak.kc.svc:8080/realms/demo",
		"--audience=app", "--audience=other",
		"--allowed-role=admin", "--allowed-role=app:reader",
		"--allowed-group=/team", "--allowed-email-domain=example.com",
		"--skip-auth=GET /public", "--skip-auth==/healthz",
		"--cookie-secure=false", "--pass-access-token", "--upstream-timeout=5s",
		"--scope=openid", "--scope=groups", "--log-format=console",
		"--cookie-domain=example.com", "--allowed-redirect-host=*.example.com", "--pass-id-token",
	)
	o, err := Parse(args, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	rendered := o.Args()
	for _, a := range rendered {
		if strings.Contains(a, testCookieSecret) {
			t.Fatalf("Args rendered a secret: %q", a)
		}
	}
	back, err := Parse(append(rendered, "--cookie-secret="+testCookieSecret), noEnv)
	if err != nil {
		t.Fatalf("rendered args %q do not parse: %v", rendered, err)
	}
	if !reflect.DeepEqual(o, back) {
		t.Fatalf("round trip changed options:\n got %+v\nwant %+v\nargs %q", back, o, rendered)
	}
	if len(o.Proxies) != 3 || o.Proxies[1].Upstream.Port() != "9090" || o.Proxies[1].H2C || !o.Proxies[2].H2C ||
		o.Proxies[2].Upstream.Scheme != "http" || !o.SkipAuth[1].Exact || o.SkipAuth[0].Method != "GET" {
		t.Fatalf("parsed wrongly: %+v", o)
	}
}

func TestDefaultsRenderNothing(t *testing.T) {
	o := Defaults()
	if got := o.Args(); len(got) != 0 {
		t.Fatalf("defaults rendered %q", got)
	}
}

func TestEnvironmentFillsUnsetFlags(t *testing.T) {
	o, err := Parse([]string{"--client-id=flag-wins"}, envMap(map[string]string{
		"PODGATE_ISSUER_URL":    "https://kc.example.com/realms/demo",
		"PODGATE_CLIENT_ID":     "env-loses",
		"PODGATE_COOKIE_SECRET": testCookieSecret,
		"PODGATE_ALLOWED_ROLE":  "a, b,,c",
		"PODGATE_PROXY":         ":4180=http://127.0.0.1:8080",
		"PODGATE_COOKIE_SECURE": "false",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if o.ClientID != "flag-wins" || o.IssuerURL == "" || o.CookieSecure || len(o.Proxies) != 1 {
		t.Fatalf("env not applied as expected: %+v", o)
	}
	if !reflect.DeepEqual(o.AllowedRoles, []string{"a", "b", "c"}) {
		t.Fatalf("roles from env = %q", o.AllowedRoles)
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "cookie")
	if err := os.WriteFile(f, []byte(testCookieSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := Parse([]string{"--issuer-url=https://kc/realms/x", "--client-id=a", "--cookie-secret-file=" + f}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.CookieSecret != testCookieSecret {
		t.Fatalf("cookie secret from file = %q", o.CookieSecret)
	}
	_, err = Parse([]string{"--issuer-url=https://kc/realms/x", "--client-id=a", "--cookie-secret-file=" + f, "--cookie-secret=" + testCookieSecret}, noEnv)
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("secret given twice: error = %v", err)
	}
	_, err = Parse([]string{"--issuer-url=https://kc/realms/x", "--client-id=a", "--cookie-secret-file=" + filepath.Join(dir, "missing")}, noEnv)
	if err == nil || !strings.Contains(err.Error(), "--cookie-secret-file") {
		t.Fatalf("missing file error = %v", err)
	}
}

// TestValidateReportsEveryProblem checks that one run names every bad flag, not just the first.
func TestValidateReportsEveryProblem(t *testing.T) {
	o := Defaults()
	o.IssuerURL = "ftp://x"
	o.CookieSecret = "short"
	o.CookieName = "bad name"
	o.Scopes = []string{"profile"}
	o.AdminAddr = "nope"
	o.AllowedRoles = []string{"a:b:c"}
	o.AllowedGroups = []string{"/"}
	o.AllowedEmailDomains = []string{"@x"}
	o.UpstreamTimeout = 0
	o.LogLevel = "loud"
	o.LogFormat = "xml"
	o.CookieExpire = time.Second
	err := o.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, flag := range []string{FlagIssuerURL, FlagClientID, FlagCookieSecret, FlagCookieName,
		FlagScope, FlagAdminAddr, FlagAllowedRole, FlagAllowedGroup, FlagAllowedEmailDomain, FlagUpstreamTimeout,
		FlagLogLevel, FlagLogFormat, FlagCookieExpire} {
		if !strings.Contains(err.Error(), "--"+flag+":") {
			t.Errorf("error does not name --%s:\n%v", flag, err)
		}
	}
}

func TestPortCollisions(t *testing.T) {
	o, err := Parse(append(validArgs(), "--proxy=:4190=http://127.0.0.1:8080"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "already used by --admin-addr") {
		t.Fatalf("collision not reported: %v %+v", err, o)
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"proxy no equals":       "--proxy=:4180",
		"proxy bad upstream":    "--proxy=:4180=ftp://x",
		"proxy bad port":        "--proxy=:99999=http://127.0.0.1:1",
		"probe off loopback":    "--probe=x=http://198.18.0.1:80/",
		"probe bad scheme":      "--probe=x=file:///etc/passwd",
		"probe bad name":        "--probe=X_Y=tcp://127.0.0.1:80",
		"skip relative":         "--skip-auth=public",
		"skip bad method":       "--skip-auth=FETCH /x",
		"skip dot segment":      "--skip-auth=/a/../b",
		"skip encoded":          "--skip-auth=/a%2fb",
		"skip query":            "--skip-auth=/a?b",
		"skip double slash":     "--skip-auth=//evil",
		"unknown flag":          "--no-such-flag",
		"duration not duration": "--upstream-timeout=soon",
	}
	for name, arg := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(append(validArgs(), arg), noEnv); err == nil {
				t.Fatalf("%s accepted", arg)
			}
		})
	}
}

// TestParseReportsEveryMalformedFlag: values that do not even parse are listed together with the
// validation problems, so one run of the sidecar names everything to fix.
func TestParseReportsEveryMalformedFlag(t *testing.T) {
	_, err := Parse([]string{"--proxy=:4180=ftp://x", "--upstream-timeout=soon", "--skip-auth=nope", "--cookie-secure=maybe"}, noEnv)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"--proxy:", "--upstream-timeout:", "--skip-auth:", "--cookie-secure:", "--issuer-url: is required", "--client-id: is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestDecodeCookieSecret(t *testing.T) {
	for _, s := range []string{testCookieSecret, "MDEyMzQ1Njc4OWFiY2RlZg==", "MDEyMzQ1Njc4OWFiY2RlZg", "0123456789abcdef"} {
		if _, err := DecodeCookieSecret(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := DecodeCookieSecret("tooshort"); err == nil {
		t.Error("short secret accepted")
	}
}

func TestValidateWithoutSecretsIgnoresOnlySecrets(t *testing.T) {
	o := Defaults()
	o.IssuerURL = "https://kc.example.com/realms/demo"
	o.ClientID = "app"
	if err := o.ValidateWithoutSecrets(); err != nil {
		t.Fatalf("valid options without secrets: %v", err)
	}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--"+FlagCookieSecret+":") {
		t.Fatalf("Validate must still require the cookie secret: %v", err)
	}
	o.AllowedRoles = []string{":x"}
	if err := o.ValidateWithoutSecrets(); err == nil || !strings.Contains(err.Error(), "--"+FlagAllowedRole+":") {
		t.Fatalf("ValidateWithoutSecrets must check everything else: %v", err)
	}
}

// FuzzParseListFlags: the repeatable flags the injector renders from pod specs parse or fail with
// an error, never panic, and what parses renders back to itself.
func FuzzParseListFlags(f *testing.F) {
	for _, s := range []string{"live=http://127.0.0.1:8080/healthz", "live=X-Probe: yes", ":4180=http://127.0.0.1:8080", "GET =/healthz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := ParseProbe(s); err == nil {
			if q, err := ParseProbe(p.String()); err != nil || q.String() != p.String() {
				t.Fatalf("probe %q renders as %q: %v", s, p.String(), err)
			}
		}
		if h, err := ParseProbeHeader(s); err == nil {
			if g, err := ParseProbeHeader(h.String()); err != nil || g != h {
				t.Fatalf("probe header %q renders as %q: %v", s, h.String(), err)
			}
		}
		_, _ = ParseProxy(s)
		_, _ = ParseSkipRule(s)
	})
}

// TestRedirectHostPatterns: both wildcard spellings and plain hosts are accepted; a value that no
// URL host could ever match fails at start-up, naming the flag.
func TestRedirectHostPatterns(t *testing.T) {
	for _, ok := range []string{"app.example.com", "*.example.com", ".example.com", "app.example.com:8443", "198.18.0.5", "localhost"} {
		if err := CheckRedirectHost(ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "*", "*.", ".", "*.com", ".com", "**.example.com", "app.*.example.com", "example.*",
		"a*b.example.com", "*example.com", "app..example.com", "-app.example.com", "app.example.com:0", "app.example.com:x",
		"*.example.com:443", "https://app.example.com", "user@app.example.com", "app.example.com/path", "app example.com"} {
		if err := CheckRedirectHost(bad); err == nil {
			t.Errorf("%q accepted, but no URL host can match it", bad)
		}
	}
	o := validOptions()
	o.AllowedRedirectHosts = []string{"*.example.com", "*"}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--allowed-redirect-host: \"*\"") {
		t.Errorf("Validate with a bare '*': %v", err)
	}
}

// TestCookieDomain: a domain cookie drops the __Host- prefix (browsers refuse it with Domain) and
// keeps Secure; a top-level domain or a malformed one is refused.
func TestCookieDomain(t *testing.T) {
	o := validOptions()
	if got := o.EffectiveCookieName(); got != "__Host-_podgate" {
		t.Fatalf("default name %q", got)
	}
	o.CookieDomain = "example.com"
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := o.EffectiveCookieName(); got != "_podgate" || !o.CookieSecure {
		t.Errorf("with --cookie-domain: name %q, secure %v; want _podgate and still secure", got, o.CookieSecure)
	}
	for _, bad := range []string{"com", ".com", "exa mple.com", "example.com:443", "*.example.com", "https://example.com"} {
		o.CookieDomain = bad
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--cookie-domain") {
			t.Errorf("--cookie-domain=%q: %v", bad, err)
		}
	}
}

func validOptions() *Options {
	o, err := Parse(validArgs(), noEnv)
	if err != nil {
		panic(err)
	}
	return o
}

// TestErrorsAreTyped: every problem is a *FlagError naming its flag, and a missing value is
// ErrRequired, so callers act on the type, never on the wording.
func TestErrorsAreTyped(t *testing.T) {
	o := Defaults()
	o.DiscoveryURL = "ftp://x"
	err := o.Validate()
	var flags []string
	required := map[string]bool{}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FlagError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FlagError", e)
		}
		flags = append(flags, fe.Flag)
		required[fe.Flag] = errors.Is(e, ErrRequired)
	}
	want := []string{FlagIssuerURL, FlagDiscoveryURL, FlagClientID, FlagCookieSecret}
	if !reflect.DeepEqual(flags, want) {
		t.Fatalf("flags = %q, want %q", flags, want)
	}
	if !required[FlagIssuerURL] || !required[FlagClientID] || !required[FlagCookieSecret] || required[FlagDiscoveryURL] {
		t.Fatalf("required = %v", required)
	}

	_, err = Parse(append(validArgs(), "--upstream-timeout=soon"), envMap(map[string]string{"PODGATE_LOG_FORMAT": "xml", "PODGATE_COOKIE_EXPIRE": "later"}))
	var fe *FlagError
	if !errors.As(err, &fe) || fe.Flag != FlagUpstreamTimeout || fe.Env != "" {
		t.Fatalf("bad flag value: %v", err)
	}
	if !strings.Contains(err.Error(), "--cookie-expire (from PODGATE_COOKIE_EXPIRE): ") || !strings.Contains(err.Error(), "--log-format: \"xml\"") {
		t.Fatalf("environment errors: %v", err)
	}
}

// TestArgsConcurrently renders different options at once (run with -race): Args shares nothing
// mutable between calls.
func TestArgsConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := Defaults()
			o.ClientID = fmt.Sprintf("client-%d", i)
			for range 50 {
				if got := o.Args(); !slices.Equal(got, []string{"--client-id=" + o.ClientID}) {
					t.Errorf("Args = %q", got)
					return
				}
			}
		}()
	}
	wg.Wait()
}
