package session

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/podgate/podgate/internal/auth"
)

func testStore(t *testing.T, now time.Time) *Store {
	c, err := NewCodec([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return NewStore(c, "__Host-_pg", true, time.Hour, func() time.Time { return now })
}

// roundTrip saves sess and returns a request carrying the resulting cookies.
func roundTrip(t *testing.T, s *Store, sess *Session) (*http.Request, []*http.Cookie) {
	rec := httptest.NewRecorder()
	if err := s.Save(rec, httptest.NewRequest("GET", "/", nil), sess); err != nil {
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
	if got, err := s.Load(req); err != nil || got.Identity.User != "u" {
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
	if got, err := s.Load(req); err != nil || len(got.AccessToken) != 9000 {
		t.Fatalf("split load: %v", err)
	}
	// Reordered or missing chunks do not decrypt.
	req2 := httptest.NewRequest("GET", "/", nil)
	for _, c := range cookies[1:] {
		req2.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	if _, err := s.Load(req2); err == nil {
		t.Error("session with a missing chunk accepted")
	}
	// The same cookie, later than --cookie-expire: rejected even though it decrypts.
	late := testStore(t, now.Add(2*time.Hour))
	if _, err := late.Load(req); err != ErrExpired {
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
	if _, err := s.Load(req); err != ErrInvalid {
		t.Errorf("CSRF cookie value accepted as a session: %v", err)
	}
}

func TestStripCookiesKeepsAppCookies(t *testing.T) {
	s := testStore(t, time.Now())
	h := http.Header{"Cookie": {"a=1; __Host-_pg=x; __Host-_pg_0=y; __Host-_pg_12=z; __Host-_pg_csrf=c", "b=2;__Host-_pgother=keep"}}
	s.StripCookies(h)
	if got := h.Get("Cookie"); got != "a=1; b=2; __Host-_pgother=keep" {
		t.Errorf("Cookie = %q", got)
	}
	h = http.Header{"Cookie": {"__Host-_pg=x"}}
	s.StripCookies(h)
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
	if l, err := s.LoadLogin(req); err != nil || l.State != "s" {
		t.Fatalf("login: %v", err)
	}
	if _, err := testStore(t, now.Add(LoginTTL+time.Second)).LoadLogin(req); err != ErrExpired {
		t.Errorf("stale login cookie: %v", err)
	}
}
