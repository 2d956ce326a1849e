package nft

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/podgate/podgate/internal/capture"
	"github.com/podgate/podgate/internal/capture/netnstest"
)

func open(t *testing.T, n ns.NetNS) *Conn {
	t.Helper()
	c, err := Open(int(n.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestApplyReadDelete(t *testing.T) {
	n := netnstest.New(t)
	c := open(t, n)
	if _, err := c.Read(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read on a fresh namespace = %v, want ErrNotFound", err)
	}
	if err := c.Delete(); err != nil {
		t.Fatalf("Delete without a table: %v", err)
	}
	want := capture.RuleSet{Redirects: []capture.Redirect{{Port: 8080, To: 4180}, {Port: 9090, To: 4181}, {Port: 4191, To: 4190}}}
	for range 2 { // Apply twice: a retried ADD ends with the same single table
		if err := c.Apply(want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatalf("read back:\n%s\nwant:\n%s", got, want)
	}
	// What the kernel holds, as nft itself prints it, is what the golden files show.
	if nftBin, err := exec.LookPath("nft"); err == nil {
		out, err := exec.Command("ip", "netns", "exec", netnstest.Name(n), nftBin, "list", "table", "inet", capture.Table).CombinedOutput()
		if err != nil {
			t.Fatalf("nft list: %v\n%s", err, out)
		}
		if strings.TrimSpace(string(out)) != strings.TrimSpace(want.String()) {
			t.Fatalf("nft list table:\n%s\nwant:\n%s", out, want)
		}
	} else {
		t.Log("nft not installed: compared through netlink only")
	}
	smaller := capture.RuleSet{Redirects: want.Redirects[:1]}
	if err := c.Apply(smaller); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Read(); got.String() != smaller.String() {
		t.Fatalf("after a second Apply:\n%s\nwant:\n%s", got, smaller)
	}
	if err := c.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read after Delete = %v, want ErrNotFound", err)
	}
}
