package session

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podgate/podgate/internal/auth"
)

func testStore(t testing.TB, now time.Time) *Store {
	c, err := NewCodec([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return NewStore(c, "__Host-_pg", true, time.Hour, func() time.Time { return now })
}

// roundTrip saves sess and returns a request carrying the resulting cookies.
func roundTrip(t *testing.T, s *Store, sess *Session) (*http.Request, []*http.Cookie) {
	rec := httptest.NewRecorder()
	if err := s.Save(rec, Cookies{}, sess); err != nil {
		t.Fatal(err)
	}
	cookies := rec.Result().Cookies()
	req := httptest.NewRequest("GET", "/", nil)
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return req, cookies
}

func TestSaveLoadSplitAndExpire(t *testing.T) {
	now := time.Now()
	s := testStore(t, now)
	small := &Session{AccessToken: "a", Created: now, Identity: &auth.Identity{User: "u"}}
	req, cookies := roundTrip(t, s, small)
	if len(cookies) != 1 || cookies[0].Name != "__Host-_pg" || !cookies[0].Secure || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteLaxMode {
		t.Fatalf("cookie attributes: %+v", cookies)
	}
	if got, err := s.Load(s.Cookies(req.Header)); err != nil || got.Identity.User != "u" {
		t.Fatalf("load: %v %+v", err, got)
	}
	big := &Session{AccessToken: strings.Repeat("x", 9000), Created: now, Identity: &auth.Identity{User: "u"}}
	req, cookies = roundTrip(t, s, big)
	if len(cookies) < 3 || cookies[0].Name != "__Host-_pg_0" {
		t.Fatalf("not split: %d cookies", len(cookies))
	}
	for _, c := range cookies {
		if len(c.String()) > 4096 {
			t.Errorf("cookie %s is %d bytes", c.Name, len(c.String()))
		}
	}
	if got, err := s.Load(s.Cookies(req.Header)); err != nil || len(got.AccessToken) != 9000 {
		t.Fatalf("split load: %v", err)
	}
	// Reordered or missing chunks do not decrypt.
	req2 := httptest.NewRequest("GET", "/", nil)
	for _, c := range cookies[1:] {
		req2.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	if _, err := s.Load(s.Cookies(req2.Header)); err == nil {
		t.Error("session with a missing chunk accepted")
	}
	// The same cookie, later than --cookie-expire: rejected even though it decrypts.
	late := testStore(t, now.Add(2*time.Hour))
	if _, err := late.Load(late.Cookies(req.Header)); err != ErrExpired {
		t.Errorf("expired session: %v", err)
	}
}

func TestCookieBoundToName(t *testing.T) {
	s := testStore(t, time.Now())
	rec := httptest.NewRecorder()
	s.SaveLogin(rec, &Login{State: "s"})
	v := rec.Result().Cookies()[0].Value
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: "__Host-_pg", Value: v})
	if _, err := s.Load(s.Cookies(req.Header)); err != ErrInvalid {
		t.Errorf("CSRF cookie value accepted as a session: %v", err)
	}
}

func TestStripCookiesKeepsAppCookies(t *testing.T) {
	s := testStore(t, time.Now())
	h := http.Header{"Cookie": {"a=1; __Host-_pg=x; __Host-_pg_0=y; __Host-_pg_12=z; __Host-_pg_csrf=c", "b=2;__Host-_pgother=keep; __Secure-_pg_idt=i; __Secure-_pg=keep"}}
	s.StripCookies(h, s.Cookies(h))
	if got := h.Get("Cookie"); got != "a=1; b=2; __Host-_pgother=keep; __Secure-_pg=keep" {
		t.Errorf("Cookie = %q", got)
	}
	h = http.Header{"Cookie": {"__Host-_pg=x"}}
	s.StripCookies(h, s.Cookies(h))
	if _, ok := h["Cookie"]; ok {
		t.Error("empty Cookie header left behind")
	}
}

func TestLoginExpires(t *testing.T) {
	now := time.Now()
	s := testStore(t, now)
	rec := httptest.NewRecorder()
	s.SaveLogin(rec, &Login{State: "s", Nonce: "n", Verifier: "v", Redirect: "/"})
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(rec.Result().Cookies()[0])
	if l, err := s.LoadLogin(s.Cookies(req.Header)); err != nil || l.State != "s" {
		t.Fatalf("login: %v", err)
	}
	if _, err := testStore(t, now.Add(LoginTTL+time.Second)).LoadLogin(s.Cookies(req.Header)); err != ErrExpired {
		t.Errorf("stale login cookie: %v", err)
	}
}

// TestIDTokenCookie: the ID token travels in a cookie of its own, sent only to the sign-out
// endpoint (a "__Secure-" name, since browsers refuse "__Host-" cookies outside Path=/), never in
// the session cookie, and it is cleared with the session.
func TestIDTokenCookie(t *testing.T) {
	now := time.Now()
	s := testStore(t, now)
	sess := &Session{RefreshToken: "r", IDToken: "the.id.token", Created: now, Identity: &auth.Identity{User: "u"}}
	_, cookies := roundTrip(t, s, sess)
	var idt *http.Cookie
	for _, c := range cookies {
		if c.Name == "__Secure-_pg_idt" {
			idt = c
		} else if strings.Contains(c.Value, "id.token") {
			t.Errorf("cookie %s holds the ID token in clear", c.Name)
		}
	}
	if idt == nil || idt.Path != SignOutPath || !idt.Secure || !idt.HttpOnly || idt.MaxAge <= 0 {
		t.Fatalf("ID token cookie = %+v", idt)
	}
	if !s.Owns(idt.Name) {
		t.Error("the ID token cookie is not the proxy's (it would reach the app)")
	}
	req := httptest.NewRequest("GET", SignOutPath, nil)
	req.AddCookie(&http.Cookie{Name: idt.Name, Value: idt.Value})
	if got := s.LoadIDToken(s.Cookies(req.Header)); got != "the.id.token" {
		t.Errorf("LoadIDToken = %q", got)
	}
	main := cookies[len(cookies)-1]
	req = httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: main.Name, Value: main.Value})
	if got, err := s.Load(s.Cookies(req.Header)); err != nil || got.IDToken != "" {
		t.Errorf("Load = %+v, %v: the session cookie carries the ID token", got, err)
	}
	// A session value moved into the ID token cookie does not decrypt there.
	req = httptest.NewRequest("GET", SignOutPath, nil)
	req.AddCookie(&http.Cookie{Name: idt.Name, Value: main.Value})
	if got := s.LoadIDToken(s.Cookies(req.Header)); got != "" {
		t.Errorf("session value accepted as ID token: %q", got)
	}

	rec := httptest.NewRecorder()
	s.Clear(rec, Cookies{})
	cleared := false
	for _, c := range rec.Result().Cookies() {
		cleared = cleared || c.Name == idt.Name && c.Path == SignOutPath && c.MaxAge < 0
	}
	if !cleared {
		t.Errorf("Clear left the ID token cookie: %v", rec.Result().Cookies())
	}

	// Without an ID token (a refresh that returned none) the browser's cookie is left alone.
	_, cookies = roundTrip(t, s, &Session{RefreshToken: "r", Created: now, Identity: &auth.Identity{User: "u"}})
	for _, c := range cookies {
		if c.Name == idt.Name {
			t.Errorf("ID token cookie written without an ID token: %+v", c)
		}
	}
}

