package framework

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteClusterPKI: every file up.sh reads is there, the API server's certificate verifies for
// every name the cluster uses, and the client certificates carry the identities RBAC expects.
func TestWriteClusterPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := WriteClusterPKI(dir); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	load := func(name string) *x509.Certificate {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c, _ := x509.ParseCertificate(pair.Certificate[0])
		return c
	}
	api := load("apiserver")
	for _, host := range []string{"kubernetes.default.svc", "localhost", "127.0.0.1", NodeIP, "198.19.0.1"} {
		if _, err := api.Verify(x509.VerifyOptions{DNSName: host, Roots: roots}); err != nil {
			t.Errorf("apiserver certificate for %s: %v", host, err)
		}
	}
	kubelet := load("kubelet")
	if kubelet.Subject.CommonName != "system:node:"+NodeName || kubelet.Subject.Organization[0] != "system:nodes" {
		t.Errorf("kubelet subject %v", kubelet.Subject)
	}
	if _, err := kubelet.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("kubelet client certificate: %v", err)
	}
	for _, f := range []string{"sa.key", "sa.pub", "admin.kubeconfig", "kube-proxy.kubeconfig", "apiserver-kubelet-client.crt", "done"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	kc, _ := os.ReadFile(filepath.Join(dir, "admin.kubeconfig"))
	if !strings.Contains(string(kc), "server: "+APIServerURL) {
		t.Errorf("admin.kubeconfig:\n%s", kc)
	}
	if info, _ := os.Stat(filepath.Join(dir, "ca.key")); info.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode %v", info.Mode())
	}
	// A second call keeps the finished PKI.
	if err := WriteClusterPKI(dir); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); string(again) != string(caPEM) {
		t.Error("a finished PKI was rewritten")
	}
}
