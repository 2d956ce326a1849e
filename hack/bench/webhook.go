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

// vegeta returns the loader that sends the arm's request from conns workers, each on its own
// keep-alive HTTP/1.1 connection (as the API server's webhook client and a sidecar's callers get
// it: controller-runtime's webhook server turns HTTP/2 off), for the configured duration: back to
// back when rate is 0, like wrk's connections, else at rate requests per second (an open loop).
// Any failed request fails the run, and so does a fixed rate the run could not keep, rather than
// report a latency measured at another rate.
func (b *bench) vegeta(rate int) loader {
	return func(ctx context.Context, a arm, conns int) (Sample, error) {
		tgt := vegeta.Target{Method: "GET", URL: a.url, Header: http.Header{}}
		if a.body != nil {
			tgt.Method, tgt.Body = "POST", a.body
			tgt.Header.Set("Content-Type", "application/json")
		}
		for _, kv := range a.headers {
			k, v, _ := strings.Cut(kv, ":")
			tgt.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		at := vegeta.NewAttacker(vegeta.TLSConfig(a.tls), vegeta.HTTP2(false), vegeta.KeepAlive(true),
			vegeta.Workers(uint64(conns)), vegeta.MaxWorkers(uint64(conns)), vegeta.Connections(conns),
			vegeta.MaxBody(0), vegeta.Timeout(10*time.Second))
		var m vegeta.Metrics
		started := time.Now()
		for res := range at.Attack(vegeta.NewStaticTargeter(tgt), vegeta.Rate{Freq: rate, Per: time.Second}, b.cfg.duration, a.name) {
			m.Add(res)
			if ctx.Err() != nil {
				at.Stop()
			}
		}
		elapsed := time.Since(started)
		m.Close()
		if ctx.Err() != nil {
			return Sample{}, ctx.Err()
		}
		if m.Success < 1 {
			return Sample{}, fmt.Errorf("%s: %.2f%% success, status codes %v, errors %v", a.name, m.Success*100, m.StatusCodes, m.Errors)
		}
		s := Sample{Requests: int(m.Requests), Elapsed: elapsed, P50: m.Latencies.P50, P99: m.Latencies.P99,
			P999: m.Latencies.Quantile(0.999)}
		if rate > 0 && s.RPS() < 0.95*float64(rate) {
			return Sample{}, fmt.Errorf("%s: %.0f requests/s, below the fixed rate of %d: the target or the load side fell behind", a.name, s.RPS(), rate)
		}
		return s, nil
	}
}

// webhookSteadyRate is the fixed rate of reviews at which the webhook's latency is also measured:
// about a third of what one injector CPU answers back to back, so the review's own time, not the
// queue of a saturated injector, is what the percentiles show.
const webhookSteadyRate = 1000

// webhook measures reviews of pods with each container count at each concurrency, back to back,
// and the typical pod at webhookSteadyRate over 16 connections; the pod sizes (and the baseline
// injector, when there is one) interleaved round by round. It returns the results of the injector
// and of the baseline (nil without one), by containers and concurrency, and the fixed-rate ones.
func (b *bench) webhook(ctx context.Context, pods []int) (hook, base map[int]map[int]Result, steady []ArmResult, err error) {
	type injector struct {
		hook webhookTarget
		proc *proc
	}
	injectors := []injector{{b.hook, b.injector}}
	if b.baseInjector != nil {
		injectors = append(injectors, injector{b.baseHook, b.baseInjector})
	}
	out := []map[int]map[int]Result{{}, {}}
	var arms []arm
	for _, n := range pods {
		body, err := admissionReview(n)
		if err != nil {
			return nil, nil, nil, err
		}
		for i, in := range injectors {
			if err := in.hook.check(ctx, body); err != nil {
				return nil, nil, nil, err
			}
			arms = append(arms, arm{name: webhookRowName(n, i > 0), url: in.hook.url, tls: in.hook.tls, body: body, pid: in.proc.pid()})
			out[i][n] = map[int]Result{}
		}
	}
	for _, c := range b.cfg.webhookConn {
		logf("webhook, c=%d, %d rounds of %s...", c, b.cfg.rounds, b.cfg.duration)
		res, err := b.interleave(ctx, c, arms, b.vegeta(0))
		if err != nil {
			return nil, nil, nil, err
		}
		for k, r := range res {
			out[k%len(injectors)][pods[k/len(injectors)]][c] = r.Result
		}
	}
	logf("webhook, typical pod at a fixed %d reviews/s over %d connections, %d rounds of %s...", webhookSteadyRate, webhookSteadyConns, b.cfg.rounds, b.cfg.duration)
	if steady, err = b.fixedRate(ctx, webhookSteadyConns, arms[:len(injectors)], webhookSteadyRate); err != nil {
		return nil, nil, nil, err
	}
	if len(injectors) == 1 {
		out[1] = nil
	}
	return out[0], out[1], steady, nil
}

// webhookSteadyConns is the concurrency of the webhook targets.
const webhookSteadyConns = 16

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
