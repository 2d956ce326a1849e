// Command sidecar is podgate's auth proxy: it authenticates every request into a pod (or, standalone,
// every forward-auth sub-request of an ingress) against an OIDC provider such as Keycloak.
// Configuration: flags or PODGATE_* environment variables, see internal/options and docs/sidecar.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/podgate/podgate/internal/capture"
	"github.com/podgate/podgate/internal/capture/nft"
	"github.com/podgate/podgate/internal/logging"
	"github.com/podgate/podgate/internal/options"
	"github.com/podgate/podgate/internal/sidecar"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code, 2 for invalid configuration (every
// problem listed), 1 for a failure at run time.
func run(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "capture" {
		return runCapture(env, stdout, stderr)
	}
	o, err := options.Parse(args, env)
	if errors.Is(err, pflag.ErrHelp) {
		def := options.Defaults()
		fmt.Fprintf(stdout, "Usage: sidecar [flags]\n\nEvery flag can also be set as %s<FLAG_NAME>.\n\n%s", options.EnvPrefix, options.NewFlagSet("sidecar", &def).FlagUsages())
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "invalid configuration:\n%v\n", err)
		return 2
	}
	log, err := logging.New(o.LogLevel, o.LogFormat)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	if err := sidecar.Run(ctx, o, log); err != nil {
		log.Error("sidecar stopped", zap.Error(err))
		return 1
	}
	return 0
}

// runCapture is init mode's first init container (the same image, NET_ADMIN only): it programs the
// pod's capture rules from its podgate.io/status and exits; a failure stops the pod before any
// container that serves the app starts.
func runCapture(env func(string) (string, bool), stdout, stderr io.Writer) int {
	status, _ := env(capture.EnvStatus)
	rs, err := nft.ApplyOwn(status)
	if err != nil {
		fmt.Fprintf(stderr, "podgate capture: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "podgate capture: programmed\n%s", rs)
	return 0
}
