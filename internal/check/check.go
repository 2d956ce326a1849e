// Package check inspects a running podgate installation through the API server, the way an
// operator would by hand, and reports one finding per line (`injector check`): the webhook and its
// caBundle against the serving certificate, a server-side dry-run through the injector, the
// enabled namespaces, stale and unprotected pods, and the capture node agent on every node.
package check

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/podgate/podgate/internal/capture"
	"github.com/podgate/podgate/internal/inject"
)

// Status of a finding.
type Status int

const (
	OK Status = iota
	Warn
	Fail
)

func (s Status) String() string { return [...]string{"ok  ", "warn", "FAIL"}[s] }

// Finding is one line of the report.
type Finding struct {
	Status Status
	// Area groups findings: webhook, certificate, injector, dry-run, namespaces, pods, capture.
	Area string
	Msg  string
}

func (f Finding) String() string { return fmt.Sprintf("%s %-12s %s", f.Status, f.Area, f.Msg) }

// ErrProblems is returned when at least one finding failed.
var ErrProblems = errors.New("podgate check found problems")

// Options names what manifests/base installs.
type Options struct {
	Namespace     string
	WebhookConfig string
	Service       string
	Deployment    string
	ConfigMap     string
	// CertSecrets are tried in order for the serving certificate: self-managed, then files.
	CertSecrets []string
	// CaptureNamespace and CaptureDaemonSet name the capture node agent (manifests/cni).
	CaptureNamespace string
	CaptureDaemonSet string
	Now              func() time.Time
}

// DefaultOptions are the names of manifests/base and the chart.
func DefaultOptions() Options {
	return Options{Namespace: "podgate-system", WebhookConfig: "podgate-injector", Service: "podgate-injector",
		Deployment: "podgate-injector", ConfigMap: "podgate-injector-config",
		CertSecrets: []string{"podgate-injector-cert", "podgate-injector-tls"}, CaptureNamespace: "kube-system", CaptureDaemonSet: "podgate-cni", Now: time.Now}
}

// Checker runs the checks against one cluster.
type Checker struct {
	Kube kubernetes.Interface
	Opts Options

	findings []Finding
}

func (c *Checker) add(s Status, area, format string, a ...any) {
	c.findings = append(c.findings, Finding{Status: s, Area: area, Msg: fmt.Sprintf(format, a...)})
}

// Run runs every check and returns the findings; it never stops at the first problem.
func (c *Checker) Run(ctx context.Context) []Finding {
	c.findings = nil
	wh := c.webhook(ctx)
	if wh != nil {
		c.certificate(ctx, wh)
	}
	cfg := c.injector(ctx)
	enabled := c.namespaces(ctx)
	if wh != nil && len(enabled) > 0 {
		c.dryRun(ctx, enabled[0], cfg)
	}
	c.pods(ctx, cfg)
	c.capture(ctx, cfg)
	return c.findings
}

// Failed reports whether any finding failed.
func Failed(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Status == Fail })
}

func (c *Checker) webhook(ctx context.Context) *admissionregistrationv1.MutatingWebhookConfiguration {
	wh, err := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, c.Opts.WebhookConfig, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		c.add(Fail, "webhook", "MutatingWebhookConfiguration %s not found: no pod is injected (reinstall podgate)", c.Opts.WebhookConfig)
		return nil
	}
	if err != nil {
		c.add(Fail, "webhook", "reading MutatingWebhookConfiguration %s: %v", c.Opts.WebhookConfig, err)
		return nil
	}
	if len(wh.Webhooks) == 0 {
		c.add(Fail, "webhook", "MutatingWebhookConfiguration %s has no webhooks", wh.Name)
		return nil
	}
	for _, h := range wh.Webhooks {
		svc := h.ClientConfig.Service
		switch {
		case svc == nil || svc.Name != c.Opts.Service || svc.Namespace != c.Opts.Namespace:
			c.add(Fail, "webhook", "%s does not call Service %s/%s", h.Name, c.Opts.Namespace, c.Opts.Service)
		// Ignore would start opted-in pods without the sidecar whenever the injector is down.
		case h.FailurePolicy != nil && *h.FailurePolicy != admissionregistrationv1.Fail:
			c.add(Fail, "webhook", "%s has failurePolicy %s: opted-in pods start unprotected while the injector is down", h.Name, *h.FailurePolicy)
		default:
			c.add(OK, "webhook", "%s calls Service %s/%s, failurePolicy Fail", h.Name, svc.Namespace, svc.Name)
		}
	}
	return wh
}

