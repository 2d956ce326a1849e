package inject

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/podgate/podgate/internal/options"
)

// validPod is the one fixture the table tests tweak.
func validPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Annotations: map[string]string{AnnotationInject: "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "web", Image: "example/web:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		}}},
	}
}

func enabledNS(ann map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{LabelInjection: "enabled"}, Annotations: ann}}
}

// sidecarArgs parses the injected sidecar's arguments exactly as the sidecar will.
func sidecarArgs(t *testing.T, pod *corev1.Pod) *options.Options {
	t.Helper()
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		if c.Name == SidecarName {
			o, err := options.Parse(append(c.Args, "--cookie-secret=0123456789abcdef"), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatalf("sidecar args %q do not parse: %v", c.Args, err)
			}
			return o
		}
	}
	t.Fatal("no sidecar")
	return nil
}

func TestPrecedencePodOverNamespaceOverConfig(t *testing.T) {
	cfg := testConfig()
	pod := validPod()
	pod.Annotations[AnnotationClientID] = "from-pod"
	ns := enabledNS(map[string]string{
		AnnotationClientID:     "from-namespace",
		AnnotationIssuerURL:    "https://ns.example.com/realms/ns",
		AnnotationAllowedRoles: "ns-role",
		AnnotationInject:       "false", // not a namespace key: must be ignored
	})
	out, rep, err := Inject(pod, ns, cfg)
	if err != nil || rep.Skipped != "" {
		t.Fatalf("Inject: %v %+v", err, rep)
	}
	o := sidecarArgs(t, out)
	if o.ClientID != "from-pod" || o.IssuerURL != "https://ns.example.com/realms/ns" || !slices.Equal(o.AllowedRoles, []string{"ns-role"}) {
		t.Fatalf("precedence wrong: client %q issuer %q roles %q", o.ClientID, o.IssuerURL, o.AllowedRoles)
	}
	// Without namespace annotations the injector config applies.
	out, _, err = Inject(validPod(), enabledNS(nil), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if o := sidecarArgs(t, out); o.ClientID != cfg.ClientID || o.IssuerURL != cfg.IssuerURL {
		t.Fatalf("config defaults not applied: %+v", o)
	}
}

func TestSkipReasons(t *testing.T) {
	cfg := testConfig()
	injected, _, err := Inject(validPod(), nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sidecarNoStatus := injected.DeepCopy()
	delete(sidecarNoStatus.Annotations, AnnotationStatus)
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		ns   *corev1.Namespace
		want SkipReason
	}{
		{"no opt-in", func() *corev1.Pod { p := validPod(); p.Annotations = nil; return p }(), enabledNS(nil), SkipNotOptedIn},
		{"label false", func() *corev1.Pod {
			p := validPod()
			p.Annotations = nil
			p.Labels = map[string]string{LabelInject: "false"}
			return p
		}(), enabledNS(nil), SkipNotOptedIn},
		{"opted out", func() *corev1.Pod { p := validPod(); p.Annotations[AnnotationInject] = "false"; return p }(), enabledNS(nil), SkipOptedOut},
		{"already injected", injected, enabledNS(nil), SkipAlreadyInjected},
		{"sidecar without status", sidecarNoStatus, enabledNS(nil), SkipAlreadyInjected},
		{"namespace not enabled", validPod(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, SkipNamespaceNotEnable},
		{"kube-system", validPod(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", Labels: map[string]string{LabelInjection: "enabled"}}}, SkipSystemNamespace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rep, err := Inject(tc.pod, tc.ns, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Skipped != tc.want || out != tc.pod {
				t.Fatalf("skipped = %q (same pod %v), want %q", rep.Skipped, out == tc.pod, tc.want)
			}
			if tc.want.Explain() == string(tc.want) {
				t.Fatalf("reason %q has no explanation", tc.want)
			}
		})
	}
}

func TestInjectDoesNotModifyInput(t *testing.T) {
	pod := validPod()
	pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{}}}
	pod.Spec.Containers[0].LivenessProbe.TCPSocket.Port.StrVal = "http"
	pod.Spec.Containers[0].LivenessProbe.TCPSocket.Port.Type = 1
	before := pod.DeepCopy()
	cfg := testConfig()
	cfgBefore := *cfg
	if _, _, err := Inject(pod, enabledNS(nil), cfg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pod, before) {
		t.Fatal("Inject modified its input pod")
	}
	if !reflect.DeepEqual(*cfg, cfgBefore) {
		t.Fatal("Inject modified its config")
	}
}

