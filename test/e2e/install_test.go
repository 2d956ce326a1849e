//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/podgate/podgate/internal/devcerts"
	"github.com/podgate/podgate/test/e2e/framework"
)

// The install tests run first (file order) and leave the injector as DeployInjector left it:
// installed from manifests/overlays/e2e, self-managed certificates living four minutes.

// servedLeaf is the serving certificate in the injector's Secret.
func servedLeaf(ctx context.Context, t *testing.T) *x509.Certificate {
	t.Helper()
	s, err := suite.Kube.Client.CoreV1().Secrets(framework.InjectorNamespace).Get(ctx, framework.InjectorCertSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(s.Data[corev1.TLSCertKey])
	if block == nil {
		t.Fatalf("Secret %s holds no certificate", framework.InjectorCertSecret)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// replicaLeaves handshakes with every injector pod directly (pod IP, webhook port), verifying
// against the webhook's caBundle as the API server does, and returns each one's certificate.
func replicaLeaves(ctx context.Context) (map[string]*x509.Certificate, error) {
	kube := suite.Kube
	wh, err := kube.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, framework.InjectorWebhookConfig, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(wh.Webhooks[0].ClientConfig.CABundle) {
		return nil, errors.New("caBundle holds no certificate")
	}
	pods, err := kube.Client.CoreV1().Pods(framework.InjectorNamespace).List(ctx, metav1.ListOptions{LabelSelector: framework.InjectorSelector})
	if err != nil {
		return nil, err
	}
	out := map[string]*x509.Certificate{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || !framework.PodReady(&p) {
			continue
		}
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 3 * time.Second}, Config: &tls.Config{RootCAs: pool,
			ServerName: framework.InjectorService + "." + framework.InjectorNamespace + ".svc"}}
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(p.Status.PodIP, "9443"))
		if err != nil {
			return nil, fmt.Errorf("replica %s: %w", p.Name, err)
		}
		out[p.Name] = c.(*tls.Conn).ConnectionState().PeerCertificates[0]
		c.Close()
	}
	return out, nil
}