// servingCertificate finds the certificate the injector serves, in the first Secret that has one.
func (c *Checker) servingCertificate(ctx context.Context) (*x509.Certificate, string, error) {
	var errs []error
	for _, name := range c.Opts.CertSecrets {
		s, err := c.Kube.CoreV1().Secrets(c.Opts.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(s.Data[corev1.TLSCertKey]) == 0 {
			errs = append(errs, fmt.Errorf("secret %s has no %s", name, corev1.TLSCertKey))
			continue
		}
		cert, err := parseCert(s.Data[corev1.TLSCertKey])
		if err != nil {
			return nil, name, fmt.Errorf("secret %s: %w", name, err)
		}
		return cert, name, nil
	}
	return nil, "", errors.Join(errs...)
}

func parseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// issuerBackdate is how long before its issue podgate's issuers make a certificate valid.
const issuerBackdate = time.Hour

func (c *Checker) certificate(ctx context.Context, wh *admissionregistrationv1.MutatingWebhookConfiguration) {
	cert, secret, err := c.servingCertificate(ctx)
	if err != nil {
		c.add(Fail, "certificate", "no serving certificate in Secret %s/%s: %v", c.Opts.Namespace, strings.Join(c.Opts.CertSecrets, " or "), err)
		return
	}
	dns := c.Opts.Service + "." + c.Opts.Namespace + ".svc"
	for _, h := range wh.Webhooks {
		pool := x509.NewCertPool()
		if len(h.ClientConfig.CABundle) == 0 || !pool.AppendCertsFromPEM(h.ClientConfig.CABundle) {
			c.add(Fail, "certificate", "%s has no usable caBundle: the API server cannot trust the injector", h.Name)
			continue
		}
		// Verified at the certificate's own start, so an expired one is reported as expired below
		// rather than as a caBundle mismatch.
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: dns, Roots: pool, CurrentTime: cert.NotBefore.Add(time.Second)}); err != nil {
			c.add(Fail, "certificate", "caBundle of %s does not verify the serving certificate in Secret %s (serial %s): %v", h.Name, secret, cert.SerialNumber, err)
			continue
		}
		c.add(OK, "certificate", "caBundle of %s verifies the serving certificate in Secret %s for %s", h.Name, secret, dns)
	}
	now := c.Opts.Now()
	left, lifetime := cert.NotAfter.Sub(now), cert.NotAfter.Sub(cert.NotBefore)
	// cert-controller's rotator and internal/devcerts start a certificate an hour before they issue
	// it (clock skew between nodes); counted in, that hour would make every short-lived certificate
	// look late for renewal from the moment it is issued.
	if lifetime > issuerBackdate {
		lifetime -= issuerBackdate
	}
	switch {
	case left <= 0:
		c.add(Fail, "certificate", "serving certificate expired at %s: every opted-in pod is refused", cert.NotAfter.UTC().Format(time.RFC3339))
	case left < lifetime/4:
		c.add(Warn, "certificate", "serving certificate expires at %s (%s left of %s): renewal is late", cert.NotAfter.UTC().Format(time.RFC3339),
			left.Round(time.Second), lifetime.Round(time.Second))
	default:
		c.add(OK, "certificate", "serving certificate valid until %s (%s left)", cert.NotAfter.UTC().Format(time.RFC3339), left.Round(time.Second))
	}
}

