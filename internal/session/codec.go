// Package session keeps the browser session in the client: an AES-GCM encrypted and authenticated
// cookie, split across several cookies when large, so any replica holding the shared key serves any
// user without a session store.
package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// ErrInvalid means a cookie did not decrypt: tampered, truncated, from another key, or moved from
// another cookie name.
var ErrInvalid = errors.New("cookie does not decrypt")

// Codec seals values with AES-GCM. The cookie name is the additional authenticated data, so a value
// sealed for one cookie (say the CSRF cookie) is rejected under another name.
type Codec struct{ aead cipher.AEAD }

// NewCodec returns a codec for a 16, 24 or 32 byte key.
func NewCodec(key []byte) (*Codec, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("cookie key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Codec{aead: aead}, nil
}

// Seal encrypts plaintext for cookie name and returns cookie-safe text (base64url, no padding).
func (c *Codec) Seal(name string, plaintext []byte) string {
	ns := c.aead.NonceSize()
	buf := make([]byte, ns, ns+len(plaintext)+c.aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		panic("crypto/rand failed: " + err.Error()) // documented never to fail on supported platforms
	}
	buf = c.aead.Seal(buf, buf, plaintext, []byte(name))
	return base64.RawURLEncoding.EncodeToString(buf)
}

// Open decrypts a value sealed for cookie name.
func (c *Codec) Open(name, value string) ([]byte, error) {
	// Strict: one spelling per sealed value. Lenient decoding accepts several (the spare bits of the
	// last character are ignored), each a distinct cache key for the same session.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(value)
	if err != nil || len(raw) < c.aead.NonceSize()+c.aead.Overhead() {
		return nil, ErrInvalid
	}
	ns := c.aead.NonceSize()
	pt, err := c.aead.Open(nil, raw[:ns], raw[ns:], []byte(name))
	if err != nil {
		return nil, ErrInvalid
	}
	return pt, nil
}