// TestCertificateRotation: the injector installed with no certificate prepared issues its own,
// renews it (lifetime four minutes in the e2e overlay, renewed with half left) while pods are
// created without a pause, none refused, and both replicas serve the new certificate without a
// restart. One replica holds the Lease that makes it the only writer.
func TestCertificateRotation(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	const ns = "e2e-rotation"
	if err := kube.EnsureNamespace(ctx, ns, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	if err := kube.EnsureSidecarSecret(ctx, ns); err != nil {
		t.Fatal(err)
	}

	first := servedLeaf(ctx, t)
	if left := time.Until(first.NotAfter); left > 5*time.Minute {
		t.Fatalf("serving certificate has %s left: the e2e overlay's --cert-lifetime=4m is not in effect", left.Round(time.Second))
	}
	pods, err := kube.Client.CoreV1().Pods(framework.InjectorNamespace).List(ctx, metav1.ListOptions{LabelSelector: framework.InjectorSelector})
	if err != nil {
		t.Fatal(err)
	}
	restarts := map[string]int32{}
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			restarts[p.Name] += cs.RestartCount
		}
	}
	lease, err := kube.Client.CoordinationV1().Leases(framework.InjectorNamespace).Get(ctx, framework.InjectorLease, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("no leader Lease: %v", err)
	}
	holder := ptr.Deref(lease.Spec.HolderIdentity, "")
	if _, ok := restarts[strings.SplitN(holder, "_", 2)[0]]; !ok {
		t.Errorf("Lease holder %q is not an injector pod (%v)", holder, restarts)
	}

	// Pods created one after another across the renewal: every admission must succeed and inject.
	load := admitContinuously(ctx, ns, "rot")
	defer load.stop()

	var renewed *x509.Certificate
	err = framework.Eventually(ctx, 4*time.Minute, 2*time.Second, "the leader renewing the serving certificate", func(ctx context.Context) (bool, string, error) {
		renewed = servedLeaf(ctx, t)
		if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 && renewed.NotAfter.Equal(first.NotAfter) {
			return false, "still " + first.SerialNumber.String(), nil
		}
		return true, "", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	renewedAt := time.Now()
	err = framework.Eventually(ctx, time.Minute, 500*time.Millisecond, "every replica serving the renewed certificate", func(ctx context.Context) (bool, string, error) {
		leaves, err := replicaLeaves(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		if len(leaves) < 2 {
			return false, fmt.Sprintf("%d ready replicas", len(leaves)), nil
		}
		for name, leaf := range leaves {
			if !leaf.Equal(renewed) {
				return false, name + " serves " + leaf.NotAfter.Format(time.TimeOnly), nil
			}
		}
		return true, "", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	caught := time.Since(renewedAt)
	// Keep creating a little longer: admissions right after the switch count too.
	time.Sleep(10 * time.Second)
	created, failed := load.check(t, "the renewal")
	note("certificate rotation: renewed %s before expiry (lifetime %s), both replicas serving it %s after the Secret changed; %d pods admitted across it, %d failed",
		time.Until(first.NotAfter).Round(time.Second), renewed.NotAfter.Sub(renewedAt).Round(time.Second), caught.Round(100*time.Millisecond), created, failed)

	pods, err = kube.Client.CoreV1().Pods(framework.InjectorNamespace).List(ctx, metav1.ListOptions{LabelSelector: framework.InjectorSelector})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		var n int32
		for _, cs := range p.Status.ContainerStatuses {
			n += cs.RestartCount
		}
		if was, ok := restarts[p.Name]; !ok || n != was {
			t.Errorf("injector pod %s restarted or was replaced during the renewal (restarts %d, before %d, known %v)", p.Name, n, was, ok)
		}
	}
}

// admission creates opted-in pods in ns one after another (and deletes each at once) until stopped,
// counting those admitted and injected and recording every failure.
type admission struct {
	created, failed atomic.Int64
	failures        sync.Map
	stopOnce        sync.Once
	quit, done      chan struct{}
}

func admitContinuously(ctx context.Context, ns, prefix string) *admission {
	a := &admission{quit: make(chan struct{}), done: make(chan struct{})}
	kube := suite.Kube
	go func() {
		defer close(a.done)
		app := framework.EchoApp{Namespace: ns, Name: prefix, Replicas: 1}.Deployment()
		for i := 0; ; i++ {
			select {
			case <-a.quit:
				return
			default:
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Namespace: ns,
				Annotations: map[string]string{framework.AnnotationInject: "true"}}, Spec: app.Spec.Template.Spec}
			got, err := kube.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			switch {
			case err != nil:
				a.failed.Add(1)
				a.failures.Store(pod.Name, err.Error())
			case got.Annotations[framework.AnnotationStatus] == "":
				a.failed.Add(1)
				a.failures.Store(pod.Name, "not injected")
			default:
				a.created.Add(1)
				_ = kube.Client.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	return a
}

func (a *admission) stop() {
	a.stopOnce.Do(func() { close(a.quit) })
	<-a.done
}

// check stops the load and fails t on any failed admission or too few pods across what.
func (a *admission) check(t *testing.T, what string) (created, failed int64) {
	t.Helper()
	a.stop()
	a.failures.Range(func(k, v any) bool { t.Errorf("pod %s: %s", k, v); return true })
	if a.created.Load() < 20 {
		t.Errorf("only %d pods created across %s", a.created.Load(), what)
	}
	return a.created.Load(), a.failed.Load()
}

// injectorCheck runs `injector check` (the binary in the e2e image) against the cluster.
func injectorCheck(ctx context.Context, t *testing.T) (string, error) {
	t.Helper()
	bin := filepath.Join(framework.CacheDir(), "images", "bin", "injector")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("injector binary: %v", err)
	}
	out, err := exec.CommandContext(ctx, bin, "check", "--kubeconfig", suite.Kube.Kubeconfig).CombinedOutput()
	t.Logf("injector check:\n%s", out)
	return string(out), err
}

func expectCheckFails(ctx context.Context, t *testing.T, wantLine string) {
	t.Helper()
	out, err := injectorCheck(ctx, t)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Errorf("injector check exited %v, want non-zero", err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "FAIL") && strings.Contains(line, wantLine) {
			return
		}
	}
	t.Errorf("no FAIL line with %q", wantLine)
}

func expectCheckClean(ctx context.Context, t *testing.T) {
	t.Helper()
	out, err := injectorCheck(ctx, t)
	if err != nil || strings.Contains(out, "FAIL") {
		t.Fatalf("injector check on a good install: %v", err)
	}
}

// expectCheckCleanIn runs injector check after an upgrade and fails t on every FAIL line but the
// stale sidecars of pods outside ns, which earlier tests injected before the upgrade (rightly
// reported); it returns how many of those there were.
func expectCheckCleanIn(ctx context.Context, t *testing.T, ns string) (others int) {
	t.Helper()
	out, _ := injectorCheck(ctx, t)
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "FAIL") {
			continue
		}
		if f := strings.Fields(line); len(f) > 3 && f[1] == "pods" && !strings.HasPrefix(f[2], ns+"/") && strings.Contains(line, "runs a stale sidecar") {
			others++
			continue
		}
		t.Errorf("injector check: %s", line)
	}
	return others
}

// TestInjectorCheck: clean on the good install; each planted fault gets its FAIL line and a
// non-zero exit; the install is whole again afterwards.
func TestInjectorCheck(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	const ns = "e2e-check"
	if err := kube.EnsureNamespace(ctx, ns, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	if err := kube.EnsureSidecarSecret(ctx, ns); err != nil {
		t.Fatal(err)
	}
	expectCheckClean(ctx, t)

	t.Run("stale injected pod", func(t *testing.T) {
		// What the injector makes of an opted-in pod, with the sidecar of an older release.
		app := framework.EchoApp{Namespace: ns, Name: "stale", Replicas: 1}.Deployment()
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stale", Namespace: ns,
			Annotations: map[string]string{framework.AnnotationInject: "true"}}, Spec: app.Spec.Template.Spec}
		injected, err := kube.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		injected.ResourceVersion, injected.UID, injected.ManagedFields = "", "", nil
		found := false
		for i := range injected.Spec.InitContainers {
			if injected.Spec.InitContainers[i].Name == "podgate-proxy" {
				injected.Spec.InitContainers[i].Image = "podgate.local/sidecar:previous"
				found = true
			}
		}
		if !found {
			t.Fatal("dry-run pod has no podgate-proxy init container")
		}
		if _, err := kube.Client.CoreV1().Pods(ns).Create(ctx, injected, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = kube.Client.CoreV1().Pods(ns).Delete(context.WithoutCancel(ctx), "stale", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
		}()
		expectCheckFails(ctx, t, ns+"/stale runs a stale sidecar (image podgate.local/sidecar:previous, now podgate.local/sidecar:e2e)")
	})

	t.Run("configuration changed, injector not restarted", func(t *testing.T) {
		// The injector reads its configuration at start: an edited ConfigMap is not what it injects.
		cms := kube.Client.CoreV1().ConfigMaps(framework.InjectorNamespace)
		cm, err := cms.Get(ctx, framework.InjectorConfigMap, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		orig := cm.Data["config.yaml"]
		cm.Data["config.yaml"] = orig + "logLevel: debug\n"
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			ctx := context.WithoutCancel(ctx)
			cm, err := cms.Get(ctx, framework.InjectorConfigMap, metav1.GetOptions{})
			if err == nil {
				cm.Data["config.yaml"] = orig
				_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
			}
			if err != nil {
				t.Errorf("restoring %s: %v", framework.InjectorConfigMap, err)
			}
		}()
		expectCheckFails(ctx, t, "comes back injected with a configuration other than ConfigMap "+framework.InjectorNamespace+"/"+framework.InjectorConfigMap+
			" (sidecar arguments differ): restart the injector")
	})

	t.Run("node without the capture agent", func(t *testing.T) {
		// manifests/cni installs the agent in kube-system (its hostPath volumes need a privileged namespace).
		const agentNS = "kube-system"
		daemonsets := kube.Client.AppsV1().DaemonSets(agentNS)
		// The capture agent may be installed; if not, a stand-in DaemonSet under its name shows the
		// check's view of the nodes. Either way, a nodeSelector no node has keeps it off every node.
		const name = "podgate-cni"
		restore := func() {}
		ds, err := daemonsets.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			old := ds.Spec.Template.Spec.NodeSelector
			ds.Spec.Template.Spec.NodeSelector = map[string]string{"podgate.io/e2e-no-such-node": "true"}
			if _, err := daemonsets.Update(ctx, ds, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			restore = func() {
				cur, err := daemonsets.Get(context.WithoutCancel(ctx), name, metav1.GetOptions{})
				if err == nil {
					cur.Spec.Template.Spec.NodeSelector = old
					_, err = daemonsets.Update(context.WithoutCancel(ctx), cur, metav1.UpdateOptions{})
				}
				if err == nil {
					// Back on the node before the next injected pod: one whose sandbox comes up
					// without the plugin is never captured, so it never starts its app.
					err = suite.WaitCNIAgentReady(context.WithoutCancel(ctx))
				}
				if err != nil {
					t.Errorf("restoring %s: %v", name, err)
				}
			}
		} else {
			labels := map[string]string{"app.kubernetes.io/name": name}
			ds = &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: agentNS},
				Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
						NodeSelector: map[string]string{"podgate.io/e2e-no-such-node": "true"},
						Containers:   []corev1.Container{{Name: "agent", Image: framework.EchoImage, ImagePullPolicy: corev1.PullNever}}}}}}
			if _, err := daemonsets.Create(ctx, ds, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			restore = func() { _ = daemonsets.Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{}) }
		}
		defer restore()
		nodes, err := kube.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) == 0 {
			t.Fatalf("nodes: %v", err)
		}
		// Wait until the agent pods are gone from the node (an installed agent was running there).
		err = framework.Eventually(ctx, time.Minute, time.Second, "agent pods leaving the node", func(ctx context.Context) (bool, string, error) {
			pods, err := kube.Client.CoreV1().Pods(agentNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + name})
			if err != nil {
				return false, err.Error(), nil
			}
			return len(pods.Items) == 0, fmt.Sprintf("%d agent pods", len(pods.Items)), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		expectCheckFails(ctx, t, "node "+nodes.Items[0].Name+" has no ready "+name+" agent")
	})

	t.Run("caBundle wrong", func(t *testing.T) {
		// The rotator puts the CA back within a watch event; with the injector stopped the fault
		// stays for the check to see, and its return shows the webhook configuration healed.
		replicas := scaleInjector(t, 0)
		other, err := otherCA(t)
		if err != nil {
			t.Fatal(err)
		}
		hooks := kube.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
		patch := fmt.Sprintf(`[{"op":"replace","path":"/webhooks/0/clientConfig/caBundle","value":%q}]`, other)
		if _, err := hooks.Patch(ctx, framework.InjectorWebhookConfig, types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		expectCheckFails(ctx, t, "caBundle of pods.injector.podgate.io does not verify the serving certificate")
		scaleInjector(t, replicas) // waits until the API server calls the injector again, i.e. the caBundle is right
	})

	t.Run("webhook deleted", func(t *testing.T) {
		hooks := kube.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
		if err := hooks.Delete(ctx, framework.InjectorWebhookConfig, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		expectCheckFails(ctx, t, "MutatingWebhookConfiguration podgate-injector not found")
		// Re-applying the manifests restores it; the rotator writes its caBundle.
		if err := suite.DeployInjector(ctx); err != nil {
			t.Fatal(err)
		}
	})

	expectCheckClean(ctx, t)
}

// otherCA is a CA that did not sign the serving certificate, base64 as caBundle takes it.
func otherCA(t *testing.T) (string, error) {
	dir := t.TempDir()
	if _, err := devcerts.Ensure(devcerts.Options{Dir: dir, Service: framework.InjectorService, Namespace: framework.InjectorNamespace, Validity: time.Hour}); err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, devcerts.CAFile))
	return base64.StdEncoding.EncodeToString(b), err
}

