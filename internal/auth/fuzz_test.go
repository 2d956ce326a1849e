package auth

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// FuzzParseTokenHeader: any bearer string either parses to a header or fails with ErrMalformed;
// nothing panics and nothing else is returned.
func FuzzParseTokenHeader(f *testing.F) {
	for _, s := range []string{"eyJhbGciOiJSUzI1NiJ9.e30.sig", "..", "a.b", "e30.e30.e30.e30", "eyJ0eXAiOiJhdCtqd3QifQ.x.y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if _, err := ParseTokenHeader(raw); err != nil && err != ErrMalformed {
			t.Fatalf("%q: %v", raw, err)
		}
	})
}

// FuzzVerifySignature: any token is refused by a key set that holds no key for it, without a
// panic, and without a network fetch (the rate limit window is open after the first fetch).
func FuzzVerifySignature(f *testing.F) {
	for _, s := range []string{"eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.e30.c2ln", "eyJhbGciOiJub25lIn0.e30.", "x.y.z", ""} {
		f.Add(s)
	}
	k := NewKeySet("http://127.0.0.1:1/jwks", &http.Client{Timeout: time.Millisecond}, time.Hour)
	k.lastDone = time.Now()
	f.Fuzz(func(t *testing.T, raw string) {
		if _, err := k.VerifySignature(context.Background(), raw); err == nil {
			t.Fatalf("%q verified against an empty key set", raw)
		}
	})
}

// FuzzClaims: any payload either fails to decode or yields an identity, without a panic.
func FuzzClaims(f *testing.F) {
	f.Add([]byte(`{"sub":"a","realm_access":{"roles":["x",1]},"resource_access":{"c":{"roles":"r"}},"exp":1e300,"aud":["a",2]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := ParseClaims(payload)
		if err != nil {
			return
		}
		id := c.Identity(ClaimNames{User: "preferred_username", Groups: "groups"})
		Policy{Roles: []string{"x"}, Groups: []string{"/g"}, EmailDomains: []string{"*"}}.Allows(id)
		isAccessToken(TokenHeader{}, c)
	})
}
