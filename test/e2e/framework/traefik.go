package framework

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podgate/podgate/internal/devcerts"
)

// Traefik as the cluster's ingress controller, podgate's standalone forward-auth service from
// manifests/forward-auth, and the users' Traefik configuration (test/e2e/traefik/).
const (
	TraefikNS = "traefik"
	// TraefikIP is the Traefik Service's fixed ClusterIP: every host name under TraefikDomain
	// resolves to it in the tests' browser (the cluster's DNS serves only cluster.local).
	TraefikIP     = "198.19.0.60"
	TraefikDomain = "podgate.test"
	App1Host      = "app1." + TraefikDomain
	App2Host      = "app2." + TraefikDomain
	AppsNS        = "apps"
	// ForwardAuthServiceNS is manifests/forward-auth's namespace; its Deployment, Service and
	// Secret are all called ForwardAuthServiceName.
	ForwardAuthServiceNS   = "podgate"
	ForwardAuthServiceName = "podgate-forward-auth"
	// TraefikClientID is the Keycloak client the forward-auth service uses: access tokens live
	// TraefikTokenLifespan, longer than the sidecar's 30 s refresh margin.
	TraefikClientID      = "podgate-traefik"
	TraefikClientSecret  = "podgate-e2e-traefik-secret"
	TraefikTokenLifespan = 40 * time.Second
	// TraefikTLSSecret is the secret the users' Ingress names for the wildcard certificate.
	TraefikTLSSecret = "wildcard.podgate.test-tls"
)

// TraefikDir is test/e2e/traefik: the controller's and forward-auth's kustomizations, and the
// users' configuration (users/).
func (s *Stack) TraefikDir() string { return filepath.Join(s.Root, "test", "e2e", "traefik") }

// TraefikCRDDir is the crd/ directory of the Traefik source, copied into the cache by traefik/build.sh.
func TraefikCRDDir() string {
	return filepath.Join(CacheDir(), "traefik-"+TraefikVersion, "crd")
}

// DeployTraefik installs Traefik's CRDs and RBAC from its source, then the controller from
// test/e2e/traefik/controller, and waits until it is Ready.
func (s *Stack) DeployTraefik(ctx context.Context) error {
	crd := TraefikCRDDir()
	// Server-side: the CRDs are too large for the last-applied annotation of a client-side apply.
	if _, err := s.Kube.Run(ctx, "", "apply", "--server-side", "-f", filepath.Join(crd, "kubernetes-crd-definition-v1.yml")); err != nil {
		return err
	}
	if _, err := s.Kube.Run(ctx, "", "wait", "--for=condition=Established", "--timeout=60s", "-f", filepath.Join(crd, "kubernetes-crd-definition-v1.yml")); err != nil {
		return err
	}
	if _, err := s.Kube.Run(ctx, "", "apply", "-f", filepath.Join(crd, "kubernetes-crd-rbac.yml")); err != nil {
		return err
	}
	if _, err := s.Kube.Run(ctx, "", "apply", "-k", filepath.Join(s.TraefikDir(), "controller")); err != nil {
		return err
	}
	_, err := s.Kube.WaitPodsReady(ctx, TraefikNS, "app=traefik", 1, 3*time.Minute)
	return err
}

// DeployForwardAuthService deploys manifests/forward-auth through the e2e overlay, after creating
// the Secret it references (the client secret and a fresh random cookie key), and waits for both
// replicas.
func (s *Stack) DeployForwardAuthService(ctx context.Context) error {
	if err := s.Kube.EnsureNamespace(ctx, ForwardAuthServiceNS, map[string]string{LabelPSAEnforce: PSARestricted}); err != nil {
		return err
	}
	cookie := make([]byte, 32)
	if _, err := rand.Read(cookie); err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: ForwardAuthServiceName, Namespace: ForwardAuthServiceNS},
		StringData: map[string]string{"client-secret": TraefikClientSecret, "cookie-secret": base64.StdEncoding.EncodeToString(cookie)},
	}
	if _, err := s.Kube.Client.CoreV1().Secrets(ForwardAuthServiceNS).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if _, err := s.Kube.Run(ctx, "", "apply", "-k", filepath.Join(s.TraefikDir(), "forward-auth")); err != nil {
		return err
	}
	_, err := s.Kube.WaitPodsReady(ctx, ForwardAuthServiceNS, "app.kubernetes.io/name="+ForwardAuthServiceName, 2, 3*time.Minute)
	return err
}

// DeployTraefikApps deploys the two echo apps behind Traefik (app1 and app2, each with a Service
// "http" port) in AppsNS, and the wildcard certificate the users' Ingress names. It returns the
// pool trusting that certificate, for the browser.
func (s *Stack) DeployTraefikApps(ctx context.Context) (*x509.CertPool, error) {
	dir, err := os.MkdirTemp("", "podgate-e2e-tls-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if _, err := devcerts.Ensure(devcerts.Options{Dir: dir, Names: []string{"*." + TraefikDomain, TraefikDomain}, Validity: 24 * time.Hour}); err != nil {
		return nil, err
	}
	read := func(name string) []byte { b, _ := os.ReadFile(filepath.Join(dir, name)); return b }
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(read(devcerts.CAFile)) {
		return nil, fmt.Errorf("the generated CA does not parse")
	}
	tlsSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: TraefikTLSSecret, Namespace: ForwardAuthServiceNS},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: read(devcerts.CertFile), corev1.TLSPrivateKeyKey: read(devcerts.KeyFile)},
	}
	if _, err := s.Kube.Client.CoreV1().Secrets(ForwardAuthServiceNS).Create(ctx, tlsSecret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	if err := s.Kube.EnsureNamespace(ctx, AppsNS, map[string]string{LabelPSAEnforce: PSARestricted}); err != nil {
		return nil, err
	}
	for _, name := range []string{"app1", "app2"} {
		app := EchoApp{Namespace: AppsNS, Name: name, Replicas: 1}
		if err := s.Kube.ensureService(ctx, app.Service()); err != nil {
			return nil, err
		}
		if _, err := s.Kube.Deploy(ctx, app, 2*time.Minute); err != nil {
			return nil, err
		}
	}
	return pool, nil
}

// ApplyTraefikConfig applies the users' configuration: users/routes.yaml and the Middlewares of
// users/middlewares-<variant>.yaml ("before": as the seed article has them; "after": as podgate
// needs them).
func (s *Stack) ApplyTraefikConfig(ctx context.Context, variant string) error {
	users := filepath.Join(s.TraefikDir(), "users")
	_, err := s.Kube.Run(ctx, "", "apply", "-f", filepath.Join(users, "routes.yaml"), "-f", filepath.Join(users, "middlewares-"+variant+".yaml"))
	return err
}

// NewTraefikBrowser is a Browser whose host names under TraefikDomain resolve to Traefik's
// ClusterIP (any other name resolves as usual: Keycloak is addressed by IP) and which trusts roots
// for TLS.
func NewTraefikBrowser(roots *x509.CertPool) *Browser {
	b := NewBrowser()
	d := &net.Dialer{Timeout: 10 * time.Second}
	b.Client.Transport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, port, err := net.SplitHostPort(addr); err == nil && (host == TraefikDomain || strings.HasSuffix(host, "."+TraefikDomain)) {
				addr = net.JoinHostPort(TraefikIP, port)
			}
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		// Each browser is one user: a connection pool of its own, never shared with another user's.
		MaxIdleConnsPerHost: 4,
	}
	return b
}