// injector reports the Deployment's readiness and returns the configuration it injects with.
func (c *Checker) injector(ctx context.Context) *inject.Config {
	d, err := c.Kube.AppsV1().Deployments(c.Opts.Namespace).Get(ctx, c.Opts.Deployment, metav1.GetOptions{})
	if err != nil {
		c.add(Fail, "injector", "Deployment %s/%s: %v", c.Opts.Namespace, c.Opts.Deployment, err)
		return nil
	}
	want := ptr.Deref(d.Spec.Replicas, 1)
	switch {
	case d.Status.ReadyReplicas == 0:
		c.add(Fail, "injector", "Deployment %s has no ready replica: opted-in pods cannot be created", d.Name)
	case d.Status.ReadyReplicas < want:
		c.add(Warn, "injector", "Deployment %s has %d of %d replicas ready", d.Name, d.Status.ReadyReplicas, want)
	default:
		c.add(OK, "injector", "Deployment %s has %d of %d replicas ready", d.Name, d.Status.ReadyReplicas, want)
	}
	cm, err := c.Kube.CoreV1().ConfigMaps(c.Opts.Namespace).Get(ctx, c.Opts.ConfigMap, metav1.GetOptions{})
	if err != nil {
		c.add(Fail, "injector", "ConfigMap %s: %v", c.Opts.ConfigMap, err)
		return nil
	}
	cfg, err := inject.ParseConfig([]byte(cm.Data["config.yaml"]))
	if err != nil {
		c.add(Fail, "injector", "ConfigMap %s: %v", c.Opts.ConfigMap, err)
		return nil
	}
	// Without an image in the configuration the injector injects the sidecar of its own version,
	// which is the tag of its own image; the Deployment may also override it with a flag.
	var keys map[string]any
	if yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &keys) == nil && keys["image"] == nil && len(d.Spec.Template.Spec.Containers) > 0 {
		img := d.Spec.Template.Spec.Containers[0].Image
		if _, tag, ok := strings.Cut(img[strings.LastIndex(img, "/")+1:], ":"); ok {
			cfg.Image = "ghcr.io/podgate/sidecar:" + tag
		}
	}
	for _, ctr := range d.Spec.Template.Spec.Containers {
		for _, a := range ctr.Args {
			if v, ok := strings.CutPrefix(a, "--sidecar-image="); ok {
				cfg.Image = v
			}
		}
	}
	return &cfg
}

func (c *Checker) namespaces(ctx context.Context) []string {
	list, err := c.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: inject.LabelInjection + "=enabled"})
	if err != nil {
		c.add(Fail, "namespaces", "listing namespaces: %v", err)
		return nil
	}
	var names []string
	for _, ns := range list.Items {
		if !slices.Contains(inject.SystemNamespaces, ns.Name) && ns.Name != c.Opts.Namespace {
			names = append(names, ns.Name)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		c.add(Warn, "namespaces", "no namespace is labelled %s=enabled: nothing is injected", inject.LabelInjection)
		return nil
	}
	c.add(OK, "namespaces", "%d enabled: %s", len(names), strings.Join(names, ", "))
	return names
}

// dryRun creates an opted-in pod with dryRun=All: the API server runs the whole admission chain,
// the injector included, and stores nothing. The sidecar it comes back with is compared with what
// the ConfigMap's configuration (cfg) injects.
func (c *Checker) dryRun(ctx context.Context, ns string, cfg *inject.Config) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "podgate-check", Namespace: ns, Annotations: map[string]string{inject.AnnotationInject: "true"}},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "app", Image: "podgate.invalid/check:0",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
		},
	}
	got, err := c.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	var status *apierrors.StatusError
	switch {
	case err == nil && got.Annotations[inject.AnnotationStatus] != "":
		if why := c.configDrift(ctx, pod, got, cfg); why != "" {
			// The injector reads its configuration once, at start: an edited ConfigMap (or an
			// apply that changed it) takes effect only when the injector restarts.
			c.add(Fail, "dry-run", "an opted-in pod in %s comes back injected with a configuration other than ConfigMap %s/%s (%s): restart the injector (kubectl -n %s rollout restart deployment/%s)",
				ns, c.Opts.Namespace, c.Opts.ConfigMap, why, c.Opts.Namespace, c.Opts.Deployment)
			return
		}
		c.add(OK, "dry-run", "an opted-in pod in %s comes back injected", ns)
	case err == nil:
		c.add(Fail, "dry-run", "an opted-in pod in %s comes back without %s: the webhook did not inject it", ns, inject.AnnotationStatus)
	// A refusal (403) is an answer: the injector, or the policy behind it, looked at the pod.
	case errors.As(err, &status) && status.ErrStatus.Code == 403:
		c.add(Warn, "dry-run", "an opted-in pod in %s was refused (the injector answered): %s", ns, status.ErrStatus.Message)
	default:
		c.add(Fail, "dry-run", "an opted-in pod in %s could not be admitted: %v", ns, err)
	}
}

