package framework

import (
	"context"
	"os"
	"path/filepath"
)

// Local runs a real single-node cluster as processes on this machine: Kubernetes and etcd built
// from source through the Go module proxy, containerd, runc and the CNI plugins from Debian. It
// needs root and no container engine or registry. The work is done by test/e2e/cluster/local/*.sh.
type Local struct {
	Scripts Scripts
}

func (l *Local) Name() string { return "local" }

func (l *Local) Prepare(ctx context.Context) error {
	if err := l.Scripts.Run(ctx, "cluster/local/install.sh"); err != nil {
		return err
	}
	return l.Scripts.Run(ctx, "cluster/local/build.sh")
}

func (l *Local) Network(ctx context.Context) error {
	return l.Scripts.Run(ctx, "cluster/local/up.sh", "network")
}

func (l *Local) Create(ctx context.Context, _ []Image) error {
	// containerd first, so the images (the pause image among them) are there before the kubelet
	// creates its first sandbox.
	if err := l.Scripts.Run(ctx, "cluster/local/up.sh", "containerd"); err != nil {
		return err
	}
	if err := l.Scripts.Run(ctx, "images/images.sh", "import"); err != nil {
		return err
	}
	return l.Scripts.Run(ctx, "cluster/local/up.sh", "cluster")
}

// The defaults below mirror cluster/local/lib.sh.

func (l *Local) Kubeconfig() string {
	return filepath.Join(envOr("PODGATE_E2E_STATE", "/var/lib/podgate-e2e"), "pki", "admin.kubeconfig")
}

func (l *Local) Kubectl() string {
	return filepath.Join(CacheDir(), "kubernetes-"+envOr("K8S_VERSION", "v1.34.4"), "bin", "kubectl")
}

// CacheDir is where built binaries, Keycloak and images are cached, outside the repository.
func CacheDir() string {
	if dir := os.Getenv("PODGATE_E2E_CACHE"); dir != "" {
		return dir
	}
	return filepath.Join(envOr("XDG_CACHE_HOME", "/var/cache"), "podgate-e2e")
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func (l *Local) Destroy(ctx context.Context) error {
	return l.Scripts.Run(ctx, "cluster/local/down.sh")
}

// LogDir is where the cluster components, Keycloak and nginx write their logs.
func LogDir() string { return envOr("PODGATE_E2E_LOGS", "/var/log/podgate-e2e") }
