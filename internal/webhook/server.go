package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
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
	"github.com/podgate/podgate/internal/memlimit"
)

// ServerOptions configures the in-cluster webhook server.
type ServerOptions struct {
	// WebhookPort serves Path over TLS.
	WebhookPort int
	// Certificates selects the serving certificate's source. With Files, CertDir holds tls.crt and
	// tls.key, which controller-runtime reloads when they change (cert-manager renewals need no
	// restart). With SelfManaged, the replica writes the certificate it serves (tls.crt, no key)
	// to CertDir: cert-controller's rotator waits for that file before it reports success.
	Certificates Certificates
	SelfManaged  SelfManagedOptions
	CertDir      string
	// MetricsAddr serves /metrics; HealthAddr serves /healthz and /readyz.
	MetricsAddr string
	HealthAddr  string
	Config      inject.Config
	Log         *zap.Logger
	Rest        *rest.Config
	// MemoryLimit is the container's memory limit in bytes (0: unknown), from which the Go soft
	// limit is set (internal/memlimit).
	MemoryLimit int64
}

// gcPercent is the injector's GOGC. Its live heap is a few megabytes (the namespace cache) while a
// review allocates about 20 KB, so at Go's default of 100 a burst of pod creations collects ten
// times a second or more; at 400 the heap may grow to five times the live data between
// collections, a few tens of megabytes against the chart's 256 MiB limit, and the soft memory
// limit set from the container's limit makes the collector work harder before that limit is near.
// Measured with make bench-quick (docs/benchmarks.md, Injector): about 15 % more reviews per
// second for 17 % less CPU per review.
const gcPercent = 400

