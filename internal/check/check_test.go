package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/podgate/podgate/internal/devcerts"
	"github.com/podgate/podgate/internal/inject"
)

const ns = "podgate-system"

type install struct {
	ca, crt []byte
	objs    []runtime.Object
	// cfg is the configuration the injector started with (the ConfigMap's).
	cfg inject.Config
}

// goodInstall is what manifests/base leaves once the injector runs: webhook with the CA, the
// Secret, a ready Deployment, an enabled namespace with one current injected pod of a ReplicaSet.
func goodInstall(t *testing.T) *install {
	t.Helper()
	return installWithCertificate(t, time.Hour)
}

// installWithCertificate is goodInstall with a serving certificate issued now for validity.
func installWithCertificate(t *testing.T, validity time.Duration) *install {
	t.Helper()
	dir := t.TempDir()
	if _, err := devcerts.Ensure(devcerts.Options{Dir: dir, Service: "podgate-injector", Namespace: ns, Validity: validity}); err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, devcerts.CAFile))
	crt, _ := os.ReadFile(filepath.Join(dir, devcerts.CertFile))
	// No capture agent in this cluster, so the good install chose capture mode none.
	cfgYAML := "image: podgate.local/sidecar:e2e\nissuerURL: https://kc.example.com/realms/x\nclientID: app\ncapture: none\n"
	cfg, err := inject.ParseConfig([]byte(cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	in := &install{ca: ca, crt: crt, cfg: cfg}
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{inject.AnnotationInject: "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example/web:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
	shop := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{inject.LabelInjection: "enabled"}}}
	injected, _, err := inject.Inject(&corev1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}, shop, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	injected.Name, injected.Namespace = "web-5d4f-abcde", "shop"
	injected.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d4f", Controller: ptr.To(true)}}
	injected.Status.Phase = corev1.PodRunning
	in.objs = []runtime.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "podgate-injector"},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "pods.injector.podgate.io",
				FailurePolicy: ptr.To(admissionregistrationv1.Fail),
				ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: ca,
					Service: &admissionregistrationv1.ServiceReference{Name: "podgate-injector", Namespace: ns}}}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "podgate-injector-cert", Namespace: ns}, Data: map[string][]byte{corev1.TLSCertKey: crt}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "podgate-injector", Namespace: ns},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(2)), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "injector", Image: "podgate.local/injector:e2e"}}}}},
			Status: appsv1.DeploymentStatus{ReadyReplicas: 2}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "podgate-injector-config", Namespace: ns}, Data: map[string]string{"config.yaml": cfgYAML}},
		shop,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-5d4f", Namespace: "shop"}, Spec: appsv1.ReplicaSetSpec{Template: tmpl}},
		injected,
	}
	return in
}

// run checks a fake cluster whose dry-run pod creation answers like the API server with the
// injector in place, injecting with the configuration it started with (in.cfg).
func (in *install) run(t *testing.T, mutate func(k *fake.Clientset)) []Finding {
	t.Helper()
	k := fake.NewClientset(in.objs...)
	k.PrependReactor("create", "pods", injectWith(k, &in.cfg))
	if mutate != nil {
		mutate(k)
	}
	o := DefaultOptions()
	o.Now = func() time.Time { return time.Now() }
	return (&Checker{Kube: k, Opts: o}).Run(context.Background())
}

// injectWith answers a dry-run pod creation like the API server with an injector running cfg.
func injectWith(k *fake.Clientset, cfg *inject.Config) k8stesting.ReactionFunc {
	return func(a k8stesting.Action) (bool, runtime.Object, error) {
		if len(a.(k8stesting.CreateActionImpl).GetCreateOptions().DryRun) == 0 {
			return false, nil, nil
		}
		pod := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		ns, err := k.Tracker().Get(corev1.SchemeGroupVersion.WithResource("namespaces"), "", pod.Namespace)
		if err != nil {
			return true, nil, err
		}
		out, _, err := inject.Inject(pod.DeepCopy(), ns.(*corev1.Namespace), cfg)
		return true, out, err
	}
}

func failures(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		if f.Status == Fail {
			out = append(out, f.String())
		}
	}
	return out
}

