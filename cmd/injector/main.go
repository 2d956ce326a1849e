// Command injector is podgate's mutating admission webhook, and its offline twin:
//
//	injector [serve] [flags]        run the webhook server (in-cluster)
//	injector inject -f FILE|-       inject opted-in pods in Kubernetes YAML and print it
//	injector check [--kubeconfig F] inspect an installation; one line per finding, non-zero on a problem
//	injector annotations            print the annotation reference table (Markdown)
//	injector version
//
// Flags and wiring only; the logic lives in internal/inject and internal/webhook.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/podgate/podgate/internal/check"
	"github.com/podgate/podgate/internal/inject"
	"github.com/podgate/podgate/internal/logging"
	"github.com/podgate/podgate/internal/version"
	"github.com/podgate/podgate/internal/webhook"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		if !errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "injector:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args)
	case "inject":
		return injectCmd(args, stdin, stdout)
	case "check":
		return checkCmd(args, stdout)
	case "annotations":
		_, err := io.WriteString(stdout, inject.MarkdownTable())
		return err
	case "version":
		_, err := fmt.Fprintln(stdout, version.Version)
		return err
	}
	return fmt.Errorf("unknown command %q (serve, inject, check, annotations, version)", cmd)
}

// configFlags are shared by serve and inject: both inject with the same configuration.
func configFlags(fs *pflag.FlagSet) (path, image *string) {
	path = fs.String("config", "", "injector configuration YAML (see README); defaults apply to absent keys")
	image = fs.String("sidecar-image", "", "sidecar image, overriding the configuration file")
	return path, image
}

func loadConfig(path, image string) (inject.Config, error) {
	cfg, err := inject.LoadConfig(path)
	if err != nil {
		return cfg, err
	}
	if image != "" {
		cfg.Image = image
	}
	return cfg, cfg.Validate()
}

func injectCmd(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := pflag.NewFlagSet("inject", pflag.ContinueOnError)
	file := fs.StringP("filename", "f", "", "YAML file to inject, or - for standard input")
	path, image := configFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("inject: -f FILE (or -f - for standard input) is required")
	}
	cfg, err := loadConfig(*path, *image)
	if err != nil {
		return err
	}
	in := stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	return inject.Manifests(in, stdout, os.Stderr, &cfg)
}

func checkCmd(args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("check", pflag.ContinueOnError)
	o := check.DefaultOptions()
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "the injector's namespace")
	fs.StringVar(&o.CaptureNamespace, "capture-namespace", o.CaptureNamespace, "the capture node agent's namespace")
	fs.StringVar(&o.CaptureDaemonSet, "capture-daemonset", o.CaptureDaemonSet, "the capture node agent DaemonSet")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	findings := (&check.Checker{Kube: kube, Opts: o}).Run(ctx)
	for _, f := range findings {
		fmt.Fprintln(stdout, f)
	}
	if check.Failed(findings) {
		return check.ErrProblems
	}
	return nil
}

func serve(args []string) error {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o := webhook.ServerOptions{}
	fs.IntVar(&o.WebhookPort, "webhook-port", 9443, "HTTPS port of "+webhook.Path)
	certs := fs.String("certificates", string(webhook.SelfManaged), "serving certificate: self-managed (a CA and short-lived certificate in --cert-secret, renewed by the leader) or files (tls.crt and tls.key in --cert-dir, from cert-manager or make certs)")
	fs.StringVar(&o.CertDir, "cert-dir", "/tls", "files: directory holding tls.crt and tls.key (reloaded on change); self-managed: where the served tls.crt is written")
	fs.StringVar(&o.SelfManaged.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "self-managed: the injector's namespace (default $POD_NAMESPACE)")
	fs.StringVar(&o.SelfManaged.Secret, "cert-secret", "podgate-injector-cert", "self-managed: Secret holding the CA and the serving certificate")
	fs.StringVar(&o.SelfManaged.Service, "service", "podgate-injector", "self-managed: the webhook Service (the certificate's DNS names)")
	fs.StringVar(&o.SelfManaged.WebhookConfig, "webhook-config", "podgate-injector", "self-managed: MutatingWebhookConfiguration whose caBundle is kept current")
	fs.DurationVar(&o.SelfManaged.Lifetime, "cert-lifetime", 7*24*time.Hour, "self-managed: serving certificate lifetime (renewed with half left)")
	fs.DurationVar(&o.SelfManaged.CALifetime, "ca-lifetime", 10*365*24*time.Hour, "self-managed: CA lifetime")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":8080", "Prometheus /metrics address (0 disables)")
	fs.StringVar(&o.HealthAddr, "health-addr", ":8081", "/healthz and /readyz address")
	fs.Int64Var(&o.MemoryLimit, "memory-limit", 0, "the container's memory limit in bytes, for the Go soft limit (default $MEMORY_LIMIT, which the manifests fill from limits.memory)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "json", "json or console")
	path, image := configFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Certificates = webhook.Certificates(*certs)
	if env := os.Getenv("MEMORY_LIMIT"); env != "" && !fs.Changed("memory-limit") {
		n, err := strconv.ParseInt(env, 10, 64)
		if err != nil {
			return fmt.Errorf("MEMORY_LIMIT: %q is not a number of bytes", env)
		}
		o.MemoryLimit = n
	}
	cfg, err := loadConfig(*path, *image)
	if err != nil {
		return err
	}
	o.Config = cfg
	// Settings are checked before anything talks to the API server, so a bad one is named at once.
	if err := o.Validate(); err != nil {
		return err
	}
	if o.Log, err = logging.New(*logLevel, *logFormat); err != nil {
		return err
	}
	defer func() { _ = o.Log.Sync() }()
	if o.Rest, err = ctrl.GetConfig(); err != nil {
		return fmt.Errorf("kubernetes client config: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return webhook.Run(ctx, o)
}
