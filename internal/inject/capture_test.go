package inject

import (
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/podgate/podgate/internal/capture"
)

// The status the injector writes is what the capture reads: for every mode, capture.ParseStatus
// of the annotation yields the mode, the check port and exactly the ports taken over, and the rule
// set redirects each of them. A port left alone as not HTTP (postgres) is never redirected: the
// sidecar could not serve it.
func TestStatusIsTheCaptureContract(t *testing.T) {
	for _, mode := range capture.Modes {
		pod := validPod()
		pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 9090},
			corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
			corev1.ContainerPort{Name: "postgres", ContainerPort: 5432})
		pod.Annotations[AnnotationCapture] = string(mode)
		out, rep, err := Inject(pod, nil, testConfig())
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		st, err := capture.ParseStatus(out.Annotations[AnnotationStatus])
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if st.Capture != mode || st.AdminPort != rep.Status.AdminPort || st.CheckPort != rep.Status.CaptureCheckPort {
			t.Fatalf("%s: capture reads %+v from %+v", mode, st, rep.Status)
		}
		if len(rep.Status.Unprotected) != 1 || rep.Status.Unprotected[0].Port != 5432 {
			t.Fatalf("%s: unprotected %+v, want postgres", mode, rep.Status.Unprotected)
		}
		if len(st.Ports) != len(rep.Status.Ports) || len(st.Ports) != 2 {
			t.Fatalf("%s: capture reads ports %v, injected %v", mode, st.Ports, rep.Status.Ports)
		}
		for i, p := range rep.Status.Ports {
			if st.Ports[i] != (capture.Port{AppPort: p.AppPort, ProxyPort: p.ProxyPort}) {
				t.Errorf("%s: port %d: capture reads %+v, injected %+v", mode, i, st.Ports[i], p)
			}
		}
		if mode == capture.ModeNone {
			if st.CheckPort != 0 {
				t.Errorf("none: check port %d", st.CheckPort)
			}
			continue
		}
		rs, err := capture.Rules(st)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		want := "tcp dport 8080 redirect to :4180\n\t\ttcp dport 9090 redirect to :4181\n\t\ttcp dport 4182 redirect to :4190"
		if !strings.Contains(rs.String(), want) || strings.Contains(rs.String(), "dport 53 ") || strings.Contains(rs.String(), "dport 5432 ") {
			t.Errorf("%s: rules\n%s", mode, rs)
		}
		if sp := sidecarOf(out).StartupProbe; sp.HTTPGet.Port.IntVal != st.CheckPort || sp.HTTPGet.Path != capture.CheckPath {
			t.Errorf("%s: sidecar startup probe %+v, want %s on the check port", mode, sp.HTTPGet, capture.CheckPath)
		}
	}
}

func sidecarOf(pod *corev1.Pod) *corev1.Container {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == SidecarName {
				return &cs[i]
			}
		}
	}
	return nil
}

// Init mode: denied where the namespace's Pod Security level forbids NET_ADMIN, allowed where it
// does not (or where the injector cannot know, offline).
func TestCaptureInitAndPodSecurity(t *testing.T) {
	for level, allowed := range map[string]bool{"restricted": false, "baseline": false, "privileged": true, "": true} {
		ns := enabledNS(nil)
		if level != "" {
			ns.Labels[LabelPSAEnforce] = level
		}
		pod := validPod()
		pod.Annotations[AnnotationCapture] = "init"
		out, _, err := Inject(pod, ns, testConfig())
		if !allowed {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) != 1 || e.Problems[0].Key != AnnotationCapture ||
				!strings.Contains(err.Error(), "NET_ADMIN") || !strings.Contains(err.Error(), `"`+level+`"`) {
				t.Errorf("level %q: err = %v, want a denial naming %s, NET_ADMIN and the level", level, err, AnnotationCapture)
			}
			continue
		}
		if err != nil {
			t.Fatalf("level %q: %v", level, err)
		}
		names := []string{}
		for _, c := range out.Spec.InitContainers {
			names = append(names, c.Name)
		}
		if !slices.Equal(names, []string{CaptureInitName, SidecarName}) {
			t.Fatalf("level %q: init containers %v", level, names)
		}
		sc := out.Spec.InitContainers[0].SecurityContext
		if !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN"}) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
			*sc.Privileged || *sc.AllowPrivilegeEscalation {
			t.Errorf("level %q: capture init security context %+v", level, sc)
		}
	}
}

// Mode none warns (kubectl shows it); the default, cni, does not, and with capture an unnamed
// port needs no warning either (a numeric targetPort is captured too).
func TestCaptureNoneWarns(t *testing.T) {
	unnamed := func() *corev1.Pod {
		p := validPod()
		p.Spec.Containers[0].Ports[0].Name = ""
		return p
	}
	_, rep, err := Inject(unnamed(), enabledNS(nil), testConfig())
	if err != nil || len(rep.Warnings) != 0 {
		t.Fatalf("cni: warnings %v, %v", rep.Warnings, err)
	}
	ns := enabledNS(map[string]string{AnnotationCapture: "none"})
	_, rep, err = Inject(unnamed(), ns, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Warnings) != 2 || !strings.Contains(strings.Join(rep.Warnings, "\n"), AnnotationCapture+" is none") {
		t.Fatalf("none: warnings %q", rep.Warnings)
	}
	cfg := testConfig()
	cfg.Capture = "iptables"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `"capture"`) {
		t.Fatalf("config capture iptables: %v", err)
	}
}
