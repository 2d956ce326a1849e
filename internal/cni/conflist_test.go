package cni

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bridgeConflist is the local e2e cluster's conflist (Debian's plugins), with a field the agent
// does not know, which must survive.
const bridgeConflist = `{
  "cniVersion": "0.4.0",
  "name": "podgate-e2e",
  "x-vendor": {"mtu": 1450},
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": "198.18.10.0/24"}]]}},
    {"type": "loopback"}
  ]
}`

func pluginTypes(t *testing.T, data []byte) []string {
	t.Helper()
	var c struct {
		Plugins []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range c.Plugins {
		out = append(out, p.Type)
	}
	return out
}

func TestChainIsLastAndIdempotent(t *testing.T) {
	e := Entry{APIAccess: "/etc/cni/net.d/podgate-cni.d/api.json"}
	once, changed, err := Chain([]byte(bridgeConflist), e)
	if err != nil || !changed {
		t.Fatalf("Chain = %v, changed %v", err, changed)
	}
	if got := strings.Join(pluginTypes(t, once), ","); got != "bridge,loopback,podgate-cni" {
		t.Fatalf("plugins = %s", got)
	}
	if !Chained(once) {
		t.Fatal("Chained = false after Chain")
	}
	for _, keep := range []string{`"x-vendor"`, `"mtu": 1450`, `"198.18.10.0/24"`, `"cniVersion": "0.4.0"`, `"io.kubernetes.cri.pod-annotations": true`} {
		if !strings.Contains(string(once), keep) {
			t.Errorf("chained conflist lost or lacks %s:\n%s", keep, once)
		}
	}
	twice, changed, err := Chain(once, e)
	if err != nil || changed || string(twice) != string(once) {
		t.Fatalf("second Chain changed it (%v, %v)", changed, err)
	}
	// New settings replace the old entry instead of adding a second one.
	moved, changed, err := Chain(once, Entry{LogFile: "/var/log/podgate-cni.log"})
	if err != nil || !changed {
		t.Fatalf("Chain with new settings = %v, %v", changed, err)
	}
	if got := strings.Join(pluginTypes(t, moved), ","); got != "bridge,loopback,podgate-cni" {
		t.Fatalf("plugins = %s", got)
	}
	if strings.Contains(string(moved), "apiAccess") || !strings.Contains(string(moved), "podgate-cni.log") {
		t.Fatalf("entry not replaced:\n%s", moved)
	}
}

// An entry of ours that is not last (another plugin was appended after it) moves to the end.
func TestChainMovesToTheEnd(t *testing.T) {
	in := `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"podgate-cni","capabilities":{"io.kubernetes.cri.pod-annotations":true}},{"type":"portmap"}]}`
	out, changed, err := Chain([]byte(in), Entry{})
	if err != nil || !changed {
		t.Fatalf("Chain = %v, %v", changed, err)
	}
	if got := strings.Join(pluginTypes(t, out), ","); got != "bridge,portmap,podgate-cni" {
		t.Fatalf("plugins = %s", got)
	}
}

func TestChainRefusesWhatIsNotAConflist(t *testing.T) {
	for name, in := range map[string]string{
		"single plugin .conf": `{"cniVersion":"0.4.0","name":"n","type":"bridge"}`,
		"garbage":             `{"plugins": [`,
		"only us":             `{"plugins":[{"type":"podgate-cni"}]}`,
		"plugins not a list":  `{"plugins":{"type":"bridge"}}`,
	} {
		if _, _, err := Chain([]byte(in), Entry{}); err == nil {
			t.Errorf("%s: Chain accepted it", name)
		}
	}
	if _, _, err := Chain([]byte(`{"type":"bridge"}`), Entry{}); !errors.Is(err, ErrNotConflist) {
		t.Errorf("single plugin: %v, want ErrNotConflist", err)
	}
}

func TestUnchainRestores(t *testing.T) {
	chained, _, err := Chain([]byte(bridgeConflist), Entry{})
	if err != nil {
		t.Fatal(err)
	}
	out, changed, err := Unchain(chained)
	if err != nil || !changed {
		t.Fatalf("Unchain = %v, %v", changed, err)
	}
	if got := strings.Join(pluginTypes(t, out), ","); got != "bridge,loopback" {
		t.Fatalf("plugins = %s", got)
	}
	var a, b any
	_ = json.Unmarshal([]byte(bridgeConflist), &a)
	_ = json.Unmarshal(out, &b)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("unchained conflist differs from the original:\n%s\n%s", ja, jb)
	}
	if _, changed, _ := Unchain(out); changed {
		t.Fatal("Unchain of a clean conflist changed it")
	}
}

func TestActiveConflistIsFirstByName(t *testing.T) {
	dir := t.TempDir()
	if _, err := ActiveConflist(dir); !errors.Is(err, ErrNoConflist) {
		t.Fatalf("empty dir: %v", err)
	}
	for _, n := range []string{"20-b.conflist", "10-a.conflist", "05-notes.txt", ".00-hidden.conflist"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(bridgeConflist), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "00-dir.conflist"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := ActiveConflist(dir)
	if err != nil || filepath.Base(got) != "10-a.conflist" {
		t.Fatalf("ActiveConflist = %s, %v", got, err)
	}
}
