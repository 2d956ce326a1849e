//go:build e2e

package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/podgate/podgate/test/e2e/framework"
)

// Injection: the injector deployed from the manifests mutates opted-in pods and leaves every
// other pod alone.

// The injector and sidecar as deployed by manifests/overlays/e2e.
const (
	sidecarName   = "podgate-proxy"
	adminPort     = 4190
	injectedNS    = "e2e-injected"
	roleFromNSAnn = "--allowed-role=" + framework.AllowedRole
)

// The injector Deployment becomes ready from the manifests; the webhook is registered.
func TestInjectorDeployedFromManifests(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	d, err := kube.Client.AppsV1().Deployments(framework.InjectorNamespace).Get(ctx, framework.InjectorDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.ReadyReplicas < 1 || d.Status.ReadyReplicas != *d.Spec.Replicas {
		t.Errorf("injector has %d of %d replicas ready", d.Status.ReadyReplicas, *d.Spec.Replicas)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != framework.InjectorImage {
		t.Errorf("injector image = %s, want the e2e build %s", img, framework.InjectorImage)
	}
	hooks, err := kube.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, cfg := range hooks.Items {
		for _, w := range cfg.Webhooks {
			if w.ClientConfig.Service == nil || w.ClientConfig.Service.Namespace != framework.InjectorNamespace {
				continue
			}
			found = true
			if len(w.ClientConfig.CABundle) == 0 {
				t.Errorf("webhook %s has no caBundle", w.Name)
			}
			if w.FailurePolicy == nil || *w.FailurePolicy != "Fail" {
				t.Errorf("webhook %s failurePolicy = %v, want Fail (an auth proxy must not fail open)", w.Name, w.FailurePolicy)
			}
			if w.SideEffects == nil || *w.SideEffects != "None" {
				t.Errorf("webhook %s sideEffects = %v, want None", w.Name, w.SideEffects)
			}
		}
	}
	if !found {
		t.Fatalf("no MutatingWebhookConfiguration points at a service in %s", framework.InjectorNamespace)
	}
}

// An opted-in Deployment in a labelled, restricted namespace: pods Running and Ready with the
// sidecar as a native sidecar, ports and probes rewritten, the status annotation set.
func TestInjectedDeployment(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	pods := deployInjectedApp(t, injectedNS, "web", 2)
	for _, pod := range pods {
		t.Run(pod.Name, func(t *testing.T) { checkInjectedPod(t, &pod) })
	}

	// The restricted level is really enforced there: a privileged pod is refused, so the injected
	// pods above passed it.
	bad := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "privileged", Namespace: injectedNS},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: framework.EchoImage, ImagePullPolicy: corev1.PullNever,
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
		}}},
	}
	_, err := kube.Client.CoreV1().Pods(injectedNS).Create(ctx, bad, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Errorf("a privileged pod in %s: err = %v, want a PodSecurity violation", injectedNS, err)
	}
}