// TestProblemsNameTheirKey is the table around the valid fixture: each tweak must be reported with
// its key and value, through *Error.
func TestProblemsNameTheirKey(t *testing.T) {
	for _, tc := range []struct {
		key, value, want string
	}{
		{AnnotationCookieSecure, "yes", "is not true or false"},
		{AnnotationPassAccessToken, "TRUE", "is not true or false"},
		{AnnotationNativeSidecar, "on", "is not true or false"},
		{AnnotationPorts, "9999", "matches no containerPort"},
		{AnnotationPorts, " , ", "is empty"},
		{AnnotationSecret, "UPPER", "is not a Secret name"},
		{AnnotationImage, "has space", "is not an image reference"},
		{AnnotationAdminPort, "0", "is not a port number"},
		{AnnotationAdminPort, "8080", "collides with a port"},
		{AnnotationCPURequest, "-1", "is not a positive quantity"},
		{AnnotationMemoryLimit, "1Ki", ""}, // request 32Mi above it: reported on the request
		{AnnotationSkipAuth, "GET public", "is not [METHOD ]/prefix"},
		{AnnotationIssuerURL, "not a url", "--issuer-url"},
		{AnnotationDiscoveryURL, "https://kc/realms/x?q=1", "--discovery-url"},
		{AnnotationClientID, "", "is required"},
		{AnnotationAllowedGroups, "/", "--allowed-group"},
		{AnnotationAllowedEmailDomains, "a b", "--allowed-email-domain"},
		{AnnotationInject, "True", "is not true or false"},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			pod := validPod()
			pod.Annotations[tc.key] = tc.value
			_, _, err := Inject(pod, enabledNS(nil), testConfig())
			e, ok := AsError(err)
			if !ok {
				t.Fatalf("want *Error, got %v", err)
			}
			key := tc.key
			if tc.key == AnnotationMemoryLimit {
				key = AnnotationMemoryRequest
			}
			for _, p := range e.Problems {
				if p.Key == key && strings.Contains(p.Error(), tc.want) {
					if !strings.Contains(p.Error(), `"`+key+`"`) {
						t.Fatalf("message does not name the key: %s", p.Error())
					}
					return
				}
			}
			t.Fatalf("no problem for %s containing %q in:\n%v", key, tc.want, err)
		})
	}
}

func TestProbeNamesStayValid(t *testing.T) {
	long := strings.Repeat("abcdefghij", 6) + "xyz" // 63, the longest container name
	seen := map[string]bool{}
	for _, c := range []string{long, long[:62] + "q", "a", "app"} {
		for _, s := range []string{"live", "ready", "start"} {
			n := probeName(c, s)
			if _, err := options.ParseProbe(n + "=tcp://127.0.0.1:1"); err != nil {
				t.Fatalf("probe name %q invalid: %v", n, err)
			}
			if seen[n] {
				t.Fatalf("probe name %q not unique", n)
			}
			seen[n] = true
		}
	}
}

func TestPortNamesStayValidAndUnique(t *testing.T) {
	pod := validPod()
	pod.Spec.Containers[0].Ports = nil
	for _, n := range []string{"aaaaaaaaaaaaaaa", "app-aaaaaaaaaaa", "app-aaaaaaaaa-2", "b", "app-b", "c-"} {
		if len(validation.IsValidPortName(n)) > 0 {
			continue
		}
		pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports, corev1.ContainerPort{Name: n, ContainerPort: int32(8000 + len(pod.Spec.Containers[0].Ports))})
	}
	pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 9000})
	out, _, err := Inject(pod, nil, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	numbers := map[int32]bool{}
	for _, c := range append(out.Spec.InitContainers, out.Spec.Containers...) {
		for _, p := range c.Ports {
			if p.Name != "" {
				if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
					t.Errorf("port name %q: %v", p.Name, errs)
				}
				if names[p.Name] {
					t.Errorf("port name %q used twice", p.Name)
				}
				names[p.Name] = true
			}
			if numbers[p.ContainerPort] {
				t.Errorf("port number %d used twice", p.ContainerPort)
			}
			numbers[p.ContainerPort] = true
		}
	}
}

