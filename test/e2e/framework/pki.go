package framework

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/podgate/podgate/internal/devcerts"
)

// pkiValidity is how long the local cluster's certificates last: far longer than any run.
const pkiValidity = 30 * 24 * time.Hour

// clusterClient is one client certificate of the local cluster and, when kubeconfig is set, the
// kubeconfig a component reads it from.
type clusterClient struct {
	name, commonName, org string
	kubeconfig            bool
}

var clusterClients = []clusterClient{
	{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters", false},
	{"admin", "podgate-e2e-admin", "system:masters", true},
	{"controller-manager", "system:kube-controller-manager", "", true},
	{"scheduler", "system:kube-scheduler", "", true},
	{"kubelet", "system:node:" + NodeName, "system:nodes", true},
	{"kube-proxy", "system:kube-proxy", "", true},
}

// WriteClusterPKI writes the local cluster's PKI into dir, unless an earlier call finished it
// (dir/done): the CA, the API server's serving certificate, a client certificate and kubeconfig per
// component, and the service-account signing key. up.sh reads the files by these names.
func WriteClusterPKI(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	ca, err := devcerts.NewCA("podgate-e2e-ca", now, now.Add(pkiValidity))
	if err != nil {
		return err
	}
	files := []devcerts.File{{Name: "ca.crt", Data: ca.CertPEM()}, {Name: "ca.key", Data: ca.KeyPEM(), Key: true}}
	issue := func(name string, l devcerts.Leaf) ([]byte, []byte, error) {
		l.NotAfter = now.Add(pkiValidity)
		cert, key, err := ca.Issue(l, now)
		if err != nil {
			return nil, nil, fmt.Errorf("%s certificate: %w", name, err)
		}
		files = append(files, devcerts.File{Name: name + ".crt", Data: cert}, devcerts.File{Name: name + ".key", Data: key, Key: true})
		return cert, key, nil
	}
	kubernetesIP, err := firstServiceIP()
	if err != nil {
		return err
	}
	if _, _, err := issue("apiserver", devcerts.Leaf{CommonName: "kube-apiserver",
		DNSNames:    []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(NodeIP), kubernetesIP},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return err
	}
	for _, c := range clusterClients {
		l := devcerts.Leaf{CommonName: c.commonName, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if c.org != "" {
			l.Organization = []string{c.org}
		}
		cert, key, err := issue(c.name, l)
		if err != nil {
			return err
		}
		if c.kubeconfig {
			files = append(files, devcerts.File{Name: c.name + ".kubeconfig", Data: kubeconfig(c.name, ca.CertPEM(), cert, key), Key: true})
		}
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	files = append(files, devcerts.File{Name: "sa.key", Data: devcerts.KeyPEM(saKey), Key: true},
		devcerts.File{Name: "sa.pub", Data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub})},
		devcerts.File{Name: "done"})
	return devcerts.WriteFiles(dir, files...)
}

// firstServiceIP is the kubernetes Service's ClusterIP: the first address of ServiceCIDR.
func firstServiceIP() (net.IP, error) {
	p, err := netip.ParsePrefix(ServiceCIDR)
	if err != nil {
		return nil, err
	}
	return net.IP(p.Addr().Next().AsSlice()), nil
}

// kubeconfig is a kubeconfig for one client certificate against APIServerURL.
func kubeconfig(user string, caPEM, certPEM, keyPEM []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: podgate-e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: podgate-e2e
  context: {cluster: podgate-e2e, user: %s}
current-context: podgate-e2e
`, APIServerURL, b64(caPEM), user, b64(certPEM), b64(keyPEM), user)
}
