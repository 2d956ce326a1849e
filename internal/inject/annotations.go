package inject

import (
	"strings"
)

// This file is the single list of every annotation and label podgate reads or writes. Each key is a
// documented constant, and Annotations below describes it for people: `injector annotations`
// prints that table and a test keeps the README's copy identical, so the documentation cannot drift.

// Prefix starts every podgate annotation and label.
const Prefix = "podgate.io/"

// Labels.
const (
	// LabelInjection on a Namespace enables injection there ("enabled"); the webhook's
	// namespaceSelector sends only such namespaces' pods to the injector.
	LabelInjection = Prefix + "injection"
	// LabelInject on a pod opts it in like AnnotationInject, and lets an objectSelector narrow
	// what the API server sends at all.
	LabelInject = Prefix + "inject"
)

// Annotations on pods (and pod templates). The configuration ones may also be set on the Namespace;
// the pod's value wins over the namespace's, which wins over the injector's configuration.
const (
	AnnotationInject              = Prefix + "inject"
	AnnotationPorts               = Prefix + "ports"
	AnnotationAppProtocols        = Prefix + "app-protocols"
	AnnotationIssuerURL           = Prefix + "issuer-url"
	AnnotationDiscoveryURL        = Prefix + "discovery-url"
	AnnotationClientID            = Prefix + "client-id"
	AnnotationSecret              = Prefix + "secret"
	AnnotationAllowedRoles        = Prefix + "allowed-roles"
	AnnotationAllowedGroups       = Prefix + "allowed-groups"
	AnnotationAllowedEmailDomains = Prefix + "allowed-email-domains"
	AnnotationSkipAuth            = Prefix + "skip-auth"
	AnnotationAudiences           = Prefix + "audiences"
	AnnotationCookieSecure        = Prefix + "cookie-secure"
	AnnotationPassAccessToken     = Prefix + "pass-access-token"
	AnnotationImage               = Prefix + "image"
	AnnotationCPURequest          = Prefix + "cpu-request"
	AnnotationCPULimit            = Prefix + "cpu-limit"
	AnnotationMemoryRequest       = Prefix + "memory-request"
	AnnotationMemoryLimit         = Prefix + "memory-limit"
	AnnotationNativeSidecar       = Prefix + "native-sidecar"
	AnnotationAdminPort           = Prefix + "admin-port"
	AnnotationCapture             = Prefix + "capture"
	// AnnotationStatus is written by the injector, never read from a namespace: it records what was
	// injected (ports taken over, original probes) so that a second pass changes nothing and
	// anyone can check what the probes were before the rewrite.
	AnnotationStatus = Prefix + "status"
)

// Where an annotation may be set.
const (
	onPod       = "pod"
	onPodAndNS  = "pod, namespace"
	onNamespace = "namespace (label)"
	written     = "written by the injector"
)

// Annotation documents one key.
type Annotation struct {
	Key         string
	Where       string
	Default     string
	Valid       string
	Description string
}

