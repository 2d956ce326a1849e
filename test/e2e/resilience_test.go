//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podgate/podgate/test/e2e/framework"
)

// Resilience: the webhook fails closed without the injector, and a burst of pods is injected
// without a rejection.

// Fail closed: with the injector scaled to zero, an opted-in pod in a labelled namespace is
// rejected with a clear message; pods elsewhere, kube-system included, are unaffected.
func TestFailClosedWithoutInjector(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	const ns = "e2e-fail-closed"
	if err := kube.EnsureNamespace(ctx, ns, framework.InjectedNamespaceLabels()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	if err := kube.EnsureSidecarSecret(ctx, ns); err != nil {
		t.Fatal(err)
	}
	replicas := scaleInjector(t, 0)
	t.Cleanup(func() { scaleInjector(t, replicas) })

	pod := func(name, ns string, inject bool) *corev1.Pod {
		ann := map[string]string{}
		if inject {
			ann[framework.AnnotationInject] = "true"
		}
		d := framework.EchoApp{Namespace: ns, Name: name, Replicas: 1}.Deployment()
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: ann, Labels: map[string]string{"app": name}}, Spec: d.Spec.Template.Spec}
	}
	_, err := kube.Client.CoreV1().Pods(ns).Create(ctx, pod("opted-in", ns, true), metav1.CreateOptions{})
	if err == nil {
		t.Fatal("an opted-in pod was admitted while no injector runs: podgate failed open")
	}
	if msg := err.Error(); !strings.Contains(msg, "failed calling webhook") || !strings.Contains(msg, framework.InjectorService) {
		t.Errorf("rejection %q does not say which webhook failed", msg)
	} else {
		t.Logf("rejected as expected: %s", msg)
	}

	// Elsewhere pods are still created and run: kube-system, and a namespace without the label
	// (not opted in: an opted-in pod there is refused by the policy, TestPodsNotOptedInAreUntouched).
	const plainNS = "e2e-fail-closed-plain"
	if err := kube.EnsureNamespace(ctx, plainNS, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(kube, plainNS) })
	for _, p := range []*corev1.Pod{pod("e2e-unaffected", "kube-system", false), pod("unaffected", plainNS, false)} {
		_ = kube.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
		if _, err := kube.Client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Errorf("pod in %s: %v", p.Namespace, err)
			continue
		}
		t.Cleanup(func() {
			_ = kube.Client.CoreV1().Pods(p.Namespace).Delete(context.Background(), p.Name, metav1.DeleteOptions{})
		})
		if _, err := kube.WaitPodsReady(ctx, p.Namespace, "app="+p.Name, 1, 2*time.Minute); err != nil {
			t.Error(err)
		}
	}
}

