package inject

import (
	"errors"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/podgate/podgate/internal/capture"
	"github.com/podgate/podgate/internal/options"
)

const (
	fromPod       = "pod"
	fromNamespace = "namespace"
	fromConfig    = "injector config"
)

// settings is one pod's configuration after pod annotations, namespace annotations and the
// injector config were merged and parsed.
type settings struct {
	// opts holds the OIDC and policy options; proxies, probes and the admin address are added
	// once the ports are known.
	opts  options.Options
	ports []string // podgate.io/ports tokens; nil means every TCP port
	// appProtocols maps a port name or number (podgate.io/app-protocols) to its app protocol.
	appProtocols map[string]string
	secret       string
	image        string
	native       bool
	capture      capture.Mode
	adminPort    int32
	resources    corev1.ResourceRequirements
	// source records where each key's value came from, for error messages.
	source map[string]string
}

type lookup struct {
	pod, ns map[string]string
	source  map[string]string
}

// get returns the pod's value, else the namespace's.
func (l lookup) get(key string) (string, bool) {
	if v, ok := l.pod[key]; ok {
		l.source[key] = fromPod
		return v, true
	}
	if v, ok := l.ns[key]; ok {
		l.source[key] = fromNamespace
		return v, true
	}
	return "", false
}

// str returns the annotation's value or the config default.
func (l lookup) str(key, def string) string {
	if v, ok := l.get(key); ok {
		return strings.TrimSpace(v)
	}
	if def != "" {
		l.source[key] = fromConfig
	}
	return def
}

