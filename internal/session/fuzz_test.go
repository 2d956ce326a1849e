package session

import (
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzLoad: any Cookie header is either no session, an invalid one, or (never, without the key) a
// valid one; nothing panics, and a refused value is never cached.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{"__Host-_pg=abc", "__Host-_pg_0=a; __Host-_pg_1=b", "__Host-_pg=; x=y", "__Host-_pg_csrf=z", "a=b;;;__Host-_pg_9=" + "A"} {
		f.Add(s)
	}
	s := testStore(f, time.Now())
	f.Fuzz(func(t *testing.T, cookie string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", cookie)
		if _, err := s.Load(s.Cookies(r.Header)); err == nil {
			t.Fatalf("%q loaded a session without the key", cookie)
		}
		if _, err := s.LoadLogin(s.Cookies(r.Header)); err == nil {
			t.Fatalf("%q loaded a login without the key", cookie)
		}
		s.StripCookies(r.Header, s.Cookies(r.Header))
		if s.cache.Len() != 0 {
			t.Fatal("a refused cookie was cached")
		}
	})
}
