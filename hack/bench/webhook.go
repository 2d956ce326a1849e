package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/podgate/podgate/internal/devcerts"
	"github.com/podgate/podgate/internal/inject"
	"github.com/podgate/podgate/internal/inject/injecttest"
)

// webhookTarget is the injector's webhook endpoint and the TLS settings that verify it as the API
// server would (the development CA, the Service's DNS name).
type webhookTarget struct {
	url string
	tls *tls.Config
}

func newWebhookTarget(u, certDir string) (webhookTarget, error) {
	ca, err := os.ReadFile(filepath.Join(certDir, devcerts.CAFile))
	if err != nil {
		return webhookTarget{}, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return webhookTarget{}, fmt.Errorf("%s: no certificate", devcerts.CAFile)
	}
	name := devcerts.DNSNames("podgate-injector", "bench")[2]
	return webhookTarget{url: u, tls: &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}}, nil
}

// admissionReview is the body the API server sends for a new pod in the bench namespace that opted
// in, with n containers like the injector's own benchmarks use (a named port and an HTTP readiness
// probe each).
func admissionReview(n int) ([]byte, error) {
	pod := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Namespace: benchNamespace,
			Annotations: map[string]string{inject.AnnotationInject: "true"}},
		Spec: corev1.PodSpec{Containers: injecttest.Containers(n)}}
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	return json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "bench", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: benchNamespace,
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}},
	})
}

// check sends one review and requires a patch that injects the sidecar, so the load measures the
// real mutation, not a skip or a denial.
func (t webhookTarget) check(ctx context.Context, body []byte) error {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: t.tls}, Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(ctx, "POST", t.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &out); err != nil || out.Response == nil {
		return fmt.Errorf("webhook answered %s: %.300s", resp.Status, raw)
	}
	if !out.Response.Allowed || !strings.Contains(string(out.Response.Patch), "podgate-proxy") {
		return fmt.Errorf("webhook did not inject: allowed=%v result=%v", out.Response.Allowed, out.Response.Result)
	}
	return nil
}

// attack runs vegeta with conns workers sending reviews back to back (no rate limit), like wrk's
// connections, for the configured duration.
func (b *bench) attack(ctx context.Context, t webhookTarget, body []byte, conns int) (Sample, error) {
	return b.vegeta(ctx, vegeta.Target{Method: "POST", URL: t.url, Body: body,
		Header: http.Header{"Content-Type": {"application/json"}}}, t.tls, conns, vegeta.Rate{})
}

// vegeta sends tgt from conns workers, each on its own keep-alive HTTP/1.1 connection (as the API
// server's webhook client and a sidecar's callers get it: controller-runtime's webhook server turns
// HTTP/2 off), at rate (back to back when zero) for the configured duration. Any failed request
// fails the run.
func (b *bench) vegeta(ctx context.Context, tgt vegeta.Target, tlsConfig *tls.Config, conns int, rate vegeta.Rate) (Sample, error) {
	a := vegeta.NewAttacker(vegeta.TLSConfig(tlsConfig), vegeta.HTTP2(false), vegeta.KeepAlive(true),
		vegeta.Workers(uint64(conns)), vegeta.MaxWorkers(uint64(conns)), vegeta.Connections(conns),
		vegeta.MaxBody(0), vegeta.Timeout(10*time.Second))
	var m vegeta.Metrics
	started := time.Now()
	for res := range a.Attack(vegeta.NewStaticTargeter(tgt), rate, b.cfg.duration, tgt.URL) {
		m.Add(res)
		if ctx.Err() != nil {
			a.Stop()
		}
	}
	elapsed := time.Since(started)
	m.Close()
	if ctx.Err() != nil {
		return Sample{}, ctx.Err()
	}
	if m.Success < 1 {
		return Sample{}, fmt.Errorf("%s: %.2f%% success, status codes %v, errors %v", tgt.URL, m.Success*100, m.StatusCodes, m.Errors)
	}
	return Sample{Requests: int(m.Requests), Elapsed: elapsed, P50: m.Latencies.P50, P99: m.Latencies.P99,
		P999: m.Latencies.Quantile(0.999)}, nil
}

// webhookArm is one injector under load: the build under test or the baseline.
type webhookArm struct {
	hook webhookTarget
	proc *proc
}

// webhook measures reviews of pods with each container count at each concurrency, the pod sizes
// (and the baseline injector, when there is one) interleaved round by round. It returns the
// results of the injector and of the baseline (nil without one).
func (b *bench) webhook(ctx context.Context, pods []int) (map[int]map[int]Result, map[int]map[int]Result, error) {
	arms := []webhookArm{{b.hook, b.injector}}
	if b.baseInjector != nil {
		arms = append(arms, webhookArm{b.baseHook, b.baseInjector})
	}
	bodies := map[int][]byte{}
	for _, n := range pods {
		body, err := admissionReview(n)
		if err != nil {
			return nil, nil, err
		}
		for _, a := range arms {
			if err := a.hook.check(ctx, body); err != nil {
				return nil, nil, err
			}
		}
		bodies[n] = body
	}
	out := make([]map[int]map[int]Result, len(arms))
	for i := range arms {
		out[i] = map[int]map[int]Result{}
		for _, n := range pods {
			out[i][n] = map[int]Result{}
		}
	}
	for _, c := range b.cfg.webhookConn {
		logf("webhook, c=%d, %d rounds of %s...", c, b.cfg.rounds, b.cfg.duration)
		samples := make([]map[int][]Sample, len(arms))
		for i := range arms {
			samples[i] = map[int][]Sample{}
		}
		for r := 0; r < b.cfg.rounds; r++ {
			var line []string
			for _, n := range pods {
				for i, a := range arms {
					before, err := cpuTime(a.proc.pid())
					if err != nil {
						return nil, nil, err
					}
					m, err := b.startMeter()
					if err != nil {
						return nil, nil, err
					}
					s, err := b.attack(ctx, a.hook, bodies[n], c)
					if err != nil {
						return nil, nil, err
					}
					if err := m.stop(b, &s, 0); err != nil {
						return nil, nil, err
					}
					after, err := cpuTime(a.proc.pid())
					if err != nil {
						return nil, nil, err
					}
					s.CPU = after - before
					samples[i][n] = append(samples[i][n], s)
					line = append(line, fmt.Sprintf("%s %.0f (load side %.0f%%)", webhookRowName(n, i > 0), s.RPS(), 100*s.LoadUtil()))
				}
			}
			logf("  round %d: %s reviews/s", r+1, strings.Join(line, ", "))
		}
		for i := range arms {
			for _, n := range pods {
				out[i][n][c] = summarise(samples[i][n])
			}
		}
	}
	if len(arms) == 1 {
		return out[0], nil, nil
	}
	return out[0], out[1], nil
}

// webhookRowName names a pod size, for the baseline injector too.
func webhookRowName(containers int, baseline bool) string {
	if baseline {
		return podName(containers) + ", baseline"
	}
	return podName(containers)
}

func podName(containers int) string {
	if containers == 1 {
		return "typical pod"
	}
	return fmt.Sprintf("%d-container pod", containers)
}