// configDrift compares the sidecar the injector gave the dry-run pod with what cfg injects into
// the same pod; "" means the same (or nothing to compare with).
func (c *Checker) configDrift(ctx context.Context, pod, got *corev1.Pod, cfg *inject.Config) string {
	if cfg == nil {
		return ""
	}
	ns, err := c.Kube.CoreV1().Namespaces().Get(ctx, pod.Namespace, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	want, rep, err := inject.Inject(pod.DeepCopy(), ns, cfg)
	if err != nil || rep.Skipped != "" {
		return ""
	}
	w, h := sidecarOf(want), sidecarOf(got)
	switch {
	case w == nil || h == nil:
		return ""
	case w.Image != h.Image:
		return fmt.Sprintf("sidecar image %s, the ConfigMap says %s", h.Image, w.Image)
	case !slices.Equal(w.Args, h.Args):
		return "sidecar arguments differ"
	}
	return ""
}

func (c *Checker) pods(ctx context.Context, cfg *inject.Config) {
	list, err := c.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		c.add(Fail, "pods", "listing pods: %v", err)
		return
	}
	nsCache := map[string]*corev1.Namespace{}
	namespace := func(name string) *corev1.Namespace {
		if ns, ok := nsCache[name]; ok {
			return ns
		}
		ns, err := c.Kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			ns = nil
		}
		nsCache[name] = ns
		return ns
	}
	injected, stale, unprotected := 0, 0, 0
	for i := range list.Items {
		pod := &list.Items[i]
		// Finished pods run nothing; a terminating one (a rollout replacing it) is on its way out,
		// and telling to restart it would be wrong.
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || pod.DeletionTimestamp != nil {
			continue
		}
		reason, err := inject.Decide(pod)
		switch {
		case err != nil:
			continue
		case reason == "":
			unprotected++
			c.add(Fail, "pods", "%s/%s opted in but has no sidecar: it runs unprotected (label namespace %s %s=enabled, then delete the pod)",
				pod.Namespace, pod.Name, pod.Namespace, inject.LabelInjection)
		case reason == inject.SkipAlreadyInjected:
			injected++
			if cfg == nil {
				continue
			}
			if why := c.staleness(ctx, pod, namespace(pod.Namespace), cfg); why != "" {
				stale++
				c.add(Fail, "pods", "%s/%s runs a stale sidecar (%s): restart it (%s)", pod.Namespace, pod.Name, why, restartHint(pod))
			}
		}
	}
	if unprotected == 0 && stale == 0 {
		c.add(OK, "pods", "%d injected pods, all current; no opted-in pod runs without the sidecar", injected)
	}
}

func sidecarOf(pod *corev1.Pod) *corev1.Container {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == inject.SidecarName {
				return &cs[i]
			}
		}
	}
	return nil
}

// staleness compares pod's sidecar with what the injector would inject now: from the pod template
// of its controller when it has one (the template is the pod before injection), or, for a bare
// pod, the image alone (its original spec is gone). "" means current.
func (c *Checker) staleness(ctx context.Context, pod *corev1.Pod, ns *corev1.Namespace, cfg *inject.Config) string {
	have := sidecarOf(pod)
	if have == nil {
		return ""
	}
	if tmpl := c.template(ctx, pod); tmpl != nil {
		orig := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
		orig.Namespace = pod.Namespace
		out, rep, err := inject.Inject(orig, ns, cfg)
		if err != nil {
			return "the injector would now deny it: " + err.Error()
		}
		if rep.Skipped == "" {
			if want := sidecarOf(out); want != nil {
				if want.Image != have.Image {
					return fmt.Sprintf("image %s, now %s", have.Image, want.Image)
				}
				if !slices.Equal(want.Args, have.Args) {
					return "arguments differ from what the injector injects now"
				}
				return ""
			}
		}
	}
	want := cfg.Image
	if ns != nil && ns.Annotations[inject.AnnotationImage] != "" {
		want = ns.Annotations[inject.AnnotationImage]
	}
	if v := pod.Annotations[inject.AnnotationImage]; v != "" {
		want = v
	}
	if have.Image != want {
		return fmt.Sprintf("image %s, now %s", have.Image, want)
	}
	return ""
}

