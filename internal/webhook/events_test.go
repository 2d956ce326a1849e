package webhook

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/podgate/podgate/internal/inject"
)

// TestDeniedPodEventOnWorkload: a denied pod's Event lands on the object a person manages (the
// Deployment above the ReplicaSet, the CronJob above the Job, the StatefulSet itself); a bare
// pod, an allowed pod and a dry run record nothing.
func TestDeniedPodEventOnWorkload(t *testing.T) {
	rec := record.NewFakeRecorder(10)
	owners := map[string]*metav1.OwnerReference{
		"ReplicaSet/web-5d4f": {APIVersion: "apps/v1", Kind: "Deployment", Name: "web", Controller: ptr.To(true)},
		"Job/nightly-29":      {APIVersion: "batch/v1", Kind: "CronJob", Name: "nightly", Controller: ptr.To(true)},
	}
	var lookups []string
	events := &WorkloadEvents{Recorder: rec, Timeout: time.Second, Log: zap.NewNop(),
		Owner: func(_ context.Context, ns string, ref metav1.OwnerReference) *metav1.OwnerReference {
			lookups = append(lookups, ns+"/"+ref.Kind+"/"+ref.Name)
			return owners[ref.Kind+"/"+ref.Name]
		}}
	m, _ := NewMetrics(prometheus.NewRegistry())
	h := &Handler{Config: testConfig(), Namespaces: namespaces, NamespaceTimeout: time.Second, Log: zap.NewNop(), Metrics: m, Events: events}
	srv := httptest.NewServer(h)
	defer srv.Close()

	denied := func(owner *metav1.OwnerReference) []byte {
		p := typicalPod("")
		p.Annotations[inject.AnnotationCookieSecure] = "maybe"
		if owner != nil {
			p.OwnerReferences = []metav1.OwnerReference{*owner}
		}
		return mustJSON(p)
	}
	ctl := func(apiVersion, kind, name string) *metav1.OwnerReference {
		return &metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, Controller: ptr.To(true)}
	}
	for _, tc := range []struct {
		name  string
		body  []byte
		event string // "" for none
	}{
		{"deployment", review(admissionv1.Create, "Pod", denied(ctl("apps/v1", "ReplicaSet", "web-5d4f")), false), "Deployment web"},
		{"cronjob", review(admissionv1.Create, "Pod", denied(ctl("batch/v1", "Job", "nightly-29")), false), "CronJob nightly"},
		{"bare replicaset", review(admissionv1.Create, "Pod", denied(ctl("apps/v1", "ReplicaSet", "orphan")), false), "ReplicaSet orphan"},
		{"statefulset", review(admissionv1.Create, "Pod", denied(ctl("apps/v1", "StatefulSet", "db")), false), "StatefulSet db"},
		{"bare pod", review(admissionv1.Create, "Pod", denied(nil), false), ""},
		{"dry run", review(admissionv1.Create, "Pod", denied(ctl("apps/v1", "StatefulSet", "db")), true), ""},
		{"allowed", review(admissionv1.Create, "Pod", mustJSON(typicalPod("")), false), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			post(t, srv, tc.body)
			select {
			case e := <-rec.Events:
				if tc.event == "" {
					t.Fatalf("unexpected event %q", e)
				}
				if !strings.HasPrefix(e, "Warning "+ReasonDenied+" ") || !strings.Contains(e, `annotation "podgate.io/cookie-secure": value "maybe"`) {
					t.Fatalf("event %q", e)
				}
			case <-time.After(300 * time.Millisecond):
				if tc.event != "" {
					t.Fatal("no event")
				}
			}
		})
	}
	// The fake recorder does not keep the object; the lookups show the climb went where it should.
	want := []string{"shop/ReplicaSet/web-5d4f", "shop/Job/nightly-29", "shop/ReplicaSet/orphan"}
	if strings.Join(lookups, " ") != strings.Join(want, " ") {
		t.Fatalf("owner lookups %v, want %v", lookups, want)
	}
}

func TestWorkloadClimb(t *testing.T) {
	w := &WorkloadEvents{Owner: func(context.Context, string, metav1.OwnerReference) *metav1.OwnerReference {
		return &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}
	}}
	for in, want := range map[metav1.OwnerReference]string{
		{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1"}:       "Deployment/web",
		{APIVersion: "batch/v1", Kind: "Job", Name: "j"}:                 "Deployment/web",
		{APIVersion: "example.com/v1", Kind: "ReplicaSet", Name: "x"}:    "ReplicaSet/x",
		{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent"}:        "DaemonSet/agent",
		{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "r"}: "Rollout/r",
	} {
		got := w.workload(context.Background(), "shop", in)
		if got.Kind+"/"+got.Name != want {
			t.Errorf("%s/%s → %s/%s, want %s", in.Kind, in.Name, got.Kind, got.Name, want)
		}
	}
}
