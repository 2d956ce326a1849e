package inject

import (
	"errors"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/podgate/podgate/internal/capture"
	"github.com/podgate/podgate/internal/version"
)

// Config is the injector's own configuration: the defaults every injected pod starts from before
// namespace and pod annotations override them. It is read from a YAML file (a mounted ConfigMap)
// whose keys are the json names below.
type Config struct {
	// Image is the sidecar image; default ghcr.io/podgate/sidecar:<injector version>, so an
	// injector injects the sidecar it was released with.
	Image string `json:"image"`
	// ImagePullPolicy of the sidecar; default IfNotPresent.
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy"`
	// IssuerURL, DiscoveryURL and ClientID are the defaults of the annotations of the same name.
	IssuerURL    string `json:"issuerURL"`
	DiscoveryURL string `json:"discoveryURL"`
	ClientID     string `json:"clientID"`
	// SecretName is the default Secret (in the pod's namespace) holding cookie-secret and
	// client-secret; default "podgate".
	SecretName string `json:"secretName"`
	// NativeSidecar places the sidecar as a native sidecar (default true; needs Kubernetes ≥ 1.29).
	NativeSidecar bool `json:"nativeSidecar"`
	// CookieSecure is the default of podgate.io/cookie-secure (default true).
	CookieSecure bool `json:"cookieSecure"`
	// Resources of the sidecar; annotations override single values.
	Resources corev1.ResourceRequirements `json:"resources"`
	// ProxyPortBase is the first port number tried for the sidecar's proxy listeners (default
	// 4180); numbers used anywhere in the pod are skipped.
	ProxyPortBase int32 `json:"proxyPortBase"`
	// AdminPort is the sidecar's admin port (default 4190).
	AdminPort int32 `json:"adminPort"`
	// RunAsUser and RunAsGroup of the sidecar (default 65532, the distroless "nonroot" user).
	RunAsUser  int64 `json:"runAsUser"`
	RunAsGroup int64 `json:"runAsGroup"`
	// Capture is the default of podgate.io/capture (default cni).
	Capture capture.Mode `json:"capture"`
	// LogLevel and LogFormat of the sidecar (default info, json).
	LogLevel  string `json:"logLevel"`
	LogFormat string `json:"logFormat"`
}

// DefaultSidecarImage is the image injected when the configuration names none.
func DefaultSidecarImage() string { return "ghcr.io/podgate/sidecar:" + version.Version }

// DefaultConfig returns the configuration used for every field the file leaves out.
func DefaultConfig() Config {
	return Config{
		Image:           DefaultSidecarImage(),
		ImagePullPolicy: corev1.PullIfNotPresent,
		SecretName:      "podgate",
		NativeSidecar:   true,
		CookieSecure:    true,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("32Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceMemory: resource.MustParse("128Mi"),
			},
		},
		ProxyPortBase: 4180,
		AdminPort:     4190,
		RunAsUser:     65532,
		RunAsGroup:    65532,
		Capture:       capture.ModeCNI,
		LogLevel:      "info",
		LogFormat:     "json",
	}
}

// ParseConfig reads YAML over the defaults. Unknown keys are errors: a misspelt key silently
// ignored would leave a default in place that the operator thinks they changed.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return c, fmt.Errorf("injector config: %w", err)
	}
	// sigs.k8s.io/json is case-sensitive, unlike encoding/json: "issuerUrl" is an error too.
	strict, err := kjson.UnmarshalStrict(j, &c)
	if err != nil {
		return c, fmt.Errorf("injector config: %w", err)
	}
	if len(strict) > 0 {
		return c, fmt.Errorf("injector config: %w", errors.Join(strict...))
	}
	return c, c.Validate()
}

// LoadConfig reads the configuration file at path; an empty path means the defaults.
func LoadConfig(path string) (Config, error) {
	if path == "" {
		c := DefaultConfig()
		return c, c.Validate()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("injector config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate reports every problem of the configuration's own fields. The OIDC values are checked
// per pod, after annotations had their say (a config without an issuer is fine when every
// namespace sets one).
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("injector config %q: %s", field, fmt.Sprintf(format, a...)))
	}
	if c.Image == "" {
		bad("image", "is empty")
	}
	switch c.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		bad("imagePullPolicy", "%q is not Always, IfNotPresent or Never", c.ImagePullPolicy)
	}
	if c.ProxyPortBase < 1 || c.ProxyPortBase > 65535 {
		bad("proxyPortBase", "%d is not 1-65535", c.ProxyPortBase)
	}
	if c.AdminPort < 1 || c.AdminPort > 65535 {
		bad("adminPort", "%d is not 1-65535", c.AdminPort)
	}
	if _, err := capture.ParseMode(string(c.Capture)); err != nil {
		bad("capture", "%q is not cni, init or none", c.Capture)
	}
	if c.RunAsUser <= 0 {
		bad("runAsUser", "%d must be a non-root user id", c.RunAsUser)
	}
	if c.RunAsGroup <= 0 {
		bad("runAsGroup", "%d must be a non-root group id", c.RunAsGroup)
	}
	return errors.Join(errs...)
}
