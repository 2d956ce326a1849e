package webhook

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Certificates says where the webhook's serving certificate comes from.
type Certificates string

const (
	// SelfManaged: the injector keeps a CA and a short-lived serving certificate in a Secret, renews
	// them (one writer: the leader) and writes the CA into the webhook configuration's caBundle.
	SelfManaged Certificates = "self-managed"
	// Files: tls.crt and tls.key in CertDir, put there by someone else (cert-manager, make certs).
	Files Certificates = "files"
)

// SelfManagedOptions configures self-managed certificates. The namespace, Secret, Service and
// webhook configuration names are those manifests/base creates.
type SelfManagedOptions struct {
	Namespace string
	// Secret holds ca.crt, ca.key, tls.crt and tls.key. It must exist (the manifests create it
	// empty): the rotator updates it and never creates it, so its RBAC needs no create.
	Secret string
	// Service's DNS names are the certificate's subject alternative names.
	Service string
	// WebhookConfig is the MutatingWebhookConfiguration whose caBundle is kept at the CA.
	WebhookConfig string
	// Lifetime of a serving certificate. It is renewed once less than half of it is left, and
	// reported (log warning) once less than a quarter is left, which means renewal is failing.
	Lifetime time.Duration
	// CALifetime of the CA (renewed, like the serving certificate, with half of Lifetime left).
	CALifetime time.Duration
}

// Validate reports every problem at once, naming the flag.
func (o *SelfManagedOptions) Validate() error {
	var errs []error
	for flag, v := range map[string]string{"--namespace": o.Namespace, "--cert-secret": o.Secret, "--service": o.Service, "--webhook-config": o.WebhookConfig} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s: is required with --certificates=%s", flag, SelfManaged))
		}
	}
	// Under a minute the renewal (at half the lifetime, checked every eighth) would race the API
	// server's own caching of the caBundle and the replicas' reload.
	if o.Lifetime < time.Minute {
		errs = append(errs, fmt.Errorf("--cert-lifetime: %v is shorter than 1m", o.Lifetime))
	}
	if o.CALifetime < 2*o.Lifetime {
		errs = append(errs, fmt.Errorf("--ca-lifetime: %v is not at least twice --cert-lifetime", o.CALifetime))
	}
	return errors.Join(errs...)
}

// RenewBefore is how long before expiry the leader replaces a certificate.
func (o *SelfManagedOptions) RenewBefore() time.Duration { return o.Lifetime / 2 }

// WarnBefore is how long before expiry an unrenewed certificate is reported.
func (o *SelfManagedOptions) WarnBefore() time.Duration { return o.Lifetime / 4 }

// CheckEvery is how often the leader looks at the certificates between Secret events.
func (o *SelfManagedOptions) CheckEvery() time.Duration { return min(o.Lifetime/8, time.Hour) }

// dnsNames are the names the API server may use for the Service (it uses name.namespace.svc).
func (o *SelfManagedOptions) dnsNames() []string {
	base := o.Service + "." + o.Namespace
	return []string{base + ".svc", o.Service, base, base + ".svc.cluster.local"}
}

// addRotator registers open-policy-agent/cert-controller's rotator with mgr. It runs on the elected
// leader only, so exactly one replica writes the Secret and the caBundle.
func addRotator(mgr manager.Manager, o *SelfManagedOptions, certDir string) error {
	names := o.dnsNames()
	return rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      types.NamespacedName{Namespace: o.Namespace, Name: o.Secret},
		CertDir:        certDir,
		CAName:         "podgate-injector-ca",
		CAOrganization: "podgate",
		DNSName:        names[0],
		ExtraDNSNames:  names[1:],
		// The rotator closes IsReady once the CA is in the caBundle; readiness here comes from
		// the certificate each replica serves instead, so nothing waits on it.
		IsReady:                make(chan struct{}),
		Webhooks:               []rotator.WebhookInfo{{Name: o.WebhookConfig, Type: rotator.Mutating}},
		FieldOwner:             "podgate-injector",
		RequireLeaderElection:  true,
		CaCertDuration:         o.CALifetime,
		ServerCertDuration:     o.Lifetime,
		LookaheadInterval:      o.RenewBefore(),
		RotationCheckFrequency: o.CheckEvery(),
	})
}

// SecretCertificate is the serving certificate every replica holds in memory, loaded from the
// Secret the leader writes, and handed to the TLS server per handshake: a renewal reaches every
// replica within a watch event, with no restart and no wait for the kubelet to refresh a volume.
type SecretCertificate struct {
	// OnLoad, when set, sees every certificate loaded (the PEM of the leaf first).
	OnLoad func(leaf *x509.Certificate, certPEM []byte)
	Log    *zap.Logger
	cur    atomic.Pointer[tls.Certificate]
}

// ErrNoCertificate is returned to a TLS handshake before the first certificate was loaded.
var ErrNoCertificate = errors.New("no serving certificate loaded yet")

// GetCertificate is the tls.Config hook.
func (s *SecretCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.cur.Load(); c != nil {
		return c, nil
	}
	return nil, ErrNoCertificate
}

// Loaded reports whether a certificate is being served (a readiness check).
func (s *SecretCertificate) Loaded() error {
	if s.cur.Load() == nil {
		return ErrNoCertificate
	}
	return nil
}

// Current returns the leaf being served, or nil.
func (s *SecretCertificate) Current() *x509.Certificate {
	if c := s.cur.Load(); c != nil {
		return c.Leaf
	}
	return nil
}

// Update loads tls.crt and tls.key from secret. A Secret that is still empty (the rotator has not
// written it yet) or broken keeps the certificate being served: a half-written or tampered Secret
// must not take a working webhook down.
func (s *SecretCertificate) Update(secret *corev1.Secret) error {
	certPEM, keyPEM := secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return ErrNoCertificate
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("secret %s/%s: %w", secret.Namespace, secret.Name, err)
	}
	if old := s.cur.Load(); old != nil && old.Leaf.Equal(pair.Leaf) {
		return nil
	}
	s.cur.Store(&pair)
	if s.OnLoad != nil {
		s.OnLoad(pair.Leaf, certPEM)
	}
	return nil
}

// handler feeds Secret events from an informer (filtered to the one Secret) into Update.
func (s *SecretCertificate) handler() toolscache.ResourceEventHandler {
	update := func(obj any) {
		secret, ok := obj.(*corev1.Secret)
		if !ok {
			return
		}
		switch err := s.Update(secret); {
		case err == nil:
		case errors.Is(err, ErrNoCertificate):
			s.Log.Info("webhook certificate Secret is empty; waiting for the leader to write it", zap.String("secret", secret.Name))
		default:
			s.Log.Error("webhook certificate Secret cannot be loaded; serving the previous certificate", zap.Error(err))
		}
	}
	return toolscache.ResourceEventHandlerFuncs{AddFunc: update, UpdateFunc: func(_, obj any) { update(obj) }}
}