// Validate reports every problem at once.
func (o *ServerOptions) Validate() error {
	var errs []error
	if o.WebhookPort < 1 || o.WebhookPort > 65535 {
		errs = append(errs, fmt.Errorf("--webhook-port: %d is not 1-65535", o.WebhookPort))
	}
	if o.CertDir == "" {
		errs = append(errs, errors.New("--cert-dir: is required"))
	}
	if o.MemoryLimit < 0 {
		errs = append(errs, fmt.Errorf("--memory-limit: %d must not be negative", o.MemoryLimit))
	}
	if o.HealthAddr == "" {
		errs = append(errs, errors.New("--health-addr: is required"))
	}
	switch o.Certificates {
	case Files:
	case SelfManaged:
		errs = append(errs, o.SelfManaged.Validate())
	default:
		errs = append(errs, fmt.Errorf("--certificates: %q is not %s or %s", o.Certificates, SelfManaged, Files))
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
	memlimit.Set(o.MemoryLimit)
	gc := zap.String("gcPercent", "GOGC="+os.Getenv("GOGC"))
	if memlimit.SetGCPercent(gcPercent) {
		gc = zap.Int("gcPercent", gcPercent)
	}
	// The settings in effect, GOMEMLIMIT and GOGC included.
	o.Log.Info("memory settings", zap.Int64("containerBytes", o.MemoryLimit), zap.Int64("goSoftLimitBytes", debug.SetMemoryLimit(-1)), gc)
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return err
	}
	if err := admissionregistrationv1.AddToScheme(scheme); err != nil {
		return err
	}
	gauge, err := NewCertExpiryGauge(metrics.Registry)
	if err != nil {
		return err
	}
	expiry := &CertExpiry{Interval: time.Hour, Gauge: gauge, Log: o.Log, Now: time.Now}
	opts := manager.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress: o.HealthAddr,
		Cache:                  cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.Namespace{}: {}}},
	}
	whOpts := webhook.Options{Port: o.WebhookPort, CertDir: o.CertDir}
	var served *SecretCertificate
	if o.Certificates == SelfManaged {
		served = &SecretCertificate{Log: o.Log, OnLoad: func(leaf *x509.Certificate, certPEM []byte) {
			o.Log.Info("serving webhook certificate", zap.String("serial", leaf.SerialNumber.String()),
				zap.Time("notBefore", leaf.NotBefore), zap.Time("notAfter", leaf.NotAfter))
			gauge.Set(float64(leaf.NotAfter.Unix()))
			if err := writeFileAtomic(filepath.Join(o.CertDir, corev1.TLSCertKey), certPEM); err != nil {
				o.Log.Error("cannot write the served certificate", zap.String("certDir", o.CertDir), zap.Error(err))
			}
		}}
		whOpts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = served.GetCertificate }}
		// The Secret is cached alone (a field selector on its name): the injector reads no other.
		opts.Cache.ByObject[&corev1.Secret{}] = cache.ByObject{
			Namespaces: map[string]cache.Config{o.SelfManaged.Namespace: {}},
			Field:      fields.OneTermEqualSelector("metadata.name", o.SelfManaged.Secret),
		}
		opts.LeaderElection = true
		opts.LeaderElectionID = "podgate-injector-certificates"
		opts.LeaderElectionNamespace = o.SelfManaged.Namespace
		// A replica that stops steps down at once, so the other takes over renewal without
		// waiting for the lease to run out.
		opts.LeaderElectionReleaseOnCancel = true
		expiry.Source = "secret " + o.SelfManaged.Namespace + "/" + o.SelfManaged.Secret
		expiry.WarnBefore = o.SelfManaged.WarnBefore()
		expiry.Interval = o.SelfManaged.CheckEvery()
		expiry.NotAfter = func() (time.Time, error) {
			if leaf := served.Current(); leaf != nil {
				return leaf.NotAfter, nil
			}
			return time.Time{}, ErrNoCertificate
		}
	} else {
		crt := filepath.Join(o.CertDir, corev1.TLSCertKey)
		expiry.Source, expiry.NotAfter, expiry.WarnBefore = crt, FileNotAfter(crt), CertWarnBefore
	}
	opts.WebhookServer = webhook.NewServer(whOpts)
	mgr, err := manager.New(o.Rest, opts)
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if served != nil {
		secrets, err := mgr.GetCache().GetInformer(ctx, &corev1.Secret{})
		if err != nil {
			return fmt.Errorf("certificate secret informer: %w", err)
		}
		if _, err := secrets.AddEventHandler(served.handler()); err != nil {
			return err
		}
		if err := addRotator(mgr, &o.SelfManaged, o.CertDir); err != nil {
			return fmt.Errorf("certificate rotator: %w", err)
		}
		// Not ready before this replica serves a certificate the caBundle can verify.
		if err := mgr.AddReadyzCheck("certificate", func(*http.Request) error { return served.Loaded() }); err != nil {
			return err
		}
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
		LargeReviews:     semaphore.NewWeighted(LargeReviewBudget(o.MemoryLimit)),
	}
	api := mgr.GetAPIReader()
	h.Events = &WorkloadEvents{Recorder: mgr.GetEventRecorderFor("podgate-injector"), Timeout: 5 * time.Second, Log: o.Log,
		Owner: func(ctx context.Context, namespace string, ref metav1.OwnerReference) *metav1.OwnerReference {
			// Read without a cache: denials are rare, a cluster-wide ReplicaSet cache is not.
			obj := &metav1.PartialObjectMetadata{}
			obj.SetGroupVersionKind(schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind))
			if err := api.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, obj); err != nil {
				o.Log.Info("cannot read the owner of a denied pod", zap.String("kind", ref.Kind), zap.String("owner", ref.Name), zap.Error(err))
				return nil
			}
			return metav1.GetControllerOfNoCopy(obj)
		}}
	mgr.GetWebhookServer().Register(Path, h)
	if err := mgr.Add(expiry); err != nil {
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
	o.Log.Info("injector starting", zap.Int("webhookPort", o.WebhookPort), zap.String("certificates", string(o.Certificates)),
		zap.String("certDir", o.CertDir),
		zap.String("sidecarImage", o.Config.Image), zap.Bool("nativeSidecar", o.Config.NativeSidecar))
	return mgr.Start(ctx)
}

// writeFileAtomic replaces path in one rename, so a reader never sees half a file.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
