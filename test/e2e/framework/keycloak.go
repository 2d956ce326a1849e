package framework

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The realm test/e2e/testdata/podgate-realm.json defines. The secrets are test fixtures of a
// throwaway in-memory Keycloak, not credentials.
const (
	Realm          = "podgate"
	ClientID       = "podgate"
	ClientSecret   = "podgate-e2e-client-secret"
	RobotClientID  = "podgate-robot"
	RobotSecret    = "podgate-e2e-robot-secret"
	ShortClientID  = "podgate-short-lived" // tokens live 10 s
	ShortSecret    = "podgate-e2e-short-lived-secret"
	AllowedRole    = "app-user"
	AllowedUser    = "alice" // realm role app-user, client role podgate:reader, group /staff
	AllowedPass    = "alice-password"
	DeniedUser     = "bob" // no role, no group
	DeniedPass     = "bob-password"
	KeycloakPort   = "8080"
	KeycloakHealth = "9000"
)

// Keycloak is a running Keycloak's public face. Its issuer is the same URL for the host, the test
// client and the pods, because Keycloak runs with --hostname set to it.
type Keycloak struct {
	// URL is the base URL, e.g. http://198.18.255.1:8080.
	URL    string
	Client *http.Client
}

// NewKeycloak returns the Keycloak keycloak.sh starts on NodeIP.
func NewKeycloak() *Keycloak {
	return &Keycloak{URL: "http://" + NodeIP + ":" + KeycloakPort, Client: &http.Client{Timeout: 30 * time.Second}}
}

// Issuer is the realm's issuer URL, the "iss" of every token it signs.
func (k *Keycloak) Issuer() string { return k.URL + "/realms/" + Realm }

// Token is a token endpoint answer.
type Token struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	TokenType    string `json:"token_type"`
}

// PasswordToken runs the resource-owner password grant (the realm's clients allow it for tests).
func (k *Keycloak) PasswordToken(ctx context.Context, clientID, secret, user, password string) (Token, error) {
	return k.token(ctx, url.Values{
		"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {secret},
		"username": {user}, "password": {password}, "scope": {"openid"},
	})
}

// ClientCredentialsToken runs the client-credentials grant for a service account.
func (k *Keycloak) ClientCredentialsToken(ctx context.Context, clientID, secret string) (Token, error) {
	return k.token(ctx, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}})
}

func (k *Keycloak) token(ctx context.Context, form url.Values) (Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.Issuer()+"/protocol/openid-connect/token", strings.NewReader(form.Encode()))
	if err != nil {
		return Token{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := k.Client.Do(req)
	if err != nil {
		return Token{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return Token{}, fmt.Errorf("token endpoint (grant %s): HTTP %d: %s", form.Get("grant_type"), resp.StatusCode, body)
	}
	var t Token
	if err := json.Unmarshal(body, &t); err != nil {
		return Token{}, fmt.Errorf("token endpoint: decoding answer: %w", err)
	}
	if t.AccessToken == "" {
		return Token{}, fmt.Errorf("token endpoint: answer has no access_token")
	}
	return t, nil
}

// Claims decodes a JWT's payload without verifying it: tests use it to check what Keycloak put
// into a token, the sidecar is what verifies them.
func Claims(jwt string) (map[string]any, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("token has %d parts, want 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("token payload: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("token payload: %w", err)
	}
	return claims, nil
}
