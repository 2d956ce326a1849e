package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/podgate/podgate/internal/capture"
	"github.com/podgate/podgate/internal/capture/netnstest"
	"github.com/podgate/podgate/internal/capture/nft"
)

// Addresses of the two test namespaces' veth ends: 198.18.0.0/15 only, inside namespaces the test
// creates, so nothing on the host or beyond sees them.
const (
	podIP    = "198.18.200.1"
	clientIP = "198.18.200.2"
)

const status = `{"version":1,"capture":"cni","adminPort":4190,"captureCheckPort":4181,"ports":[{"container":"app","name":"http","appName":"app-http","appPort":8080,"proxyPort":4180}]}`

// pair creates a pod namespace and a client namespace joined by a veth pair.
func pair(t *testing.T) (pod, client ns.NetNS) {
	t.Helper()
	pod, client = netnstest.New(t), netnstest.New(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip to wire the test namespaces")
	}
	p, c := netnstest.Name(pod), netnstest.Name(client)
	for _, args := range [][]string{
		{"-n", p, "link", "add", "pg0", "type", "veth", "peer", "name", "pg1", "netns", c},
		{"-n", p, "addr", "add", podIP + "/30", "dev", "pg0"},
		{"-n", c, "addr", "add", clientIP + "/30", "dev", "pg1"},
		{"-n", p, "link", "set", "pg0", "up"}, {"-n", p, "link", "set", "lo", "up"},
		{"-n", c, "link", "set", "pg1", "up"}, {"-n", c, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	return pod, client
}

// serve answers every request on port with name, from inside n (stand-ins for app and sidecar).
func serve(t *testing.T, n ns.NetNS, port int, name string) {
	t.Helper()
	var l net.Listener
	if err := n.Do(func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// expect waits (up to 10 s: a loaded machine, a veth still coming up) until a GET of url from
// inside n is answered by want, and fails the test otherwise; want "" means nothing answers.
func expect(t *testing.T, n ns.NetNS, url, want, when string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got = get(t, n, url); got == want || time.Now().After(deadline) {
			break
		}
	}
	if got != want {
		t.Fatalf("%s, %s answered %q, want %q", when, url, got, want)
	}
}

// get fetches url from inside n and returns who answered ("" when nothing did).
func get(t *testing.T, n ns.NetNS, url string) string {
	t.Helper()
	var body string
	_ = n.Do(func(ns.NetNS) error {
		// A dialer created inside the namespace: its sockets belong to it.
		d := &net.Dialer{Timeout: time.Second}
		conn, err := d.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close() }()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(conn)
		if _, after, ok := strings.Cut(string(b), "\r\n\r\n"); ok {
			body = after
		}
		return nil
	})
	return body
}

func netConf(t *testing.T, annotations map[string]string, prev bool) []byte {
	t.Helper()
	c := map[string]any{"cniVersion": "0.4.0", "name": "podgate-e2e", "type": PluginType}
	if annotations != nil {
		c["runtimeConfig"] = map[string]any{CapabilityPodAnnotations: annotations}
	}
	if prev {
		c["prevResult"] = map[string]any{"cniVersion": "0.4.0",
			"interfaces": []any{map[string]any{"name": "eth0", "sandbox": "/var/run/netns/x"}},
			"ips":        []any{map[string]any{"version": "4", "address": podIP + "/30", "interface": 0}}}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cmdArgs(n ns.NetNS, conf []byte) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: "c0ffee", Netns: n.Path(), IfName: "eth0",
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0", StdinData: conf}
}

func noAPI(context.Context, string, string, string) (map[string]string, error) {
	return nil, errors.New("the test expected no API server call")
}

// TestAddCheckDel runs the plugin's commands against a namespace created in the test and proves
// the redirect with real connections: from another namespace the app port answers with the
// sidecar, on loopback with the app; after DEL the app answers directly again.
func TestAddCheckDel(t *testing.T) {
	pod, client := pair(t)
	serve(t, pod, 8080, "app")
	serve(t, pod, 4180, "sidecar")
	serve(t, pod, 4190, "admin")
	expect(t, client, "http://"+podIP+":8080", "app", "before ADD")
	expect(t, client, "http://"+podIP+":4181", "", "before ADD")

	p := &Plugin{FetchAnnotations: noAPI}
	args := cmdArgs(pod, netConf(t, map[string]string{AnnotationStatus: status}, true))
	res, out, err := testutils.CmdAddWithArgs(args, func() error { return p.Add(args) })
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if res == nil || !strings.Contains(string(out), podIP) {
		t.Fatalf("ADD did not pass the previous result on: %s", out)
	}
	expect(t, client, "http://"+podIP+":8080", "sidecar", "after ADD")
	expect(t, client, "http://"+podIP+":4181", "admin", "after ADD")
	expect(t, pod, "http://127.0.0.1:8080", "app", "after ADD")
	if err := testutils.CmdCheckWithArgs(args, func() error { return p.Check(args) }); err != nil {
		t.Fatalf("CHECK after ADD: %v", err)
	}

	// Someone flushes the table: CHECK must notice.
	c, err := nft.Open(int(pod.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Apply(capture.RuleSet{}); err != nil {
		t.Fatal(err)
	}
	if err := testutils.CmdCheckWithArgs(args, func() error { return p.Check(args) }); !errors.Is(err, ErrRulesDiffer) {
		t.Fatalf("CHECK with the rules removed = %v, want ErrRulesDiffer", err)
	}

	for range 2 { // DEL is idempotent
		if err := testutils.CmdDelWithArgs(args, func() error { return p.Del(args) }); err != nil {
			t.Fatalf("DEL: %v", err)
		}
	}
	if _, err := c.Read(); !errors.Is(err, nft.ErrNotFound) {
		t.Fatalf("after DEL the table is still there: %v", err)
	}
	expect(t, client, "http://"+podIP+":8080", "app", "after DEL")
}

// Pods that did not ask for cni capture pass through untouched: no table is created.
func TestAddPassesOtherPodsThrough(t *testing.T) {
	pod := netnstest.New(t)
	for name, ann := range map[string]map[string]string{
		"not injected":            {"app": "web"},
		"injected before capture": {AnnotationStatus: `{"version":1,"adminPort":4190,"ports":[{"appPort":8080,"proxyPort":4180}]}`},
		"init mode":               {AnnotationStatus: strings.Replace(status, `"cni"`, `"init"`, 1)},
		"mode none":               {AnnotationStatus: strings.Replace(status, `"cni"`, `"none"`, 1)},
	} {
		p := &Plugin{FetchAnnotations: noAPI}
		args := cmdArgs(pod, netConf(t, ann, true))
		if _, _, err := testutils.CmdAddWithArgs(args, func() error { return p.Add(args) }); err != nil {
			t.Fatalf("%s: ADD: %v", name, err)
		}
		c, err := nft.Open(int(pod.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(); !errors.Is(err, nft.ErrNotFound) {
			t.Errorf("%s: ADD created a table (%v)", name, err)
		}
		_ = c.Close()
	}
}

// Failures fail the sandbox with an error naming podgate, the pod and the reason.
func TestAddFailsClosed(t *testing.T) {
	pod := netnstest.New(t)
	apiDown := func(context.Context, string, string, string) (map[string]string, error) {
		return nil, errors.New("connection refused")
	}
	for name, tc := range map[string]struct {
		conf []byte
		api  func(context.Context, string, string, string) (map[string]string, error)
		want string
	}{
		"bad status":     {netConf(t, map[string]string{AnnotationStatus: `{"capture":"cni","ports":[]}`}, true), noAPI, "no protected port"},
		"garbage status": {netConf(t, map[string]string{AnnotationStatus: `{{`}, true), noAPI, "not the JSON the injector writes"},
		"not chained":    {netConf(t, map[string]string{AnnotationStatus: status}, false), noAPI, "must be chained"},
		"no annotations": {netConf(t, nil, true), noAPI, "apiAccess is not configured"},
		"API down": {func() []byte {
			var m map[string]any
			_ = json.Unmarshal(netConf(t, nil, true), &m)
			m["apiAccess"] = "/nonexistent"
			b, _ := json.Marshal(m)
			return b
		}(), apiDown, "connection refused"},
	} {
		p := &Plugin{FetchAnnotations: tc.api}
		args := cmdArgs(pod, tc.conf)
		_, _, err := testutils.CmdAddWithArgs(args, func() error { return p.Add(args) })
		var pe *Error
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "podgate-cni: pod shop/web-0: ") {
			t.Errorf("%s: ADD = %v, want a podgate-cni error naming the pod and %q", name, err, tc.want)
		}
	}
}

// The API fallback reads the pod through the access file the agent writes.
func TestAddReadsAnnotationsFromTheAPIServer(t *testing.T) {
	pod := netnstest.New(t)
	var asked string
	api := func(_ context.Context, file, namespace, name string) (map[string]string, error) {
		asked = file + " " + namespace + "/" + name
		return map[string]string{AnnotationStatus: status}, nil
	}
	var m map[string]any
	_ = json.Unmarshal(netConf(t, nil, true), &m)
	m["apiAccess"] = "/etc/cni/net.d/podgate-cni.d/api.json"
	conf, _ := json.Marshal(m)
	p := &Plugin{FetchAnnotations: api}
	args := cmdArgs(pod, conf)
	if _, _, err := testutils.CmdAddWithArgs(args, func() error { return p.Add(args) }); err != nil {
		t.Fatal(err)
	}
	if asked != "/etc/cni/net.d/podgate-cni.d/api.json shop/web-0" {
		t.Fatalf("asked the API server for %q", asked)
	}
	c, err := nft.Open(int(pod.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if rs, err := c.Read(); err != nil || len(rs.Redirects) != 2 {
		t.Fatalf("rules after ADD: %v, %v", rs, err)
	}
}
