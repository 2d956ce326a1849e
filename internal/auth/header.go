package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// maxHeaderLen bounds the encoded JOSE header read before any signature check: a real one is a
// few hundred bytes.
const maxHeaderLen = 4096

// ErrMalformed means a token is not a compact JWS with a decodable header.
var ErrMalformed = errors.New("malformed token")

// TokenHeader is the part of a JWT's JOSE header read before the signature is checked. Nothing in
// it is trusted: it only selects (typ) what kind of token the signature then vouches for.
type TokenHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// ParseTokenHeader decodes the header of a compact JWT: three dot-separated parts, the first
// strict unpadded base64url (one spelling per header) holding a JSON object.
func ParseTokenHeader(raw string) (TokenHeader, error) {
	var h TokenHeader
	enc, rest, ok := strings.Cut(raw, ".")
	if !ok || strings.Count(rest, ".") != 1 || enc == "" || len(enc) > maxHeaderLen {
		return h, ErrMalformed
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil {
		return h, ErrMalformed
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, ErrMalformed
	}
	return h, nil
}

// ErrNotAccessToken means a token verified but is not an access token (an ID or refresh token).
var ErrNotAccessToken = errors.New("token is not an access token")

// isAccessToken tells an access token from the provider's other JWTs, which carry the same issuer,
// keys and, for an ID token, the client id as audience: an ID token is handed to the browser (it
// rides in the sign-out URL as id_token_hint) and must not become an API credential. RFC 9068
// access tokens say so in the header ("at+jwt"); Keycloak's in the "typ" claim ("Bearer", against
// "ID" and "Refresh"). Without either, the ID token's hallmarks (nonce, at_hash) rule it out.
func isAccessToken(h TokenHeader, c Claims) bool {
	if typ := strings.ToLower(h.Typ); typ == "at+jwt" || typ == "application/at+jwt" {
		return true
	}
	if t, ok := c["typ"]; ok {
		s, _ := t.(string)
		return strings.EqualFold(s, "Bearer")
	}
	_, nonce := c["nonce"]
	_, atHash := c["at_hash"]
	return !nonce && !atHash
}
