package framework

import (
	"os"
	"path/filepath"
)

// The settings an e2e run shares between Go and the scripts. They are defined here and nowhere
// else: every script gets them in its environment (Env) and requires them with ${VAR:?}, and
// run.sh reads them from `podgate-e2e env`.
const (
	// KubernetesVersion is the k8s.io/kubernetes release the local provider builds and runs.
	KubernetesVersion = "v1.34.4"
	// EtcdVersion is the go.etcd.io/etcd/server/v3 release it runs under the API server.
	EtcdVersion = "v3.6.16"
	// TraefikVersion is the Traefik release built from its source tarball in shared/third_party
	// (test/e2e/traefik/build.sh), and TraefikSHA256 that tarball's checksum.
	TraefikVersion = "v3.7.9"
	TraefikSHA256  = "eaebc112f91a13953d5f239a8bf37af32bf0b14172bec3ca4ed59e6eb019720e"
	// CoreDNSVersion is the github.com/coredns/coredns release built for the cluster's DNS.
	CoreDNSVersion = "v1.15.0"
	// NodeIP is the address the host side of every provider owns: the node, Keycloak and the
	// forward-auth nginx listen there, and pods reach it through their default route. It lies in
	// 198.18.0.0/15, which nothing outside this machine routes to it.
	NodeIP = "198.18.255.1"
	// NodeName is the local provider's one node.
	NodeName = "podgate-e2e"
	// ServiceCIDR is the cluster's Service range (also in 198.18.0.0/15); its first address is the
	// kubernetes Service, which the API server's certificate names.
	ServiceCIDR = "198.19.0.0/16"
	// ClusterDNSIP is CoreDNS's Service address, the nameserver the kubelet gives pods (kubeadm's
	// choice: the tenth address of the Service range).
	ClusterDNSIP = "198.19.0.10"
	// APIServerURL is where the local provider's API server listens.
	APIServerURL = "https://" + NodeIP + ":6443"
)

// CacheDir holds what runs reuse, keyed by version: built binaries, Keycloak, image tarballs and
// the run lock. PODGATE_E2E_CACHE moves it.
func CacheDir() string {
	return envOr("PODGATE_E2E_CACHE", filepath.Join(envOr("XDG_CACHE_HOME", "/var/cache"), "podgate-e2e"))
}

// StateDir holds everything a running cluster owns (PKI, etcd data, containerd root, PID files and
// the records of the host's state before the run); teardown removes it. PODGATE_E2E_STATE moves it.
func StateDir() string { return envOr("PODGATE_E2E_STATE", "/var/lib/podgate-e2e") }

// LogDir is where the cluster components, Keycloak, nginx and the test log write; it is kept after
// teardown and emptied when a run starts. PODGATE_E2E_LOGS moves it.
func LogDir() string { return envOr("PODGATE_E2E_LOGS", "/var/log/podgate-e2e") }

// CNIBinDir and CNIConfDir are the local provider's CNI directories, under StateDir: containerd
// uses them, and the podgate-cni node agent installs into them as it would into /opt/cni/bin and
// /etc/cni/net.d (their own bin dir, so teardown removes what the agent left with the state).
func CNIBinDir() string  { return filepath.Join(StateDir(), "cni", "bin") }
func CNIConfDir() string { return filepath.Join(StateDir(), "cni", "net.d") }

// Env is the settings as the environment variables the scripts require.
func Env() []string {
	return []string{
		"PODGATE_E2E_CACHE=" + CacheDir(),
		"PODGATE_E2E_STATE=" + StateDir(),
		"PODGATE_E2E_LOGS=" + LogDir(),
		"CNI_BIN_DIR=" + CNIBinDir(),
		"CNI_CONF_DIR=" + CNIConfDir(),
		"K8S_VERSION=" + KubernetesVersion,
		"ETCD_VERSION=" + EtcdVersion,
		"TRAEFIK_VERSION=" + TraefikVersion,
		"TRAEFIK_SHA256=" + TraefikSHA256,
		"COREDNS_VERSION=" + CoreDNSVersion,
		"DNS_IP=" + ClusterDNSIP,
		"NODE_IP=" + NodeIP,
		"NODE_NAME=" + NodeName,
		"SVC_CIDR=" + ServiceCIDR,
		"API_URL=" + APIServerURL,
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
