package webhook

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// CertWarnBefore is how long before its expiry a certificate from files (cert-manager, make
// certs) is reported as expiring. An expired webhook certificate makes the API server reject every
// opted-in pod (failurePolicy Fail), so the warning must come while there is still time to renew.
// Self-managed certificates are short-lived and use SelfManagedOptions.WarnBefore instead.
const CertWarnBefore = 14 * 24 * time.Hour

// CertExpiry watches the webhook's serving certificate: it exports its expiry as a gauge (alert on
// podgate_injector_certificate_expiry_timestamp_seconds - time() < 7d) and logs a warning while it
// is about to expire and an error once it has. controller-runtime reloads a renewed certificate by
// itself; this only makes an unrenewed one visible before it blocks pod creation. Every replica
// runs it (not only the leader): each reports the certificate it serves.
type CertExpiry struct {
	// Source names the certificate in logs (a path or a Secret); NotAfter reads its expiry.
	Source   string
	NotAfter func() (time.Time, error)
	// WarnBefore: a certificate with less left than this is logged as a warning.
	WarnBefore time.Duration
	Interval   time.Duration
	Gauge      prometheus.Gauge
	Log        *zap.Logger
	Now        func() time.Time
}

// FileNotAfter reads the expiry of the PEM certificate at path.
func FileNotAfter(path string) func() (time.Time, error) {
	return func() (time.Time, error) { return certNotAfter(path) }
}

// NeedLeaderElection is false: every replica watches its own certificate.
func (c *CertExpiry) NeedLeaderElection() bool { return false }

// NewCertExpiryGauge returns the gauge, registered with reg when reg is not nil.
func NewCertExpiryGauge(reg prometheus.Registerer) (prometheus.Gauge, error) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "podgate_injector_certificate_expiry_timestamp_seconds",
		Help: "NotAfter of the webhook serving certificate, as a Unix time.",
	})
	if reg != nil {
		if err := reg.Register(g); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Check reads the certificate once, updates the gauge and logs when it is close to or past expiry.
func (c *CertExpiry) Check() (time.Time, error) {
	notAfter, err := c.NotAfter()
	if errors.Is(err, ErrNoCertificate) {
		// Self-managed, before the first certificate arrived: readiness holds the replica back.
		return time.Time{}, err
	}
	if err != nil {
		c.Log.Error("cannot read webhook certificate", zap.String("source", c.Source), zap.Error(err))
		return time.Time{}, err
	}
	c.Gauge.Set(float64(notAfter.Unix()))
	now := c.Now()
	switch left := notAfter.Sub(now); {
	case left <= 0:
		c.Log.Error("webhook certificate has expired: the API server rejects every opted-in pod until it is renewed",
			zap.String("source", c.Source), zap.Time("notAfter", notAfter))
	case left < c.WarnBefore:
		c.Log.Warn("webhook certificate expires soon", zap.String("source", c.Source), zap.Time("notAfter", notAfter),
			zap.Duration("left", left.Round(time.Minute)))
	}
	return notAfter, nil
}

// Start checks at once and then every Interval until ctx ends (a manager.Runnable).
func (c *CertExpiry) Start(ctx context.Context) error {
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		_, _ = c.Check()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func certNotAfter(path string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return time.Time{}, errors.New("no PEM certificate block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing certificate: %w", err)
	}
	return cert.NotAfter, nil
}
