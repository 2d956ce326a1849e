// Command podgate-e2e brings the e2e stack up for a person to try (`make demo`) and tears it down
// again (`make demo-down`, also the safety net `make e2e` runs when the test binary died before
// its own teardown). `podgate-e2e env` prints the run's settings as shell assignments, for run.sh
// and for running a script by hand. The tests themselves run with `go test -tags e2e ./test/e2e`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/podgate/podgate/test/e2e/framework"
)

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "demo" && os.Args[1] != "down" && os.Args[1] != "env") {
		fmt.Fprintln(os.Stderr, "usage: podgate-e2e demo|down|env   (PODGATE_E2E_PROVIDER=local|kind)")
		os.Exit(2)
	}
	if os.Args[1] == "env" {
		for _, kv := range framework.Env() {
			name, value, _ := strings.Cut(kv, "=")
			// Single-quoted: the shell takes the value as it is.
			fmt.Printf("export %s='%s'\n", name, strings.ReplaceAll(value, "'", `'\''`))
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stack, err := framework.NewStack(os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "podgate-e2e:", err)
		os.Exit(1)
	}
	if os.Args[1] == "down" {
		if err := stack.Down(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "podgate-e2e: teardown:", err)
			os.Exit(1)
		}
		return
	}
	if err := stack.Demo(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "podgate-e2e: demo:", err)
		fmt.Fprintln(os.Stderr, "podgate-e2e: tearing down what was started")
		_ = stack.Down(ctx)
		os.Exit(1)
	}
	stack.Summary(os.Stderr)
	fmt.Print(stack.DemoInstructions())
}
