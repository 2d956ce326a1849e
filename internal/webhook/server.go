package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/podgate/podgate/internal/inject"
)

// ServerOptions configures the in-cluster webhook server.
type ServerOptions struct {
	// WebhookPort serves Path over TLS with CertDir's tls.crt and tls.key, which controller-runtime
	// reloads when they change (cert-manager renewals need no restart).
	WebhookPort int
	CertDir     string
	// MetricsAddr serves /metrics; HealthAddr serves /healthz and /readyz.
	MetricsAddr string
	HealthAddr  string
	Config      inject.Config
	Log         *zap.Logger
	Rest        *rest.Config
}

// Validate reports every problem at once.
func (o *ServerOptions) Validate() error {
	var errs []error
	if o.WebhookPort < 1 || o.WebhookPort > 65535 {
		errs = append(errs, fmt.Errorf("--webhook-port: %d is not 1-65535", o.WebhookPort))
	}
	if o.CertDir == "" {
		errs = append(errs, errors.New("--cert-dir: is required"))
	}
	if o.HealthAddr == "" {
		errs = append(errs, errors.New("--health-addr: is required"))
	}
	return errors.Join(errs...)
}

// Run serves until ctx ends. Namespaces are read through controller-runtime's cache (one watch,
// then memory reads), which needs only get/list/watch on namespaces.
func Run(ctx context.Context, o ServerOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	ctrl.SetLogger(zapr.NewLogger(o.Log))
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return err
	}
	mgr, err := manager.New(o.Rest, manager.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress: o.HealthAddr,
		WebhookServer:          webhook.NewServer(webhook.Options{Port: o.WebhookPort, CertDir: o.CertDir}),
		Cache:                  cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.Namespace{}: {}}},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	informer, err := mgr.GetCache().GetInformer(ctx, &corev1.Namespace{})
	if err != nil {
		return fmt.Errorf("namespace informer: %w", err)
	}
	m, err := NewMetrics(metrics.Registry)
	if err != nil {
		return err
	}
	reader := mgr.GetClient()
	h := &Handler{
		Config: &o.Config,
		Namespaces: func(ctx context.Context, name string) (*corev1.Namespace, error) {
			ns := &corev1.Namespace{}
			return ns, reader.Get(ctx, client.ObjectKey{Name: name}, ns)
		},
		NamespaceTimeout: 2 * time.Second,
		Log:              o.Log,
		Metrics:          m,
	}
	mgr.GetWebhookServer().Register(Path, &webhook.Admission{Handler: h})
	gauge, err := NewCertExpiryGauge(metrics.Registry)
	if err != nil {
		return err
	}
	if err := mgr.Add(&CertExpiry{Path: filepath.Join(o.CertDir, "tls.crt"), Interval: time.Hour, Gauge: gauge, Log: o.Log, Now: time.Now}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	// Not ready until the namespace cache is filled: answering before would fail every pod.
	if err := mgr.AddReadyzCheck("namespaces", func(*http.Request) error {
		if !informer.HasSynced() {
			return errors.New("namespace cache not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	o.Log.Info("injector starting", zap.Int("webhookPort", o.WebhookPort), zap.String("certDir", o.CertDir),
		zap.String("sidecarImage", o.Config.Image), zap.Bool("nativeSidecar", o.Config.NativeSidecar))
	return mgr.Start(ctx)
}
