package framework

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Kind runs the suite on a kind cluster, for machines with Docker or podman (laptops, hosted CI).
// Images are the same docker-archive tarballs the local provider imports, loaded with
// `kind load image-archive`. Pods reach Keycloak on NodeIP through the node container's default
// route to the host, which owns NodeIP on the bridge `up.sh network` creates (so this provider
// needs root too). The cluster's pod and service ranges are moved into 198.18.0.0/15 like the
// local provider's, and routed from the host to the node container, so the tests reach Services
// the same way; the network the container engine puts the node on is the engine's choice.
//
// It cannot run on the machines podgate is developed on (no container engine, no registry for
// kind's node image); it is written for, and documented as, the laptop path.
type Kind struct {
	Scripts     Scripts
	ClusterName string
}

func (k *Kind) Name() string { return "kind" }

func (k *Kind) Prepare(ctx context.Context) error {
	for _, tool := range []string{"kind", "kubectl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("kind provider: %s not found in PATH: %w", tool, err)
		}
	}
	_, dockerErr := exec.LookPath("docker")
	_, podmanErr := exec.LookPath("podman")
	if dockerErr != nil && podmanErr != nil {
		return fmt.Errorf("kind provider: neither docker nor podman is in PATH")
	}
	return nil
}

func (k *Kind) Network(ctx context.Context) error {
	return k.Scripts.Run(ctx, "cluster/local/up.sh", "network")
}

const kindConfig = `kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  podSubnet: 198.18.64.0/18
  serviceSubnet: ` + ServiceCIDR + `
nodes:
- role: control-plane
`

func (k *Kind) Create(ctx context.Context, images []Image) error {
	dir, err := os.MkdirTemp("", "podgate-kind-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	config := filepath.Join(dir, "kind.yaml")
	if err := os.WriteFile(config, []byte(kindConfig), 0o600); err != nil {
		return err
	}
	if err := k.kind(ctx, "create", "cluster", "--name", k.ClusterName, "--config", config,
		"--kubeconfig", k.Kubeconfig(), "--wait", "180s"); err != nil {
		return err
	}
	for _, img := range images {
		if err := k.kind(ctx, "load", "image-archive", img.Tarball, "--name", k.ClusterName); err != nil {
			return err
		}
	}
	// The tests reach Services and pods from the host, as with the local provider: route both
	// ranges to the node container, whose kube-proxy takes it from there.
	nodeIP, err := k.nodeIP(ctx)
	if err != nil {
		return err
	}
	for _, cidr := range kindRoutes {
		if out, err := exec.CommandContext(ctx, "ip", "route", "replace", cidr, "via", nodeIP).CombinedOutput(); err != nil {
			return fmt.Errorf("route %s via the kind node %s: %w: %s", cidr, nodeIP, err, out)
		}
	}
	return nil
}

// kindRoutes are the cluster's service and pod ranges (see kindConfig).
var kindRoutes = []string{ServiceCIDR, "198.18.64.0/18"}

// nodeIP is the control-plane container's address on the container engine's "kind" network.
func (k *Kind) nodeIP(ctx context.Context) (string, error) {
	engine := "docker"
	if _, err := exec.LookPath(engine); err != nil {
		engine = "podman"
	}
	out, err := exec.CommandContext(ctx, engine, "inspect", "-f", "{{.NetworkSettings.Networks.kind.IPAddress}}",
		k.ClusterName+"-control-plane").Output()
	ip := strings.TrimSpace(string(out))
	if err != nil || ip == "" {
		return "", fmt.Errorf("%s inspect %s-control-plane: no address on network kind (%v)", engine, k.ClusterName, err)
	}
	return ip, nil
}

// Kubeconfig is a fixed path, so `make demo-down` in another process finds the same cluster.
func (k *Kind) Kubeconfig() string {
	return filepath.Join(os.TempDir(), "podgate-e2e-"+k.ClusterName+".kubeconfig")
}

func (k *Kind) Kubectl() string { return "kubectl" }

// CNIDirs are the standard directories kind's node image uses (the manifests' defaults); the
// plugin's log stays inside the node container.
func (k *Kind) CNIDirs() (bin, conf, pluginLog string) {
	return "/opt/cni/bin", "/etc/cni/net.d", "/var/log/podgate-cni.log"
}

func (k *Kind) Destroy(ctx context.Context) error {
	var errs []string
	for _, cidr := range kindRoutes {
		_ = exec.CommandContext(ctx, "ip", "route", "del", cidr).Run() // absent when Create did not get that far
	}
	if _, err := exec.LookPath("kind"); err == nil { // without kind there is no kind cluster to delete
		if err := k.kind(ctx, "delete", "cluster", "--name", k.ClusterName, "--kubeconfig", k.Kubeconfig()); err != nil {
			errs = append(errs, err.Error())
		}
	}
	// The host side: NodeIP, the guard table, Keycloak and anything else recorded by PID.
	if err := k.Scripts.Run(ctx, "cluster/local/down.sh"); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("kind teardown: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (k *Kind) kind(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "kind", args...)
	cmd.Stdout, cmd.Stderr = k.Scripts.Log, k.Scripts.Log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kind %s: %w", strings.Join(args, " "), err)
	}
	return nil
}
