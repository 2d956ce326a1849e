//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/podgate/podgate/test/e2e/framework"
)

// The ground the rest stands on: Keycloak's realm issues the tokens the tests rely on, and the
// cluster runs pods and routes Service traffic by named targetPort.

func TestKeycloakRealmIssuesExpectedTokens(t *testing.T) {
	ctx := suiteCtx
	kc := suite.Keycloak
	alice, err := kc.PasswordToken(ctx, framework.ClientID, framework.ClientSecret, framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	claims := mustClaims(t, alice.AccessToken)
	if claims["iss"] != kc.Issuer() {
		t.Errorf("iss = %v, want %s (the one URL host, tests and pods share)", claims["iss"], kc.Issuer())
	}
	if !claimHas(claims["aud"], framework.ClientID) {
		t.Errorf("aud = %v, want it to include %q (audience mapper)", claims["aud"], framework.ClientID)
	}
	if !claimHas(claims["groups"], "/staff") {
		t.Errorf("groups = %v, want /staff (group membership mapper)", claims["groups"])
	}
	if realm, _ := claims["realm_access"].(map[string]any); !claimHas(realm["roles"], framework.AllowedRole) {
		t.Errorf("realm_access = %v, want role %s", claims["realm_access"], framework.AllowedRole)
	}
	resources, _ := claims["resource_access"].(map[string]any)
	if client, _ := resources[framework.ClientID].(map[string]any); !claimHas(client["roles"], "reader") {
		t.Errorf("resource_access = %v, want podgate:reader", claims["resource_access"])
	}
	if claims["email"] != "alice@example.com" || claims["email_verified"] != true {
		t.Errorf("email = %v (verified %v), want alice@example.com, verified", claims["email"], claims["email_verified"])
	}

	bob, err := kc.PasswordToken(ctx, framework.ClientID, framework.ClientSecret, framework.DeniedUser, framework.DeniedPass)
	if err != nil {
		t.Fatal(err)
	}
	bc := mustClaims(t, bob.AccessToken)
	if realm, _ := bc["realm_access"].(map[string]any); claimHas(realm["roles"], framework.AllowedRole) || bc["groups"] != nil {
		t.Errorf("bob's token has realm_access %v and groups %v, want neither the role nor a group", bc["realm_access"], bc["groups"])
	}

	robot, err := kc.ClientCredentialsToken(ctx, framework.RobotClientID, framework.RobotSecret)
	if err != nil {
		t.Fatal(err)
	}
	rc := mustClaims(t, robot.AccessToken)
	if realm, _ := rc["realm_access"].(map[string]any); !claimHas(realm["roles"], framework.AllowedRole) || !claimHas(rc["aud"], framework.ClientID) {
		t.Errorf("service account token: realm_access %v, aud %v; want role %s and audience %s", rc["realm_access"], rc["aud"], framework.AllowedRole, framework.ClientID)
	}

	if _, err := kc.PasswordToken(ctx, framework.ClientID, framework.ClientSecret, framework.AllowedUser, "wrong"); err == nil {
		t.Error("a wrong password got a token")
	}
}

func TestPlainAppServedThroughService(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	const ns = "e2e-plain"
	if err := kube.EnsureNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	pods, err := kube.Deploy(ctx, framework.EchoApp{Namespace: ns, Name: "plain", Replicas: 1, ServiceIP: "198.19.0.30"}, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(pods[0].Spec.InitContainers) + len(pods[0].Spec.Containers); n != 1 {
		t.Errorf("pod in a namespace without the injection label has %d containers, want 1", n)
	}
	echo := getEcho(t, ctx, http.DefaultClient, "http://198.19.0.30/hello", nil)
	if echo.Path != "/hello" || echo.Name != "plain" {
		t.Errorf("echo answered %+v, want path /hello from app plain", echo)
	}
}

func mustClaims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	c, err := framework.Claims(jwt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// claimHas reports whether a claim (a string or a list) contains want.
func claimHas(claim any, want string) bool {
	switch v := claim.(type) {
	case string:
		return v == want
	case []any:
		return slices.ContainsFunc(v, func(e any) bool { return e == want })
	}
	return false
}

// Echo is the echo app's answer (test/e2e/apps/echo).
type Echo struct {
	Name    string              `json:"name"`
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
}

// getEcho GETs url through client with headers, retrying while the Service is not routed yet,
// and decodes the echo app's answer. Anything but a 200 fails the test.
func getEcho(t *testing.T, ctx context.Context, client *http.Client, url string, headers map[string]string) Echo {
	t.Helper()
	var echo Echo
	err := framework.Eventually(ctx, 30*time.Second, 500*time.Millisecond, "GET "+url, func(ctx context.Context) (bool, string, error) {
		status, body, err := get(ctx, client, url, headers)
		if err != nil {
			return false, err.Error(), nil
		}
		if status != http.StatusOK {
			return false, "", fmt.Errorf("HTTP %d: %s", status, body)
		}
		return true, "", json.Unmarshal(body, &echo)
	})
	if err != nil {
		t.Fatal(err)
	}
	return echo
}

func get(ctx context.Context, client *http.Client, url string, headers map[string]string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

func deleteNamespace(kube *framework.Kube, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = kube.Run(ctx, "", "delete", "namespace", ns, "--wait=false")
}
