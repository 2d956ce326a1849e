// Command echo is the e2e tests' and the demo's app: it answers every request with the request
// it received, so a test can see exactly which headers got past podgate's sidecar (the identity
// headers it added, and none of the ones a client tried to spoof). A browser asking for "/" gets a
// small HTML page greeting the user instead; /ws is a WebSocket echo. Every answer names the app
// (-name) and the pod (its host name), so a routing test sees which one answered. It is
// deliberately unaware of authentication.
//
// GET /fetch?url=http://…&header=Name:+value makes that request from inside the pod and answers
// with a Fetched: the capture tests use it to reach a pod from another pod, and an app to reach
// itself on localhost. It is a test app's open relay and must never run outside the e2e cluster.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Echo is the JSON body of every non-HTML answer. Tests decode it, so its shape is a contract with
// test/e2e.
type Echo struct {
	Name    string              `json:"name"`
	Pod     string              `json:"pod"`
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   string              `json:"query,omitempty"`
	Host    string              `json:"host"`
	Remote  string              `json:"remote"`
	Headers map[string][]string `json:"headers"`
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>podgate demo</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}th{text-align:left;white-space:nowrap}</style></head>
<body>
<h1>Hello, {{or .User "stranger"}}!</h1>
<p>This page is served by a plain HTTP app that knows nothing about logins. podgate's sidecar
authenticated you against Keycloak and told the app who you are in these headers:</p>
<table border="1" cellpadding="4">
{{range .Identity}}<tr><th>{{.Name}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
<p>Served by <b>{{.Name}}</b>, pod <b>{{.Pod}}</b>.</p>
<p><a href="/oauth2/sign_out?rd=%2F">Sign out</a></p>
</body></html>
`))

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	name := flag.String("name", "echo", "name reported in every answer, to tell apps apart")
	flag.Parse()
	pod, _ := os.Hostname()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /ws", serveWebSocket(*name, pod))
	mux.HandleFunc("GET /fetch", fetch)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && strings.Contains(r.Header.Get("Accept"), "text/html") {
			servePage(w, r, *name, pod)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Echo{
			Name: *name, Pod: pod, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Host: r.Host, Remote: r.RemoteAddr, Headers: r.Header,
		})
	})
	srv := &http.Server{Addr: *listen, Handler: logRequests(mux), ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("echo %q listening on %s", *name, *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// Fetched is the JSON answer of /fetch: what the request made from inside the pod got back.
type Fetched struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
	Error  string `json:"error,omitempty"`
}

var fetchClient = &http.Client{
	Timeout:       5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// fetch makes the request /fetch describes. A connection refused or timed out is an answer too
// (Error set), so a test sees that a port does not serve rather than a failed relay.
func fetch(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Query().Get("url")
	if !strings.HasPrefix(target, "http://") {
		http.Error(w, "url must be http://", http.StatusBadRequest)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, target, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, h := range r.URL.Query()["header"] {
		if k, v, ok := strings.Cut(h, ":"); ok {
			req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	var out Fetched
	resp, err := fetchClient.Do(req)
	if err != nil {
		out.Error = err.Error()
	} else {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		out.Status, out.Body = resp.StatusCode, string(b)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

type header struct{ Name, Value string }

func servePage(w http.ResponseWriter, r *http.Request, name, pod string) {
	var identity []header
	for k, v := range r.Header {
		if strings.HasPrefix(k, "X-Auth-Request-") || strings.HasPrefix(k, "X-Forwarded-") {
			identity = append(identity, header{k, strings.Join(v, ", ")})
		}
	}
	sort.Slice(identity, func(i, j int) bool { return identity[i].Name < identity[j].Name })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = page.Execute(w, struct {
		User      string
		Identity  []header
		Name, Pod string
	}{r.Header.Get("X-Auth-Request-User"), identity, name, pod})
}

// logRequests logs the method, path and whether an identity arrived; never header values, which
// may carry tokens.
func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s identity=%t", r.Method, r.URL.Path, r.Header.Get("X-Auth-Request-User") != "")
		next.ServeHTTP(w, r)
	})
}
