package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Manifests injects every opted-in pod (or pod template) in a stream of Kubernetes YAML documents
// and writes the stream back, like `istioctl kube-inject`. Documents that are not pods or pod
// workloads, and pods that are skipped, are copied byte for byte. Every failing object is
// reported (by kind and name) in the returned error; the output still holds all documents.
// Warnings (as the webhook would send them) go to warn, one per line, when it is not nil.
func Manifests(r io.Reader, w, warn io.Writer, cfg *Config) error {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var errs []error
	first := true
	for i := 1; ; i++ {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		out, warnings, err := injectDocument(doc, cfg)
		for _, wn := range warnings {
			if warn != nil {
				fmt.Fprintf(warn, "document %d: %s\n", i, wn)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			out = doc
		}
		if !first {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		first = false
		out = bytes.TrimLeft(out, "\n")
		if !bytes.HasSuffix(out, []byte("\n")) {
			out = append(out, '\n')
		}
		if bytes.HasPrefix(out, []byte("---")) {
			out = bytes.TrimLeft(bytes.TrimPrefix(out, []byte("---")), "\n")
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			b.Write(line)
		}
	}
	return b.Bytes()
}

// injectDocument returns the injected document, or doc itself when nothing changed.
func injectDocument(doc []byte, cfg *Config) ([]byte, []string, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, nil, fmt.Errorf("not Kubernetes YAML: %w", err)
	}
	var obj any
	var meta *metav1.ObjectMeta
	var tmpl *corev1.PodTemplateSpec
	switch tm.GroupVersionKind().GroupKind().String() {
	case "Pod":
		p := &corev1.Pod{}
		obj, meta = p, &p.ObjectMeta // its template is built after decoding
	case "Deployment.apps":
		d := &appsv1.Deployment{}
		obj, meta, tmpl = d, &d.ObjectMeta, &d.Spec.Template
	case "StatefulSet.apps":
		d := &appsv1.StatefulSet{}
		obj, meta, tmpl = d, &d.ObjectMeta, &d.Spec.Template
	case "DaemonSet.apps":
		d := &appsv1.DaemonSet{}
		obj, meta, tmpl = d, &d.ObjectMeta, &d.Spec.Template
	case "ReplicaSet.apps":
		d := &appsv1.ReplicaSet{}
		obj, meta, tmpl = d, &d.ObjectMeta, &d.Spec.Template
	case "Job.batch":
		d := &batchv1.Job{}
		obj, meta, tmpl = d, &d.ObjectMeta, &d.Spec.Template
	case "CronJob.batch":
		d := &batchv1.CronJob{}
		obj, meta, tmpl = d, &d.ObjectMeta, &d.Spec.JobTemplate.Spec.Template
	default:
		return doc, nil, nil
	}
	if err := yaml.Unmarshal(doc, obj); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if p, ok := obj.(*corev1.Pod); ok {
		tmpl = &corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec}
	}
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
	pod.Namespace = meta.Namespace
	out, rep, err := Inject(pod, nil, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", tm.Kind, objectName(meta), err)
	}
	if rep.Skipped != "" {
		return doc, nil, nil
	}
	if p, ok := obj.(*corev1.Pod); ok {
		p.ObjectMeta, p.Spec = out.ObjectMeta, out.Spec
	} else {
		out.Namespace = ""
		tmpl.ObjectMeta, tmpl.Spec = out.ObjectMeta, out.Spec
	}
	b, err := marshalClean(obj)
	return b, rep.Warnings, err
}

func objectName(m *metav1.ObjectMeta) string {
	n := m.Name
	if n == "" {
		n = m.GenerateName + "*"
	}
	if m.Namespace != "" {
		n = m.Namespace + "/" + n
	}
	return n
}

// marshalClean renders obj as YAML without the nulls and empty status that typed Go structs add
// (creationTimestamp: null, status: {}), so the output reads like the input.
func marshalClean(obj any) ([]byte, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	dropNulls(m)
	if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
		delete(m, "status")
	}
	return yaml.Marshal(m)
}

func dropNulls(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if e == nil {
				delete(t, k)
				continue
			}
			dropNulls(e)
		}
	case []any:
		for _, e := range t {
			dropNulls(e)
		}
	}
}
