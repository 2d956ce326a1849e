package webhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"go.uber.org/zap"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/podgate/podgate/internal/inject"
)

// goldenPods returns the pod (or pod template, as a pod) of every document of the injector's golden
// inputs, named by file and document, as JSON.
func goldenPods(t *testing.T) map[string][]byte {
	files, err := filepath.Glob("../inject/testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string][]byte{}
	for _, f := range files {
		if strings.HasSuffix(f, ".injected.yaml") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		yr := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(src)))
		for i := 1; ; i++ {
			doc, err := yr.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]any
			if err := yaml.Unmarshal(doc, &obj); err != nil || obj == nil {
				continue
			}
			pod := obj
			if kind, _ := obj["kind"].(string); kind != "Pod" {
				spec, _ := obj["spec"].(map[string]any)
				if jt, ok := spec["jobTemplate"].(map[string]any); ok {
					spec, _ = jt["spec"].(map[string]any)
				}
				tmpl, ok := spec["template"].(map[string]any)
				if !ok {
					continue
				}
				pod = map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": tmpl["metadata"], "spec": tmpl["spec"]}
			}
			raw, err := json.Marshal(pod)
			if err != nil {
				t.Fatal(err)
			}
			pods[filepath.Base(f)+"#"+string(rune('0'+i))] = raw
		}
	}
	if len(pods) < 25 {
		t.Fatalf("only %d golden pods found", len(pods))
	}
	return pods
}

// withUnknownFields adds a member this build's API types do not know to the pod's spec and to every
// container, as a newer API server's copy of the object may hold.
func withUnknownFields(t *testing.T, raw []byte) []byte {
	var pod map[string]any
	if err := json.Unmarshal(raw, &pod); err != nil {
		t.Fatal(err)
	}
	spec, _ := pod["spec"].(map[string]any)
	spec["futureSpecField"] = "kept"
	for _, list := range []string{"containers", "initContainers"} {
		cs, _ := spec[list].([]any)
		for _, c := range cs {
			c.(map[string]any)["futureField"] = "kept-" + c.(map[string]any)["name"].(string)
		}
	}
	return mustJSON(pod)
}

// TestGoldenPatches: for every golden input of the injector, the webhook's patch applied to the
// object as the API server encodes it gives exactly the pod inject.Inject returns, and leaves alone
// what the API server's copy holds beyond this build's types (no field moves to another container).
func TestGoldenPatches(t *testing.T) {
	m, _ := NewMetrics(nil)
	ns := must(namespaces(context.Background(), "shop"))
	h := &Handler{Config: testConfig(), NamespaceTimeout: 1e9, Log: zap.NewNop(), Metrics: m,
		Namespaces: func(context.Context, string) (*corev1.Namespace, error) { return ns, nil }}
	injected := 0
	for name, raw := range goldenPods(t) {
		t.Run(name, func(t *testing.T) {
			var pod corev1.Pod
			if err := json.Unmarshal(raw, &pod); err != nil {
				t.Fatal(err)
			}
			if pod.Namespace == "" {
				pod.Namespace = "shop"
			}
			want, rep, wantErr := inject.Inject(&pod, ns, testConfig())
			req, err := DecodeReview(review(admissionv1.Create, "Pod", raw, false))
			if err != nil {
				t.Fatal(err)
			}
			req.Namespace = pod.Namespace
			resp := h.Handle(context.Background(), req)
			if wantErr != nil || rep.Skipped != "" {
				if len(resp.Patch) != 0 {
					t.Fatalf("Inject injected nothing (error %v, skipped %q) but the webhook patched: %s", wantErr, rep.Skipped, resp.Patch)
				}
				return
			}
			injected++
			if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
				t.Fatalf("not allowed with a JSON patch: %+v", resp.AdmissionResponse)
			}
			patch, err := jsonpatch.DecodePatch(resp.Patch)
			if err != nil {
				t.Fatal(err)
			}
			// The API server patches its own encoding of the typed object, which holds the
			// namespace and every field without omitempty.
			stored := mustJSON(&pod)
			patched, err := patch.Apply(stored)
			if err != nil {
				t.Fatalf("patch does not apply to the object: %v\n%s", err, resp.Patch)
			}
			var got corev1.Pod
			if err := json.Unmarshal(patched, &got); err != nil {
				t.Fatal(err)
			}
			if g, w := mustJSON(&got), mustJSON(want); !bytes.Equal(g, w) {
				t.Fatalf("patched pod differs from Inject's:\n got %s\nwant %s", g, w)
			}

			patched, err = patch.Apply(withUnknownFields(t, stored))
			if err != nil {
				t.Fatalf("patch does not apply to the object with unknown fields: %v\n%s", err, resp.Patch)
			}
			var loose map[string]any
			if err := json.Unmarshal(patched, &loose); err != nil {
				t.Fatal(err)
			}
			spec := loose["spec"].(map[string]any)
			if spec["futureSpecField"] != "kept" {
				t.Errorf("the spec's unknown field is gone")
			}
			for _, list := range []string{"containers", "initContainers"} {
				cs, _ := spec[list].([]any)
				for _, c := range cs {
					c := c.(map[string]any)
					ours := c["name"] == inject.SidecarName || c["name"] == inject.CaptureInitName // added by the injection
					if f, has := c["futureField"]; has && f != "kept-"+c["name"].(string) {
						t.Errorf("%s %s holds another container's unknown field %v", list, c["name"], f)
					} else if !has && !ours {
						t.Errorf("%s %s lost its unknown field", list, c["name"])
					}
				}
			}
		})
	}
	if injected < 15 {
		t.Fatalf("only %d golden pods injected", injected)
	}
}
