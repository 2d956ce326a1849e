package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/podgate/podgate/internal/devcerts"
	"github.com/podgate/podgate/internal/inject"
	"github.com/podgate/podgate/internal/options"
)

// Target names, as the tables show them.
const (
	nameDirect  = "upstream direct"
	namePodgate = "podgate"
	nameO2P     = "oauth2-proxy"
	// nameBaseline is another podgate build measured in the same run (-baseline-sidecar).
	nameBaseline = "podgate baseline"
)

const (
	pathBearer = "bearer"
	pathCookie = "cookie"
)

// skipRuleCounts are the numbers of skip rules the growth benchmark gives a sidecar; none matches
// the benchmarked path, so every rule is tried on every request.
var skipRuleCounts = []int{0, 10, 100}

// proc is a process the bench started; it is killed (by its PID) when the bench ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	// underTest is set for the processes given the CPU of the processes under test.
	underTest bool
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// arm is one target of an interleaved measurement.
type arm struct {
	name    string
	url     string
	headers []string
	pid     int
	// body, when set, is POSTed (an AdmissionReview); tls verifies an HTTPS target.
	body []byte
	tls  *tls.Config
}

// ArmResult is one arm's summarised rounds.
type ArmResult struct {
	Name string
	Result
}

type bench struct {
	cfg       config
	layout    cpuLayout
	wrkScript string
	fx        Fixture
	procs     []*proc

	fixture, injector, o2p *proc
	// sidecars by number of skip rules; sidecars[0] is the one every path benchmark uses.
	sidecars map[int]*proc
	sideURL  map[int]string
	// sideAdmin are the sidecars' admin addresses (host:port), by number of skip rules.
	sideAdmin map[int]string
	o2pURL    string
	// cookies are the session Cookie headers of alice's logins, by target.
	cookies map[string]string
	hook    webhookTarget
	// baseSidecar and baseInjector run the baseline builds, when given.
	baseSidecar, baseInjector *proc
	baseURL                   string
	baseHook                  webhookTarget
}

// start runs bin as a process of this bench, bound to cpus (nil: the runner's CPUs, the load side).
func (b *bench) start(name string, env []string, cpus []int, bin string, args ...string) (*proc, error) {
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("%s %s: %w", name, bin, errNoBinary)
	}
	logPath := filepath.Join(b.cfg.work, strings.ReplaceAll(name, " ", "-")+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	if err := startOn(cmd, cpus); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, underTest: cpus != nil}
	b.procs = append(b.procs, p)
	return p, nil
}

