package framework

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeployInjector deploys the injector from manifests/overlays/e2e and the podgate-cni node agent
// from manifests/cni (Kustomization), as a user would with kubectl apply -k: no certificate
// prepared, the injector issues its own. It waits until the agent has chained the plugin in on
// every node and the API server really sends the injector pods. Applying again restores whatever
// a test removed.
func (s *Stack) DeployInjector(ctx context.Context) error {
	k, err := s.Kustomization()
	if err != nil {
		return err
	}
	if _, err := s.Kube.Run(ctx, "", "apply", "-k", k); err != nil {
		return err
	}
	if err := s.WaitCNIAgentReady(ctx); err != nil {
		return err
	}
	return s.WaitInjector(ctx)
}

// E2EOverlay is manifests/overlays/e2e.
func (s *Stack) E2EOverlay() string { return filepath.Join(s.Root, "manifests", "overlays", "e2e") }

// WaitInjector waits for every injector replica to be ready and the API server to call it.
func (s *Stack) WaitInjector(ctx context.Context) error {
	deployment, err := s.Kube.Client.AppsV1().Deployments(InjectorNamespace).Get(ctx, InjectorDeployment, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if _, err := s.Kube.WaitPodsReady(ctx, InjectorNamespace, InjectorSelector, int(*deployment.Spec.Replicas), 3*time.Minute); err != nil {
		return err
	}
	hooks, err := s.Kube.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, InjectorWebhookConfig, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if len(hooks.Webhooks) == 0 {
		return fmt.Errorf("MutatingWebhookConfiguration %s has no webhooks", InjectorWebhookConfig)
	}
	s.webhookName = hooks.Webhooks[0].Name
	return s.WaitWebhookServing(ctx)
}

// Kustomization is what DeployInjector applies and an uninstall deletes: a kustomization (written
// once per stack, in a directory of its own) of the e2e overlay and the podgate-cni node agent
// (manifests/cni, in kube-system), with the agent running the e2e image and pointed at the
// provider's CNI directories: the one difference between providers the manifests cannot know.
func (s *Stack) Kustomization() (string, error) {
	if s.kustomizeDir != "" {
		return s.kustomizeDir, nil
	}
	bin, conf, pluginLog := s.Provider.CNIDirs()
	dir, err := os.MkdirTemp("", "podgate-e2e-kustomize-")
	if err != nil {
		return "", err
	}
	// kustomize refuses absolute paths
	relOverlay, err := filepath.Rel(dir, s.E2EOverlay())
	if err != nil {
		return "", err
	}
	relCNI, err := filepath.Rel(dir, filepath.Join(s.Root, "manifests", "cni"))
	if err != nil {
		return "", err
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %[1]s
- %[2]s
images:
- name: ghcr.io/podgate/cni
  newName: %[3]s
  newTag: %[4]s
patches:
- target: {kind: DaemonSet, name: %[5]s}
  patch: |-
    - {op: replace, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}
    - {op: replace, path: /spec/template/spec/volumes/0/hostPath/path, value: %[6]s}
    - {op: replace, path: /spec/template/spec/volumes/1/hostPath/path, value: %[7]s}
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: --host-cni-conf-dir=%[7]s}
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: --plugin-log-file=%[8]s}
`, relOverlay, relCNI, "podgate.local/cni", "e2e", CNIAgentDaemonSet, bin, conf, pluginLog)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		return "", err
	}
	s.kustomizeDir = dir
	return dir, nil
}

// WaitCNIAgentReady waits until the podgate-cni agent is ready on every node: the plugin is
// installed and last in the active conflist.
func (s *Stack) WaitCNIAgentReady(ctx context.Context) error {
	return Eventually(ctx, 2*time.Minute, time.Second, "the podgate-cni agent ready on every node", func(ctx context.Context) (bool, string, error) {
		ds, err := s.Kube.Client.AppsV1().DaemonSets(CNIAgentNamespace).Get(ctx, CNIAgentDaemonSet, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		st := ds.Status
		if st.DesiredNumberScheduled == 0 || st.NumberReady != st.DesiredNumberScheduled || st.ObservedGeneration < ds.Generation {
			return false, fmt.Sprintf("%d of %d ready", st.NumberReady, st.DesiredNumberScheduled), nil
		}
		return true, "", nil
	})
}

// Demo brings the stack up with the injector and the demo app, and leaves it running.
func (s *Stack) Demo(ctx context.Context) error {
	if err := s.Up(ctx); err != nil {
		return err
	}
	if err := s.Phases.Run("deploy injector", func() error { return s.DeployInjector(ctx) }); err != nil {
		return err
	}
	return s.Phases.Run("deploy demo app", func() error {
		_, err := s.Kube.DeployDemo(ctx)
		return err
	})
}

// DemoInstructions tells a person what to open, as whom, and how to stop it all.
func (s *Stack) DemoInstructions() string {
	return fmt.Sprintf(`
podgate demo is running.

  Open      %[1]s/   (a browser on this machine; you are sent to Keycloak to log in)
  Log in as %[2]s / %[3]s   (realm role %[4]s: sees the page)
        or  %[5]s / %[6]s       (no role: logs in, then gets 403)
  API       TOKEN=$(curl -s %[7]s/protocol/openid-connect/token -d grant_type=password \
                -d client_id=%[8]s -d client_secret=%[9]s -d username=%[2]s -d password=%[3]s \
                | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
            curl -H "Authorization: Bearer $TOKEN" %[1]s/api   (401 without a token)
  Keycloak  %[10]s/admin/   (admin / admin)
  Cluster   export KUBECONFIG=%[11]s
            kubectl -n %[12]s get pods   (the sidecar runs as the native sidecar podgate-proxy)

  Stop it   make demo-down
`, DemoURL, AllowedUser, AllowedPass, AllowedRole, DeniedUser, DeniedPass, s.Keycloak.Issuer(),
		ClientID, ClientSecret, s.Keycloak.URL, s.Provider.Kubeconfig(), DemoNamespace)
}

// The injector as manifests/base deploys it.
const (
	InjectorNamespace  = "podgate-system"
	InjectorDeployment = "podgate-injector"
	InjectorService    = "podgate-injector"
	InjectorSelector   = "app.kubernetes.io/name=podgate-injector"
	InjectorImage      = "podgate.local/injector:e2e"
	// InjectorWebhookConfig is the MutatingWebhookConfiguration's name.
	InjectorWebhookConfig = "podgate-injector"
	// InjectorConfigMap holds the injector's configuration (config.yaml).
	InjectorConfigMap = "podgate-injector-config"
	// InjectorCertSecret holds the self-managed CA and serving certificate.
	InjectorCertSecret = "podgate-injector-cert"
	// InjectorLease elects the replica that renews the certificates.
	InjectorLease = "podgate-injector-certificates"
	// OptedInPolicy is the ValidatingAdmissionPolicy (and its binding) refusing uninjected pods.
	OptedInPolicy = "podgate-opted-in-pods-are-injected"
	// CNIAgentDaemonSet is the podgate-cni node agent (manifests/cni), in CNIAgentNamespace.
	CNIAgentDaemonSet = "podgate-cni"
	CNIAgentNamespace = "kube-system"
)

// WaitWebhookServing waits until the API server really runs pods through the injector: a
// server-side dry-run of an opted-in pod in an enabled namespace comes back with the sidecar.
// Ready endpoints alone are not enough: kube-proxy and the API server's webhook client catch up
// a moment later.
func (s *Stack) WaitWebhookServing(ctx context.Context) error {
	const ns = "podgate-e2e-probe"
	if err := s.Kube.EnsureNamespace(ctx, ns, InjectedNamespaceLabels()); err != nil {
		return err
	}
	if err := s.Kube.EnsureSidecarSecret(ctx, ns); err != nil {
		return err
	}
	d := EchoApp{Namespace: ns, Name: "probe", Replicas: 1}.Deployment()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns, Annotations: map[string]string{AnnotationInject: "true"}},
		Spec:       d.Spec.Template.Spec,
	}
	return Eventually(ctx, 2*time.Minute, time.Second, "the API server calling the injector", func(ctx context.Context) (bool, string, error) {
		got, err := s.Kube.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err.Error(), nil
		}
		if got.Annotations[AnnotationStatus] == "" {
			return false, "dry-run pod came back without " + AnnotationStatus, nil
		}
		return true, "", nil
	})
}

// InjectorLatency reads each injector replica's own histogram of the time it took to handle a
// review (podgate_injector_admission_duration_seconds: namespace lookup, Inject, patch), by pod
// name, from its metrics port through the API server's pod proxy. Beside the API server's
// WebhookLatency it splits an admission's time between the injector and the call around it.
// (controller-runtime's controller_runtime_webhook_latency_seconds is a native histogram: in the
// text format it has no bucket but +Inf.)
func (s *Stack) InjectorLatency(ctx context.Context) (map[string]Histogram, error) {
	pods, err := s.Kube.Client.CoreV1().Pods(InjectorNamespace).List(ctx, metav1.ListOptions{LabelSelector: InjectorSelector})
	if err != nil {
		return nil, err
	}
	out := map[string]Histogram{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		var port int32
		for _, c := range p.Spec.Containers {
			if port = PortByName(c.Ports, "metrics"); port != 0 {
				break
			}
		}
		if port == 0 {
			return nil, fmt.Errorf("injector %s declares no port named metrics", p.Name)
		}
		raw, err := s.Kube.PodGet(ctx, InjectorNamespace, p.Name, strconv.Itoa(int(port)), "/metrics")
		if err != nil {
			return nil, fmt.Errorf("injector %s metrics: %w", p.Name, err)
		}
		h, err := ParseHistogram(raw, "podgate_injector_admission_duration_seconds", nil)
		if err != nil {
			return nil, fmt.Errorf("injector %s: %w", p.Name, err)
		}
		out[p.Name] = h
	}
	return out, nil
}

// PortByName is the number of the port named name among ports, 0 if there is none.
func PortByName(ports []corev1.ContainerPort, name string) int32 {
	for _, p := range ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// WebhookLatency reads the API server's histogram of the injector webhook's admission latency.
func (s *Stack) WebhookLatency(ctx context.Context) (Histogram, error) {
	raw, err := s.Kube.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return Histogram{}, fmt.Errorf("API server metrics: %w", err)
	}
	return ParseHistogram(string(raw), "apiserver_admission_webhook_admission_duration_seconds",
		map[string]string{"type": "admit", "operation": "CREATE", "name": s.webhookName})
}
