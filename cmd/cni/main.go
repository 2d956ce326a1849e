// Command cni is podgate-cni, one binary in two roles. Run by the container runtime (CNI_COMMAND
// set) it is a chained CNI plugin that captures an injected pod's protected ports in the pod's
// network namespace. Run as the node agent DaemonSet (`podgate-cni agent`) it installs itself into
// the node's CNI bin dir, chains itself into the active conflist, keeps it there, and removes
// itself when the DaemonSet goes (`podgate-cni uninstall` does the same by hand).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/podgate/podgate/internal/cni"
	"github.com/podgate/podgate/internal/logging"
	"github.com/podgate/podgate/internal/version"
)

func main() {
	started := time.Now()
	if os.Getenv("CNI_COMMAND") != "" {
		p := &cni.Plugin{FetchAnnotations: cni.FetchPodAnnotations, NewLogger: fileLogger, Started: started}
		skel.PluginMainFuncs(p.Funcs(), cni.VersionInfo, "podgate-cni "+version.Version+": captures podgate-protected ports")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// fileLogger appends JSON lines to path; a log that cannot be opened never fails the pod.
func fileLogger(path string) *zap.Logger {
	cfg := zap.NewProductionConfig()
	cfg.OutputPaths, cfg.ErrorOutputPaths = []string{path}, []string{path}
	cfg.Sampling = nil
	cfg.EncoderConfig.TimeKey = "time"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	log, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return log
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "agent" && args[0] != "uninstall") {
		fmt.Fprintln(stderr, "usage: podgate-cni agent|uninstall [flags]  (as a CNI plugin the runtime runs it with CNI_COMMAND set)")
		return 2
	}
	fs := pflag.NewFlagSet("podgate-cni "+args[0], pflag.ContinueOnError)
	fs.SetOutput(stderr)
	self, _ := os.Executable()
	a := &cni.Agent{}
	fs.StringVar(&a.Self, "self", self, "the binary to install")
	fs.StringVar(&a.BinDir, "cni-bin-dir", "/host/opt/cni/bin", "the node's CNI bin dir, as mounted into the agent")
	fs.StringVar(&a.ConfDir, "cni-conf-dir", "/host/etc/cni/net.d", "the node's CNI conf dir, as mounted into the agent")
	fs.StringVar(&a.HostConfDir, "host-cni-conf-dir", "/etc/cni/net.d", "the CNI conf dir as the node sees it (paths written into the conflist)")
	fs.StringVar(&a.LogFile, "plugin-log-file", "", "host path the plugin appends a JSON line to per command (empty: no log)")
	fs.StringVar(&a.ServiceAccountDir, "service-account-dir", "/var/run/secrets/kubernetes.io/serviceaccount", "token and CA the plugin uses when the runtime passes no annotations")
	fs.DurationVar(&a.Resync, "resync", 10*time.Second, "how often the installation is checked without a file event")
	healthAddr := fs.String("health-addr", ":9099", "serves /readyz: 200 once the plugin is installed and chained")
	noUninstall := fs.Bool("keep-on-exit", false, "leave the plugin installed when the agent stops (default: uninstall on SIGTERM)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"); host != "" && port != "" {
		a.Server = "https://" + net.JoinHostPort(host, port)
	}
	log, err := logging.New(*logLevel, "json")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	a.Log = log
	if args[0] == "uninstall" {
		if err := a.Uninstall(); err != nil {
			log.Error("uninstall failed", zap.Error(err))
			return 1
		}
		return 0
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", a.Ready)
	srv := &http.Server{Addr: *healthAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server", zap.Error(err))
		}
	}()
	defer func() { _ = srv.Close() }()
	log.Info("podgate-cni agent starting", zap.String("version", version.Version), zap.String("binDir", a.BinDir), zap.String("confDir", a.ConfDir))
	if err := a.Run(ctx, !*noUninstall); err != nil {
		log.Error("agent stopped", zap.Error(err))
		return 1
	}
	return 0
}
