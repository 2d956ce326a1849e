package manifests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// One source of truth: the Helm chart renders, object for object and field for field, what the
// kustomizations hold. Comments and document order aside, a difference fails here.
//
// The helm binary comes from PODGATE_HELM, which `make test` sets after building helm from the Go
// module proxy into a cache outside the repository.
func helm(t *testing.T) string {
	t.Helper()
	h := os.Getenv("PODGATE_HELM")
	if h == "" {
		t.Skip("PODGATE_HELM is not set (make test builds helm and sets it)")
	}
	return h
}

// helmTemplate renders charts/podgate into the podgate-system namespace, with the Namespace.
func helmTemplate(t *testing.T, args ...string) map[string]object {
	t.Helper()
	cmd := exec.Command(helm(t), append([]string{"template", "podgate", "../charts/podgate", "--namespace", "podgate-system",
		"--set", "namespace.create=true"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, stderr.String())
	}
	objs := map[string]object{}
	for _, doc := range strings.Split(string(out), "\n---") {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("helm output: %v\n%s", err, doc)
		}
		if o == nil {
			continue
		}
		key := get(o, "kind").(string) + "/" + get(o, "metadata", "name").(string)
		if objs[key] != nil {
			t.Fatalf("helm renders %s twice", key)
		}
		objs[key] = o
	}
	return objs
}

func TestChartRendersTheManifests(t *testing.T) {
	root := scratchCopy(t)
	values, err := filepath.Abs("../test/e2e/testdata/chart-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dir  string
		args []string
	}{
		{"base+cni", nil},
		{"base", []string{"--set", "capture.enabled=false"}},
		{"overlays/cert-manager", []string{"--set", "certificates.mode=cert-manager", "--set", "capture.enabled=false"}},
		{"overlays/e2e", []string{"--values", values}},
		{"base+cni+forward-auth", []string{"--set", "forwardAuth.enabled=true"}},
	} {
		t.Run(c.dir, func(t *testing.T) {
			want := map[string]object{}
			for _, dir := range strings.Split(c.dir, "+") {
				maps.Copy(want, objects(t, render(t, root, dir)))
			}
			got := helmTemplate(t, c.args...)
			configChecksum(t, got)
			for _, k := range sortedKeys(want) {
				if got[k] == nil {
					t.Errorf("chart lacks %s", k)
				} else if !reflect.DeepEqual(got[k], want[k]) {
					g, _ := yaml.Marshal(got[k])
					w, _ := yaml.Marshal(want[k])
					t.Errorf("%s differs\n--- chart\n%s\n--- %s\n%s", k, g, c.dir, w)
				}
			}
			for _, k := range sortedKeys(got) {
				if want[k] == nil {
					t.Errorf("chart renders %s, %s does not", k, c.dir)
				}
			}
		})
	}
}

// TestChartOptions: what only the chart offers renders as documented in values.yaml.
func TestChartOptions(t *testing.T) {
	objs := helmTemplate(t, "--set", "metrics.serviceMonitor.enabled=true", "--set", "policy.enabled=false",
		"--set", "injector.replicas=3", "--set", "certificates.mode=cert-manager",
		"--set", "certificates.certManager.issuerRef.name=corp-ca", "--set", "certificates.certManager.issuerRef.kind=ClusterIssuer")
	if get(objs["ServiceMonitor/podgate-injector"], "spec", "endpoints", 0, "port") != "metrics" ||
		get(objs["Service/podgate-injector-metrics"], "spec", "ports", 0, "targetPort") != "metrics" {
		t.Error("ServiceMonitor or its Service missing")
	}
	if objs["ValidatingAdmissionPolicy/podgate-opted-in-pods-are-injected"] != nil {
		t.Error("policy rendered though disabled")
	}
	if get(objs["Deployment/podgate-injector"], "spec", "replicas") != float64(3) {
		t.Error("replicas not applied")
	}
	if get(objs["Certificate/podgate-injector"], "spec", "issuerRef", "kind") != "ClusterIssuer" || objs["Issuer/podgate-ca"] != nil {
		t.Error("own issuer not used")
	}
	// forward-auth in the release's namespace: no second Namespace, its own Secret name and flags.
	objs = helmTemplate(t, "--set", "forwardAuth.enabled=true", "--set", "forwardAuth.namespace=podgate-system",
		"--set", "forwardAuth.secretName=sso", "--set", "forwardAuth.extraArgs={--pass-id-token}")
	fa := objs["Deployment/podgate-forward-auth"]
	if get(fa, "metadata", "namespace") != "podgate-system" || objs["Namespace/podgate"] != nil {
		t.Error("forward-auth not in the release namespace, or its own Namespace rendered")
	}
	if get(fa, "spec", "template", "spec", "containers", 0, "env", 0, "valueFrom", "secretKeyRef", "name") != "sso" ||
		get(fa, "spec", "template", "spec", "containers", 0, "args", 2) != "--pass-id-token" {
		t.Error("forward-auth secretName or extraArgs not applied")
	}
	// The capture mode reaches the injector's configuration (and its checksum); the default, cni,
	// is the injector's own and adds nothing.
	for _, mode := range []string{"init", "none"} {
		objs = helmTemplate(t, "--set", "capture.mode="+mode, "--set", "capture.enabled=false")
		config, _ := get(objs["ConfigMap/podgate-injector-config"], "data", "config.yaml").(string)
		if !strings.HasSuffix(config, "\ncapture: "+mode+"\n") {
			t.Errorf("capture.mode=%s: config.yaml ends %q", mode, config[max(0, len(config)-40):])
		}
		configChecksum(t, objs)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "certificates.mode=vault"}, "certificates.mode must be"},
		{[]string{"--set", "capture.mode=iptables"}, `capture.mode must be cni, init or none, not "iptables"`},
		{[]string{"--set-string", "injector.config=capture: none"}, "set the chart value capture.mode instead"},
	} {
		cmd := exec.Command(helm(t), append([]string{"template", "podgate", "../charts/podgate"}, c.args...)...)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%v accepted or unclear: %s", c.args, out)
		}
	}
}

// configChecksum checks and removes the injector pod template's checksum/config annotation, the
// one field only the chart has: the SHA-256 of the ConfigMap's config.yaml, so that helm upgrade
// rolls the injector when its configuration changes (it reads it at start).
func configChecksum(t *testing.T, objs map[string]object) {
	t.Helper()
	meta, _ := get(objs["Deployment/podgate-injector"], "spec", "template", "metadata").(map[string]any)
	annotations, _ := meta["annotations"].(map[string]any)
	config, _ := get(objs["ConfigMap/podgate-injector-config"], "data", "config.yaml").(string)
	if sum := sha256.Sum256([]byte(config)); annotations["checksum/config"] != hex.EncodeToString(sum[:]) {
		t.Errorf("injector pod template: checksum/config %v, want the SHA-256 of the ConfigMap's config.yaml", annotations["checksum/config"])
	}
	delete(annotations, "checksum/config")
	if len(annotations) == 0 {
		delete(meta, "annotations")
	}
}

func sortedKeys(m map[string]object) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
