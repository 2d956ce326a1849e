// Package devcerts makes development certificates: the webhook's CA and serving certificate for
// clusters without cert-manager (kind, the e2e tests), and the CA the e2e cluster's PKI is issued
// from. Production installs use the cert-manager overlay.
package devcerts

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Files written into the output directory. tls.crt and tls.key are the names controller-runtime's
// webhook server reads from its --cert-dir; ca.crt is the caBundle of the webhook configuration.
const (
	CAFile   = "ca.crt"
	CAKey    = "ca.key"
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
)

// DNSNames are the names the API server may use to reach Service svc in namespace ns.
func DNSNames(svc, ns string) []string {
	return []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"}
}

// Options says what to generate.
type Options struct {
	Dir       string
	Service   string
	Namespace string
	// Names, when set, are the serving certificate's DNS names instead of the Service's (then
	// Service and Namespace are not needed): the e2e's wildcard certificate for its ingress.
	Names []string
	// Validity of the serving certificate; the CA lives ten times as long.
	Validity time.Duration
	// RenewBefore: an existing serving certificate that expires sooner than this (or does not
	// match the names) is replaced. An expired webhook certificate blocks every new pod.
	RenewBefore time.Duration
	Now         func() time.Time
}

// Ensure writes the CA and serving certificate into o.Dir unless valid ones are already there. It
// reports whether it wrote anything.
func Ensure(o Options) (bool, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	names, cn := o.Names, ""
	if len(names) == 0 {
		if o.Service == "" || o.Namespace == "" {
			return false, errors.New("devcerts: names, or a service and namespace, are required")
		}
		names = DNSNames(o.Service, o.Namespace)
		cn = names[2]
	} else {
		cn = names[0]
	}
	if o.Validity <= 0 {
		return false, errors.New("devcerts: a positive validity is required")
	}
	if ok := stillValid(o, names); ok {
		return false, nil
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return false, err
	}
	now := o.Now()
	ca, err := NewCA("podgate development CA", now, now.Add(10*o.Validity))
	if err != nil {
		return false, err
	}
	cert, key, err := ca.Issue(Leaf{CommonName: cn, DNSNames: names, NotAfter: now.Add(o.Validity),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, now)
	if err != nil {
		return false, err
	}
	err = WriteFiles(o.Dir, File{Name: CAFile, Data: ca.CertPEM()}, File{Name: CAKey, Data: ca.KeyPEM(), Key: true},
		File{Name: CertFile, Data: cert}, File{Name: KeyFile, Data: key, Key: true})
	return err == nil, err
}

// stillValid: the serving certificate exists, chains to the CA, names the Service and is not
// about to expire.
func stillValid(o Options, names []string) bool {
	caPEM, err1 := os.ReadFile(filepath.Join(o.Dir, CAFile))
	certPEM, err2 := os.ReadFile(filepath.Join(o.Dir, CertFile))
	_, err3 := os.Stat(filepath.Join(o.Dir, KeyFile))
	if err1 != nil || err2 != nil || err3 != nil {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return false
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || o.Now().Add(o.RenewBefore).After(cert.NotAfter) {
		return false
	}
	for _, n := range names {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: n, Roots: pool, CurrentTime: o.Now()}); err != nil {
			return false
		}
	}
	return true
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return n
}

func mustEC(k *ecdsa.PrivateKey) []byte {
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		panic(err)
	}
	return b
}
