package oidctest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keycloakScope is the scope claim of a Keycloak 26 access token for the default client scopes.
const keycloakScope = "openid email profile"

// keycloakClaims adds what Keycloak 26 puts in every access and ID token beyond the standard claims.
func (p *Provider) keycloakClaims(c map[string]any, typ string) {
	now := time.Now().Unix()
	c["jti"] = "onrtac:" + uuid()
	c["sid"] = uuid()
	c["acr"] = "1"
	c["auth_time"] = now
	if typ != "Bearer" {
		return
	}
	c["aud"] = append(stringsOf(c["aud"]), "account")
	c["allowed-origins"] = []string{"http://127.0.0.1:4180"}
	c["scope"] = keycloakScope
	c["realm_access"] = map[string]any{"roles": []string{"default-roles-podgate", "offline_access", "uma_authorization"}}
	c["resource_access"] = map[string]any{"account": map[string]any{"roles": []string{"manage-account", "manage-account-links", "view-profile"}}}
}

// mergeKeycloakRoles adds the realm's default roles and the account client's roles to the user's
// own, as Keycloak does (the user's claims replaced the defaults when they were copied in).
func mergeKeycloakRoles(c map[string]any) {
	realm := []string{"default-roles-podgate", "offline_access", "uma_authorization"}
	if ra, ok := c["realm_access"].(map[string]any); ok {
		for _, r := range stringsOf(ra["roles"]) {
			if !slices.Contains(realm, r) {
				realm = append(realm, r)
			}
		}
	}
	c["realm_access"] = map[string]any{"roles": realm}
	clients := map[string]any{"account": map[string]any{"roles": []string{"manage-account", "manage-account-links", "view-profile"}}}
	if ra, ok := c["resource_access"].(map[string]any); ok {
		for k, v := range ra {
			clients[k] = v
		}
	}
	c["resource_access"] = clients
}

// keycloakRefreshToken is an HS512 JWT shaped like Keycloak 26's refresh tokens.
func (p *Provider) keycloakRefreshToken(u User) string {
	now := time.Now()
	return MintRaw(jose.SigningKey{Algorithm: jose.HS512, Key: p.refreshKey}, uuid(), map[string]any{
		"exp": now.Add(30 * time.Minute).Unix(), "iat": now.Unix(), "jti": uuid(), "iss": p.Issuer(),
		"aud": p.Issuer(), "sub": u.Subject, "typ": "Refresh", "azp": p.cfg.ClientID, "sid": uuid(),
		"scope": "openid web-origins acr basic email profile roles",
	})
}

// KeycloakUser is a user as the e2e realm (test/e2e/testdata/podgate-realm.json) defines alice,
// with groups groups and extraRoles more realm roles: KeycloakUser(1, 0) is alice herself (group
// /staff, role app-user); more groups are named like a company's tree (/org/department-07/team-07)
// and more roles like app-role-07, so token and session sizes can be measured as they grow.
func KeycloakUser(groups, extraRoles int) User {
	gs := []string{"/staff"}
	for i := 1; i < groups; i++ {
		gs = append(gs, fmt.Sprintf("/org/department-%02d/team-%02d", i/10, i))
	}
	roles := []string{"default-roles-podgate", "app-user"}
	for i := 0; i < extraRoles; i++ {
		roles = append(roles, fmt.Sprintf("app-role-%02d", i))
	}
	return User{Subject: uuid(), Claims: map[string]any{
		"preferred_username": "alice", "email": "alice@example.com", "email_verified": true,
		"name": "Alice Allowed", "given_name": "Alice", "family_name": "Allowed", "groups": gs,
		"realm_access":    map[string]any{"roles": roles},
		"resource_access": map[string]any{"podgate": map[string]any{"roles": []string{"reader"}}},
	}}
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func stringsOf(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []string:
		return v
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// atHash is an at_hash-sized value (the left half of a SHA-256, base64url: 22 characters).
func atHash() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
