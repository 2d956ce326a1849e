// Package cni is podgate-cni: a chained CNI plugin that captures an injected pod's protected ports
// in the pod's network namespace when its sandbox is created, the conflist editing that chains it
// in, and the node agent that installs it (the same binary, run as a DaemonSet).
package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"go.uber.org/zap"

	"github.com/podgate/podgate/internal/capture"
	"github.com/podgate/podgate/internal/capture/nft"
)

// PluginType is the plugin's binary name in the CNI bin dir and its "type" in the conflist.
const PluginType = "podgate-cni"

// AnnotationStatus is the annotation the plugin reads: what the injector did to the pod.
// (internal/inject defines it for the injector; the plugin does not link the injector.)
const AnnotationStatus = "podgate.io/status"

// CapabilityPodAnnotations is the CNI capability through which containerd (≥ 1.5) and CRI-O pass
// a pod's annotations in runtimeConfig, so the plugin needs no API server round trip.
const CapabilityPodAnnotations = "io.kubernetes.cri.pod-annotations"

// NetConf is the plugin's entry in the conflist, as the runtime hands it over on stdin.
type NetConf struct {
	types.PluginConf
	RuntimeConfig struct {
		// PodAnnotations is nil when the runtime did not pass them.
		PodAnnotations map[string]string `json:"io.kubernetes.cri.pod-annotations,omitempty"`
	} `json:"runtimeConfig,omitempty"`
	// APIAccess is the file (written by the node agent) with the API server's address, a token and
	// its CA, used when the runtime does not pass annotations.
	APIAccess string `json:"apiAccess,omitempty"`
	// LogFile, when set, gets one JSON line per command: pod, outcome, duration.
	LogFile string `json:"logFile,omitempty"`
}

// k8sArgs are the CNI_ARGS the kubelet's runtime sets for a pod.
type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE types.UnmarshallableString //nolint:revive // the CNI_ARGS key
	K8S_POD_NAME      types.UnmarshallableString //nolint:revive // the CNI_ARGS key
}

// Plugin runs the CNI commands.
type Plugin struct {
	// FetchAnnotations reads a pod's annotations from the API server (FetchPodAnnotations in
	// production; tests replace it).
	FetchAnnotations func(ctx context.Context, accessFile, namespace, name string) (map[string]string, error)
	// NewLogger opens the log for a command; nil logs nothing.
	NewLogger func(path string) *zap.Logger
	// Started is when the process started (main sets it), so the logged duration covers the
	// plugin's whole run as the runtime waits for it; zero means when the command started.
	Started time.Time
}

// Funcs are the plugin's commands for skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check}
}

// VersionInfo lists the spec versions the plugin speaks (the e2e cluster's conflist is 0.4.0).
var VersionInfo = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Error is every failure the plugin reports: the runtime fails the pod's sandbox with its text,
// which names podgate, the pod and the reason, and the kubelet shows it as an event.
type Error struct {
	Pod string
	Err error
}

