package framework

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Scripts runs the shell scripts under test/e2e that do the machine-level work (installing
// packages, building Kubernetes, host networking, Keycloak). Their output goes to Log.
type Scripts struct {
	// Dir is test/e2e in the repository.
	Dir string
	Log io.Writer
	// Env is added to the environment of every script.
	Env []string
}

// Run runs the script at path (relative to Dir) with args and fails with the script's last output
// lines in the error, so a failing phase explains itself in the test summary. When ctx ends the
// script gets SIGTERM (and SIGKILL 10 s later); processes it started in their own sessions are
// left for teardown, which stops them by PID.
func (s Scripts) Run(ctx context.Context, path string, args ...string) error {
	_, err := s.run(ctx, path, args...)
	return err
}

// Output runs a script like Run and returns its standard output.
func (s Scripts) Output(ctx context.Context, path string, args ...string) (string, error) {
	return s.run(ctx, path, args...)
}

func (s Scripts) run(ctx context.Context, path string, args ...string) (string, error) {
	var stdout bytes.Buffer
	tail := &tailWriter{max: 20}
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(s.Dir, path)}, args...)...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(s.Log, tail)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", path, strings.Join(args, " "), err, tail)
	}
	return stdout.String(), nil
}

// tailWriter keeps the last max lines written to it.
type tailWriter struct {
	max   int
	lines []string
	part  string
}

func (t *tailWriter) Write(p []byte) (int, error) {
	parts := strings.Split(t.part+string(p), "\n")
	t.part = parts[len(parts)-1]
	t.lines = append(t.lines, parts[:len(parts)-1]...)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	return strings.Join(append(t.lines, t.part), "\n")
}
