package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/podgate/podgate/internal/auth"
	"github.com/podgate/podgate/internal/oidctest"
	"github.com/podgate/podgate/internal/session"
)

// benchSetup returns a ready Handler against a test IdP, and that IdP.
func benchSetup(tb testing.TB) (*Handler, *oidctest.Provider) {
	tb.Helper()
	idp := oidctest.Start(oidctest.Config{ClientSecret: "x"})
	tb.Cleanup(idp.Close)
	keys := auth.NewKeySet("", http.DefaultClient, time.Second)
	names := auth.ClaimNames{User: "preferred_username", Groups: "groups"}
	v := auth.NewVerifier(keys, auth.VerifierConfig{Issuer: idp.Issuer(), Audiences: []string{idp.ClientID()}, Names: names})
	p := auth.NewProvider(idp.Issuer(), "", http.DefaultClient, keys, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	go p.Run(ctx)
	// The bound only limits how long a broken setup hangs.
	for deadline := time.Now().Add(10 * time.Second); !p.Ready(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatal("test IdP not discovered within 10 s")
		}
	}
	codec, _ := session.NewCodec([]byte("0123456789abcdef0123456789abcdef"))
	h := New(Config{Verifier: v, Provider: p, Store: session.NewStore(codec, "_podgate", false, time.Hour, nil),
		ClientID: idp.ClientID(), Policy: auth.Policy{Roles: []string{"user"}}})
	return h, idp
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok")
})

func benchServe(b *testing.B, h http.Handler, req func() *http.Request) {
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req())
		if rec.Code != 200 {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

func browserRequest(hdr http.Header) func() *http.Request {
	return func() *http.Request {
		r := httptest.NewRequest("GET", "/api/items?page=2", nil)
		r.Header = hdr.Clone()
		return r
	}
}

// BenchmarkMiddleware compares the same trivial upstream handler without auth (baseline), behind
// the bearer path and behind the cookie path, in one run. Requests carry realistic headers.
func BenchmarkMiddleware(b *testing.B) {
	h, idp := benchSetup(b)
	base := http.Header{"Accept": {"application/json"}, "User-Agent": {"bench"}, "X-Forwarded-For": {"198.18.0.9"}}

	b.Run("baseline", func(b *testing.B) {
		benchServe(b, okHandler, browserRequest(base))
	})
	b.Run("bearer", func(b *testing.B) {
		hdr := base.Clone()
		hdr.Set("Authorization", "Bearer "+idp.Mint(idp.Claims()))
		benchServe(b, h.Protect(okHandler), browserRequest(hdr))
	})
	b.Run("cookie", func(b *testing.B) {
		tok := idp.Mint(idp.Claims())
		payload, _ := json.Marshal(idp.Claims())
		c, _ := auth.ParseClaims(payload)
		rec := httptest.NewRecorder()
		id := c.Identity(auth.ClaimNames{User: "preferred_username", Groups: "groups"})
		sess := &session.Session{AccessToken: tok, RefreshToken: "r", IDToken: tok, Expiry: time.Now().Add(time.Hour), Created: time.Now(), Identity: id}
		if err := h.cfg.Store.Save(rec, session.Cookies{}, sess); err != nil {
			b.Fatal(err)
		}
		hdr := base.Clone()
		for _, ck := range rec.Result().Cookies() {
			hdr.Add("Cookie", ck.Name+"="+ck.Value)
		}
		hdr.Add("Cookie", "app=1")
		benchServe(b, h.Protect(okHandler), browserRequest(hdr))
	})
}

// BenchmarkSignatureVerify is the cost the token cache saves on every request after the first:
// a full RS256 verification (parse, key lookup, signature, claims).
func BenchmarkSignatureVerify(b *testing.B) {
	h, idp := benchSetup(b)
	tok := idp.Mint(idp.Claims())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.cfg.Verifier.VerifyAccessToken(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}
