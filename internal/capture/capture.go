// Package capture is the contract between the injector and whatever puts a pod's protected ports
// behind its sidecar inside the pod's network namespace (the podgate-cni plugin, or the init
// container in init mode): the capture mode, the part of podgate.io/status they read, and the
// rule set built from it. It does no I/O; package nft programs the rule set into a namespace.
package capture

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mode says how a pod's protected ports are captured.
type Mode string

const (
	// ModeCNI: the podgate-cni plugin, chained after the cluster's network plugin by the node
	// agent, programs the rules when the pod's sandbox is created. The pod keeps Pod Security
	// level restricted.
	ModeCNI Mode = "cni"
	// ModeInit: a first init container (the sidecar image, NET_ADMIN only) programs the rules; for
	// clusters without the node agent. The pod needs Pod Security level privileged.
	ModeInit Mode = "init"
	// ModeNone: no capture. A numeric targetPort or the pod IP reaches the app directly; only by
	// explicit choice, and the injector warns about it.
	ModeNone Mode = "none"
)

// Modes lists every mode, in the order the documentation names them.
var Modes = []Mode{ModeCNI, ModeInit, ModeNone}

// ErrUnknownMode is returned (wrapped) by ParseMode.
var ErrUnknownMode = errors.New("is not cni, init or none")

// ParseMode parses a mode's spelling.
func ParseMode(s string) (Mode, error) {
	m := Mode(strings.TrimSpace(s))
	for _, v := range Modes {
		if m == v {
			return m, nil
		}
	}
	return "", fmt.Errorf("capture mode %q %w", s, ErrUnknownMode)
}

// EnvStatus is the variable through which init mode's container gets the pod's podgate.io/status
// (the downward API), so it builds the same rules the plugin would.
const EnvStatus = "PODGATE_CAPTURE_STATUS"

// CheckPath is the path of the sidecar's startup probe through the check port: /ping on the admin
// port once redirected, and in the kubelet's "connection refused" event it names what is missing.
const CheckPath = "/ping?check=podgate-capture"

// Port is one protected port as the status records it: inbound TCP to AppPort belongs to the
// sidecar's ProxyPort.
type Port struct {
	AppPort   int32 `json:"appPort"`
	ProxyPort int32 `json:"proxyPort"`
}

// Status is the part of the podgate.io/status annotation that capture reads. The injector's
// inject.Status carries the same JSON names (a test in package inject keeps them in step); pods
// injected before capture existed have no "capture" field and are left alone.
type Status struct {
	// Capture is the pod's mode; empty for pods injected without capture.
	Capture Mode `json:"capture,omitempty"`
	// AdminPort is the sidecar's admin port (probes, /ping).
	AdminPort int32 `json:"adminPort"`
	// CheckPort has no listener: the rules redirect it to AdminPort, and the sidecar's startup
	// probe goes through it, so a pod whose capture is missing never starts its app.
	CheckPort int32 `json:"captureCheckPort,omitempty"`
	// Ports are exactly the protected ports; nothing else is redirected.
	Ports []Port `json:"ports"`
}

// ParseStatus decodes the annotation's value and checks what the rules are built from.
func ParseStatus(annotation string) (Status, error) {
	var st Status
	if err := json.Unmarshal([]byte(annotation), &st); err != nil {
		return Status{}, fmt.Errorf("not the JSON the injector writes: %w", err)
	}
	if st.Capture == "" {
		return st, nil
	}
	if _, err := ParseMode(string(st.Capture)); err != nil {
		return Status{}, err
	}
	return st, nil
}

// Redirect sends inbound TCP to Port to the sidecar's listener on To.
type Redirect struct {
	Port, To uint16
}

// RuleSet is everything programmed into one pod's network namespace: one table, family inet (IPv4
// and IPv6), one nat prerouting chain.
type RuleSet struct {
	Redirects []Redirect
}

// Names of what the rules create in the pod's namespace.
const (
	Table = "podgate"
	Chain = "prerouting"
)

// Rules builds the rule set for a status: every protected app port to its proxy port, and the
// check port to the admin port. It fails on a status it cannot turn into correct rules (a port
// out of range, a port redirected twice, nothing to protect): capturing less than asked would
// serve an app unprotected.
func Rules(st Status) (RuleSet, error) {
	var rs RuleSet
	var errs []error
	seen := map[uint16]bool{}
	add := func(what string, from, to int32) {
		f, okF := portNumber(from)
		t, okT := portNumber(to)
		switch {
		case !okF || !okT:
			errs = append(errs, fmt.Errorf("%s %d -> %d: port out of range 1-65535", what, from, to))
		case seen[f]:
			errs = append(errs, fmt.Errorf("%s %d: redirected twice", what, from))
		default:
			seen[f] = true
			rs.Redirects = append(rs.Redirects, Redirect{Port: f, To: t})
		}
	}
	if len(st.Ports) == 0 {
		errs = append(errs, errors.New("no protected port"))
	}
	for _, p := range st.Ports {
		add("port", p.AppPort, p.ProxyPort)
	}
	if st.CheckPort != 0 {
		add("check port", st.CheckPort, st.AdminPort)
	}
	if err := errors.Join(errs...); err != nil {
		return RuleSet{}, err
	}
	return rs, nil
}

func portNumber(n int32) (uint16, bool) {
	if n < 1 || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// String renders the rule set the way `nft list table inet podgate` prints it, so the golden
// files, the documentation and a look on a node all read the same.
func (rs RuleSet) String() string {
	var b strings.Builder
	b.WriteString("table inet " + Table + " {\n")
	b.WriteString("\tchain " + Chain + " {\n")
	b.WriteString("\t\ttype nat hook prerouting priority dstnat; policy accept;\n")
	b.WriteString("\t\tiifname \"lo\" accept\n")
	for _, r := range rs.Redirects {
		b.WriteString("\t\ttcp dport " + strconv.Itoa(int(r.Port)) + " redirect to :" + strconv.Itoa(int(r.To)) + "\n")
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}
