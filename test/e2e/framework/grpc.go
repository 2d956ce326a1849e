package framework

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The gRPC app (test/e2e/apps/grpc): gRPC on one port, a plain TCP echo on another.
const (
	GRPCImage    = "podgate.local/grpc:e2e"
	GRPCPort     = 9090
	GRPCEchoPort = 7070
	// GRPCEchoPortName marks the echo port as not HTTP by its name (tcp-*): the injector leaves it
	// alone.
	GRPCEchoPortName = "tcp-echo"
)

// GRPCApp describes a Deployment of the gRPC app and its Service, which targets the port "grpc" by
// name.
type GRPCApp struct {
	Namespace, Name string
	PodAnnotations  map[string]string
}

// Deployment returns the app: restricted-compliant, with a gRPC readiness probe on the gRPC port
// (the injector must rewrite it to the sidecar's admin port) and the TCP echo port.
func (a GRPCApp) Deployment() *appsv1.Deployment {
	return restrictedDeployment(a.Name, a.Namespace, 1, a.PodAnnotations, corev1.Container{
		Name:            "grpc",
		Image:           GRPCImage,
		ImagePullPolicy: corev1.PullNever,
		Args:            []string{"serve", fmt.Sprintf("-listen=:%d", GRPCPort), fmt.Sprintf("-echo-listen=:%d", GRPCEchoPort)},
		Ports: []corev1.ContainerPort{
			{Name: "grpc", ContainerPort: GRPCPort, Protocol: corev1.ProtocolTCP},
			{Name: GRPCEchoPortName, ContainerPort: GRPCEchoPort, Protocol: corev1.ProtocolTCP},
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: GRPCPort}},
			PeriodSeconds: 2, FailureThreshold: 3, TimeoutSeconds: 2,
		},
	})
}

// Service returns the app's Service (a cluster IP the API server picks).
func (a GRPCApp) Service() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: a.Name, Namespace: a.Namespace},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": a.Name},
			Ports: []corev1.ServicePort{{Name: "grpc", Port: GRPCPort, TargetPort: intstr.FromString("grpc"),
				AppProtocol: ptr.To("kubernetes.io/h2c")}},
		},
	}
}

// DeployGRPC creates the app and its Service, waits until the pod is Ready and returns it with the
// Service's cluster IP.
func (k *Kube) DeployGRPC(ctx context.Context, a GRPCApp, timeout time.Duration) (*corev1.Pod, string, error) {
	deployments := k.Client.AppsV1().Deployments(a.Namespace)
	_ = deployments.Delete(ctx, a.Name, metav1.DeleteOptions{})
	if _, err := deployments.Create(ctx, a.Deployment(), metav1.CreateOptions{}); err != nil {
		return nil, "", fmt.Errorf("deployment %s/%s: %w", a.Namespace, a.Name, err)
	}
	if err := k.ensureService(ctx, a.Service()); err != nil {
		return nil, "", err
	}
	svc, err := k.Client.CoreV1().Services(a.Namespace).Get(ctx, a.Name, metav1.GetOptions{})
	if err != nil {
		return nil, "", err
	}
	pods, err := k.WaitPodsReady(ctx, a.Namespace, "app="+a.Name, 1, timeout)
	if err != nil {
		return nil, "", err
	}
	return &pods[0], svc.Spec.ClusterIP, nil
}

// RunGRPCClient runs the gRPC app's client mode ("grpc call ARGS…") in a pod of its own in ns,
// with token in its environment (from a Secret, never in the pod spec), and returns what it wrote
// as its termination message.
func (k *Kube) RunGRPCClient(ctx context.Context, ns, name, token string, args []string, timeout time.Duration) (string, error) {
	secrets := k.Client.CoreV1().Secrets(ns)
	_ = secrets.Delete(ctx, name, metav1.DeleteOptions{})
	if _, err := secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		StringData: map[string]string{"token": token},
	}, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("token secret: %w", err)
	}
	d := restrictedDeployment(name, ns, 1, nil, corev1.Container{
		Name:            "client",
		Image:           GRPCImage,
		ImagePullPolicy: corev1.PullNever,
		Args:            append([]string{"call"}, args...),
		Env: []corev1.EnvVar{{Name: "PODGATE_E2E_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "token"}}}},
	})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: d.Spec.Template.Spec}
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pods := k.Client.CoreV1().Pods(ns)
	_ = pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	if err := Eventually(ctx, time.Minute, 500*time.Millisecond, "old pod "+name+" gone", func(ctx context.Context) (bool, string, error) {
		_, err := pods.Get(ctx, name, metav1.GetOptions{})
		return err != nil, "still there", nil
	}); err != nil {
		return "", err
	}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("client pod: %w", err)
	}
	var msg string
	err := Eventually(ctx, timeout, time.Second, "client pod "+ns+"/"+name+" done", func(ctx context.Context) (bool, string, error) {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil {
				if t.ExitCode != 0 {
					return false, "", fmt.Errorf("client exited %d (%s): %s", t.ExitCode, t.Reason, t.Message)
				}
				msg = t.Message
				return true, "", nil
			}
		}
		return false, PodStatusSummary(p), nil
	})
	return msg, err
}
