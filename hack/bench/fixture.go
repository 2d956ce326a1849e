package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/podgate/podgate/internal/inject"
	"github.com/podgate/podgate/internal/oidctest"
)

// Fixture is what the fixture process serves, as the runner reads it from the -info file.
type Fixture struct {
	// Issuer is the in-process test IdP (internal/oidctest), shaping tokens like Keycloak 26.
	Issuer string
	// Upstream is the trivial app every proxy forwards to, and the "direct" target.
	Upstream string
	// Control switches the IdP's user: POST Control+"/user?groups=N" (alice with N groups).
	Control string
	// KubeAPI serves the namespace list and watch the injector's informer needs, nothing else.
	KubeAPI string
	// Tokens are access tokens for alice with N groups and N more roles, by N.
	Tokens map[int]string
}

// tokenSizes are the group/role counts the growth benchmark measures.
var tokenSizes = []int{1, 30, 300}

// benchNamespace is the namespace of the reviewed pods, labelled for injection.
const benchNamespace = "bench"

// runFixture serves the upstream, the IdP and the kube API stub on loopback until killed. It is a
// process of its own so that the upstream's CPU time is its own.
func runFixture(infoPath string) error {
	idp := oidctest.Start(oidctest.Config{ClientID: clientID, ClientSecret: clientSecret, AccessTTL: 2 * time.Hour,
		Keycloak: true, User: oidctest.KeycloakUser(1, 0)})
	defer idp.Close()
	f := Fixture{Issuer: idp.Issuer(), Tokens: map[int]string{}}
	for _, n := range tokenSizes {
		idp.SetUser(oidctest.KeycloakUser(n, n))
		f.Tokens[n] = idp.Mint(idp.Claims())
	}
	idp.SetUser(oidctest.KeycloakUser(1, 0))

	body := []byte("hello from the upstream\n")
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})
	control := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("groups"))
		if r.Method != http.MethodPost || r.URL.Path != "/user" || err != nil || n < 1 {
			http.Error(w, "POST /user?groups=N", http.StatusBadRequest)
			return
		}
		idp.SetUser(oidctest.KeycloakUser(n, 0))
	})
	errs := make(chan error, 3)
	serve := func(h http.Handler) (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		go func() { errs <- (&http.Server{Handler: h, ReadHeaderTimeout: time.Minute}).Serve(ln) }()
		return "http://" + ln.Addr().String(), nil
	}
	var err error
	if f.Upstream, err = serve(upstream); err != nil {
		return err
	}
	if f.Control, err = serve(control); err != nil {
		return err
	}
	if f.KubeAPI, err = serve(kubeAPI()); err != nil {
		return err
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	// Written whole under another name and renamed, so the runner never reads half a file.
	if err := os.WriteFile(infoPath+".tmp", b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(infoPath+".tmp", infoPath); err != nil {
		return err
	}
	return <-errs
}

// kubeAPI answers what `injector serve` asks a Kubernetes API server for: discovery of the core
// group and a list and watch of namespaces (one, labelled for injection), so the real injector runs
// without a cluster. Its informer reads namespaces once; reviews never reach this server.
func kubeAPI() http.Handler {
	ns := corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: benchNamespace, ResourceVersion: "1", UID: "bench-ns",
			Labels: map[string]string{inject.LabelInjection: "enabled"}}}
	nsJSON, _ := json.Marshal(ns)
	write := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api", func(w http.ResponseWriter, r *http.Request) {
		write(w, metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}})
	})
	mux.HandleFunc("/apis", func(w http.ResponseWriter, r *http.Request) {
		write(w, metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}})
	})
	mux.HandleFunc("/api/v1", func(w http.ResponseWriter, r *http.Request) {
		write(w, metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "v1",
			APIResources: []metav1.APIResource{{Name: "namespaces", SingularName: "namespace", Kind: "Namespace",
				Verbs: metav1.Verbs{"get", "list", "watch"}}}})
	})
	mux.HandleFunc("/api/v1/namespaces", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("watch") != "true" && q.Get("watch") != "1" {
			write(w, corev1.NamespaceList{TypeMeta: metav1.TypeMeta{Kind: "NamespaceList", APIVersion: "v1"},
				ListMeta: metav1.ListMeta{ResourceVersion: "1"}, Items: []corev1.Namespace{ns}})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		if q.Get("sendInitialEvents") == "true" {
			_ = enc.Encode(metav1.WatchEvent{Type: "ADDED", Object: runtime.RawExtension{Raw: nsJSON}})
			bm, _ := json.Marshal(corev1.Namespace{TypeMeta: ns.TypeMeta, ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1",
				Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}})
			_ = enc.Encode(metav1.WatchEvent{Type: "BOOKMARK", Object: runtime.RawExtension{Raw: bm}})
		}
		w.(http.Flusher).Flush()
		timeout := 5 * time.Minute
		if s, err := strconv.Atoi(q.Get("timeoutSeconds")); err == nil && s > 0 {
			timeout = time.Duration(s) * time.Second
		}
		select {
		case <-r.Context().Done():
		case <-time.After(timeout):
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, fmt.Sprintf("%s is not served here", r.Method), http.StatusMethodNotAllowed)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
