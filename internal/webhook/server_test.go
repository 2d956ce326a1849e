package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/podgate/podgate/internal/devcerts"
	"github.com/podgate/podgate/internal/inject"
)

// fakeAPIServer answers the few calls the injector makes: discovery, then list and watch of
// Namespaces. It records every request so the test can check the injector reads nothing else.
func fakeAPIServer(t *testing.T, namespaces ...corev1.Namespace) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var seen []string
	mux := http.NewServeMux()
	write := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("/api", func(w http.ResponseWriter, r *http.Request) {
		write(w, metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"}})
	})
	mux.HandleFunc("/apis", func(w http.ResponseWriter, r *http.Request) {
		write(w, metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}})
	})
	mux.HandleFunc("/api/v1", func(w http.ResponseWriter, r *http.Request) {
		write(w, metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "v1",
			APIResources: []metav1.APIResource{{Name: "namespaces", Kind: "Namespace", Verbs: []string{"get", "list", "watch"}}}})
	})
	mux.HandleFunc("/api/v1/namespaces", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") == "true" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		write(w, corev1.NamespaceList{TypeMeta: metav1.TypeMeta{Kind: "NamespaceList", APIVersion: "v1"},
			ListMeta: metav1.ListMeta{ResourceVersion: "1"}, Items: namespaces})
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(seen) }
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServerEndToEnd runs the real server (controller-runtime manager, TLS webhook, health and
// metrics listeners, namespace cache) against a fake API server, and admits a pod over TLS with a
// client that trusts only the dev CA, as the API server would with the caBundle.
func TestServerEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	api, seen := fakeAPIServer(t, corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", ResourceVersion: "1",
		Labels:      map[string]string{inject.LabelInjection: "enabled"},
		Annotations: map[string]string{inject.AnnotationAllowedRoles: "ns-role"}}})
	dir := t.TempDir()
	if _, err := devcerts.Ensure(devcerts.Options{Dir: dir, Service: "podgate-injector", Namespace: "podgate-system", Validity: time.Hour}); err != nil {
		t.Fatal(err)
	}
	whPort, healthPort, metricsPort := freePort(t), freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, ServerOptions{WebhookPort: whPort, Certificates: Files, CertDir: dir,
			HealthAddr: fmt.Sprintf("127.0.0.1:%d", healthPort), MetricsAddr: fmt.Sprintf("127.0.0.1:%d", metricsPort),
			Config: *testConfig(), Log: zap.NewNop(), Rest: &rest.Config{Host: api.URL}})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	ready := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ready = true
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("server stopped: %v", err)
		default:
		}
	}
	if !ready {
		t.Fatal("server never became ready")
	}

	ca, _ := os.ReadFile(filepath.Join(dir, devcerts.CAFile))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "podgate-injector.podgate-system.svc"}}}
	resp, err := c.Post(fmt.Sprintf("https://127.0.0.1:%d%s", whPort, Path), "application/json",
		bytes.NewReader(review(admissionv1.Create, "Pod", mustJSON(typicalPod("")), false)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &out); err != nil || out.Response == nil || !out.Response.Allowed {
		t.Fatalf("admission over TLS: %s", b)
	}
	if !strings.Contains(string(out.Response.Patch), "--allowed-role=ns-role") {
		t.Fatalf("namespace annotation from the API server not applied: %s", out.Response.Patch)
	}

	resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), `podgate_injector_admissions_total{reason="",result="injected"} 1`) {
		t.Fatalf("metrics lack the injected admission:\n%s", m)
	}
	for _, s := range seen() {
		if !strings.HasPrefix(s, "GET /api") {
			t.Errorf("unexpected API call %s", s)
		}
	}
}