// TestRestrictedStaysRestricted checks the injected pod with the Pod Security Admission library
// itself: a pod that met the restricted level before injection meets it after.
func TestRestrictedStaysRestricted(t *testing.T) {
	ev, err := policy.NewEvaluator(policy.DefaultChecks())
	if err != nil {
		t.Fatal(err)
	}
	lv := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	check := func(what string, pod *corev1.Pod) {
		t.Helper()
		for _, r := range ev.EvaluatePod(lv, &pod.ObjectMeta, &pod.Spec) {
			if !r.Allowed {
				t.Errorf("%s: restricted check %s failed: %s", what, r.ForbiddenReason, r.ForbiddenDetail)
			}
		}
	}
	yes, no := true, false
	pod := validPod()
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: &yes, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: &no, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	check("input", pod)
	// Capture cni (the default, native sidecar) adds nothing to the pod that restricted forbids;
	// a regular sidecar container goes with capture none here (cni needs the native sidecar, init
	// needs NET_ADMIN).
	for native, mode := range map[string]string{"true": "cni", "false": "none"} {
		p := pod.DeepCopy()
		p.Annotations[AnnotationNativeSidecar] = native
		p.Annotations[AnnotationCapture] = mode
		out, _, err := Inject(p, nil, testConfig())
		if err != nil {
			t.Fatal(err)
		}
		check("injected, native="+native, out)
	}
	// Even a pod with no pod-level security context gets a sidecar that is restricted on its own.
	out, _, err := Inject(validPod(), nil, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	sc := out.Spec.InitContainers[0].SecurityContext
	if !*sc.RunAsNonRoot || *sc.RunAsUser != 65532 || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem ||
		sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Fatalf("sidecar security context not restricted: %+v", sc)
	}
}

func TestStatusRecordsOriginalProbes(t *testing.T) {
	pod := validPod()
	orig := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 8080}}, PeriodSeconds: 3}
	pod.Spec.Containers[0].ReadinessProbe = orig
	out, rep, err := Inject(pod, nil, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := json.Unmarshal([]byte(out.Annotations[AnnotationStatus]), &st); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&st, rep.Status) || len(st.Probes) != 1 || !reflect.DeepEqual(st.Probes[0].Original, orig) {
		t.Fatalf("status does not record the original probe: %+v", st)
	}
	got := out.Spec.Containers[0].ReadinessProbe
	if got.HTTPGet == nil || got.GRPC != nil || got.HTTPGet.Path != "/probe/web-ready" || got.HTTPGet.Port.IntVal != 4190 || got.PeriodSeconds != 3 {
		t.Fatalf("probe not rewritten: %+v", got)
	}
	o := sidecarArgs(t, out)
	if len(o.Probes) != 1 || o.Probes[0].Target.String() != "grpc://127.0.0.1:8080" {
		t.Fatalf("sidecar probe args: %+v", o.Probes)
	}
}

