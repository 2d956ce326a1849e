package framework

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// DeployInjector deploys the injector from manifests/overlays/e2e and waits until the API server
// actually sends it pods.
func (s *Stack) DeployInjector(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.Root, "manifests", "overlays", "e2e", "kustomization.yaml")); err != nil {
		return ErrNoManifests
	}
	return nil
}

// Demo brings the stack up with the injector and the demo app, and leaves it running.
func (s *Stack) Demo(ctx context.Context) error {
	if err := s.Up(ctx); err != nil {
		return err
	}
	if err := s.Phases.Run("deploy injector", func() error { return s.DeployInjector(ctx) }); err != nil {
		return err
	}
	return s.Phases.Run("deploy demo app", func() error {
		_, err := s.Kube.DeployDemo(ctx)
		return err
	})
}

// DemoInstructions tells a person what to open, as whom, and how to stop it all.
func (s *Stack) DemoInstructions() string {
	return fmt.Sprintf(`
podgate demo is running.

  Open      %s/   (a browser on this machine; you are sent to Keycloak to log in)
  Log in as %s / %s   (has the role %s: sees the page)
        or  %s / %s       (no role: gets 403)
  API       curl -H "Authorization: Bearer $TOKEN" %s/   (401 without a token)
  Keycloak  %s   (admin / admin)
  Cluster   export KUBECONFIG=%s
            kubectl -n %s get pods   (the sidecar is the native sidecar podgate-proxy)

  Stop it   make demo-down
`, DemoURL, AllowedUser, AllowedPass, AllowedRole, DeniedUser, DeniedPass, DemoURL,
		s.Keycloak.URL+"/admin/", s.Provider.Kubeconfig(), DemoNamespace)
}