func TestGoodInstallIsClean(t *testing.T) {
	fs := goodInstall(t).run(t, nil)
	if Failed(fs) {
		t.Fatalf("failures on a good install: %v", failures(fs))
	}
	var report strings.Builder
	for _, f := range fs {
		report.WriteString(f.String() + "\n")
	}
	for _, want := range []string{"caBundle of pods.injector.podgate.io verifies", "1 enabled: shop", "an opted-in pod in shop comes back injected",
		"1 injected pods, all current", "node agent DaemonSet kube-system/podgate-cni is not installed (capture mode cni unavailable; the default is none)", "2 of 2 replicas ready"} {
		if !strings.Contains(report.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, report.String())
		}
	}
}

// TestEachFaultIsReported plants one fault at a time; each must fail with its own line.
func TestEachFaultIsReported(t *testing.T) {
	ctx := context.Background()
	other := goodInstall(t) // a second CA: its certificate does not verify against the first
	started := other.cfg    // the configuration every install's injector started with
	for _, tc := range []struct {
		name  string
		plant func(k *fake.Clientset)
		want  string
	}{
		{"webhook deleted", func(k *fake.Clientset) {
			_ = k.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "podgate-injector", metav1.DeleteOptions{})
		}, "MutatingWebhookConfiguration podgate-injector not found"},
		{"caBundle wrong", func(k *fake.Clientset) {
			wh, _ := k.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "podgate-injector", metav1.GetOptions{})
			wh.Webhooks[0].ClientConfig.CABundle = other.ca
			_, _ = k.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, wh, metav1.UpdateOptions{})
		}, "caBundle of pods.injector.podgate.io does not verify the serving certificate"},
		{"failure policy ignore", func(k *fake.Clientset) {
			wh, _ := k.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "podgate-injector", metav1.GetOptions{})
			wh.Webhooks[0].FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
			_, _ = k.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, wh, metav1.UpdateOptions{})
		}, "failurePolicy Ignore"},
		{"stale bare pod", func(k *fake.Clientset) {
			p, _ := k.CoreV1().Pods("shop").Get(ctx, "web-5d4f-abcde", metav1.GetOptions{})
			p.Name, p.OwnerReferences, p.ResourceVersion = "old", nil, ""
			p.Spec.InitContainers[0].Image = "podgate.local/sidecar:old"
			_, _ = k.CoreV1().Pods("shop").Create(ctx, p, metav1.CreateOptions{})
		}, "shop/old runs a stale sidecar (image podgate.local/sidecar:old, now podgate.local/sidecar:e2e)"},
		{"stale arguments", func(k *fake.Clientset) {
			// An upgrade: the injector restarted with the new configuration (the dry-run shows it).
			cfg := started
			cfg.AdminPort = 4191
			k.PrependReactor("create", "pods", injectWith(k, &cfg))
			cm, _ := k.CoreV1().ConfigMaps(ns).Get(ctx, "podgate-injector-config", metav1.GetOptions{})
			cm.Data["config.yaml"] += "adminPort: 4191\n"
			_, _ = k.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
		}, "shop/web-5d4f-abcde runs a stale sidecar (arguments differ"},
		{"injector not restarted after a configuration change", func(k *fake.Clientset) {
			cm, _ := k.CoreV1().ConfigMaps(ns).Get(ctx, "podgate-injector-config", metav1.GetOptions{})
			cm.Data["config.yaml"] = strings.Replace(cm.Data["config.yaml"], "sidecar:e2e", "sidecar:e2e-next", 1)
			_, _ = k.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
			// The existing pod is stale too; here only the injector's view counts.
			_ = k.CoreV1().Pods("shop").Delete(ctx, "web-5d4f-abcde", metav1.DeleteOptions{})
		}, "an opted-in pod in shop comes back injected with a configuration other than ConfigMap podgate-system/podgate-injector-config (sidecar image podgate.local/sidecar:e2e, the ConfigMap says podgate.local/sidecar:e2e-next): restart the injector"},
		{"opted in, not injected", func(k *fake.Clientset) {
			_, _ = k.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "naked", Namespace: "default",
				Annotations: map[string]string{inject.AnnotationInject: "true"}}}, metav1.CreateOptions{})
		}, "default/naked opted in but has no sidecar"},
		{"capture mode cni without the agent", func(k *fake.Clientset) {
			cm, _ := k.CoreV1().ConfigMaps(ns).Get(ctx, "podgate-injector-config", metav1.GetOptions{})
			cm.Data["config.yaml"] = strings.Replace(cm.Data["config.yaml"], "capture: none", "capture: cni", 1)
			_, _ = k.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
		}, "node agent DaemonSet kube-system/podgate-cni is not installed, but the injector's default capture mode is cni"},
		{"node without the capture agent", func(k *fake.Clientset) {
			_, _ = k.AppsV1().DaemonSets("kube-system").Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "podgate-cni", Namespace: "kube-system"},
				Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "podgate-cni"}}}},
				metav1.CreateOptions{})
			_, _ = k.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-b"}}, metav1.CreateOptions{})
			_, _ = k.CoreV1().Pods("kube-system").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "cni-a", Namespace: "kube-system",
				Labels: map[string]string{"app.kubernetes.io/name": "podgate-cni"}}, Spec: corev1.PodSpec{NodeName: "node-a"},
				Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}, metav1.CreateOptions{})
		}, "node node-b has no ready podgate-cni agent"},
		{"injector down", func(k *fake.Clientset) {
			d, _ := k.AppsV1().Deployments(ns).Get(ctx, "podgate-injector", metav1.GetOptions{})
			d.Status.ReadyReplicas = 0
			_, _ = k.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
		}, "Deployment podgate-injector has no ready replica"},
		{"dry run fails", func(k *fake.Clientset) {
			k.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if len(a.(k8stesting.CreateActionImpl).GetCreateOptions().DryRun) == 0 {
					return false, nil, nil
				}
				return true, nil, &apiStatusError500
			})
		}, "an opted-in pod in shop could not be admitted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fails := failures(goodInstall(t).run(t, tc.plant))
			if len(fails) != 1 || !strings.Contains(fails[0], tc.want) {
				t.Fatalf("failures %q, want one containing %q", fails, tc.want)
			}
		})
	}
}