// TestSecretsOnlyAsEnvFromSecret also checks the one other environment variable: the sidecar's own
// memory limit, from which it sets the Go soft limit (a hostile client must not push it past it).
func TestSecretsOnlyAsEnvFromSecret(t *testing.T) {
	out, _, err := Inject(validPod(), nil, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	sc := out.Spec.InitContainers[0]
	for _, a := range sc.Args {
		if strings.Contains(a, "secret") {
			t.Fatalf("secret flag in args: %q", a)
		}
	}
	want := map[string]bool{options.EnvVar(options.FlagClientSecret): true, options.EnvVar(options.FlagCookieSecret): false}
	for _, e := range sc.Env {
		if e.Name == options.EnvVar(options.FlagMemoryLimit) {
			if r := e.ValueFrom.ResourceFieldRef; r == nil || r.ContainerName != SidecarName || r.Resource != "limits.memory" {
				t.Fatalf("memory limit env %+v, want the sidecar's limits.memory through the downward API", e)
			}
			continue
		}
		opt, ok := want[e.Name]
		if !ok || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || *e.ValueFrom.SecretKeyRef.Optional != opt || e.ValueFrom.SecretKeyRef.Name != "podgate" {
			t.Fatalf("env %+v", e)
		}
		delete(want, e.Name)
	}
	if len(want) != 0 {
		t.Fatalf("missing env %v", want)
	}
}

func TestConfig(t *testing.T) {
	c, err := ParseConfig([]byte("issuerURL: https://kc.example.com/realms/x\nnativeSidecar: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.IssuerURL == "" || c.NativeSidecar || !c.CookieSecure || c.AdminPort != 4190 || c.RunAsUser != 65532 {
		t.Fatalf("config = %+v", c)
	}
	if _, err := ParseConfig([]byte("issuerUrl: x\n")); err == nil || !strings.Contains(err.Error(), "issuerUrl") {
		t.Fatalf("misspelt key accepted: %v", err)
	}
	_, err = ParseConfig([]byte("adminPort: 0\nimagePullPolicy: Sometimes\nrunAsUser: 0\n"))
	for _, f := range []string{"adminPort", "imagePullPolicy", "runAsUser"} {
		if err == nil || !strings.Contains(err.Error(), `"`+f+`"`) {
			t.Errorf("error does not name %s: %v", f, err)
		}
	}
	if DefaultConfig().Image != "ghcr.io/podgate/sidecar:dev" {
		t.Fatalf("default image %q", DefaultConfig().Image)
	}
}

// TestREADMEAnnotationTable fails when the README's copy of the table drifts from Annotations.
func TestREADMEAnnotationTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), MarkdownTable()) {
		t.Fatal("README.md's annotation table differs from `injector annotations`; paste its output into the README")
	}
	for _, a := range Annotations {
		if !strings.HasPrefix(a.Key, Prefix) || a.Description == "" || a.Valid == "" || a.Default == "" {
			t.Errorf("annotation %q is not fully documented", a.Key)
		}
	}
}

// TestDuplicatedPortsDenied: a pod declaring a port hundreds of times, with podgate.io/ports
// repeating it, once made the mutation cubic (seconds per admission at a few thousand); it is now
// linear, and too many or duplicated protected ports are a clear denial naming what to change.
func TestDuplicatedPortsDenied(t *testing.T) {
	dupPod := func(n int, tokens string) *corev1.Pod {
		pod := validPod()
		pod.Spec.Containers[0].Ports = nil
		for i := range n {
			pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 8080 + int32(i%2)})
		}
		if tokens != "" {
			pod.Annotations[AnnotationPorts] = tokens
		}
		return pod
	}
	for name, tc := range map[string]struct {
		pod       *corev1.Pod
		key, want string
	}{
		"duplicates listed":             {dupPod(600, strings.Repeat("8080,", 600)+"8081"), AnnotationPorts, "selects 600 ports, more than the 64"},
		"duplicates, all ports":         {dupPod(600, ""), AnnotationPorts, "selects 600 ports, more than the 64"},
		"two ports, one declared twice": {dupPod(4, "8080"), "spec.containers[web].ports[2].containerPort", "declared more than once"},
		"many distinct ports": {func() *corev1.Pod {
			pod := validPod()
			for i := range 100 {
				pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 9000 + int32(i)})
			}
			return pod
		}(), AnnotationPorts, "selects 101 ports, more than the 64"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := Inject(tc.pod, enabledNS(nil), testConfig())
			e, ok := AsError(err)
			if !ok {
				t.Fatalf("want a denial, got %v", err)
			}
			for _, p := range e.Problems {
				if p.Key == tc.key && strings.Contains(p.Msg, tc.want) {
					return
				}
			}
			t.Fatalf("no problem for %s containing %q in:\n%v", tc.key, tc.want, err)
		})
	}
	// Repeating a port in the annotation is harmless on its own.
	pod := validPod()
	pod.Annotations[AnnotationPorts] = strings.Repeat("http,8080,", 1000) + "http"
	if _, rep, err := Inject(pod, enabledNS(nil), testConfig()); err != nil || len(rep.Status.Ports) != 1 {
		t.Fatalf("repeated token: %v", err)
	}
}

