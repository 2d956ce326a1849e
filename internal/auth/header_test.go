package auth

import (
	"encoding/base64"
	"errors"
	"testing"
)

func TestParseTokenHeader(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	h, err := ParseTokenHeader(enc(`{"alg":"RS256","kid":"k1","typ":"at+jwt"}`) + ".e30.sig")
	if err != nil || h != (TokenHeader{Alg: "RS256", Kid: "k1", Typ: "at+jwt"}) {
		t.Fatalf("got %+v %v", h, err)
	}
	short := `{"alg":"RS2"}` // 13 bytes: padded in standard base64, spare bits in the last character
	padded := base64.URLEncoding.EncodeToString([]byte(short))
	raw := []byte(enc(short))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range alphabet {
		if alphabet[i] == raw[len(raw)-1] {
			raw[len(raw)-1] = alphabet[i^1] // same decoded byte, different spare bits
			break
		}
	}
	for name, raw := range map[string]string{
		"empty": "", "one part": enc(`{}`), "two parts": enc(`{}`) + ".e30", "four parts": enc(`{}`) + ".a.b.c",
		"padded": padded + ".e30.s", "standard alphabet": "+/+/.e30.s", "not JSON": enc("nope") + ".e30.s",
		"JSON array": enc(`[]`) + ".e30.s", "empty header": ".e30.s",
		"non-canonical trailing bits": string(raw) + ".e30.s",
	} {
		if _, err := ParseTokenHeader(raw); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestIsAccessToken(t *testing.T) {
	cases := []struct {
		name string
		typ  string
		c    Claims
		want bool
	}{
		{"keycloak access", "JWT", Claims{"typ": "Bearer"}, true},
		{"keycloak id", "JWT", Claims{"typ": "ID"}, false},
		{"keycloak refresh", "JWT", Claims{"typ": "Refresh"}, false},
		{"rfc 9068", "at+jwt", Claims{}, true},
		{"rfc 9068 media type", "application/AT+JWT", Claims{"nonce": "x"}, true},
		{"typ claim not a string", "JWT", Claims{"typ": 1.0}, false},
		{"generic id token", "JWT", Claims{"nonce": "n"}, false},
		{"generic id token at_hash", "", Claims{"at_hash": "h"}, false},
		{"generic access token", "JWT", Claims{"scope": "read"}, true},
	}
	for _, c := range cases {
		if got := isAccessToken(TokenHeader{Typ: c.typ}, c.c); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
