package framework

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// The faults the e2e suite injects: Keycloak stopped and started again by the PID keycloak.sh
// recorded, a signing key added through Keycloak's admin API, and a container's process killed
// through the container runtime by the ID the kubelet reports.

// StopKeycloak stops the Keycloak keycloak.sh started (its process group, by the recorded PID).
func (s *Stack) StopKeycloak(ctx context.Context) error {
	return s.Scripts.Run(ctx, "keycloak/keycloak.sh", "stop")
}

// StartKeycloak starts Keycloak again and waits until the realm is served. Its database is in
// memory, so it comes back exactly as the run started it: the realm imported afresh from
// testdata/podgate-realm.json, with new signing keys, and no sessions.
func (s *Stack) StartKeycloak(ctx context.Context) error {
	return s.Scripts.Run(ctx, "keycloak/keycloak.sh", "up")
}

// Serving reports whether the realm's discovery document answers.
func (k *Keycloak) Serving(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.Issuer()+"/.well-known/openid-configuration", nil)
	if err != nil {
		return false
	}
	resp, err := k.Client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// The realm's administrator for the faults (testdata/podgate-realm.json): a service account with
// realm-management's view-realm and manage-realm. It lives in the podgate realm because the master
// realm (and its bootstrap admin) requires HTTPS from addresses that are not private, as
// 198.18.255.1 is not.
const (
	adminClientID     = "podgate-e2e-admin"
	adminClientSecret = "podgate-e2e-admin-secret"
)

// adminToken gets the realm administrator's access token (client credentials).
func (k *Keycloak) adminToken(ctx context.Context) (string, error) {
	tok, err := k.ClientCredentialsToken(ctx, adminClientID, adminClientSecret)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return tok.AccessToken, nil
}

// admin sends a request to the realm's admin API as the bootstrap administrator and decodes the
// answer into out (when not nil). It returns the answer's Location header (what a POST created).
func (k *Keycloak) admin(ctx context.Context, method, rel string, body, out any) (string, error) {
	tok, err := k.adminToken(ctx)
	if err != nil {
		return "", err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return "", err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, k.URL+"/admin/realms/"+Realm+rel, rd)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := k.Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("%s %s: HTTP %d: %.300s", method, rel, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return "", fmt.Errorf("%s %s: %w", method, rel, err)
		}
	}
	return resp.Header.Get("Location"), nil
}

// RotateSigningKey adds an RS256 key provider to the realm with a priority above the imported
// realm's keys (100), which is how an administrator rotates Keycloak's signing key: tokens are
// signed with the new key from then on, and the old key stays published (tokens it signed remain
// valid until they expire). It returns the new key provider's component ID.
func (k *Keycloak) RotateSigningKey(ctx context.Context, name string) (string, error) {
	var realm struct {
		ID string `json:"id"`
	}
	if _, err := k.admin(ctx, http.MethodGet, "", nil, &realm); err != nil {
		return "", err
	}
	loc, err := k.admin(ctx, http.MethodPost, "/components", map[string]any{
		"name": name, "providerId": "rsa-generated", "providerType": "org.keycloak.keys.KeyProvider", "parentId": realm.ID,
		"config": map[string][]string{"priority": {"200"}, "keySize": {"2048"}, "algorithm": {"RS256"},
			"active": {"true"}, "enabled": {"true"}},
	}, nil)
	if err != nil {
		return "", err
	}
	if loc == "" {
		return "", errors.New("creating the key provider: no Location in the answer")
	}
	return path.Base(loc), nil
}

// DeleteComponent removes a component (a key provider RotateSigningKey added) from the realm.
func (k *Keycloak) DeleteComponent(ctx context.Context, id string) error {
	_, err := k.admin(ctx, http.MethodDelete, "/components/"+url.PathEscape(id), nil, nil)
	return err
}

// KeyID returns the "kid" of a JWT's header.
func KeyID(jwt string) (string, error) {
	head, _, ok := strings.Cut(jwt, ".")
	if !ok {
		return "", errors.New("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", fmt.Errorf("JWT header: %w", err)
	}
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", fmt.Errorf("JWT header: %w", err)
	}
	return h.KID, nil
}

// ErrNoContainerRuntime is returned by KillContainer on providers whose container runtime this
// host cannot reach.
var ErrNoContainerRuntime = errors.New("the provider's container runtime is not reachable from the host")

// KillContainer SIGKILLs the process of a running container, as a crash or the OOM killer would,
// through the local cluster's containerd. containerID is the kubelet's (a container status's
// containerID, "containerd://<id>"): the process is found by the runtime's record of that one
// container, never by name. The kubelet then sees the container exit and restarts it.
func (s *Stack) KillContainer(ctx context.Context, containerID string) error {
	if s.Provider.Name() != "local" {
		return ErrNoContainerRuntime
	}
	id, ok := strings.CutPrefix(containerID, "containerd://")
	if !ok || id == "" {
		return fmt.Errorf("container ID %q is not containerd's", containerID)
	}
	sock := filepath.Join(StateDir(), "containerd", "containerd.sock")
	out, err := exec.CommandContext(ctx, "ctr", "--address", sock, "-n", "k8s.io", "task", "kill", "--signal", "SIGKILL", id).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr task kill %s: %w: %s", id, err, bytes.TrimSpace(out))
	}
	return nil
}
