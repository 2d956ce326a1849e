package framework

import (
	"context"
	"fmt"
)

// Provider brings up a Kubernetes cluster the e2e suite can run against. The suite and the
// manifests are the same for every provider; only how the cluster and its images come to exist
// differs.
type Provider interface {
	// Name is what PODGATE_E2E_PROVIDER selects.
	Name() string
	// Prepare installs and builds what the provider needs, skipping anything already cached.
	Prepare(ctx context.Context) error
	// Network gives this host NodeIP (Keycloak listens there) before the cluster exists.
	Network(ctx context.Context) error
	// Create starts the cluster, loads the images (docker-archive tarballs) and returns once the
	// node is Ready.
	Create(ctx context.Context, images []Image) error
	// Kubeconfig is the path of an admin kubeconfig for the cluster.
	Kubeconfig() string
	// Kubectl is the kubectl binary to use with it.
	Kubectl() string
	// CNIDirs are the node's CNI bin and conf dirs (the podgate-cni agent's hostPaths) and the
	// host path the plugin logs to.
	CNIDirs() (bin, conf, pluginLog string)
	// Destroy removes everything Network and Create made, and stops everything they started.
	// It must work after a partial Create, and twice in a row.
	Destroy(ctx context.Context) error
}

// Image is a built image: its reference and the docker-archive tarball holding it.
type Image struct {
	Ref     string
	Tarball string
}

// NewProvider returns the provider called name ("" means local).
func NewProvider(name string, scripts Scripts) (Provider, error) {
	switch name {
	case "", "local":
		return &Local{Scripts: scripts}, nil
	case "kind":
		return &Kind{Scripts: scripts, ClusterName: "podgate-e2e"}, nil
	default:
		return nil, fmt.Errorf("PODGATE_E2E_PROVIDER=%q: unknown provider, want local or kind", name)
	}
}
