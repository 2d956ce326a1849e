// Package manifests holds no Go code, only this test: it renders the kustomize base and every
// overlay with kustomize's own library and checks the properties the injector's safety rests on.
package manifests

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/podgate/podgate/internal/devcerts"
)

// render builds dir, relative to root: a scratch copy of this directory, so the dev certificates
// the test generates never touch the work tree.
func render(t *testing.T, root, dir string) resmap.ResMap {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return m
}

func scratchCopy(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	err := filepath.Walk(".", func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(root, p), 0o755)
		}
		if strings.HasSuffix(p, ".go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(root, p), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := devcerts.Ensure(devcerts.Options{Dir: filepath.Join(root, "overlays/dev/certs"), Service: "podgate-injector",
		Namespace: "podgate-system", Validity: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	return root
}

type object = map[string]any

func objects(t *testing.T, m resmap.ResMap) map[string]object {
	t.Helper()
	out := map[string]object{}
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var o object
		if err := yaml.Unmarshal(b, &o); err != nil {
			t.Fatal(err)
		}
		out[r.GetKind()+"/"+r.GetName()] = o
	}
	return out
}

// get walks a path of map keys and slice indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func TestEveryOverlayRenders(t *testing.T) {
	root := scratchCopy(t)
	dirs := []string{"base"}
	overlays, _ := filepath.Glob("overlays/*")
	dirs = append(dirs, overlays...)
	if len(dirs) < 3 {
		t.Fatalf("expected base, dev and cert-manager, found %v", dirs)
	}
	for _, d := range dirs {
		t.Run(d, func(t *testing.T) {
			objs := objects(t, render(t, root, d))
			checkCommon(t, objs)
		})
	}
}

func checkCommon(t *testing.T, objs map[string]object) {
	for _, want := range []string{"Namespace/podgate-system", "ServiceAccount/podgate-injector", "ClusterRole/podgate-injector",
		"ClusterRoleBinding/podgate-injector", "ConfigMap/podgate-injector-config", "Deployment/podgate-injector",
		"PodDisruptionBudget/podgate-injector", "Service/podgate-injector", "MutatingWebhookConfiguration/podgate-injector"} {
		if objs[want] == nil {
			t.Errorf("%s missing", want)
		}
	}
	wh := get(objs["MutatingWebhookConfiguration/podgate-injector"], "webhooks", 0)
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"failurePolicy"}, "Fail"},
		{[]any{"sideEffects"}, "None"},
		{[]any{"reinvocationPolicy"}, "IfNeeded"},
		{[]any{"admissionReviewVersions", 0}, "v1"},
		{[]any{"clientConfig", "service", "name"}, "podgate-injector"},
		{[]any{"clientConfig", "service", "namespace"}, "podgate-system"},
		{[]any{"clientConfig", "service", "path"}, "/mutate-v1-pod"},
		{[]any{"namespaceSelector", "matchLabels", "podgate.io/injection"}, "enabled"},
	} {
		if got := get(wh, c.path...); got != c.want {
			t.Errorf("webhook %v = %v, want %v", c.path, got, c.want)
		}
	}
	if ts, _ := get(wh, "timeoutSeconds").(float64); ts < 1 || ts > 5 {
		t.Errorf("timeoutSeconds = %v", ts)
	}
	excluded, _ := get(wh, "namespaceSelector", "matchExpressions", 0, "values").([]any)
	for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease", "podgate-system"} {
		if !slices.Contains(excluded, any(ns)) || get(wh, "namespaceSelector", "matchExpressions", 0, "operator") != "NotIn" {
			t.Errorf("namespaceSelector does not exclude %s", ns)
		}
	}
	// The objectSelector must exclude the injector's own pods: their label is in its NotIn list.
	podLabel := get(objs["Deployment/podgate-injector"], "spec", "template", "metadata", "labels", "app.kubernetes.io/name")
	if v, _ := get(wh, "objectSelector", "matchExpressions", 0, "values").([]any); !slices.Contains(v, podLabel) {
		t.Errorf("objectSelector %v does not exclude the injector's pods (%v)", v, podLabel)
	}
	dep := objs["Deployment/podgate-injector"]
	if get(dep, "spec", "replicas") != float64(2) || get(dep, "metadata", "namespace") != "podgate-system" {
		t.Errorf("deployment replicas/namespace wrong")
	}
	c := get(dep, "spec", "template", "spec", "containers", 0)
	if get(c, "securityContext", "readOnlyRootFilesystem") != true || get(c, "securityContext", "allowPrivilegeEscalation") != false ||
		get(dep, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
		t.Errorf("injector container is not restricted")
	}
	if img, _ := get(c, "image").(string); !strings.HasPrefix(img, "ghcr.io/podgate/injector:") && !strings.Contains(img, "/injector:") {
		t.Errorf("injector image %q", img)
	}
	svc := objs["Service/podgate-injector"]
	if get(svc, "spec", "ports", 0, "port") != float64(443) || get(svc, "spec", "ports", 0, "targetPort") != "webhook" ||
		get(c, "ports", 0, "name") != "webhook" || get(c, "ports", 0, "containerPort") != float64(9443) {
		t.Errorf("service 443 → webhook 9443 wiring wrong")
	}
	checkRBAC(t, objs)
	if get(objs["ValidatingAdmissionPolicyBinding/podgate-opted-in-pods-are-injected"], "spec", "validationActions", 0) != "Deny" ||
		get(objs["ValidatingAdmissionPolicy/podgate-opted-in-pods-are-injected"], "spec", "failurePolicy") != "Fail" {
		t.Errorf("the opted-in-pods policy does not deny")
	}
	for name, o := range objs {
		ns := get(o, "metadata", "namespace")
		if ns != nil && ns != "podgate-system" {
			t.Errorf("%s lands in namespace %v", name, ns)
		}
		if clusterScoped[get(o, "kind").(string)] && ns != nil {
			t.Errorf("cluster-scoped %s has namespace %v", name, ns)
		}
	}
}

