//go:build e2e

// Package e2e proves podgate on a real cluster with a real Keycloak: the API server calls the
// injector deployed from manifests/, a real kubelet runs the injected pods, and every login and
// token comes from Keycloak. Run it with `make e2e` (or `go test -tags e2e ./test/e2e`, as root).
// PODGATE_E2E_PROVIDER selects the cluster (local, the default, or kind); PODGATE_E2E_KEEP=1
// leaves the stack running afterwards.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podgate/podgate/test/e2e/framework"
)

var (
	// suite is the running stack; suiteCtx ends on SIGINT/SIGTERM, so waits stop early and the
	// teardown in TestMain still runs.
	suite    *framework.Stack
	suiteCtx context.Context
	// expiredToken is a Keycloak token minted at start-up by a client whose tokens live 10 s: by the
	// time the bearer tests run it has expired for real.
	expiredToken framework.Token

	notesMu sync.Mutex
	notes   []string
)

// note records a figure for the summary printed after teardown.
func note(format string, args ...any) {
	notesMu.Lock()
	defer notesMu.Unlock()
	notes = append(notes, fmt.Sprintf(format, args...))
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) (code int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	suiteCtx = ctx
	stack, err := framework.NewStack(os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	suite = stack
	defer func() {
		if os.Getenv("PODGATE_E2E_KEEP") == "1" {
			fmt.Fprintf(os.Stderr, "PODGATE_E2E_KEEP=1: leaving the stack running; KUBECONFIG=%s; tear down with `make demo-down`\n", stack.Provider.Kubeconfig())
		} else if err := stack.Down(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: teardown:", err)
			code = 1
		}
		printSummary(code)
	}()
	if err := stack.Up(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: setup:", err)
		return 1
	}
	if err := stack.Phases.Run("deploy injector", func() error { return stack.DeployInjector(ctx) }); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: setup:", err)
		return 1
	}
	if expiredToken, err = stack.Keycloak.PasswordToken(ctx, framework.ShortClientID, framework.ShortSecret,
		framework.AllowedUser, framework.AllowedPass); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: setup:", err)
		return 1
	}
	start := time.Now()
	code = m.Run()
	var testsErr error
	if code != 0 {
		testsErr = fmt.Errorf("exit code %d", code)
	}
	stack.Phases.Add("tests", time.Since(start), testsErr)
	return code
}

func printSummary(code int) {
	var b strings.Builder
	b.WriteString("\n==================== podgate e2e summary ====================\n")
	suite.Summary(&b)
	if len(notes) > 0 {
		b.WriteString("figures:\n")
		for _, n := range notes {
			b.WriteString("  " + n + "\n")
		}
	}
	result := "PASSED"
	if code != 0 {
		result = "FAILED"
	}
	fmt.Fprintf(&b, "result: %s (component logs: %s)\n", result, framework.LogDir())
	b.WriteString("=============================================================\n")
	fmt.Print(b.String())
}
