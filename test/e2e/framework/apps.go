package framework

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Labels and annotations the suite sets; the injector's own constants live in internal/inject,
// but the tests spell them out as a user's manifest would.
const (
	LabelInjection       = "podgate.io/injection"
	AnnotationInject     = "podgate.io/inject"
	AnnotationRoles      = "podgate.io/allowed-roles"
	AnnotationStatus     = "podgate.io/status"
	LabelPSAEnforce      = "pod-security.kubernetes.io/enforce"
	EchoImage            = "podgate.local/echo:e2e"
	SidecarImage         = "podgate.local/sidecar:e2e"
	EchoPort             = 8080
	SidecarSecretName    = "podgate" // the injector's default secretName
	DemoNamespace        = "podgate-demo"
	DemoServiceIP        = "198.19.0.80" // fixed: Keycloak's redirect URI names it
	DemoURL              = "http://" + DemoServiceIP
	ForwardAuthURL       = "http://" + NodeIP + ":8088" // nginx in front of an app, with auth_request
	ForwardAuthSidecarIP = "198.19.0.41"                // the standalone sidecar's Service
	ForwardAuthEchoIP    = "198.19.0.42"                // the app nginx protects
	ForwardAuthNS        = "podgate-forward-auth"
	PSARestricted        = "restricted" // the Pod Security level injected pods must pass
)

// InjectedNamespaceLabels enable injection and enforce the restricted Pod Security level, which
// injected pods must still pass.
func InjectedNamespaceLabels() map[string]string {
	return map[string]string{LabelInjection: "enabled", LabelPSAEnforce: PSARestricted}
}

// EchoApp describes a Deployment of the echo app (and optionally a Service for it).
type EchoApp struct {
	Namespace, Name string
	Replicas        int32
	// PodAnnotations go on the pod template (podgate.io/inject and friends).
	PodAnnotations map[string]string
	// ServiceIP, when set, also creates a Service on that ClusterIP, port 80, targeting the
	// container port by its name "http", the way the injector expects Services to.
	ServiceIP string
}

// Deployment returns the app's Deployment: restricted-compliant, with a named port and probes on
// it, which the injector must rewrite.
func (a EchoApp) Deployment() *appsv1.Deployment {
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			PeriodSeconds: 2, FailureThreshold: 3, TimeoutSeconds: 2,
		}
	}
	return restrictedDeployment(a.Name, a.Namespace, a.Replicas, a.PodAnnotations, corev1.Container{
		Name:            "echo",
		Image:           EchoImage,
		ImagePullPolicy: corev1.PullNever,
		Args:            []string{"-listen=:8080", "-name=" + a.Name},
		Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: EchoPort, Protocol: corev1.ProtocolTCP}},
		ReadinessProbe:  probe("/healthz"),
		LivenessProbe:   probe("/healthz"),
	})
}

// restrictedDeployment wraps one container in a Deployment that meets the restricted Pod Security
// level (the e2e namespaces enforce it): non-root 65532, seccomp RuntimeDefault, read-only root,
// no privilege escalation, all capabilities dropped; pods labelled app=<name>.
func restrictedDeployment(name, ns string, replicas int32, podAnnotations map[string]string, c corev1.Container) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	c.SecurityContext = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: maps.Clone(podAnnotations)},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken:  ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65532),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{c},
				},
			},
		},
	}
}

// Service returns the app's Service, targeting the port by name.
func (a EchoApp) Service() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: a.Name, Namespace: a.Namespace},
		Spec: corev1.ServiceSpec{
			ClusterIP: a.ServiceIP,
			Selector:  map[string]string{"app": a.Name},
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
}

// Deploy creates (or replaces) the app and waits until its pods are Ready.
func (k *Kube) Deploy(ctx context.Context, a EchoApp, timeout time.Duration) ([]corev1.Pod, error) {
	deployments := k.Client.AppsV1().Deployments(a.Namespace)
	_ = deployments.Delete(ctx, a.Name, metav1.DeleteOptions{})
	if _, err := deployments.Create(ctx, a.Deployment(), metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("deployment %s/%s: %w", a.Namespace, a.Name, err)
	}
	if a.ServiceIP != "" {
		if err := k.ensureService(ctx, a.Service()); err != nil {
			return nil, err
		}
	}
	return k.WaitPodsReady(ctx, a.Namespace, "app="+a.Name, int(a.Replicas), timeout)
}