// uninstalled checks that nothing of podgate is left: no object labelled part-of podgate (every
// object of the manifests and the chart is), none named podgate-injector*, not the namespace, the
// webhook configuration, the policy or the Lease. The capture node agent (manifests/cni, objects
// named podgate-cni) is installed and removed on its own, and the suite keeps it: the injected apps
// of the chart phase are captured by it (TestCaptureFailsClosedWithoutAgent removes it and checks
// the plugin leaves the conflist).
func uninstalled(ctx context.Context, t *testing.T) {
	t.Helper()
	kube := suite.Kube
	err := framework.Eventually(ctx, 3*time.Minute, 2*time.Second, "podgate gone", func(ctx context.Context) (bool, string, error) {
		out, err := kube.Run(ctx, "", "get", "all,cm,secret,sa,role,rolebinding,clusterrole,clusterrolebinding,mutatingwebhookconfiguration,"+
			"validatingadmissionpolicy,validatingadmissionpolicybinding,lease,namespace", "-A", "-o", "custom-columns=KIND:.kind,NS:.metadata.namespace,NAME:.metadata.name,PARTOF:.metadata.labels.app\\.kubernetes\\.io/part-of", "--no-headers")
		if err != nil {
			return false, err.Error(), nil
		}
		var left []string
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			if strings.HasPrefix(f[2], framework.CNIAgentDaemonSet) { // its DaemonSet, pods, account and RBAC
				continue
			}
			if f[3] == "podgate" || f[1] == framework.InjectorNamespace || strings.HasPrefix(f[2], "podgate-injector") ||
				f[2] == framework.OptedInPolicy || (f[0] == "Namespace" && f[2] == framework.InjectorNamespace) {
				left = append(left, strings.Join(f[:3], " "))
			}
		}
		return len(left) == 0, strings.Join(left, ", "), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// podsCreateIn creates a plain pod in ns (a namespace labelled for injection) and waits for it to
// run: after an uninstall nothing may stand in the way of pod creation.
func podsCreateIn(ctx context.Context, t *testing.T, ns, name string) {
	t.Helper()
	kube := suite.Kube
	app := framework.EchoApp{Namespace: ns, Name: name, Replicas: 1}.Deployment()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}}, Spec: app.Spec.Template.Spec}
	if _, err := kube.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("pod creation in formerly enabled %s: %v", ns, err)
	}
	if _, err := kube.WaitPodsReady(ctx, ns, "app="+name, 1, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// webhookCABundle is the caBundle the API server trusts the injector with.
func webhookCABundle(ctx context.Context, t *testing.T) []byte {
	t.Helper()
	wh, err := suite.Kube.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, framework.InjectorWebhookConfig, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return wh.Webhooks[0].ClientConfig.CABundle
}

// injectorPods names the injector's pods.
func injectorPods(ctx context.Context, t *testing.T) map[string]bool {
	t.Helper()
	pods, err := suite.Kube.Client.CoreV1().Pods(framework.InjectorNamespace).List(ctx, metav1.ListOptions{LabelSelector: framework.InjectorSelector})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			names[p.Name] = true
		}
	}
	return names
}

