package cni

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

type agentDirs struct {
	a        *Agent
	conflist string
}

func newAgent(t *testing.T) agentDirs {
	t.Helper()
	root := t.TempDir()
	bin, conf, sa := filepath.Join(root, "bin"), filepath.Join(root, "net.d"), filepath.Join(root, "sa")
	for _, d := range []string{bin, conf, sa} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self := filepath.Join(root, "self")
	write(t, self, "#!podgate-cni binary\n")
	write(t, filepath.Join(sa, "token"), "token-1\n")
	write(t, filepath.Join(sa, "ca.crt"), "-----BEGIN CERTIFICATE-----\n")
	conflist := filepath.Join(conf, "10-podgate-e2e.conflist")
	write(t, conflist, bridgeConflist)
	return agentDirs{a: &Agent{Self: self, BinDir: bin, ConfDir: conf, HostConfDir: "/etc/cni/net.d",
		ServiceAccountDir: sa, Server: "https://198.19.0.1:443", Resync: time.Hour, Log: zap.NewNop()}, conflist: conflist}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAgentKeepsThePluginChained: installs, survives the network plugin rewriting its conflist,
// and removes every trace when it stops.
func TestAgentKeepsThePluginChained(t *testing.T) {
	d := newAgent(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.a.Run(ctx, true) }()
	eventually(t, "the plugin chained in", func() bool { return Chained([]byte(read(t, d.conflist))) })
	bin := filepath.Join(d.a.BinDir, PluginType)
	if got := read(t, bin); got != "#!podgate-cni binary\n" {
		t.Fatalf("installed binary = %q", got)
	}
	if info, _ := os.Stat(bin); info.Mode().Perm() != 0o755 {
		t.Fatalf("binary mode %v", info.Mode())
	}
	access := filepath.Join(d.a.ConfDir, accessDir, "api.json")
	if info, err := os.Stat(access); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("api access file: %v %v", info, err)
	}
	var acc APIAccess
	if err := json.Unmarshal([]byte(read(t, access)), &acc); err != nil || acc.Token != "token-1" || acc.Server != "https://198.19.0.1:443" {
		t.Fatalf("api access = %+v, %v", acc, err)
	}
	if !strings.Contains(read(t, d.conflist), `"apiAccess": "/etc/cni/net.d/podgate-cni.d/api.json"`) {
		t.Fatalf("conflist entry does not name the host path of the access file:\n%s", read(t, d.conflist))
	}
	// The agent marks itself ready after writing the conflist, so readiness may trail the chaining
	// the test just observed by a moment.
	eventually(t, "readyz answering 200", func() bool {
		rr := httptest.NewRecorder()
		d.a.Ready(rr, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rr.Code == http.StatusOK
	})

	// The network plugin's agent rewrites its conflist, dropping our entry: it comes back.
	write(t, d.conflist, bridgeConflist)
	eventually(t, "the plugin chained in again", func() bool { return Chained([]byte(read(t, d.conflist))) })

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := read(t, d.conflist); Chained([]byte(got)) || strings.Contains(got, PluginType) {
		t.Fatalf("conflist still names the plugin after uninstall:\n%s", got)
	}
	for _, gone := range []string{bin, filepath.Join(d.a.ConfDir, accessDir)} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s still there after uninstall (%v)", gone, err)
		}
	}
	entries, _ := os.ReadDir(d.a.ConfDir)
	if len(entries) != 1 {
		t.Errorf("conf dir holds %d entries after uninstall, want only the conflist", len(entries))
	}
}

// Without a conflist (the network plugin not installed yet) the agent is not ready and chains in
// as soon as one appears.
func TestAgentWaitsForAConflist(t *testing.T) {
	d := newAgent(t)
	if err := os.Remove(d.conflist); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.a.Run(ctx, false) }()
	time.Sleep(50 * time.Millisecond)
	rr := httptest.NewRecorder()
	d.a.Ready(rr, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rr.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz without a conflist = %d", rr.Code)
	}
	write(t, d.conflist, bridgeConflist)
	eventually(t, "the plugin chained in", func() bool { return Chained([]byte(read(t, d.conflist))) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !Chained([]byte(read(t, d.conflist))) {
		t.Fatal("keep-on-exit removed the plugin")
	}
}

func TestFetchPodAnnotations(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if r.URL.EscapedPath() != "/api/v1/namespaces/shop/pods/web-0" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"kind":"Pod","metadata":{"name":"web-0","annotations":{"podgate.io/status":"{}"}}}`))
	}))
	defer srv.Close()
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	file := filepath.Join(t.TempDir(), "api.json")
	writeAccess := func(a APIAccess) {
		b, _ := json.Marshal(a)
		write(t, file, string(b))
	}
	writeAccess(APIAccess{Server: srv.URL, Token: "tok", CA: ca})
	ann, err := FetchPodAnnotations(context.Background(), file, "shop", "web-0")
	if err != nil || ann[AnnotationStatus] != "{}" {
		t.Fatalf("FetchPodAnnotations = %v, %v", ann, err)
	}
	if _, err := FetchPodAnnotations(context.Background(), file, "shop", "other"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing pod: %v", err)
	}
	writeAccess(APIAccess{Server: srv.URL, Token: "wrong", CA: ca})
	if _, err := FetchPodAnnotations(context.Background(), file, "shop", "web-0"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: %v", err)
	}
	writeAccess(APIAccess{Server: srv.URL, Token: "tok"}) // no CA: the server's certificate is not trusted
	if _, err := FetchPodAnnotations(context.Background(), file, "shop", "web-0"); err == nil {
		t.Fatal("an untrusted server certificate was accepted")
	}
}
