package framework

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The routing setup: per-user IDE apps, a team's app, and one podgate proxy in front that picks the
// upstream by the caller's identity. The users are in test/e2e/testdata/podgate-realm.json.
const (
	RoutingNS        = "podgate-routing"
	RoutingProxyIP   = "198.19.0.90" // fixed: Keycloak's redirect URI names it
	RoutingURL       = "http://" + RoutingProxyIP
	RoutedUser       = "carol" // realm role ide-user: routed to ide-carol by the {user} template
	RoutedPass       = "carol-password"
	UppercaseUser    = "Dave" // created as "Dave"; Keycloak stores user names lower-cased
	UppercasePass    = "dave-password"
	DottedUser       = "frank.li" // role ide-user, but "frank.li" cannot be a DNS label: refused
	DottedPass       = "frank-li-password"
	TeamUser         = "erin" // group /team-a: routed to team-app
	TeamPass         = "erin-password"
	RoutingTeamGroup = "/team-a"
	RoutingIDERole   = "ide-user"
)

// RoutingApps are the echo apps behind the routing proxy, by name (also their Service's name).
var RoutingApps = []string{"ide-alice", "ide-carol", "ide-dave", "team-app"}

// RoutingHost is the in-cluster DNS name of a routing app's Service.
func RoutingHost(app string) string { return app + "." + RoutingNS + ".svc.cluster.local" }

// RoutingRules are the proxy's --route rules, in order: alice by name, team-a by group, and every
// ide-user to the IDE named after them (the templated rule needs cluster DNS).
func RoutingRules() []string {
	return []string{
		"user=" + AllowedUser + " => http://" + RoutingHost("ide-alice"),
		"group=" + RoutingTeamGroup + " => http://" + RoutingHost("team-app"),
		"role=" + RoutingIDERole + " => http://ide-{user}." + RoutingNS + ".svc.cluster.local",
	}
}

// DeployRouting deploys the apps (plain, not injected: the proxy is their only way in for the
// tests) and the routing proxy: the sidecar image standalone with --proxy :4180= and the rules,
// behind a Service on RoutingProxyIP port 80. Its admin port stays unexposed (PodGet reads it).
func (k *Kube) DeployRouting(ctx context.Context, issuer string) error {
	if err := k.EnsureNamespace(ctx, RoutingNS, map[string]string{LabelPSAEnforce: PSARestricted}); err != nil {
		return err
	}
	if err := k.EnsureSidecarSecret(ctx, RoutingNS); err != nil {
		return err
	}
	for _, name := range RoutingApps {
		app := EchoApp{Namespace: RoutingNS, Name: name, Replicas: 1}
		if _, err := k.Client.AppsV1().Deployments(RoutingNS).Create(ctx, app.Deployment(), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("deployment %s: %w", name, err)
		}
		if err := k.ensureService(ctx, app.Service()); err != nil {
			return err
		}
	}
	args := []string{
		"--issuer-url=" + issuer, "--client-id=" + ClientID, "--cookie-secure=false",
		"--proxy=:4180=", "--admin-addr=:4190", "--log-level=debug",
	}
	for _, r := range RoutingRules() {
		args = append(args, "--route="+r)
	}
	proxy := ForwardAuthSidecar(issuer)
	proxy.Name, proxy.Namespace = "routing-proxy", RoutingNS
	proxy.Spec.Selector.MatchLabels = map[string]string{"app": "routing-proxy"}
	proxy.Labels = proxy.Spec.Selector.MatchLabels
	proxy.Spec.Template.Labels = proxy.Spec.Selector.MatchLabels
	c := &proxy.Spec.Template.Spec.Containers[0]
	c.Args = args
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 4180}, {Name: "admin", ContainerPort: 4190}}
	if _, err := k.Client.AppsV1().Deployments(RoutingNS).Create(ctx, proxy, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("routing proxy: %w", err)
	}
	if err := k.ensureService(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "routing-proxy", Namespace: RoutingNS},
		Spec: corev1.ServiceSpec{
			ClusterIP: RoutingProxyIP, Selector: proxy.Spec.Selector.MatchLabels,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}); err != nil {
		return err
	}
	for _, name := range append([]string{"routing-proxy"}, RoutingApps...) {
		if _, err := k.WaitPodsReady(ctx, RoutingNS, "app="+name, 1, 3*time.Minute); err != nil {
			return err
		}
	}
	// A Ready pod is not yet a reachable Service: kube-proxy rejects connections to a ClusterIP until
	// it has programmed the Service's endpoints. Wait until every Service answers HTTP.
	for _, name := range append([]string{"routing-proxy"}, RoutingApps...) {
		if err := k.waitServiceAnswers(ctx, RoutingNS, name); err != nil {
			return err
		}
	}
	return nil
}

// waitServiceAnswers waits until an HTTP request to the Service's ClusterIP and first port gets any
// HTTP response (redirects not followed).
func (k *Kube) waitServiceAnswers(ctx context.Context, ns, name string) error {
	svc, err := k.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("service %s/%s: %w", ns, name, err)
	}
	if len(svc.Spec.Ports) == 0 {
		return fmt.Errorf("service %s/%s has no port", ns, name)
	}
	url := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(svc.Spec.Ports[0].Port))) + "/"
	c := &http.Client{Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return Eventually(ctx, time.Minute, 500*time.Millisecond, "service "+ns+"/"+name+" answering at "+url, func(ctx context.Context) (bool, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, "", err
		}
		resp, err := c.Do(req)
		if err != nil {
			return false, err.Error(), nil
		}
		resp.Body.Close()
		return true, "", nil
	})
}

// PodGet GETs path on a pod's port through the API server's pod proxy: how the tests read an
// admin port (/metrics) that no Service exposes.
func (k *Kube) PodGet(ctx context.Context, ns, pod, port, path string) (string, error) {
	b, err := k.Client.CoreV1().Pods(ns).ProxyGet("http", pod, port, path, nil).DoRaw(ctx)
	return string(b), err
}