// stopAll kills the processes this bench started, by PID, and reaps them.
func (b *bench) stopAll() {
	for _, p := range b.procs {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
	b.procs = nil
}

// dumpLogs prints the tail of each process's log after a failure.
func (b *bench) dumpLogs() {
	for _, p := range b.procs {
		out, _ := os.ReadFile(p.log)
		if len(out) > 2000 {
			out = out[len(out)-2000:]
		}
		logf("--- %s (%s):\n%s", p.name, p.log, out)
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitFor polls until check passes, the process exits or the deadline passes.
func waitFor(ctx context.Context, what string, p *proc, check func() error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if p != nil && p.cmd.ProcessState == nil {
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid())); strings.Contains(string(st), ") Z") {
				return fmt.Errorf("%s exited (log %s)", p.name, p.log)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready after 60s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func getOK(u string, hdr ...string) error {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return err
	}
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return nil
}

// startAll starts the fixture, the sidecars, oauth2-proxy and the injector, and waits until each
// serves.
func (b *bench) startAll(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := b.startFixture(ctx, self); err != nil {
		return err
	}
	bearer := "Authorization: Bearer " + b.fx.Tokens[1]
	b.sidecars, b.sideURL, b.sideAdmin = map[int]*proc{}, map[int]string{}, map[int]string{}
	counts := skipRuleCounts
	if b.cfg.quick {
		counts = counts[:1]
	}
	for _, n := range counts {
		if err := b.startSidecar(ctx, n, bearer); err != nil {
			return err
		}
	}
	if b.cfg.baseSidecar != "" {
		if b.baseSidecar, b.baseURL, _, err = b.runSidecar(ctx, nameBaseline, b.cfg.baseSidecar, 0, bearer); err != nil {
			return err
		}
	}
	if err := b.startOAuth2Proxy(ctx, bearer); err != nil {
		return err
	}
	if err := b.startInjectors(ctx); err != nil {
		return err
	}
	return b.checkLayout()
}

// underTestCPUs are the CPUs of the processes under test, nil when the run is not pinned.
func (b *bench) underTestCPUs() []int {
	if !b.layout.pinned() {
		return nil
	}
	return b.layout.targetCPUs()
}

// checkLayout logs the CPUs every thread of every process may use, as the kernel reports them,
// and fails when a process is not where the layout puts it.
func (b *bench) checkLayout() error {
	logf("CPU layout, %s:", b.layout.describe())
	check := func(name string, pid int, cpus []int) error {
		got, err := allowedCPUs(pid)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		logf("  %-26s pid %-7d CPUs %s", name, pid, got)
		if want := cpuList(cpus); got != want {
			return fmt.Errorf("%s runs on CPUs %s, not %s", name, got, want)
		}
		return nil
	}
	// wrk inherits the runner's CPUs.
	if err := check("runner (vegeta, wrk)", os.Getpid(), b.layout.load); err != nil {
		return err
	}
	for _, p := range b.procs {
		cpus := b.layout.load
		if p.underTest {
			cpus = b.layout.targetCPUs()
		}
		if err := check(p.name, p.pid(), cpus); err != nil {
			return err
		}
	}
	return nil
}

// startFixture starts the fixture process (self is this binary) and waits until its upstream serves.
func (b *bench) startFixture(ctx context.Context, self string) error {
	info := filepath.Join(b.cfg.work, "fixture.json")
	var err error
	if b.fixture, err = b.start("fixture", nil, nil, self, "fixture", info); err != nil {
		return err
	}
	if err := waitFor(ctx, "fixture", b.fixture, func() error {
		raw, err := os.ReadFile(info)
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, &b.fx)
	}); err != nil {
		return err
	}
	return waitFor(ctx, "upstream", b.fixture, func() error { return getOK(b.fx.Upstream) })
}

// startSidecar starts a sidecar with skipRules skip rules (none matching) and default settings,
// changed by each of with.
func (b *bench) startSidecar(ctx context.Context, skipRules int, bearer string, with ...func(*options.Options)) error {
	p, u, admin, err := b.runSidecar(ctx, fmt.Sprintf("podgate-%d-skip-rules", skipRules), b.cfg.sidecar, skipRules, bearer, with...)
	if err != nil {
		return err
	}
	b.sidecars[skipRules], b.sideURL[skipRules], b.sideAdmin[skipRules] = p, u, admin
	return nil
}

// runSidecar runs the sidecar binary bin as startSidecar describes, and returns it with the URL it
// serves and its admin address, once it serves.
func (b *bench) runSidecar(ctx context.Context, name, bin string, skipRules int, bearer string, with ...func(*options.Options)) (*proc, string, string, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	up, err := url.Parse(b.fx.Upstream)
	if err != nil {
		return nil, "", "", err
	}
	o := options.Defaults()
	o.IssuerURL, o.ClientID, o.CookieSecure = b.fx.Issuer, clientID, false
	o.Proxies = []options.Proxy{{Listen: listen, Upstream: up}}
	o.AdminAddr = admin
	for i := 0; i < skipRules; i++ {
		r, err := options.ParseSkipRule(fmt.Sprintf("GET /public-%03d/", i))
		if err != nil {
			return nil, "", "", err
		}
		o.SkipAuth = append(o.SkipAuth, r)
	}
	for _, f := range with {
		f(&o)
	}
	env := []string{options.EnvVar(options.FlagCookieSecret) + "=" + cookieSecret, options.EnvVar(options.FlagClientSecret) + "=" + clientSecret}
	p, err := b.start(name, env, b.underTestCPUs(), bin, o.Args()...)
	if err != nil {
		return nil, "", "", err
	}
	u := "http://" + listen + "/"
	if err := waitFor(ctx, name, p, func() error { return getOK("http://" + admin + "/ready") }); err != nil {
		return nil, "", "", err
	}
	return p, u, admin, waitFor(ctx, name, p, func() error { return getOK(u, bearer) })
}

func (b *bench) startOAuth2Proxy(ctx context.Context, bearer string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	b.o2pURL = "http://" + addr + "/"
	b.o2p, err = b.start(nameO2P, nil, b.underTestCPUs(), b.cfg.oauth2Proxy,
		"--provider=oidc", "--oidc-issuer-url="+b.fx.Issuer, "--client-id="+clientID, "--client-secret="+clientSecret,
		"--cookie-secret="+cookieSecret, "--cookie-secure=false", "--email-domain=*", "--code-challenge-method=S256",
		"--upstream="+b.fx.Upstream+"/", "--http-address="+addr, "--redirect-url="+b.o2pURL+"oauth2/callback",
		"--skip-jwt-bearer-tokens=true")
	if err != nil {
		return err
	}
	return waitFor(ctx, nameO2P, b.o2p, func() error { return getOK(b.o2pURL, bearer) })
}

// podgateCookies logs alice in through the sidecar and oauth2-proxy (following every redirect,
// as a browser does) and keeps their session Cookie headers.
func (b *bench) login(ctx context.Context, target string) (string, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	start := map[string]string{namePodgate: b.sideURL[0], nameBaseline: b.baseURL, nameO2P: b.o2pURL + "oauth2/start?rd=%2F"}[target]
	req, err := http.NewRequestWithContext(ctx, "GET", start, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s login: %w", target, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "hello from the upstream") {
		return "", fmt.Errorf("%s login ended in %s: %.200s", target, resp.Status, body)
	}
	u, _ := url.Parse(start)
	var parts []string
	for _, ck := range jar.Cookies(u) {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("%s login set no cookie", target)
	}
	return strings.Join(parts, "; "), nil
}

// cookieSizes logs alice in through both proxies (the cookies the cookie path then uses), then a
// user with 30 groups, and returns the bytes of each Cookie header.
func (b *bench) cookieSizes(ctx context.Context) (map[string]int, error) {
	sizes := map[string]int{}
	b.cookies = map[string]string{}
	for _, groups := range []int{30, 1} {
		resp, err := http.Post(fmt.Sprintf("%s/user?groups=%d", b.fx.Control, groups), "", nil)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		for _, t := range []string{namePodgate, nameO2P} {
			ck, err := b.login(ctx, t)
			if err != nil {
				return nil, err
			}
			sizes[fmt.Sprintf("%s/%d", t, groups)] = len(ck)
			if groups == 1 {
				b.cookies[t] = ck
			}
		}
	}
	// The baseline's own login (its session format may differ), as alice with one group.
	if b.baseSidecar != nil {
		ck, err := b.login(ctx, nameBaseline)
		if err != nil {
			return nil, err
		}
		b.cookies[nameBaseline] = ck
	}
	return sizes, nil
}

func (b *bench) pathArms(path string) []arm {
	own := func(target string) []string {
		if path == pathBearer {
			return []string{"Authorization: Bearer " + b.fx.Tokens[1]}
		}
		return []string{"Cookie: " + b.cookies[target]}
	}
	// The upstream gets podgate's headers, so every target reads a request of the same size.
	arms := []arm{
		{name: nameDirect, url: b.fx.Upstream + "/", headers: own(namePodgate), pid: b.fixture.pid()},
		{name: nameO2P, url: b.o2pURL, headers: own(nameO2P), pid: b.o2p.pid()},
		{name: namePodgate, url: b.sideURL[0], headers: own(namePodgate), pid: b.sidecars[0].pid()},
	}
	if b.baseSidecar != nil {
		arms = append(arms, arm{name: nameBaseline, url: b.baseURL, headers: own(nameBaseline), pid: b.baseSidecar.pid()})
	}
	return arms
}

func (b *bench) groupArms() []arm {
	var arms []arm
	for _, n := range tokenSizes {
		arms = append(arms, arm{name: fmt.Sprintf("%d groups and %d roles", n, n), url: b.sideURL[0],
			headers: []string{"Authorization: Bearer " + b.fx.Tokens[n]}, pid: b.sidecars[0].pid()})
	}
	return arms
}

func (b *bench) skipArms() []arm {
	var arms []arm
	for _, n := range skipRuleCounts {
		arms = append(arms, arm{name: fmt.Sprintf("%d skip rules", n), url: b.sideURL[n],
			headers: []string{"Authorization: Bearer " + b.fx.Tokens[1]}, pid: b.sidecars[n].pid()})
	}
	return arms
}

// rss reads the resident memory of the two proxies.
func (b *bench) rss() (map[string]float64, error) {
	out := map[string]float64{}
	for name, p := range map[string]*proc{namePodgate: b.sidecars[0], nameO2P: b.o2p, "injector": b.injector} {
		mb, err := rssMB(p.pid())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = mb
	}
	return out, nil
}

// startInjectors runs `injector serve` (and the baseline build, if given) with a development
// certificate and a kubeconfig pointing at the fixture's namespace list.
func (b *bench) startInjectors(ctx context.Context) error {
	certs := filepath.Join(b.cfg.work, "certs")
	if _, err := devcerts.Ensure(devcerts.Options{Dir: certs, Service: "podgate-injector", Namespace: "bench", Validity: time.Hour}); err != nil {
		return err
	}
	cfg := inject.DefaultConfig()
	cfg.Image, cfg.IssuerURL, cfg.ClientID = "ghcr.io/podgate/sidecar:bench", "https://keycloak.example.com/realms/bench", clientID
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(b.cfg.work, "injector.yaml")
	kubeconfig := filepath.Join(b.cfg.work, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: bench, cluster: {server: %q}}]
users: [{name: bench, user: {}}]
contexts: [{name: bench, context: {cluster: bench, user: bench}}]
current-context: bench
`, b.fx.KubeAPI)
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		return err
	}
	start := func(name, bin string) (*proc, webhookTarget, error) {
		hook, err := freeAddr()
		if err != nil {
			return nil, webhookTarget{}, err
		}
		health, err := freeAddr()
		if err != nil {
			return nil, webhookTarget{}, err
		}
		_, port, _ := net.SplitHostPort(hook)
		args := append([]string{"serve", "--webhook-port=" + port, "--cert-dir=" + certs, "--metrics-addr=0",
			"--health-addr=" + health, "--config=" + cfgPath}, certificateFlags(bin)...)
		p, err := b.start(name, []string{"KUBECONFIG=" + kubeconfig}, b.underTestCPUs(), bin, args...)
		if err != nil {
			return nil, webhookTarget{}, err
		}
		if err := waitFor(ctx, name, p, func() error { return getOK("http://" + health + "/readyz") }); err != nil {
			return nil, webhookTarget{}, err
		}
		t, err := newWebhookTarget("https://"+hook+"/mutate-v1-pod", certs)
		return p, t, err
	}
	if b.injector, b.hook, err = start("injector", b.cfg.injector); err != nil || b.cfg.baseInjector == "" {
		return err
	}
	b.baseInjector, b.baseHook, err = start("injector baseline", b.cfg.baseInjector)
	return err
}

// certificateFlags makes the injector serve the development certificate from --cert-dir: builds
// that manage their own certificate by default (which needs a Secret the fixture's API does not
// serve) are told --certificates=files; older builds, a baseline perhaps, only know --cert-dir.
func certificateFlags(bin string) []string {
	help, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
	if strings.Contains(string(help), "--certificates") {
		return []string{"--certificates=files"}
	}
	return nil
}