func TestExpiredCertificate(t *testing.T) {
	in := goodInstall(t)
	k := fake.NewClientset(in.objs...)
	o := DefaultOptions()
	o.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	fails := failures((&Checker{Kube: k, Opts: o}).Run(context.Background()))
	found := false
	for _, f := range fails {
		found = found || strings.Contains(f, "serving certificate expired")
	}
	if !found {
		t.Fatalf("expired certificate not reported: %q", fails)
	}
}

// TestTerminatingPodIsNotReported: a stale pod that a rollout is deleting needs no restart.
func TestTerminatingPodIsNotReported(t *testing.T) {
	ctx := context.Background()
	fs := goodInstall(t).run(t, func(k *fake.Clientset) {
		p, _ := k.CoreV1().Pods("shop").Get(ctx, "web-5d4f-abcde", metav1.GetOptions{})
		p.Name, p.ResourceVersion = "web-5d4f-going", ""
		p.Spec.InitContainers[0].Image = "podgate.local/sidecar:old"
		p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		p.Finalizers = []string{"test/keep"}
		_, _ = k.CoreV1().Pods("shop").Create(ctx, p, metav1.CreateOptions{})
	})
	if Failed(fs) {
		t.Fatalf("a terminating pod reported: %v", failures(fs))
	}
}

// TestShortLivedCertificate: a four-minute certificate (the e2e's lifetime), started an hour before
// its issue like the rotator's, is fine a minute in and late for renewal with under a minute left.
func TestShortLivedCertificate(t *testing.T) {
	in := installWithCertificate(t, 4*time.Minute)
	issued := time.Now()
	for _, c := range []struct {
		after time.Duration
		want  Status
	}{{time.Minute, OK}, {3*time.Minute + 30*time.Second, Warn}} {
		o := DefaultOptions()
		o.Now = func() time.Time { return issued.Add(c.after) }
		var got []Finding
		for _, f := range (&Checker{Kube: fake.NewClientset(in.objs...), Opts: o}).Run(context.Background()) {
			if f.Area == "certificate" && strings.HasPrefix(f.Msg, "serving certificate ") {
				got = append(got, f)
			}
		}
		if len(got) != 1 || got[0].Status != c.want {
			t.Errorf("%s after issue: %v, want one %s finding on its expiry", c.after, got, c.want)
		}
	}
}

// apiStatusError500 is the API server's answer when it cannot call the webhook.
var apiStatusError500 = apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 500,
	Reason: metav1.StatusReasonInternalError, Message: `Internal error occurred: failed calling webhook "pods.injector.podgate.io"`}}
