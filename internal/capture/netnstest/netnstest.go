// Package netnstest creates network namespaces for tests that program or probe real rules.
package netnstest

import (
	"os"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
)

// New creates a network namespace with a unique name for one test and removes it afterwards.
// Creating one needs root (CAP_SYS_ADMIN); without it the test is skipped and says why.
func New(t *testing.T) ns.NetNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace (make test runs as root in CI)")
	}
	n, err := testutils.NewNS()
	if err != nil {
		t.Skipf("cannot create a network namespace here: %v", err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		_ = testutils.UnmountNS(n)
	})
	return n
}

// Name is the namespace's name for `ip netns exec` / `ip -n`.
func Name(n ns.NetNS) string { return n.Path()[strings.LastIndex(n.Path(), "/")+1:] }
