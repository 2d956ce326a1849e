package webhook

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	admissionv1 "k8s.io/api/admission/v1"
)

// TestOneLogLinePerReview: each review logs one line naming the pod, the request and the outcome.
func TestOneLogLinePerReview(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	m, _ := NewMetrics(nil)
	h := &Handler{Config: testConfig(), Namespaces: namespaces, NamespaceTimeout: 1e9, Log: zap.New(core), Metrics: m}
	optedOut := typicalPod("")
	optedOut.Annotations["podgate.io/inject"] = "false"
	for _, tc := range []struct {
		pod  []byte
		msg  string
		want map[string]any
	}{
		{mustJSON(typicalPod("")), "pod injected", map[string]any{"namespace": "shop", "name": "", "uid": "uid-1", "dryRun": true, "generateName": "web-"}},
		{mustJSON(optedOut), "pod skipped", map[string]any{"uid": "uid-1", "generateName": "web-", "reason": "optedOut"}},
	} {
		req, err := DecodeReview(review(admissionv1.Create, "Pod", tc.pod, true))
		if err != nil {
			t.Fatal(err)
		}
		h.Handle(context.Background(), req)
		entries := logs.TakeAll()
		if len(entries) != 1 || entries[0].Message != tc.msg {
			t.Fatalf("log lines %+v, want one %q", entries, tc.msg)
		}
		fields := entries[0].ContextMap()
		for k, v := range tc.want {
			if fields[k] != v {
				t.Errorf("%s: field %s = %v, want %v (all: %v)", tc.msg, k, fields[k], v, fields)
			}
		}
	}
}