// scaleInjector sets the injector's replicas, waits for the pods to match, and returns the old count.
func scaleInjector(t *testing.T, replicas int32) int32 {
	t.Helper()
	ctx := context.WithoutCancel(suiteCtx)
	kube := suite.Kube
	deployments := kube.Client.AppsV1().Deployments(framework.InjectorNamespace)
	scale, err := deployments.GetScale(ctx, framework.InjectorDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old := scale.Spec.Replicas
	scale.Spec.Replicas = replicas
	if _, err := deployments.UpdateScale(ctx, framework.InjectorDeployment, scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.WaitPodsReady(ctx, framework.InjectorNamespace, framework.InjectorSelector, int(replicas), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if replicas > 0 {
		if err := suite.WaitWebhookServing(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return old
}

// A burst: a Deployment scaled to 30 replicas; every pod injected, none rejected; the API
// server's admission latency for the webhook recorded, and beside it the injector replicas' own
// time per review, which splits the admission's time between the injector and the call around it.
func TestBurstOfThirtyPods(t *testing.T) {
	ctx := suiteCtx
	kube := suite.Kube
	const ns, replicas = "e2e-burst", 30
	pods := deployInjectedApp(t, ns, "burst", 1)
	t.Cleanup(func() { deleteNamespace(kube, ns) })
	checkInjectedPod(t, &pods[0])

	before, err := suite.WebhookLatency(ctx)
	if err != nil {
		t.Fatal(err)
	}
	injectorBefore, err := suite.InjectorLatency(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	deployments := kube.Client.AppsV1().Deployments(ns)
	scale, err := deployments.GetScale(ctx, "burst", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = replicas
	if _, err := deployments.UpdateScale(ctx, "burst", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Every pod is created (none rejected: the ReplicaSet would report FailedCreate) and injected.
	waitBurstInjected(ctx, t, ns, replicas)
	createdIn := time.Since(start)
	if failed := failedCreates(t, ns); len(failed) > 0 {
		t.Errorf("pod creations rejected during the burst: %v", failed)
	}
	ready, err := kube.WaitPodsReady(ctx, ns, "app=burst", replicas, 4*time.Minute)
	if err != nil {
		t.Error(err)
	}
	readyIn := time.Since(start)
	noteCaptureCost(t, ns, ready)

	after, err := suite.WebhookLatency(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := after.Minus(before)
	note("burst: %d pods created in %.1fs, all Ready in %.1fs", replicas, createdIn.Seconds(), readyIn.Seconds())
	note("webhook admission latency during the burst (apiserver_admission_webhook_admission_duration_seconds, %d calls): mean %.1f ms, p50 ≈ %.1f ms, p99 ≈ %.1f ms",
		int(d.Count), d.Mean()*1000, d.Quantile(0.5)*1000, d.Quantile(0.99)*1000)
	if injectorAfter, err := suite.InjectorLatency(ctx); err != nil {
		t.Error(err)
	} else {
		own, n := framework.Since(injectorBefore, injectorAfter)
		if own.Count < d.Count {
			t.Errorf("the injector replicas answered %v reviews, the API server made %v calls", own.Count, d.Count)
		}
		note("the injector's own time per review during the burst (podgate_injector_admission_duration_seconds, %d reviews over %d replicas): mean %.2f ms, p50 ≤ %g ms, p99 ≤ %g ms (bucket bounds); the rest of the API server's figure is the call around it",
			int(own.Count), n, own.Mean()*1000, own.Bound(0.5)*1000, own.Bound(0.99)*1000)
	}
	// Idle memory of the 30 sidecars (they answered only probes) and of the injector replicas.
	if mem, err := kube.ContainerMemory(ctx); err != nil {
		t.Logf("no memory figures: %v", err)
	} else {
		var sidecarWS, sidecarRSS, injectorWS []uint64
		for _, m := range mem {
			switch {
			case m.Namespace == ns && m.Container == sidecarName:
				sidecarWS, sidecarRSS = append(sidecarWS, m.WorkingSetBytes), append(sidecarRSS, m.RSSBytes)
			case m.Namespace == framework.InjectorNamespace:
				injectorWS = append(injectorWS, m.WorkingSetBytes)
			}
		}
		note("idle sidecar memory over %d pods (kubelet, cgroup; min / median / max): working set %s, anonymous RSS %s",
			len(sidecarWS), framework.MemorySpread(sidecarWS), framework.MemorySpread(sidecarRSS))
		note("injector working set per replica after the burst: %s", framework.MemorySpread(injectorWS))
	}
	if d.Count < replicas-1 {
		t.Errorf("the API server called the webhook %v times for %d new pods", d.Count, replicas-1)
	}
}

func failedCreates(t *testing.T, ns string) []string {
	t.Helper()
	events, err := suite.Kube.Client.CoreV1().Events(ns).List(suiteCtx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range events.Items {
		msgs = append(msgs, e.Message)
	}
	return msgs
}

// waitBurstInjected waits until the burst Deployment's n pods in ns exist (none rejected: the
// ReplicaSet would report FailedCreate) and checks that each came back injected.
func waitBurstInjected(ctx context.Context, t *testing.T, ns string, n int) {
	t.Helper()
	created, err := suite.Kube.WaitPodsCreated(ctx, ns, "app=burst", n, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range created {
		if len(p.Spec.InitContainers) == 0 || p.Spec.InitContainers[0].Name != sidecarName || p.Annotations[framework.AnnotationStatus] == "" {
			t.Errorf("pod %s was not injected", p.Name)
		}
	}
}