// deployInjectedApp deploys an opted-in echo app into a fresh injected namespace whose
// annotation (not the pod's) sets the allowed role: the injector must read the namespace through
// the API server, through the kubernetes Service.
func deployInjectedApp(t *testing.T, ns, name string, replicas int32) []corev1.Pod {
	t.Helper()
	ctx := suiteCtx
	kube := suite.Kube
	if err := kube.EnsureNamespace(ctx, ns, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	nsObj, err := kube.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsObj.Annotations = map[string]string{framework.AnnotationRoles: framework.AllowedRole}
	if _, err := kube.Client.CoreV1().Namespaces().Update(ctx, nsObj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kube.EnsureSidecarSecret(ctx, ns); err != nil {
		t.Fatal(err)
	}
	pods, err := kube.Deploy(ctx, framework.EchoApp{
		Namespace: ns, Name: name, Replicas: replicas,
		PodAnnotations: map[string]string{framework.AnnotationInject: "true"},
	}, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

// injectionStatus is the part of podgate.io/status the tests check.
type injectionStatus struct {
	Sidecar   string `json:"sidecar"`
	Native    bool   `json:"native"`
	AdminPort int32  `json:"adminPort"`
	Ports     []struct {
		Container string `json:"container"`
		Name      string `json:"name"`
		AppName   string `json:"appName"`
		AppPort   int32  `json:"appPort"`
		ProxyPort int32  `json:"proxyPort"`
	} `json:"ports"`
	Probes []struct {
		Name   string `json:"name"`
		Kind   string `json:"kind"`
		Target string `json:"target"`
	} `json:"probes"`
}

func checkInjectedPod(t *testing.T, pod *corev1.Pod) {
	if !framework.PodReady(pod) || pod.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s, ready %t: %s", pod.Status.Phase, framework.PodReady(pod), framework.PodStatusSummary(pod))
	}
	// Native sidecar: the first init container, restartPolicy Always, started before the app.
	if len(pod.Spec.InitContainers) == 0 || pod.Spec.InitContainers[0].Name != sidecarName {
		t.Fatalf("init containers %v, want %s first", containerNames(pod.Spec.InitContainers), sidecarName)
	}
	sc := pod.Spec.InitContainers[0]
	if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("sidecar restartPolicy = %v, want Always (native sidecar)", sc.RestartPolicy)
	}
	if sc.Image != framework.SidecarImage {
		t.Errorf("sidecar image = %s, want %s", sc.Image, framework.SidecarImage)
	}
	if !slices.Contains(sc.Args, roleFromNSAnn) {
		t.Errorf("sidecar args %v lack %s, which the namespace's annotation sets", sc.Args, roleFromNSAnn)
	}
	if s := sc.SecurityContext; s == nil || s.RunAsNonRoot == nil || !*s.RunAsNonRoot || s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem {
		t.Errorf("sidecar securityContext %+v, want non-root with a read-only root filesystem", s)
	}
	for _, st := range pod.Status.InitContainerStatuses {
		if st.Name == sidecarName && (st.Started == nil || !*st.Started || !st.Ready) {
			t.Errorf("sidecar status: started %v, ready %t", st.Started, st.Ready)
		}
	}
	// Ports: the sidecar took the name "http" (the Service's targetPort), the app's port was renamed.
	app := pod.Spec.Containers[0]
	proxyPort := framework.PortByName(sc.Ports, "http")
	if proxyPort == 0 {
		t.Errorf("sidecar ports %v lack the name http", sc.Ports)
	}
	if framework.PortByName(app.Ports, "http") != 0 || len(app.Ports) != 1 || app.Ports[0].ContainerPort != framework.EchoPort {
		t.Errorf("app ports %v, want port %d renamed away from http", app.Ports, framework.EchoPort)
	}
	// Probes: rewritten to the sidecar's admin port, which checks the app on localhost.
	for kind, p := range map[string]*corev1.Probe{"readiness": app.ReadinessProbe, "liveness": app.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != adminPort || !strings.HasPrefix(p.HTTPGet.Path, "/probe/") {
			t.Errorf("%s probe %+v, want httpGet /probe/... on the admin port %d", kind, p, adminPort)
		}
	}
	// The status annotation records all of it.
	var st injectionStatus
	if err := json.Unmarshal([]byte(pod.Annotations[framework.AnnotationStatus]), &st); err != nil {
		t.Fatalf("annotation %s = %q: %v", framework.AnnotationStatus, pod.Annotations[framework.AnnotationStatus], err)
	}
	if st.Sidecar != sidecarName || !st.Native || st.AdminPort != adminPort || len(st.Ports) != 1 ||
		st.Ports[0].Name != "http" || st.Ports[0].AppPort != framework.EchoPort || st.Ports[0].ProxyPort != proxyPort ||
		len(st.Probes) != 2 {
		t.Errorf("status annotation %+v does not match the pod", st)
	}
}

func containerNames(cs []corev1.Container) []string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return names
}

// An opted-out or silent pod in a labelled namespace, a silent one in an unlabelled namespace:
// untouched. An opted-in pod in an unlabelled namespace is refused by the ValidatingAdmissionPolicy
// (it would run unprotected), with the label to set in the message.
func TestPodsNotOptedInAreUntouched(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	const plainNS, labelledNS = "e2e-untouched-plain", "e2e-untouched-labelled"
	if err := kube.EnsureNamespace(ctx, plainNS, nil); err != nil {
		t.Fatal(err)
	}
	if err := kube.EnsureNamespace(ctx, labelledNS, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, plainNS); deleteNamespace(kube, labelledNS) })
	app := framework.EchoApp{Namespace: plainNS, Name: "opted-in", Replicas: 1}.Deployment()
	_, err := kube.Client.CoreV1().Pods(plainNS).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "opted-in", Namespace: plainNS,
		Annotations: map[string]string{framework.AnnotationInject: "true"}}, Spec: app.Spec.Template.Spec}, metav1.CreateOptions{})
	if want := "kubectl label namespace " + plainNS + " podgate.io/injection=enabled"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("opted-in pod in an unlabelled namespace: err = %v, want a refusal naming %q", err, want)
	}
	cases := []struct{ name, ns, inject string }{
		{"silent-in-unlabelled-namespace", plainNS, ""},
		{"opted-out", labelledNS, "false"},
		{"no-annotation", labelledNS, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ann := map[string]string{}
			if c.inject != "" {
				ann[framework.AnnotationInject] = c.inject
			}
			d := framework.EchoApp{Namespace: c.ns, Name: c.name, Replicas: 1, PodAnnotations: ann}.Deployment()
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: c.name, Namespace: c.ns, Annotations: ann}, Spec: d.Spec.Template.Spec}
			created, err := kube.Client.CoreV1().Pods(c.ns).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(created.Spec.InitContainers) != 0 || len(created.Spec.Containers) != 1 {
				t.Errorf("pod has init containers %v and containers %v, want only the app",
					containerNames(created.Spec.InitContainers), containerNames(created.Spec.Containers))
			}
			if s, ok := created.Annotations[framework.AnnotationStatus]; ok {
				t.Errorf("pod got %s=%s", framework.AnnotationStatus, s)
			}
			if p := created.Spec.Containers[0].Ports[0]; p.Name != "http" {
				t.Errorf("app port renamed to %q", p.Name)
			}
		})
	}
}
