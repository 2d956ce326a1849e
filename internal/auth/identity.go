package auth

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Identity is who a request is from, extracted once from verified claims and then reused from
// the token cache or the session, so the hot path only copies strings into headers.
type Identity struct {
	Subject           string   `json:"sub"`
	User              string   `json:"user"`
	Email             string   `json:"email,omitempty"`
	EmailVerified     bool     `json:"emailVerified,omitempty"`
	PreferredUsername string   `json:"preferredUsername,omitempty"`
	Groups            []string `json:"groups,omitempty"`
	// Roles holds realm roles as "role" and client roles as "client:role" (Keycloak).
	Roles []string `json:"roles,omitempty"`
	// Expiry is when the credential the identity came from stops being valid.
	Expiry time.Time `json:"exp"`
}

// ClaimNames says which claims carry the user and the groups.
type ClaimNames struct {
	User   string
	Groups string
}

// Claims is a decoded token payload.
type Claims map[string]any

// ParseClaims decodes a token payload.
func ParseClaims(payload []byte) (Claims, error) {
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("claims are not a JSON object: %w", err)
	}
	return c, nil
}

// String returns a string claim, or "".
func (c Claims) String(name string) string {
	s, _ := c[name].(string)
	return s
}

// Time returns a NumericDate claim and whether it was present and numeric.
func (c Claims) Time(name string) (time.Time, bool) {
	f, ok := c[name].(float64)
	if !ok {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}

// Audiences returns "aud" as a list (it may be a string or an array).
func (c Claims) Audiences() []string {
	return stringList(c["aud"])
}

// Bool returns a boolean claim; some providers send "true" as a string.
func (c Claims) Bool(name string) bool {
	switch v := c[name].(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Identity extracts who the claims describe: Keycloak realm roles (realm_access.roles), client
// roles (resource_access.<client>.roles, as client:role), groups, email and names.
func (c Claims) Identity(names ClaimNames) *Identity {
	id := &Identity{
		Subject:           c.String("sub"),
		Email:             c.String("email"),
		EmailVerified:     c.Bool("email_verified"),
		PreferredUsername: c.String("preferred_username"),
		Groups:            stringList(c[names.Groups]),
	}
	id.User = c.String(names.User)
	if id.User == "" {
		id.User = id.Subject
	}
	if realm, ok := c["realm_access"].(map[string]any); ok {
		id.Roles = append(id.Roles, stringList(realm["roles"])...)
	}
	if res, ok := c["resource_access"].(map[string]any); ok {
		clients := make([]string, 0, len(res))
		for client := range res {
			clients = append(clients, client)
		}
		slices.Sort(clients)
		for _, client := range clients {
			if m, ok := res[client].(map[string]any); ok {
				for _, r := range stringList(m["roles"]) {
					id.Roles = append(id.Roles, client+":"+r)
				}
			}
		}
	}
	if exp, ok := c.Time("exp"); ok {
		id.Expiry = exp
	}
	return id
}

// Merge fills what id lacks from other (an ID token's claims complete an access token's).
func (id *Identity) Merge(other *Identity) {
	if other == nil {
		return
	}
	if id.Email == "" {
		id.Email, id.EmailVerified = other.Email, other.EmailVerified
	}
	if id.PreferredUsername == "" {
		id.PreferredUsername = other.PreferredUsername
	}
	if id.User == "" || id.User == id.Subject && other.User != other.Subject {
		id.User = other.User
	}
	if len(id.Groups) == 0 {
		id.Groups = other.Groups
	}
	for _, r := range other.Roles {
		if !slices.Contains(id.Roles, r) {
			id.Roles = append(id.Roles, r)
		}
	}
}

// Policy is the authorization rule. Each configured kind must pass (roles AND groups AND email
// domains); within a kind any one value suffices. An empty policy allows every authenticated user.
type Policy struct {
	Roles        []string
	Groups       []string
	EmailDomains []string
}

// Allows reports whether id satisfies the policy, and if not, which kind failed (for logs).
func (p Policy) Allows(id *Identity) (bool, string) {
	if len(p.Roles) > 0 && !slices.ContainsFunc(p.Roles, func(r string) bool { return slices.Contains(id.Roles, r) }) {
		return false, "role"
	}
	if len(p.Groups) > 0 && !slices.ContainsFunc(p.Groups, func(g string) bool {
		g = strings.TrimPrefix(g, "/")
		return slices.ContainsFunc(id.Groups, func(have string) bool { return strings.TrimPrefix(have, "/") == g })
	}) {
		return false, "group"
	}
	if len(p.EmailDomains) > 0 && !p.emailAllowed(id) {
		return false, "emailDomain"
	}
	return true, ""
}

// emailAllowed requires a verified email: an unverified address is whatever the user typed.
func (p Policy) emailAllowed(id *Identity) bool {
	if !id.EmailVerified || id.Email == "" {
		return false
	}
	at := strings.LastIndexByte(id.Email, '@')
	if at < 1 {
		return false
	}
	domain := id.Email[at+1:]
	for _, d := range p.EmailDomains {
		if d == "*" || strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}
