package framework

import (
	"context"
	"fmt"
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
	if err := WriteClusterPKI(filepath.Join(StateDir(), "pki")); err != nil {
		return fmt.Errorf("cluster PKI: %w", err)
	}
	return l.Scripts.Run(ctx, "cluster/local/up.sh", "cluster")
}

func (l *Local) Kubeconfig() string {
	return filepath.Join(StateDir(), "pki", "admin.kubeconfig")
}

func (l *Local) Kubectl() string {
	return filepath.Join(CacheDir(), "kubernetes-"+KubernetesVersion, "bin", "kubectl")
}

// CNIDirs are the directories up.sh gives containerd; the plugin logs next to the other components.
func (l *Local) CNIDirs() (bin, conf, pluginLog string) {
	return CNIBinDir(), CNIConfDir(), filepath.Join(LogDir(), "podgate-cni.log")
}

func (l *Local) Destroy(ctx context.Context) error {
	return l.Scripts.Run(ctx, "cluster/local/down.sh")
}