func (e *Error) Error() string {
	if e.Pod == "" {
		return PluginType + ": " + e.Err.Error()
	}
	return PluginType + ": pod " + e.Pod + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNoAnnotations: the runtime passed no annotations and no API access is configured, so the
// plugin cannot know whether the pod asked for capture; it fails rather than guess.
var ErrNoAnnotations = errors.New("the runtime passed no pod annotations (capability " + CapabilityPodAnnotations + ") and apiAccess is not configured")

// ErrNotChained: the plugin got no previous result; it must come after the network plugin.
var ErrNotChained = errors.New("no prevResult: podgate-cni must be chained after the cluster's network plugin")

// request is one command's parsed input.
type request struct {
	conf NetConf
	pod  string // namespace/name; empty when the sandbox is not a Kubernetes pod
	ns   string
	name string
}

func parse(args *skel.CmdArgs) (*request, error) {
	r := &request{}
	if err := json.Unmarshal(args.StdinData, &r.conf); err != nil {
		return nil, &Error{Err: fmt.Errorf("parsing the network configuration: %w", err)}
	}
	if err := version.ParsePrevResult(&r.conf.PluginConf); err != nil {
		return nil, &Error{Err: fmt.Errorf("parsing prevResult: %w", err)}
	}
	var ka k8sArgs
	ka.IgnoreUnknown = true
	if err := types.LoadArgs(args.Args, &ka); err != nil {
		return nil, &Error{Err: fmt.Errorf("parsing CNI_ARGS: %w", err)}
	}
	r.ns, r.name = string(ka.K8S_POD_NAMESPACE), string(ka.K8S_POD_NAME)
	if r.name != "" {
		r.pod = r.ns + "/" + r.name
	}
	return r, nil
}

// rules returns the rule set the pod asked for, or ok=false when it asked for none (not a pod,
// not injected, or a capture mode other than cni).
func (p *Plugin) rules(ctx context.Context, r *request) (rs capture.RuleSet, ok bool, err error) {
	if r.pod == "" {
		return rs, false, nil
	}
	ann := r.conf.RuntimeConfig.PodAnnotations
	if ann == nil {
		if r.conf.APIAccess == "" {
			return rs, false, &Error{Pod: r.pod, Err: ErrNoAnnotations}
		}
		if ann, err = p.FetchAnnotations(ctx, r.conf.APIAccess, r.ns, r.name); err != nil {
			return rs, false, &Error{Pod: r.pod, Err: fmt.Errorf("reading the pod's annotations from the API server: %w", err)}
		}
	}
	raw, injected := ann[AnnotationStatus]
	if !injected {
		return rs, false, nil
	}
	st, err := capture.ParseStatus(raw)
	if err != nil {
		return rs, false, &Error{Pod: r.pod, Err: fmt.Errorf("annotation %s: %w", AnnotationStatus, err)}
	}
	if st.Capture != capture.ModeCNI {
		return rs, false, nil
	}
	if rs, err = capture.Rules(st); err != nil {
		return rs, false, &Error{Pod: r.pod, Err: fmt.Errorf("annotation %s: %w", AnnotationStatus, err)}
	}
	return rs, true, nil
}

// withNFT runs f on the nftables of the sandbox's network namespace.
func withNFT(pod, netnsPath string, f func(*nft.Conn) error) error {
	netns, err := ns.GetNS(netnsPath)
	if err != nil {
		return &Error{Pod: pod, Err: fmt.Errorf("opening network namespace %s: %w", netnsPath, err)}
	}
	defer func() { _ = netns.Close() }()
	c, err := nft.Open(int(netns.Fd()))
	if err != nil {
		return &Error{Pod: pod, Err: err}
	}
	defer func() { _ = c.Close() }()
	if err := f(c); err != nil {
		return &Error{Pod: pod, Err: err}
	}
	return nil
}

const apiTimeout = 10 * time.Second

// run is the frame of every command: parse, log, and for ADD and CHECK (withRules) the chain
// check and the pod's rule set; act does the command's own work in the pod's namespace.
func (p *Plugin) run(args *skel.CmdArgs, cmd string, withRules bool, act func(*nft.Conn, capture.RuleSet) error) (*request, error) {
	start := p.started()
	r, err := parse(args)
	if err != nil {
		return nil, err
	}
	log := p.logger(r.conf.LogFile)
	defer func() { _ = log.Sync() }()
	var rs capture.RuleSet
	ok := true
	switch {
	case !withRules:
		// DEL tolerates a namespace that is already gone.
		if args.Netns == "" || ns.IsNSorErr(args.Netns) != nil {
			ok = false
		}
	case r.conf.PrevResult == nil:
		err = &Error{Pod: r.pod, Err: ErrNotChained}
	default:
		ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
		defer cancel()
		rs, ok, err = p.rules(ctx, r)
	}
	if err == nil && ok {
		err = withNFT(r.pod, args.Netns, func(c *nft.Conn) error { return act(c, rs) })
	}
	logResult(log, cmd, r.pod, ok && withRules, len(rs.Redirects), start, err)
	return r, err
}

// Add programs the pod's rules, then passes the previous result on unchanged.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	r, err := p.run(args, "add", true, func(c *nft.Conn, rs capture.RuleSet) error { return c.Apply(rs) })
	if err != nil {
		return err
	}
	return types.PrintResult(r.conf.PrevResult, r.conf.CNIVersion)
}

// Del removes the rules. It needs no annotations (it must work when the API server is down and
// after the pod object is gone) and tolerates a namespace that no longer exists.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	_, err := p.run(args, "del", false, func(c *nft.Conn, _ capture.RuleSet) error { return c.Delete() })
	return err
}

// ErrRulesDiffer: CHECK found the table missing or different from what the status asks for.
var ErrRulesDiffer = errors.New("capture rules differ from podgate.io/status")

// Check verifies that the namespace holds exactly the rules the pod's status asks for.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	_, err := p.run(args, "check", true, func(c *nft.Conn, rs capture.RuleSet) error {
		got, err := c.Read()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrRulesDiffer, err)
		}
		if got.String() != rs.String() {
			return fmt.Errorf("%w: the namespace holds\n%swant\n%s", ErrRulesDiffer, got, rs)
		}
		return nil
	})
	return err
}

func (p *Plugin) started() time.Time {
	if p.Started.IsZero() {
		return time.Now()
	}
	return p.Started
}

func (p *Plugin) logger(path string) *zap.Logger {
	if path == "" || p.NewLogger == nil {
		return zap.NewNop()
	}
	return p.NewLogger(path)
}

func logResult(log *zap.Logger, cmd, pod string, captured bool, redirects int, start time.Time, err error) {
	fields := []zap.Field{zap.String("command", cmd), zap.String("pod", pod), zap.Bool("captured", captured),
		zap.Int("redirects", redirects), zap.Float64("durationMs", float64(time.Since(start).Microseconds())/1000)}
	if err != nil {
		log.Error("podgate-cni failed", append(fields, zap.Error(err))...)
		return
	}
	log.Info("podgate-cni done", fields...)
}
