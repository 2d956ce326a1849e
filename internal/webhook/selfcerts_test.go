package webhook

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podgate/podgate/internal/devcerts"
)

// certSecret is a Secret as the rotator writes it, from a fresh dev CA and certificate.
func certSecret(t *testing.T) (*corev1.Secret, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	if _, err := devcerts.Ensure(devcerts.Options{Dir: dir, Service: "podgate-injector", Namespace: "podgate-system", Validity: time.Hour}); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(read(devcerts.CAFile))
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "podgate-injector-cert", Namespace: "podgate-system"},
		Data: map[string][]byte{corev1.TLSCertKey: read(devcerts.CertFile), corev1.TLSPrivateKeyKey: read(devcerts.KeyFile)}}, pool
}

// handshake connects to addr trusting pool and returns the leaf the server presented.
func handshake(t *testing.T, addr string, pool *x509.CertPool) (*x509.Certificate, error) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "podgate-injector.podgate-system.svc"})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// TestSecretCertificateRotatesWithoutRestart serves TLS from one listener while the Secret changes
// under it: each handshake gets the certificate current at that moment, an empty or broken Secret
// never replaces a working certificate.
func TestSecretCertificateRotatesWithoutRestart(t *testing.T) {
	var loaded []string
	s := &SecretCertificate{Log: zap.NewNop(), OnLoad: func(leaf *x509.Certificate, _ []byte) { loaded = append(loaded, leaf.SerialNumber.String()) }}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: s.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) { _ = c.(*tls.Conn).Handshake(); c.Close() }(c)
		}
	}()
	addr := l.Addr().String()
	first, pool1 := certSecret(t)

	if s.Loaded() == nil {
		t.Fatal("Loaded before any certificate")
	}
	if _, err := handshake(t, addr, pool1); err == nil {
		t.Fatal("handshake succeeded without a certificate")
	}
	empty := first.DeepCopy()
	empty.Data = nil
	if err := s.Update(empty); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("empty Secret: %v, want ErrNoCertificate", err)
	}

	if err := s.Update(first); err != nil {
		t.Fatal(err)
	}
	got, err := handshake(t, addr, pool1)
	if err != nil || s.Loaded() != nil {
		t.Fatalf("after the first load: %v, %v", err, s.Loaded())
	}
	if !got.Equal(s.Current()) {
		t.Fatal("served certificate is not Current()")
	}

	// Same certificate again (a resync): not loaded twice.
	if err := s.Update(first.DeepCopy()); err != nil || len(loaded) != 1 {
		t.Fatalf("resync: %v, %d loads", err, len(loaded))
	}

	// A tampered Secret (key of another certificate) keeps the working one.
	second, pool2 := certSecret(t)
	broken := first.DeepCopy()
	broken.Data[corev1.TLSPrivateKeyKey] = second.Data[corev1.TLSPrivateKeyKey]
	if err := s.Update(broken); err == nil || !strings.Contains(err.Error(), "podgate-system/podgate-injector-cert") {
		t.Fatalf("mismatched key: %v", err)
	}
	if got, err := handshake(t, addr, pool1); err != nil || !got.Equal(s.Current()) {
		t.Fatalf("broken Secret replaced the served certificate: %v", err)
	}

	// Renewal: the next handshake on the same listener presents the new certificate.
	if err := s.Update(second); err != nil {
		t.Fatal(err)
	}
	got, err = handshake(t, addr, pool2)
	if err != nil {
		t.Fatal(err)
	}
	if got.SerialNumber.Cmp(s.Current().SerialNumber) != 0 || len(loaded) != 2 || loaded[0] == loaded[1] {
		t.Fatalf("renewed certificate not served: loads %v", loaded)
	}
}

func TestSelfManagedOptions(t *testing.T) {
	good := SelfManagedOptions{Namespace: "podgate-system", Secret: "s", Service: "podgate-injector", WebhookConfig: "w",
		Lifetime: 8 * time.Hour, CALifetime: 24 * time.Hour}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if good.RenewBefore() != 4*time.Hour || good.WarnBefore() != 2*time.Hour || good.CheckEvery() != time.Hour {
		t.Fatalf("derived durations %v %v %v", good.RenewBefore(), good.WarnBefore(), good.CheckEvery())
	}
	if n := good.dnsNames(); n[0] != "podgate-injector.podgate-system.svc" || len(n) != 4 {
		t.Fatalf("dns names %v", n)
	}
	bad := SelfManagedOptions{Lifetime: 30 * time.Second, CALifetime: 40 * time.Second}
	err := bad.Validate()
	for _, flag := range []string{"--namespace", "--cert-secret", "--service", "--webhook-config", "--cert-lifetime", "--ca-lifetime"} {
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("Validate does not name %s: %v", flag, err)
		}
	}
	o := ServerOptions{WebhookPort: 9443, CertDir: "/tls", HealthAddr: ":8081", Certificates: "vault"}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--certificates") {
		t.Fatalf("unknown certificate source: %v", err)
	}
}