// withSidecarConfig writes a values file whose injector.config is that of the values file plus
// line: the same installation injecting another sidecar.
func withSidecarConfig(t *testing.T, values, line string) string {
	t.Helper()
	b, err := os.ReadFile(values)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Injector struct {
			Config string `json:"config"`
		} `json:"injector"`
	}
	if err := yaml.Unmarshal(b, &v); err != nil || v.Injector.Config == "" {
		t.Fatalf("%s: no injector.config (%v)", values, err)
	}
	out, err := yaml.Marshal(map[string]any{"injector": map[string]any{"config": v.Injector.Config + line + "\n"}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "upgrade-values.yaml")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// helmBin is the helm run.sh built (make helm) and names in PODGATE_HELM.
func helmBin(t *testing.T) string {
	h := os.Getenv("PODGATE_HELM")
	if h == "" {
		t.Fatal("PODGATE_HELM is not set (test/e2e/run.sh builds helm and sets it)")
	}
	return h
}

func helm(ctx context.Context, t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, helmBin(t), append(args, "--kubeconfig", suite.Kube.Kubeconfig)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("helm %s:\n%s", args[0], out)
}

// TestUninstallAndChartInstall: the documented uninstall (webhook configuration first) leaves
// nothing of podgate and pods are created again in a formerly enabled namespace; the chart then
// installs the same injector (certificates self-managed, nothing prepared), `injector check` is
// clean, `helm uninstall` leaves nothing either; the kustomize install is restored for the rest.
func TestUninstallAndChartInstall(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	const ns = "e2e-uninstall"
	if err := kube.EnsureNamespace(ctx, ns, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	if err := kube.EnsureSidecarSecret(ctx, ns); err != nil {
		t.Fatal(err)
	}
	// Whatever happens below, the suite goes on with the kustomize install.
	t.Cleanup(func() {
		ctx := context.WithoutCancel(suiteCtx)
		if _, err := kube.Client.AppsV1().Deployments(framework.InjectorNamespace).Get(ctx, framework.InjectorDeployment, metav1.GetOptions{}); err == nil {
			if err := suite.WaitInjector(ctx); err == nil {
				return
			}
		}
		_ = exec.CommandContext(ctx, helmBin(t), "uninstall", "podgate", "-n", framework.InjectorNamespace, "--wait", "--kubeconfig", kube.Kubeconfig).Run()
		if err := suite.DeployInjector(ctx); err != nil {
			t.Errorf("reinstalling the injector for the rest of the suite: %v", err)
		}
	})

	// kustomize, as docs/install.md says.
	start := time.Now()
	for _, args := range [][]string{
		{"delete", "mutatingwebhookconfiguration", framework.InjectorWebhookConfig},
		{"delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", framework.OptedInPolicy},
		{"delete", "-k", suite.E2EOverlay(), "--ignore-not-found"},
	} {
		if _, err := kube.Run(ctx, "", args...); err != nil {
			t.Fatal(err)
		}
	}
	uninstalled(ctx, t)
	kustomizeGone := time.Since(start)
	podsCreateIn(ctx, t, ns, "after-kustomize")

	// The chart, with the values that match the e2e overlay (manifests/chart_test.go).
	values := filepath.Join(suite.Root, "test", "e2e", "testdata", "chart-values.yaml")
	start = time.Now()
	chart := filepath.Join(suite.Root, "charts", "podgate")
	helm(ctx, t, "install", "podgate", chart, "--namespace", framework.InjectorNamespace,
		"--create-namespace", "--values", values, "--wait", "--timeout", "3m")
	if _, err := kube.Run(ctx, "", "label", "namespace", framework.InjectorNamespace, framework.LabelPSAEnforce+"="+framework.PSARestricted); err != nil {
		t.Fatal(err)
	}
	if err := suite.WaitInjector(ctx); err != nil {
		t.Fatal(err)
	}
	chartServing := time.Since(start)
	expectCheckClean(ctx, t)
	// The policy came with the chart: an opted-in pod in an unlabelled namespace is refused.
	const plainNS = "e2e-uninstall-plain"
	if err := kube.EnsureNamespace(ctx, plainNS, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, plainNS) })
	app := framework.EchoApp{Namespace: plainNS, Name: "opted", Replicas: 1}.Deployment()
	_, err := kube.Client.CoreV1().Pods(plainNS).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "opted", Namespace: plainNS,
		Annotations: map[string]string{framework.AnnotationInject: "true"}}, Spec: app.Spec.Template.Spec}, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "kubectl label namespace "+plainNS+" podgate.io/injection=enabled") {
		t.Errorf("opted-in pod in an unlabelled namespace under the chart's policy: %v", err)
	}

	// Upgrade, as docs/install.md says: an injected app runs; helm upgrade with another sidecar
	// configuration rolls the injector (its pod template carries the configuration's checksum)
	// while pods are admitted without a pause, keeps the CA, and injector check then names the
	// app's pod as stale until it is restarted.
	if _, err := kube.Deploy(ctx, framework.EchoApp{Namespace: ns, Name: "web", Replicas: 1,
		PodAnnotations: map[string]string{framework.AnnotationInject: "true"}}, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	caBefore := webhookCABundle(ctx, t)
	injectorsBefore := injectorPods(ctx, t)
	load := admitContinuously(ctx, ns, "upg")
	defer load.stop()
	start = time.Now()
	helm(ctx, t, "upgrade", "podgate", chart, "--namespace", framework.InjectorNamespace, "--values", values,
		"--values", withSidecarConfig(t, values, "logLevel: debug"), "--wait", "--timeout", "3m")
	if err := suite.WaitInjector(ctx); err != nil {
		t.Fatal(err)
	}
	rolled := time.Since(start)
	time.Sleep(5 * time.Second) // admissions right after the rollout count too
	created, failed := load.check(t, "the upgrade")
	for name := range injectorPods(ctx, t) {
		if injectorsBefore[name] {
			t.Errorf("injector pod %s outlived the upgrade: the configuration change did not roll the injector", name)
		}
	}
	if !bytes.Equal(caBefore, webhookCABundle(ctx, t)) {
		t.Error("the upgrade replaced the caBundle")
	}
	expectCheckFails(ctx, t, "runs a stale sidecar (arguments differ from what the injector injects now): restart it (kubectl -n "+ns+" rollout restart deployment/web)")
	for _, args := range [][]string{{"-n", ns, "rollout", "restart", "deployment/web"}, {"-n", ns, "rollout", "status", "deployment/web", "--timeout=3m"}} {
		if _, err := kube.Run(ctx, "", args...); err != nil {
			t.Fatal(err)
		}
	}
	others := expectCheckCleanIn(ctx, t, ns)
	note("upgrade: helm upgrade with another sidecar configuration rolled the injector (%d replicas replaced) in %s; %d pods admitted across it, %d failed; caBundle kept; the app's pod stale until restarted (and %d pods of earlier tests)",
		len(injectorsBefore), rolled.Round(100*time.Millisecond), created, failed, others)

	start = time.Now()
	helm(ctx, t, "uninstall", "podgate", "--namespace", framework.InjectorNamespace, "--wait")
	if _, err := kube.Run(ctx, "", "delete", "namespace", framework.InjectorNamespace, "--ignore-not-found"); err != nil {
		t.Fatal(err)
	}
	uninstalled(ctx, t)
	helmGone := time.Since(start)
	podsCreateIn(ctx, t, ns, "after-helm")
	note("uninstall: kustomize %s and helm uninstall %s until nothing of podgate was left, pods created in the formerly enabled namespace after each; helm install to the API server calling the injector %s",
		kustomizeGone.Round(100*time.Millisecond), helmGone.Round(100*time.Millisecond), chartServing.Round(100*time.Millisecond))

	// The injected app keeps working without podgate installed: its sidecar still refuses a request
	// without credentials and passes one with a Keycloak token.
	webPods, err := kube.WaitPodsReady(ctx, ns, "app=web", 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	sidecar := webPods[0].Spec.InitContainers[0]
	if sidecar.Name != "podgate-proxy" {
		t.Fatalf("web pod's first init container is %s, not the sidecar", sidecar.Name)
	}
	url := fmt.Sprintf("http://%s/api", net.JoinHostPort(webPods[0].Status.PodIP, fmt.Sprint(framework.PortByName(sidecar.Ports, "http"))))
	tok, err := suite.Keycloak.PasswordToken(ctx, framework.ClientID, framework.ClientSecret, framework.AllowedUser, framework.AllowedPass)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		headers map[string]string
		want    int
	}{{map[string]string{"Accept": "application/json"}, http.StatusUnauthorized}, {map[string]string{"Authorization": "Bearer " + tok.AccessToken}, http.StatusOK}} {
		status, body, err := get(ctx, noRedirects, url, c.headers)
		if err != nil || status != c.want {
			t.Errorf("injected app after the uninstall, GET %s (%d headers): HTTP %d %.200s (%v), want %d", url, len(c.headers), status, body, err, c.want)
		}
	}

	if err := suite.DeployInjector(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDeniedPodEventOnDeployment: a Deployment whose pods the injector denies gets a Warning
// PodgateDenied Event naming the problem, where `kubectl describe deployment` shows it.
func TestDeniedPodEventOnDeployment(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	const ns = "e2e-events"
	if err := kube.EnsureNamespace(ctx, ns, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	d := framework.EchoApp{Namespace: ns, Name: "misconfigured", Replicas: 1,
		PodAnnotations: map[string]string{framework.AnnotationInject: "true", "podgate.io/cookie-secure": "maybe"}}.Deployment()
	if _, err := kube.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := framework.Eventually(ctx, time.Minute, time.Second, "a PodgateDenied Event on the Deployment", func(ctx context.Context) (bool, string, error) {
		events, err := kube.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=PodgateDenied,involvedObject.kind=Deployment,involvedObject.name=misconfigured"})
		if err != nil {
			return false, err.Error(), nil
		}
		for _, e := range events.Items {
			if e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, `annotation "podgate.io/cookie-secure": value "maybe"`) {
				return true, "", nil
			}
			return false, "event message: " + e.Message, nil
		}
		return false, "no event", nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