var clusterScoped = map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true, "MutatingWebhookConfiguration": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true}

// rule is one RBAC rule, flattened for comparison.
type rule struct{ groups, resources, names, verbs string }

func rulesOf(o object) []rule {
	var out []rule
	join := func(v any) string {
		var parts []string
		for _, x := range asSlice(v) {
			parts = append(parts, x.(string))
		}
		return strings.Join(parts, ",")
	}
	for _, r := range asSlice(get(o, "rules")) {
		out = append(out, rule{join(get(r, "apiGroups")), join(get(r, "resources")), join(get(r, "resourceNames")), join(get(r, "verbs"))})
	}
	return out
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// checkRBAC pins the injector's permissions: every write is narrowed to a name or to events, and
// nothing reads Secrets outside its namespace.
func checkRBAC(t *testing.T, objs map[string]object) {
	want := map[string][]rule{
		"ClusterRole/podgate-injector": {
			{"", "namespaces", "", "get,list,watch"},
			{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "get,list,watch"},
			{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "podgate-injector", "update"},
			{"apps", "replicasets", "", "get"},
			{"batch", "jobs", "", "get"},
			{",events.k8s.io", "events", "", "create,patch"},
		},
		"Role/podgate-injector": {
			{"", "secrets", "", "get,list,watch"},
			{"", "secrets", "podgate-injector-cert", "update"},
			{"coordination.k8s.io", "leases", "", "get,list,watch,create,update,patch"},
		},
	}
	for name, rules := range want {
		if got := rulesOf(objs[name]); !slices.Equal(got, rules) {
			t.Errorf("%s rules\n got %v\nwant %v", name, got, rules)
		}
	}
	if get(objs["RoleBinding/podgate-injector"], "subjects", 0, "name") != "podgate-injector" {
		t.Errorf("Role not bound to the injector")
	}
}

// TestBaseManagesItsOwnCertificate: the base is a complete install, so it needs no TLS Secret from
// anyone; the overlays that bring their own certificate switch the injector to files.
func TestBaseManagesItsOwnCertificate(t *testing.T) {
	root := scratchCopy(t)
	args := func(objs map[string]object) []any {
		return asSlice(get(objs["Deployment/podgate-injector"], "spec", "template", "spec", "containers", 0, "args"))
	}
	base := objects(t, render(t, root, "base"))
	if !slices.Contains(args(base), any("--certificates=self-managed")) || base["Secret/podgate-injector-cert"] == nil ||
		get(base["Deployment/podgate-injector"], "spec", "template", "spec", "volumes", 0, "emptyDir") == nil {
		t.Errorf("base is not self-managed: args %v", args(base))
	}
	if b := get(base["MutatingWebhookConfiguration/podgate-injector"], "webhooks", 0, "clientConfig", "caBundle"); b != nil {
		t.Errorf("base ships a caBundle %v; the injector writes it", b)
	}
	for _, d := range []string{"overlays/dev", "overlays/cert-manager"} {
		objs := objects(t, render(t, root, d))
		spec := get(objs["Deployment/podgate-injector"], "spec", "template", "spec")
		if !slices.Contains(args(objs), any("--certificates=files")) || slices.Contains(args(objs), any("--certificates=self-managed")) ||
			get(spec, "volumes", 0, "secret", "secretName") != "podgate-injector-tls" || get(spec, "containers", 0, "volumeMounts", 0, "readOnly") != true {
			t.Errorf("%s does not serve the files: args %v, volumes %v", d, args(objs), get(spec, "volumes"))
		}
	}
	e2e := objects(t, render(t, root, "overlays/e2e"))
	if !slices.Contains(args(e2e), any("--certificates=self-managed")) || !slices.Contains(args(e2e), any("--cert-lifetime=4m")) {
		t.Errorf("e2e overlay args %v", args(e2e))
	}
}

func TestDevOverlayCarriesCABundle(t *testing.T) {
	root := scratchCopy(t)
	objs := objects(t, render(t, root, "overlays/dev"))
	ca, err := os.ReadFile(filepath.Join(root, "overlays/dev/certs/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ := get(objs["MutatingWebhookConfiguration/podgate-injector"], "webhooks", 0, "clientConfig", "caBundle").(string)
	got, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(bundle, "\n", ""))
	if err != nil || string(got) != string(ca) {
		t.Fatalf("caBundle is not the dev CA (err %v)", err)
	}
	if sec := objs["Secret/podgate-injector-tls"]; get(sec, "type") != "kubernetes.io/tls" || get(sec, "data", "tls.crt") == nil {
		t.Fatalf("TLS secret missing or wrong: %v", sec)
	}
}

func TestCertManagerOverlayInjectsCA(t *testing.T) {
	root := scratchCopy(t)
	objs := objects(t, render(t, root, "overlays/cert-manager"))
	if get(objs["MutatingWebhookConfiguration/podgate-injector"], "metadata", "annotations", "cert-manager.io/inject-ca-from") != "podgate-system/podgate-injector" {
		t.Fatal("inject-ca-from annotation missing")
	}
	if get(objs["Certificate/podgate-injector"], "spec", "secretName") != "podgate-injector-tls" {
		t.Fatal("certificate does not write the Secret the deployment mounts")
	}
}

// The podgate-cni agent: in kube-system (hostPath needs a privileged namespace), on every node,
// root only to own the CNI directories, nothing privileged, every capability dropped, ready only
// once chained; it renders next to the e2e overlay the way the e2e harness applies both.
func TestCNIAgent(t *testing.T) {
	root := scratchCopy(t)
	objs := objects(t, render(t, root, "cni"))
	for _, want := range []string{"DaemonSet/podgate-cni", "ServiceAccount/podgate-cni", "ClusterRole/podgate-cni", "ClusterRoleBinding/podgate-cni"} {
		if objs[want] == nil {
			t.Fatalf("%s missing", want)
		}
	}
	ds := objs["DaemonSet/podgate-cni"]
	if ns := get(ds, "metadata", "namespace"); ns != "kube-system" {
		t.Errorf("namespace %v", ns)
	}
	if get(objs["ClusterRoleBinding/podgate-cni"], "subjects", 0, "namespace") != "kube-system" {
		t.Errorf("binding subject %v", get(objs["ClusterRoleBinding/podgate-cni"], "subjects"))
	}
	spec := get(ds, "spec", "template", "spec")
	if get(spec, "tolerations", 0, "operator") != "Exists" || get(spec, "hostNetwork") != nil {
		t.Errorf("tolerations %v, hostNetwork %v", get(spec, "tolerations"), get(spec, "hostNetwork"))
	}
	sc := get(spec, "containers", 0, "securityContext")
	if get(sc, "privileged") != false || get(sc, "allowPrivilegeEscalation") != false || get(sc, "readOnlyRootFilesystem") != true ||
		get(sc, "capabilities", "drop", 0) != "ALL" || get(sc, "capabilities", "add") != nil {
		t.Errorf("agent security context %v", sc)
	}
	if get(spec, "containers", 0, "readinessProbe", "httpGet", "path") != "/readyz" {
		t.Errorf("no readiness on /readyz")
	}
	rules := get(objs["ClusterRole/podgate-cni"], "rules")
	if b, _ := yaml.Marshal(rules); strings.TrimSpace(string(b)) != "- apiGroups:\n  - \"\"\n  resources:\n  - pods\n  verbs:\n  - get" {
		t.Errorf("ClusterRole rules\n%s", b)
	}

	// The e2e harness's layering: both directories by relative path, the agent patched.
	layered := t.TempDir()
	relE2E, err := filepath.Rel(layered, filepath.Join(root, "overlays/e2e"))
	if err != nil {
		t.Fatal(err)
	}
	relCNI, _ := filepath.Rel(layered, filepath.Join(root, "cni"))
	k := "resources:\n- " + relE2E + "\n- " + relCNI + "\nimages:\n- {name: ghcr.io/podgate/cni, newName: podgate.local/cni, newTag: e2e}\npatches:\n- target: {kind: DaemonSet, name: podgate-cni}\n  patch: |-\n" +
		"    - {op: replace, path: /spec/template/spec/volumes/0/hostPath/path, value: /var/lib/podgate-e2e/cni/bin}\n"
	if err := os.WriteFile(filepath.Join(layered, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	objs = objects(t, render(t, layered, "."))
	ds = objs["DaemonSet/podgate-cni"]
	if get(ds, "spec", "template", "spec", "volumes", 0, "hostPath", "path") != "/var/lib/podgate-e2e/cni/bin" ||
		get(ds, "metadata", "namespace") != "kube-system" || objs["Deployment/podgate-injector"] == nil ||
		get(ds, "spec", "template", "spec", "containers", 0, "image") != "podgate.local/cni:e2e" {
		t.Errorf("layered e2e overlay and agent: %v", get(ds, "spec", "template", "spec"))
	}
}

// TestForwardAuthManifests: the standalone forward-auth service (and the e2e's overlay of it)
// renders to two restricted replicas behind a PodDisruptionBudget, probed on the admin port, which
// the Service does not expose, with both secrets from a Secret reference and never inline.
func TestForwardAuthManifests(t *testing.T) {
	for _, dir := range []string{"forward-auth", "../test/e2e/traefik/forward-auth"} {
		t.Run(dir, func(t *testing.T) {
			objs := objects(t, render(t, ".", dir))
			for _, want := range []string{"Namespace/podgate", "ConfigMap/podgate-forward-auth", "Deployment/podgate-forward-auth",
				"Service/podgate-forward-auth", "PodDisruptionBudget/podgate-forward-auth"} {
				if objs[want] == nil {
					t.Fatalf("%s missing", want)
				}
			}
			if len(objs) != 5 || objs["Secret/podgate-forward-auth"] != nil {
				t.Errorf("objects %v: the Secret is referenced, never rendered with the manifests", len(objs))
			}
			if get(objs["Namespace/podgate"], "metadata", "labels", "pod-security.kubernetes.io/enforce") != "restricted" {
				t.Error("namespace does not enforce the restricted Pod Security level")
			}
			dep := objs["Deployment/podgate-forward-auth"]
			pod := get(dep, "spec", "template", "spec")
			c := get(pod, "containers", 0)
			if get(dep, "spec", "replicas") != float64(2) || get(objs["PodDisruptionBudget/podgate-forward-auth"], "spec", "minAvailable") != float64(1) {
				t.Error("want 2 replicas and a PDB keeping one")
			}
			if get(pod, "securityContext", "runAsNonRoot") != true || get(pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault" ||
				get(c, "securityContext", "readOnlyRootFilesystem") != true || get(c, "securityContext", "allowPrivilegeEscalation") != false ||
				get(c, "securityContext", "capabilities", "drop", 0) != "ALL" || get(pod, "automountServiceAccountToken") != false {
				t.Error("forward-auth pod is not restricted")
			}
			for _, probe := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
				if get(c, probe, "httpGet", "port") != "admin" {
					t.Errorf("%s is not on the admin port", probe)
				}
			}
			if get(c, "readinessProbe", "httpGet", "path") != "/ready" {
				t.Error("readiness must wait for the IdP's keys (/ready)")
			}
			env, _ := get(c, "env").([]any)
			refs := map[string]any{}
			for _, e := range env {
				refs[get(e, "name").(string)] = get(e, "valueFrom", "secretKeyRef", "name")
			}
			if refs["PODGATE_CLIENT_SECRET"] != "podgate-forward-auth" || refs["PODGATE_COOKIE_SECRET"] != "podgate-forward-auth" {
				t.Errorf("secrets not from the Secret reference: %v", refs)
			}
			svcPorts, _ := get(objs["Service/podgate-forward-auth"], "spec", "ports").([]any)
			if len(svcPorts) != 1 || get(svcPorts[0], "targetPort") != "http" || get(svcPorts[0], "port") != float64(4180) {
				t.Errorf("service ports %v: only forward-auth (4180), never the admin port", svcPorts)
			}
			for name, o := range objs {
				if ns := get(o, "metadata", "namespace"); ns != nil && ns != "podgate" {
					t.Errorf("%s lands in namespace %v", name, ns)
				}
			}
		})
	}
}