// Annotations documents every key, in the order the reference table lists them.
var Annotations = []Annotation{
	{LabelInjection, onNamespace, "—", "`enabled`", "Label on a Namespace: send its pods to the injector. kube-system, kube-public, kube-node-lease and the injector's namespace are never selected."},
	{AnnotationInject, onPod, "—", "`true`, `false`", "Opt the pod in or out. The label `podgate.io/inject=true` opts in too. Pods without either pass untouched."},
	{AnnotationPorts, onPodAndNS, "every TCP containerPort of the app containers that is not declared or named as something other than HTTP", "comma-separated port names or numbers", "Ports the sidecar takes over (at most 64, each number declared once). The sidecar gets each port's name on a new number; the app's port is renamed. Without it, ports named `tcp`, `tcp-*` or a well-known non-HTTP service (see Protocols) and ports whose app protocol is not HTTP are left alone, with a warning."},
	{AnnotationAppProtocols, onPod, "none", "comma-separated `PORT=PROTOCOL` (port name or number, protocol as a Service's `appProtocol`)", "The protocol each port speaks (a container port has no `appProtocol` field). `h2c`, `grpc`, `kubernetes.io/h2c`, `http2`: taken over, HTTP/2 to the app; `http`, `kubernetes.io/ws`: taken over, HTTP/1.1 (HTTP/2 for gRPC calls); anything else (`postgresql`, `tcp`, `https`, …): left alone, and denied in `podgate.io/ports`."},
	{AnnotationIssuerURL, onPodAndNS, "config `issuerURL`", "absolute http(s) URL", "OIDC issuer that tokens must carry (required somewhere)."},
	{AnnotationDiscoveryURL, onPodAndNS, "config `discoveryURL`", "absolute http(s) URL", "Where the sidecar fetches discovery and keys when it differs from the issuer (in-cluster Keycloak address)."},
	{AnnotationClientID, onPodAndNS, "config `clientID`", "non-empty", "OAuth client id; also the default accepted audience."},
	{AnnotationSecret, onPodAndNS, "config `secretName`", "Secret name (DNS subdomain)", "Secret in the pod's namespace with keys `cookie-secret` (required) and `client-secret` (optional, public clients have none). Never put a secret value in an annotation."},
	{AnnotationAllowedRoles, onPodAndNS, "none (any authenticated user)", "comma-separated `ROLE` or `CLIENT:ROLE`", "Keycloak realm or client roles; any one suffices."},
	{AnnotationAllowedGroups, onPodAndNS, "none", "comma-separated group names", "Groups; any one suffices."},
	{AnnotationAllowedEmailDomains, onPodAndNS, "none", "comma-separated domains or `*`", "Verified email domains allowed."},
	{AnnotationSkipAuth, onPodAndNS, "none", "comma-separated `[METHOD ]/prefix` or `[METHOD ]=/exact`", "Routes that need no login (identity headers are still stripped)."},
	{AnnotationAudiences, onPodAndNS, "the client id", "comma-separated audiences", "Accepted token audiences."},
	{AnnotationCookieSecure, onPodAndNS, "config `cookieSecure` (`true`)", "`true`, `false`", "Secure (HTTPS-only) session cookies; `false` only for plain-HTTP development."},
	{AnnotationPassAccessToken, onPodAndNS, "`false`", "`true`, `false`", "Send the access token to the app as `Authorization: Bearer`."},
	{AnnotationImage, onPodAndNS, "config `image`", "image reference", "Sidecar image."},
	{AnnotationCPURequest, onPodAndNS, "config `resources`", "quantity, e.g. `50m`", "Sidecar CPU request."},
	{AnnotationCPULimit, onPodAndNS, "config `resources`", "quantity", "Sidecar CPU limit."},
	{AnnotationMemoryRequest, onPodAndNS, "config `resources`", "quantity, e.g. `32Mi`", "Sidecar memory request."},
	{AnnotationMemoryLimit, onPodAndNS, "config `resources`", "quantity, e.g. `128Mi`", "Sidecar memory limit."},
	{AnnotationNativeSidecar, onPodAndNS, "config `nativeSidecar` (`true`)", "`true`, `false`", "Run the sidecar as a native sidecar (first initContainer, `restartPolicy: Always`, the app starts once it answers) or as a regular container."},
	{AnnotationAdminPort, onPodAndNS, "config `adminPort` (`4190`)", "1-65535, unused in the pod", "Sidecar admin port (`/ping`, `/ready`, `/metrics`, `/probe/<name>`), named `podgate-admin`."},
	{AnnotationCapture, onPodAndNS, "config `capture` (`cni`)", "`cni`, `init`, `none`", "How inbound traffic to the protected ports is captured in the pod's network namespace, so the pod IP and a numeric `targetPort` reach the sidecar too. `cni`: the podgate-cni node agent (pods stay Pod Security `restricted`; needs the native sidecar). `init`: a first init container with `NET_ADMIN` (denied where the namespace's Pod Security level forbids it). `none`: no capture; the app's own port stays reachable without authentication (admission warning)."},
	{AnnotationStatus, written, "—", "JSON", "What was injected: sidecar, ports taken over (with the protocol spoken to the app), ports left alone (with the reason), original probes. Its presence makes injection a no-op."},
}

// nsKeys are the annotations a Namespace may set as defaults for its pods.
var nsKeys = func() []string {
	var keys []string
	for _, a := range Annotations {
		if a.Where == onPodAndNS {
			keys = append(keys, a.Key)
		}
	}
	return keys
}()

// MarkdownTable renders Annotations as the reference table printed by `injector annotations` and
// copied into the README.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| Key | Where | Default | Valid values | Description |\n")
	b.WriteString("| --- | --- | --- | --- | --- |\n")
	for _, a := range Annotations {
		b.WriteString("| `" + a.Key + "` | " + a.Where + " | " + a.Default + " | " + a.Valid + " | " + a.Description + " |\n")
	}
	return b.String()
}
