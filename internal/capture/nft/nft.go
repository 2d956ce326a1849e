// Package nft programs a capture.RuleSet into a network namespace through netlink (pure Go, no
// nft binary), reads it back and removes it. Each change is one netlink batch, so a namespace
// never holds half a rule set.
package nft

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/podgate/podgate/internal/capture"
)

// ErrNotFound: the namespace has no podgate table.
var ErrNotFound = errors.New("no table inet " + capture.Table)

// Conn talks to the nftables of one network namespace.
type Conn struct {
	c *nftables.Conn
}

// Open connects to the namespace whose file descriptor is netnsFd (from ns.GetNS(path).Fd()), or
// to the caller's own namespace when netnsFd is negative (the init container).
func Open(netnsFd int) (*Conn, error) {
	var opts []nftables.ConnOption
	if netnsFd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	opts = append(opts, nftables.AsLasting())
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return &Conn{c: c}, nil
}

// Close releases the netlink socket.
func (c *Conn) Close() error { return c.c.CloseLasting() }

func table() *nftables.Table {
	return &nftables.Table{Name: capture.Table, Family: nftables.TableFamilyINet}
}

// Apply replaces whatever podgate table the namespace has with rs, atomically: the table is
// created if missing and deleted in the same batch before it is built again, so a retried ADD
// ends with exactly rs.
func (c *Conn) Apply(rs capture.RuleSet) error {
	t := table()
	c.c.AddTable(t)
	c.c.DelTable(t)
	c.c.AddTable(t)
	policy := nftables.ChainPolicyAccept
	ch := c.c.AddChain(&nftables.Chain{
		Name: capture.Chain, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &policy,
	})
	// The sidecar reaches the app on 127.0.0.1 and must keep doing so; only traffic that came in
	// through a real interface (another pod, the node, a Service) is an outsider's.
	c.c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: loopbackAccept()})
	for _, r := range rs.Redirects {
		c.c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: redirect(r)})
	}
	if err := c.c.Flush(); err != nil {
		return fmt.Errorf("programming table inet %s: %w", capture.Table, err)
	}
	return nil
}

// Delete removes the podgate table; a namespace without one is fine (DEL must be idempotent).
func (c *Conn) Delete() error {
	if _, err := c.c.ListTableOfFamily(capture.Table, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("looking up table inet %s: %w", capture.Table, err)
	}
	c.c.DelTable(table())
	if err := c.c.Flush(); err != nil {
		return fmt.Errorf("deleting table inet %s: %w", capture.Table, err)
	}
	return nil
}

// Read decodes the podgate table back into a rule set. Anything it does not recognise as a rule
// Apply writes is an error, so a CHECK cannot pass on a table someone edited.
func (c *Conn) Read() (capture.RuleSet, error) {
	t, err := c.c.ListTableOfFamily(capture.Table, nftables.TableFamilyINet)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return capture.RuleSet{}, ErrNotFound
		}
		return capture.RuleSet{}, fmt.Errorf("looking up table inet %s: %w", capture.Table, err)
	}
	chains, err := c.c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return capture.RuleSet{}, fmt.Errorf("listing chains: %w", err)
	}
	var ch *nftables.Chain
	var names []string
	for _, x := range chains {
		if x.Table.Name != capture.Table {
			continue
		}
		names = append(names, x.Name)
		if x.Name == capture.Chain {
			ch = x
		}
	}
	if ch == nil || len(names) != 1 {
		return capture.RuleSet{}, fmt.Errorf("table inet %s has chains %v, want only %s", capture.Table, names, capture.Chain)
	}
	if ch.Type != nftables.ChainTypeNAT || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookPrerouting ||
		ch.Priority == nil || *ch.Priority != *nftables.ChainPriorityNATDest || ch.Policy == nil || *ch.Policy != nftables.ChainPolicyAccept {
		return capture.RuleSet{}, fmt.Errorf("chain %s is not a nat prerouting chain at priority dstnat with policy accept", capture.Chain)
	}
	rules, err := c.c.GetRules(t, ch)
	if err != nil {
		return capture.RuleSet{}, fmt.Errorf("listing rules: %w", err)
	}
	var rs capture.RuleSet
	for i, r := range rules {
		if i == 0 {
			if !isLoopbackAccept(r.Exprs) {
				return capture.RuleSet{}, fmt.Errorf("rule %d is not iifname \"lo\" accept", i+1)
			}
			continue
		}
		rd, ok := decodeRedirect(r.Exprs)
		if !ok {
			return capture.RuleSet{}, fmt.Errorf("rule %d is not tcp dport N redirect to :M", i+1)
		}
		rs.Redirects = append(rs.Redirects, rd)
	}
	if len(rules) == 0 {
		return capture.RuleSet{}, fmt.Errorf("chain %s is empty", capture.Chain)
	}
	return rs, nil
}

