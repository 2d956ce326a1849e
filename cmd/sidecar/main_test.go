package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/podgate/podgate/internal/capture"
	"github.com/podgate/podgate/internal/capture/netnstest"
	"github.com/podgate/podgate/internal/capture/nft"
	"github.com/podgate/podgate/internal/oidctest"
)

func noEnv(string) (string, bool) { return "", false }

// TestConfigErrorsAllReported: one run names every bad flag, values that do not parse and values
// that parse but are invalid alike, and exits 2.
func TestConfigErrorsAllReported(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{
		"--issuer-url=ftp://x", "--cookie-secret=short", "--proxy=:4180=ftp://nope", "--allowed-role=a:b:c",
		"--upstream-timeout=0s", "--log-level=loud", "--probe=x=http://198.18.0.1:80/",
		"--cookie-name=bad name", "--scope=profile", "--cookie-expire=soon",
	}, noEnv, &stdout, &stderr)
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, flag := range []string{"issuer-url", "client-id", "cookie-secret", "proxy", "allowed-role", "upstream-timeout",
		"log-level", "probe", "cookie-name", "scope", "cookie-expire"} {
		if !strings.Contains(stderr.String(), "--"+flag+":") {
			t.Errorf("error output does not name --%s:\n%s", flag, stderr.String())
		}
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, noEnv, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stdout.String(), "--issuer-url") || !strings.Contains(stdout.String(), "PODGATE_") {
		t.Errorf("help:\n%s", stdout.String())
	}
}

// waitReady polls /ready for up to 10 s; the bound only limits how long a broken test hangs.
func waitReady(adminAddr string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + adminAddr + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestGracefulShutdown: on SIGTERM (here: the context main's signal handler cancels) an in-flight
// request completes, and the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	idp := oidctest.Start(oidctest.Config{ClientSecret: "x"})
	defer idp.Close()
	started := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, "finished")
	}))
	defer app.Close()
	proxyAddr, adminAddr := freeAddr(t), freeAddr(t)
	env := map[string]string{"PODGATE_COOKIE_SECRET": "0123456789abcdef", "PODGATE_CLIENT_SECRET": "x"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--issuer-url=" + idp.Issuer(), "--client-id=app", "--proxy=" + proxyAddr + "=" + app.URL,
			"--admin-addr=" + adminAddr, "--shutdown-grace-period=5s", "--log-level=error"},
			func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard, &stderr)
	}()
	if !waitReady(adminAddr) {
		t.Fatalf("never ready: %s", stderr.String())
	}
	result := make(chan string)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+proxyAddr+"/", nil)
		req.Header.Set("Authorization", "Bearer "+idp.Mint(idp.Claims()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-started
	cancel()
	if got := <-result; got != "finished" {
		t.Errorf("in-flight request got %q", got)
	}
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}

// TestBinarySIGTERM builds the real binary, starts it and sends SIGTERM: it must exit 0, and an
// invalid configuration must exit 2 listing the problems.
func TestBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "sidecar")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--issuer-url=nope").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "--client-id:") || !strings.Contains(string(out), "--issuer-url:") {
		t.Fatalf("invalid config: %v\n%s", err, out)
	}
	idp := oidctest.Start(oidctest.Config{ClientSecret: "x"})
	defer idp.Close()
	adminAddr := freeAddr(t)
	cmd := exec.Command(bin, "--issuer-url="+idp.Issuer(), "--client-id=app", "--forward-auth-addr="+freeAddr(t),
		"--admin-addr="+adminAddr, "--log-format=console")
	cmd.Env = append(os.Environ(), "PODGATE_COOKIE_SECRET=0123456789abcdef")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !waitReady(adminAddr) {
		_ = cmd.Process.Kill()
		t.Fatalf("never ready:\n%s", logs.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("no shutdown log:\n%s", logs.String())
	}
}

// `sidecar capture` (init mode) programs the rules of the pod's status into its own namespace,
// and refuses without a status.
func TestCaptureSubcommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"capture"}, noEnv, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), capture.EnvStatus+" is empty") {
		t.Fatalf("without a status: exit %d, %s", code, stderr.String())
	}
	n := netnstest.New(t)
	status := `{"version":1,"capture":"init","adminPort":4190,"captureCheckPort":4181,"ports":[{"appPort":8080,"proxyPort":4180}]}`
	env := func(k string) (string, bool) { return status, k == capture.EnvStatus }
	var code int
	if err := n.Do(func(ns.NetNS) error {
		code = run(context.Background(), []string{"capture"}, env, &stdout, &stderr)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	c, err := nft.Open(int(n.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	rs, err := c.Read()
	if err != nil || !strings.Contains(rs.String(), "tcp dport 8080 redirect to :4180") || !strings.Contains(stdout.String(), rs.String()) {
		t.Fatalf("rules in the namespace: %v %v; printed %s", rs, err, stdout.String())
	}
}