// template returns the pod template of pod's controller (ReplicaSet, StatefulSet, DaemonSet, Job).
func (c *Checker) template(ctx context.Context, pod *corev1.Pod) *corev1.PodTemplateSpec {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return nil
	}
	get := metav1.GetOptions{}
	switch ref.Kind {
	case "ReplicaSet":
		if o, err := c.Kube.AppsV1().ReplicaSets(pod.Namespace).Get(ctx, ref.Name, get); err == nil {
			return &o.Spec.Template
		}
	case "StatefulSet":
		if o, err := c.Kube.AppsV1().StatefulSets(pod.Namespace).Get(ctx, ref.Name, get); err == nil {
			return &o.Spec.Template
		}
	case "DaemonSet":
		if o, err := c.Kube.AppsV1().DaemonSets(pod.Namespace).Get(ctx, ref.Name, get); err == nil {
			return &o.Spec.Template
		}
	case "Job":
		if o, err := c.Kube.BatchV1().Jobs(pod.Namespace).Get(ctx, ref.Name, get); err == nil {
			return &o.Spec.Template
		}
	}
	return nil
}

func restartHint(pod *corev1.Pod) string {
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil && ref.Kind == "ReplicaSet" {
		if i := strings.LastIndex(ref.Name, "-"); i > 0 {
			return fmt.Sprintf("kubectl -n %s rollout restart deployment/%s", pod.Namespace, ref.Name[:i])
		}
	} else if ref != nil && (ref.Kind == "StatefulSet" || ref.Kind == "DaemonSet") {
		return fmt.Sprintf("kubectl -n %s rollout restart %s/%s", pod.Namespace, strings.ToLower(ref.Kind), ref.Name)
	}
	return fmt.Sprintf("kubectl -n %s delete pod %s", pod.Namespace, pod.Name)
}

// capture checks that the capture node agent runs, ready, on every node. Without its DaemonSet
// capture mode cni is unavailable: that fails when the injector's configuration (cfg, nil when it
// could not be read) makes cni the default, because every opted-in pod without another mode then
// fails closed and never starts its app.
func (c *Checker) capture(ctx context.Context, cfg *inject.Config) {
	ds, err := c.Kube.AppsV1().DaemonSets(c.Opts.CaptureNamespace).Get(ctx, c.Opts.CaptureDaemonSet, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if cfg != nil && cfg.Capture == capture.ModeCNI {
			c.add(Fail, "capture", "node agent DaemonSet %s/%s is not installed, but the injector's default capture mode is cni: opted-in pods never start their app; install manifests/cni (or the chart's capture.enabled), or set capture in the injector configuration",
				c.Opts.CaptureNamespace, c.Opts.CaptureDaemonSet)
			return
		}
		c.add(OK, "capture", "node agent DaemonSet %s/%s is not installed (capture mode cni unavailable; the default is %s)", c.Opts.CaptureNamespace, c.Opts.CaptureDaemonSet, captureDefault(cfg))
		return
	}
	if err != nil {
		c.add(Fail, "capture", "DaemonSet %s: %v", c.Opts.CaptureDaemonSet, err)
		return
	}
	nodes, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		c.add(Fail, "capture", "listing nodes: %v", err)
		return
	}
	ready := readyAgents(ctx, c.Kube, ds)
	missing := 0
	for _, n := range nodes.Items {
		if !ready[n.Name] {
			missing++
			c.add(Fail, "capture", "node %s has no ready %s agent: pods that ask for capture cannot start there", n.Name, ds.Name)
		}
	}
	if missing == 0 {
		c.add(OK, "capture", "%s agent ready on all %d nodes", ds.Name, len(nodes.Items))
	}
}

func readyAgents(ctx context.Context, kube kubernetes.Interface, ds *appsv1.DaemonSet) map[string]bool {
	out := map[string]bool{}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() {
		sel = labels.Nothing()
	}
	pods, err := kube.CoreV1().Pods(ds.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return out
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
			continue
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				out[p.Spec.NodeName] = true
			}
		}
	}
	return out
}

func captureDefault(cfg *inject.Config) string {
	if cfg == nil {
		return "unknown"
	}
	return string(cfg.Capture)
}