// TestStrictCookieDecoding: a sealed value has one spelling. Base64 with the spare bits of the last
// character set differently decodes to the same bytes under lenient decoding, which made each
// spelling a new cache entry for the same session.
func TestStrictCookieDecoding(t *testing.T) {
	c, err := NewCodec([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for n := range 3 { // one of three plaintext lengths leaves spare bits in the last character
		v := c.Seal("n", []byte(strings.Repeat("p", 10+n)))
		if len(v)%4 == 0 {
			continue
		}
		if _, err := c.Open("n", v); err != nil {
			t.Fatal(err)
		}
		b := []byte(v)
		b[len(b)-1] = alphabet[strings.IndexByte(alphabet, b[len(b)-1])^1]
		if _, err := c.Open("n", string(b)); err != ErrInvalid {
			t.Errorf("second spelling of a sealed value: %v, want ErrInvalid", err)
		}
		return
	}
	t.Fatal("no plaintext length left spare bits")
}

// TestSessionCacheBoundedAndEvicted: decrypted sessions are bounded by bytes, not only entries, and
// a refreshed (or cleared) cookie leaves the cache at once.
func TestSessionCacheBoundedAndEvicted(t *testing.T) {
	now := time.Now()
	s := testStore(t, now)
	sealed := 0
	for i := range 1500 {
		sess := &Session{RefreshToken: strings.Repeat("x", 6000) + strconv.Itoa(i), Created: now, Identity: &auth.Identity{User: "u"}}
		req, cookies := roundTrip(t, s, sess)
		if _, err := s.Load(s.Cookies(req.Header)); err != nil {
			t.Fatal(err)
		}
		sealed = 0
		for _, c := range cookies {
			sealed += len(c.Value)
		}
	}
	// Each cached session holds at least its sealed size in decoded tokens.
	if held := s.cache.Len() * sealed; held > CacheBytes {
		t.Errorf("session cache holds %d sessions of %d sealed bytes (%d bytes), bound %d", s.cache.Len(), sealed, held, CacheBytes)
	}
	old := &Session{AccessToken: "old", Created: now, Identity: &auth.Identity{User: "u"}}
	req, _ := roundTrip(t, s, old)
	if _, err := s.Load(s.Cookies(req.Header)); err != nil {
		t.Fatal(err)
	}
	n := s.cache.Len()
	if err := s.Save(httptest.NewRecorder(), s.Cookies(req.Header), &Session{AccessToken: "new", Created: now, Identity: &auth.Identity{User: "u"}}); err != nil {
		t.Fatal(err)
	}
	if s.cache.Len() != n-1 {
		t.Errorf("refresh left the old session cached (%d entries, want %d)", s.cache.Len(), n-1)
	}
	req, _ = roundTrip(t, s, old)
	_, _ = s.Load(s.Cookies(req.Header))
	n = s.cache.Len()
	s.Clear(httptest.NewRecorder(), s.Cookies(req.Header))
	if s.cache.Len() != n-1 {
		t.Errorf("sign-out left the session cached")
	}
}

// TestDomainCookies: with a domain, every session cookie (chunks, the ID token cookie and their
// expirations included) carries it, so the browser sends and replaces the same cookies on every
// subdomain, and CookieNames names each; the login cookie stays host-only.
func TestDomainCookies(t *testing.T) {
	now := time.Now()
	c, err := NewCodec([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(c, "_pg", true, time.Hour, func() time.Time { return now }).WithDomain(".example.com")
	big := &Session{AccessToken: strings.Repeat("a", 3*ChunkSize), IDToken: "the.id.token", Created: now, Identity: &auth.Identity{User: "u"}}
	req, cookies := roundTrip(t, s, big)
	if len(cookies) < 3 {
		t.Fatalf("%d cookies, want a split session and the ID token cookie", len(cookies))
	}
	names := s.CookieNames()
	idt := false
	for _, ck := range cookies {
		if ck.Domain != "example.com" || !ck.Secure {
			t.Errorf("cookie %s: domain %q secure %v, want example.com and secure", ck.Name, ck.Domain, ck.Secure)
		}
		if !slices.Contains(names, ck.Name) {
			t.Errorf("cookie %s is not in CookieNames %v", ck.Name, names)
		}
		if ck.Name == s.IDTokenName() {
			idt = ck.Path == SignOutPath
		}
	}
	if !idt {
		t.Errorf("no ID token cookie for %s among %v", SignOutPath, cookies)
	}
	rec := httptest.NewRecorder()
	s.Clear(rec, s.Cookies(req.Header))
	for _, ck := range rec.Result().Cookies() {
		if ck.Domain != "example.com" || ck.MaxAge >= 0 {
			t.Errorf("expiring %s: domain %q max-age %d", ck.Name, ck.Domain, ck.MaxAge)
		}
	}
	rec = httptest.NewRecorder()
	s.SaveLogin(rec, &Login{State: "s"})
	if ck := rec.Result().Cookies()[0]; ck.Domain != "" {
		t.Errorf("login cookie has domain %q, want host-only", ck.Domain)
	}
}

// TestForwardedIDToken: the ID token a session forwards (--pass-id-token) travels in the session
// cookie and comes back from Load; without it the session cookie carries no ID token.
func TestForwardedIDToken(t *testing.T) {
	now := time.Now()
	s := testStore(t, now)
	req, _ := roundTrip(t, s, &Session{RefreshToken: "r", IDToken: "the.id.token", ForwardedIDToken: "the.id.token", Created: now, Identity: &auth.Identity{User: "u"}})
	if got, err := s.Load(s.Cookies(req.Header)); err != nil || got.ForwardedIDToken != "the.id.token" || got.IDToken != "" {
		t.Errorf("Load = %+v, %v: want the forwarded ID token only", got, err)
	}
}
