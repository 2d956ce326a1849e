package framework

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Kube is the suite's handle on the cluster: a typed client for assertions, and kubectl for
// applying manifests exactly as a user would.
type Kube struct {
	Client     *kubernetes.Clientset
	Config     *rest.Config
	Kubeconfig string
	Kubectl    string
}

// NewKube connects to the cluster behind kubeconfig.
func NewKube(kubeconfig, kubectl string) (*Kube, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Kube{Client: client, Config: cfg, Kubeconfig: kubeconfig, Kubectl: kubectl}, nil
}

// Run runs kubectl with args (and stdin, if not empty) and returns its standard output.
func (k *Kube) Run(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, k.Kubectl, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// RunCombined runs kubectl like Run and returns standard output and error together (kubectl prints
// admission warnings on standard error).
func (k *Kube) RunCombined(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, k.Kubectl, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Eventually polls cond every interval until it reports done, returns an error, or timeout passes;
// a timeout error includes the last reason cond gave, so a failed wait explains itself.
func Eventually(ctx context.Context, timeout, interval time.Duration, what string, cond func(ctx context.Context) (done bool, reason string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reason := "not checked yet"
	for {
		done, r, err := cond(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if done {
			return nil
		}
		if r != "" {
			reason = r
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not done after %s: %s", what, timeout, reason)
		case <-time.After(interval):
		}
	}
}

// WaitPodsReady waits until the pods matching selector in ns number want and are all Ready.
func (k *Kube) WaitPodsReady(ctx context.Context, ns, selector string, want int, timeout time.Duration) ([]corev1.Pod, error) {
	var ready []corev1.Pod
	err := Eventually(ctx, timeout, time.Second, fmt.Sprintf("%d ready pods %q in %s", want, selector, ns),
		func(ctx context.Context) (bool, string, error) {
			pods, err := k.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				return false, err.Error(), nil
			}
			ready = ready[:0]
			var waiting []string
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil && PodReady(&p) {
					ready = append(ready, p)
				} else {
					waiting = append(waiting, p.Name+": "+PodStatusSummary(&p))
				}
			}
			return len(ready) == want && len(pods.Items) == want,
				fmt.Sprintf("%d of %d ready; %s", len(ready), len(pods.Items), strings.Join(waiting, "; ")), nil
		})
	return ready, err
}

// PodReady reports whether the pod's Ready condition is true.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PodStatusSummary says why a pod is not ready yet, for timeout messages.
func PodStatusSummary(p *corev1.Pod) string {
	parts := []string{string(p.Status.Phase)}
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		switch {
		case cs.State.Waiting != nil:
			parts = append(parts, fmt.Sprintf("%s waiting (%s: %s)", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message))
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0:
			parts = append(parts, fmt.Sprintf("%s exited %d (%s)", cs.Name, cs.State.Terminated.ExitCode, cs.State.Terminated.Reason))
		case !cs.Ready:
			parts = append(parts, cs.Name+" not ready")
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			parts = append(parts, c.Message)
		}
	}
	return strings.Join(parts, ", ")
}

// EnsureNamespace creates ns with labels, replacing it if it already exists from an earlier run.
func (k *Kube) EnsureNamespace(ctx context.Context, ns string, labels map[string]string) error {
	err := Eventually(ctx, 2*time.Minute, time.Second, "namespace "+ns+" gone", func(ctx context.Context) (bool, string, error) {
		existing, err := k.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			return true, "", nil // not found (or unreadable: the create below will say)
		}
		if existing.DeletionTimestamp == nil {
			_ = k.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		}
		return false, "still terminating", nil
	})
	if err != nil {
		return err
	}
	_, err = k.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	// Pods can only be admitted once the service account controller made "default".
	return Eventually(ctx, time.Minute, 500*time.Millisecond, "service account "+ns+"/default", func(ctx context.Context) (bool, string, error) {
		_, err := k.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err), nil
	})
}

// WaitPodsCreated waits until want pods match selector in ns (ready or not) and returns them: a
// burst's pods all made it through admission.
func (k *Kube) WaitPodsCreated(ctx context.Context, ns, selector string, want int, timeout time.Duration) ([]corev1.Pod, error) {
	var pods []corev1.Pod
	err := Eventually(ctx, timeout, time.Second, fmt.Sprintf("%d pods %q created in %s", want, selector, ns), func(ctx context.Context) (bool, string, error) {
		list, err := k.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err.Error(), nil
		}
		pods = list.Items
		return len(pods) == want, fmt.Sprintf("%d created", len(pods)), nil
	})
	return pods, err
}