// TestProbeTargetsAreWhatTheSidecarParses: Inject builds the sidecar's probe and proxy options as
// typed values; the arguments rendered from them must parse back, in the sidecar, into the same
// values, and the status must record the same targets.
func TestProbeTargetsAreWhatTheSidecarParses(t *testing.T) {
	svc := "grpc.health.v1.Health"
	for name, probe := range map[string]*corev1.Probe{
		"http path":       {ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}},
		"http relative":   {ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "healthz", Port: intstr.FromInt32(8080)}}},
		"http query":      {ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/check?deep=1&x=%2F", Port: intstr.FromInt32(8080)}}},
		"http escaped":    {ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/a%2Fb/c d", Port: intstr.FromInt32(8080)}}},
		"https":           {ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080), Scheme: corev1.URISchemeHTTPS}}},
		"tcp":             {ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}}},
		"grpc":            {ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 8080}}},
		"grpc service":    {ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 8080, Service: &svc}}},
		"unprotected num": {ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9999)}}},
	} {
		t.Run(name, func(t *testing.T) {
			pod := validPod()
			pod.Spec.Containers[0].ReadinessProbe = probe
			out, rep, err := Inject(pod, nil, testConfig())
			if err != nil {
				t.Fatal(err)
			}
			o := sidecarArgs(t, out)
			var want []options.Probe
			for _, p := range rep.Status.Probes {
				want = append(want, p.option())
			}
			if name == "unprotected num" {
				if len(want) != 0 || len(o.Probes) != 0 {
					t.Fatalf("a probe of an unprotected port was rewritten: %+v", rep.Status.Probes)
				}
				return
			}
			// Compared as text: the sidecar's URL is the parse of the text, which drops the raw
			// form of a path that is not a valid encoding of it.
			if len(want) != 1 || len(o.Probes) != 1 || o.Probes[0].String() != want[0].String() {
				t.Fatalf("sidecar parses probes %+v, injector built %+v", o.Probes, want)
			}
			var st Status
			if err := json.Unmarshal([]byte(out.Annotations[AnnotationStatus]), &st); err != nil {
				t.Fatal(err)
			}
			if got := st.Probes[0].Target.String(); got != want[0].Target.String() {
				t.Fatalf("status target %q, sidecar target %q", got, want[0].Target)
			}
			if !reflect.DeepEqual(o.Proxies, []options.Proxy{rep.Status.Ports[0].proxy()}) {
				t.Fatalf("sidecar parses proxies %+v, status records %+v", o.Proxies, rep.Status.Ports)
			}
		})
	}
}

// TestBadProbePathIsAProblem: a probe path that is no request URI is reported on the probe, not
// passed to the sidecar.
func TestBadProbePathIsAProblem(t *testing.T) {
	pod := validPod()
	pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/a%zz", Port: intstr.FromInt32(8080)}}}
	_, _, err := Inject(pod, nil, testConfig())
	e, ok := AsError(err)
	if !ok || len(e.Problems) != 1 || e.Problems[0].Key != "spec.containers[web].livenessProbe" || e.Problems[0].Value != "/a%zz" {
		t.Fatalf("error = %v", err)
	}
}

// TestOptionErrorsNameTheAnnotation: a sidecar flag problem lands on the annotation that sets the
// flag; a missing value names no source and says where to set it.
func TestOptionErrorsNameTheAnnotation(t *testing.T) {
	pod := validPod()
	pod.Annotations[AnnotationAllowedRoles] = "a:b:c"
	cfg := testConfig()
	cfg.ClientID = ""
	_, _, err := Inject(pod, enabledNS(map[string]string{AnnotationIssuerURL: "ftp://x"}), cfg)
	e, ok := AsError(err)
	if !ok {
		t.Fatalf("error = %v", err)
	}
	got := map[string]Problem{}
	for _, p := range e.Problems {
		got[p.Key] = p
	}
	if p := got[AnnotationAllowedRoles]; p.Source != fromPod || !strings.Contains(p.Msg, "--"+options.FlagAllowedRole) {
		t.Errorf("allowed roles problem = %+v", p)
	}
	if p := got[AnnotationIssuerURL]; p.Source != fromNamespace || !strings.Contains(p.Msg, "not an absolute") {
		t.Errorf("issuer problem = %+v", p)
	}
	if p := got[AnnotationClientID]; p.Source != "" || !strings.Contains(p.Msg, "is required; set the annotation") {
		t.Errorf("client id problem = %+v", p)
	}
	if len(e.Problems) != 3 {
		t.Errorf("problems = %v", e.Problems)
	}
}