func (k *Kube) ensureService(ctx context.Context, svc *corev1.Service) error {
	services := k.Client.CoreV1().Services(svc.Namespace)
	if _, err := services.Get(ctx, svc.Name, metav1.GetOptions{}); err == nil {
		return nil
	}
	if _, err := services.Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}

// EnsureSidecarSecret creates the Secret the injected sidecars read in ns: the client secret and a
// fresh random cookie secret.
func (k *Kube) EnsureSidecarSecret(ctx context.Context, ns string) error {
	cookie := make([]byte, 32)
	if _, err := rand.Read(cookie); err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: SidecarSecretName, Namespace: ns},
		StringData: map[string]string{
			"client-secret": ClientSecret,
			"cookie-secret": base64.StdEncoding.EncodeToString(cookie),
		},
	}
	_, err := k.Client.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// DeployDemo deploys the demo: the echo app, injected, behind the Service on DemoServiceIP, allowed
// to users with the realm role app-user. The tests of the browser and bearer flows use it too.
func (k *Kube) DeployDemo(ctx context.Context) ([]corev1.Pod, error) {
	if err := k.EnsureNamespace(ctx, DemoNamespace, InjectedNamespaceLabels()); err != nil {
		return nil, err
	}
	if err := k.EnsureSidecarSecret(ctx, DemoNamespace); err != nil {
		return nil, err
	}
	return k.Deploy(ctx, EchoApp{
		Namespace: DemoNamespace, Name: "demo", Replicas: 1, ServiceIP: DemoServiceIP,
		PodAnnotations: map[string]string{AnnotationInject: "true", AnnotationRoles: AllowedRole},
	}, 3*time.Minute)
}

// ForwardAuthSidecar is podgate's sidecar deployed on its own (no --proxy): it only answers
// forward-auth sub-requests and runs the login endpoints, for an ingress or nginx in front of an app.
func ForwardAuthSidecar(issuer string) *appsv1.Deployment {
	secretEnv := func(name, key string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: SidecarSecretName}, Key: key}}}
	}
	return restrictedDeployment("forward-auth", ForwardAuthNS, 1, nil, corev1.Container{
		Name:            "sidecar",
		Image:           SidecarImage,
		ImagePullPolicy: corev1.PullNever,
		Args: []string{
			"--issuer-url=" + issuer, "--client-id=" + ClientID, "--allowed-role=" + AllowedRole,
			"--cookie-secure=false", "--forward-auth-addr=:4180", "--admin-addr=:4190",
		},
		Env:   []corev1.EnvVar{secretEnv("PODGATE_CLIENT_SECRET", "client-secret"), secretEnv("PODGATE_COOKIE_SECRET", "cookie-secret")},
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 4180}, {Name: "admin", ContainerPort: 4190}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("admin")}},
			PeriodSeconds: 2,
		},
	})
}

// DeployForwardAuth deploys the standalone sidecar and a plain (not injected) echo app behind
// fixed ClusterIPs, for nginx on the host to put together.
func (k *Kube) DeployForwardAuth(ctx context.Context, issuer string) error {
	if err := k.EnsureNamespace(ctx, ForwardAuthNS, map[string]string{LabelPSAEnforce: PSARestricted}); err != nil {
		return err
	}
	if err := k.EnsureSidecarSecret(ctx, ForwardAuthNS); err != nil {
		return err
	}
	if _, err := k.Client.AppsV1().Deployments(ForwardAuthNS).Create(ctx, ForwardAuthSidecar(issuer), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("forward-auth sidecar: %w", err)
	}
	if err := k.ensureService(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "forward-auth", Namespace: ForwardAuthNS},
		Spec: corev1.ServiceSpec{
			ClusterIP: ForwardAuthSidecarIP, Selector: map[string]string{"app": "forward-auth"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 4180, TargetPort: intstr.FromString("http")}},
		},
	}); err != nil {
		return err
	}
	if _, err := k.Deploy(ctx, EchoApp{Namespace: ForwardAuthNS, Name: "app", Replicas: 1, ServiceIP: ForwardAuthEchoIP}, 2*time.Minute); err != nil {
		return err
	}
	_, err := k.WaitPodsReady(ctx, ForwardAuthNS, "app=forward-auth", 1, 2*time.Minute)
	return err
}