func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// loopbackAccept is `iifname "lo" accept`.
func loopbackAccept() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname("lo")},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// redirect is `tcp dport <Port> redirect to :<To>`, in the expressions nft itself generates.
func redirect(r capture.Redirect) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.Port)},
		&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.To)},
		&expr.Redir{RegisterProtoMin: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED},
	}
}

func isLoopbackAccept(es []expr.Any) bool {
	if len(es) != 3 {
		return false
	}
	m, ok1 := es[0].(*expr.Meta)
	c, ok2 := es[1].(*expr.Cmp)
	v, ok3 := es[2].(*expr.Verdict)
	return ok1 && ok2 && ok3 && m.Key == expr.MetaKeyIIFNAME && c.Op == expr.CmpOpEq &&
		m.Register == c.Register && strings.TrimRight(string(c.Data), "\x00") == "lo" && v.Kind == expr.VerdictAccept
}

func decodeRedirect(es []expr.Any) (capture.Redirect, bool) {
	if len(es) != 6 {
		return capture.Redirect{}, false
	}
	m, ok1 := es[0].(*expr.Meta)
	proto, ok2 := es[1].(*expr.Cmp)
	pl, ok3 := es[2].(*expr.Payload)
	port, ok4 := es[3].(*expr.Cmp)
	imm, ok5 := es[4].(*expr.Immediate)
	rd, ok6 := es[5].(*expr.Redir)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return capture.Redirect{}, false
	}
	if m.Key != expr.MetaKeyL4PROTO || proto.Op != expr.CmpOpEq || !slices.Equal(proto.Data, []byte{unix.IPPROTO_TCP}) ||
		pl.Base != expr.PayloadBaseTransportHeader || pl.Offset != 2 || pl.Len != 2 ||
		port.Op != expr.CmpOpEq || len(port.Data) != 2 || len(imm.Data) != 2 ||
		m.Register != proto.Register || pl.DestRegister != port.Register || imm.Register != rd.RegisterProtoMin ||
		(rd.RegisterProtoMax != 0 && rd.RegisterProtoMax != rd.RegisterProtoMin) {
		return capture.Redirect{}, false
	}
	return capture.Redirect{Port: binaryutil.BigEndian.Uint16(port.Data), To: binaryutil.BigEndian.Uint16(imm.Data)}, true
}

// ApplyOwn programs the rules a status asks for into the caller's own network namespace: init
// mode, where a first init container with NET_ADMIN runs it before any other container starts.
func ApplyOwn(status string) (capture.RuleSet, error) {
	if status == "" {
		return capture.RuleSet{}, errors.New(capture.EnvStatus + " is empty: the init container gets the pod's podgate.io/status through the downward API")
	}
	st, err := capture.ParseStatus(status)
	if err != nil {
		return capture.RuleSet{}, fmt.Errorf("podgate.io/status: %w", err)
	}
	rs, err := capture.Rules(st)
	if err != nil {
		return capture.RuleSet{}, fmt.Errorf("podgate.io/status: %w", err)
	}
	c, err := Open(-1)
	if err != nil {
		return capture.RuleSet{}, err
	}
	defer func() { _ = c.Close() }()
	return rs, c.Apply(rs)
}
