package devcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a development certificate authority held in memory: ECDSA P-256, fast to make. Ensure
// uses one for the webhook; the e2e cluster uses one for its whole PKI.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA valid from an hour before now (clock skew) until notAfter.
func NewCA(commonName string, now, notAfter time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: commonName},
		NotBefore: now.Add(-time.Hour), NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key}, nil
}

// CertPEM is the CA certificate, the trust anchor to hand out.
func (ca *CA) CertPEM() []byte { return certPEM(ca.cert.Raw) }

// KeyPEM is the CA's private key.
func (ca *CA) KeyPEM() []byte { return KeyPEM(ca.key) }

// Leaf says what certificate to issue.
type Leaf struct {
	CommonName   string
	Organization []string
	DNSNames     []string
	IPAddresses  []net.IP
	ExtKeyUsage  []x509.ExtKeyUsage
	NotAfter     time.Time
}

// Issue makes a key and a certificate for it signed by the CA, both PEM-encoded.
func (ca *CA) Issue(l Leaf, now time.Time) (certPEMBytes, keyPEMBytes []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: l.CommonName, Organization: l.Organization},
		DNSNames: l.DNSNames, IPAddresses: l.IPAddresses,
		NotBefore: now.Add(-time.Hour), NotAfter: l.NotAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: l.ExtKeyUsage, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	return certPEM(der), KeyPEM(key), nil
}

// KeyPEM encodes an ECDSA private key as an "EC PRIVATE KEY" PEM block.
func KeyPEM(k *ecdsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: mustEC(k)})
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// File is one file to write: certificates world-readable, keys for the owner only.
type File struct {
	Name string
	Data []byte
	Key  bool
}

// WriteFiles writes files into existing directory dir (path/name).
func WriteFiles(dir string, files ...File) error {
	for _, f := range files {
		mode := os.FileMode(0o644)
		if f.Key {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, mode); err != nil {
			return err
		}
	}
	return nil
}
