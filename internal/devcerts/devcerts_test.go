package devcerts

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestServesTLSForEveryServiceName generates the certificates, serves TLS with them and connects
// by every DNS name the API server may use, trusting only the generated CA (the caBundle).
func TestServesTLSForEveryServiceName(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, Service: "podgate-injector", Namespace: "podgate-system", Validity: 24 * time.Hour, RenewBefore: time.Hour}
	if wrote, err := Ensure(o); err != nil || !wrote {
		t.Fatalf("Ensure = %v, %v", wrote, err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	ca, _ := os.ReadFile(filepath.Join(dir, CAFile))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	for _, name := range DNSNames(o.Service, o.Namespace) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: name}}}
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatalf("TLS as %s: %v", name, err)
		}
		resp.Body.Close()
	}
	if info, _ := os.Stat(filepath.Join(dir, KeyFile)); info.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", info.Mode())
	}
}

func TestKeepsValidAndRenewsExpiring(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	o := Options{Dir: dir, Service: "s", Namespace: "n", Validity: 48 * time.Hour, RenewBefore: 24 * time.Hour, Now: func() time.Time { return now }}
	if _, err := Ensure(o); err != nil {
		t.Fatal(err)
	}
	if wrote, _ := Ensure(o); wrote {
		t.Fatal("a valid certificate was replaced")
	}
	later := now.Add(30 * time.Hour)
	o.Now = func() time.Time { return later }
	if wrote, _ := Ensure(o); !wrote {
		t.Fatal("a certificate expiring within RenewBefore was kept")
	}
	o.Service = "other"
	if wrote, _ := Ensure(o); !wrote {
		t.Fatal("a certificate for other names was kept")
	}
	if _, err := Ensure(Options{Dir: dir}); err == nil {
		t.Fatal("missing service accepted")
	}
}