// list splits a comma-separated annotation, dropping blanks.
func (l lookup) list(key string) []string {
	v, ok := l.get(key)
	if !ok {
		return nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (l lookup) boolean(key string, def bool, ps *problems) bool {
	v, ok := l.get(key)
	if !ok {
		return def
	}
	switch strings.TrimSpace(v) {
	case "true":
		return true
	case "false":
		return false
	}
	ps.add(key, l.source[key], v, "is not true or false")
	return def
}

func (l lookup) quantity(key string, def resource.Quantity, hasDef bool, ps *problems) (resource.Quantity, bool) {
	v, ok := l.get(key)
	if !ok {
		return def, hasDef
	}
	q, err := resource.ParseQuantity(strings.TrimSpace(v))
	if err != nil || q.Sign() <= 0 {
		ps.add(key, l.source[key], v, "is not a positive quantity such as 50m, 64Mi or 1")
		return def, hasDef
	}
	return q, true
}

// resolve merges and parses every configuration annotation. Problems are collected, not returned
// early, so the user sees all of them at once.
func resolve(pod *corev1.Pod, ns *corev1.Namespace, cfg *Config, ps *problems) *settings {
	l := lookup{pod: pod.Annotations, source: map[string]string{}}
	if ns != nil {
		l.ns = make(map[string]string, len(nsKeys))
		for _, k := range nsKeys {
			if v, ok := ns.Annotations[k]; ok {
				l.ns[k] = v
			}
		}
	}
	s := &settings{source: l.source}
	o := options.Defaults()
	o.IssuerURL = l.str(AnnotationIssuerURL, cfg.IssuerURL)
	o.DiscoveryURL = l.str(AnnotationDiscoveryURL, cfg.DiscoveryURL)
	o.ClientID = l.str(AnnotationClientID, cfg.ClientID)
	o.AllowedRoles = l.list(AnnotationAllowedRoles)
	o.AllowedGroups = l.list(AnnotationAllowedGroups)
	o.AllowedEmailDomains = l.list(AnnotationAllowedEmailDomains)
	o.Audiences = l.list(AnnotationAudiences)
	o.CookieSecure = l.boolean(AnnotationCookieSecure, cfg.CookieSecure, ps)
	o.PassAccessToken = l.boolean(AnnotationPassAccessToken, false, ps)
	o.LogLevel, o.LogFormat = cfg.LogLevel, cfg.LogFormat
	for _, r := range l.list(AnnotationSkipAuth) {
		rule, err := options.ParseSkipRule(r)
		if err != nil {
			ps.add(AnnotationSkipAuth, l.source[AnnotationSkipAuth], r, "is not [METHOD ]/prefix or [METHOD ]=/exact: %v", err)
			continue
		}
		o.SkipAuth = append(o.SkipAuth, rule)
	}
	s.opts = o

	if _, ok := l.get(AnnotationPorts); ok {
		s.ports = l.list(AnnotationPorts)
		if len(s.ports) == 0 {
			ps.add(AnnotationPorts, l.source[AnnotationPorts], "", "is empty; list port names or numbers, or remove it to protect every TCP port")
		}
	}

	if v, ok := pod.Annotations[AnnotationAppProtocols]; ok {
		l.source[AnnotationAppProtocols] = fromPod
		s.appProtocols = map[string]string{}
		for _, tok := range l.list(AnnotationAppProtocols) {
			port, proto, ok := strings.Cut(tok, "=")
			port, proto = strings.TrimSpace(port), strings.TrimSpace(proto)
			if !ok || port == "" || proto == "" || strings.ContainsAny(proto, " \t") {
				ps.add(AnnotationAppProtocols, fromPod, tok, "is not PORT=PROTOCOL, e.g. grpc=kubernetes.io/h2c or db=postgresql")
				continue
			}
			if _, dup := s.appProtocols[port]; dup {
				ps.add(AnnotationAppProtocols, fromPod, tok, "names port %q twice", port)
				continue
			}
			s.appProtocols[port] = proto
		}
		if len(s.appProtocols) == 0 && strings.TrimSpace(v) == "" {
			ps.add(AnnotationAppProtocols, fromPod, "", "is empty; list PORT=PROTOCOL pairs, or remove it")
		}
	}

	s.secret = l.str(AnnotationSecret, cfg.SecretName)
	if s.secret == "" {
		ps.add(AnnotationSecret, "", "", "is required: name the Secret holding cookie-secret (and client-secret), or set secretName in the injector config")
	} else if errs := validation.IsDNS1123Subdomain(s.secret); len(errs) > 0 {
		ps.add(AnnotationSecret, l.source[AnnotationSecret], s.secret, "is not a Secret name: %s", strings.Join(errs, "; "))
	}

	s.image = l.str(AnnotationImage, cfg.Image)
	if s.image == "" || strings.ContainsAny(s.image, " \t\r\n") {
		ps.add(AnnotationImage, l.source[AnnotationImage], s.image, "is not an image reference")
	}
	s.native = l.boolean(AnnotationNativeSidecar, cfg.NativeSidecar, ps)
	s.capture = cfg.Capture
	if v, ok := l.get(AnnotationCapture); ok {
		if m, err := capture.ParseMode(v); err != nil {
			ps.add(AnnotationCapture, l.source[AnnotationCapture], v, "is not cni, init or none")
		} else {
			s.capture = m
		}
	}

	s.adminPort = cfg.AdminPort
	if v, ok := l.get(AnnotationAdminPort); ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > 65535 {
			ps.add(AnnotationAdminPort, l.source[AnnotationAdminPort], v, "is not a port number 1-65535")
		} else {
			s.adminPort = int32(n)
		}
	}

	s.resources = *cfg.Resources.DeepCopy()
	setQ := func(key string, list *corev1.ResourceList, name corev1.ResourceName) {
		def, hasDef := (*list)[name]
		q, ok := l.quantity(key, def, hasDef, ps)
		if !ok {
			return
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[name] = q
	}
	setQ(AnnotationCPURequest, &s.resources.Requests, corev1.ResourceCPU)
	setQ(AnnotationCPULimit, &s.resources.Limits, corev1.ResourceCPU)
	setQ(AnnotationMemoryRequest, &s.resources.Requests, corev1.ResourceMemory)
	setQ(AnnotationMemoryLimit, &s.resources.Limits, corev1.ResourceMemory)
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := s.resources.Requests[name]
		if lim, ok := s.resources.Limits[name]; ok && hasReq && req.Cmp(lim) > 0 {
			key := AnnotationCPURequest
			if name == corev1.ResourceMemory {
				key = AnnotationMemoryRequest
			}
			ps.add(key, l.source[key], req.String(), "is above the %s limit %s", name, lim.String())
		}
	}
	return s
}

// flagKeys maps the sidecar flags the injector renders to the annotation that sets them, so an
// error from options validation names what the user can change.
var flagKeys = map[string]string{
	options.FlagIssuerURL:          AnnotationIssuerURL,
	options.FlagDiscoveryURL:       AnnotationDiscoveryURL,
	options.FlagClientID:           AnnotationClientID,
	options.FlagAllowedRole:        AnnotationAllowedRoles,
	options.FlagAllowedGroup:       AnnotationAllowedGroups,
	options.FlagAllowedEmailDomain: AnnotationAllowedEmailDomains,
	options.FlagAudience:           AnnotationAudiences,
	options.FlagSkipAuth:           AnnotationSkipAuth,
	options.FlagProxy:              AnnotationPorts,
	options.FlagAdminAddr:          AnnotationAdminPort,
	options.FlagCookieSecure:       AnnotationCookieSecure,
}

// addOptionErrors turns the sidecar options' validation errors (each an *options.FlagError) into
// problems naming the annotation behind each flag.
func (s *settings) addOptionErrors(err error, ps *problems) {
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var fe *options.FlagError
		if !errors.As(e, &fe) {
			ps.add("sidecar options", "", "", "%v", e)
			continue
		}
		key, ok := flagKeys[fe.Flag]
		if !ok {
			key = "--" + fe.Flag
		}
		src, msg := s.source[key], fe.Err.Error()
		// A missing value is set where the defaults live, so the message says where, and names
		// no source: the value came from nowhere.
		if errors.Is(fe.Err, options.ErrRequired) {
			msg += "; set the annotation on the pod or its namespace, or the injector config"
			src = ""
		}
		ps.add(key, src, "", "(sidecar flag --%s) %s", fe.Flag, msg)
	}
}
