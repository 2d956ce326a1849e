package capture

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestRulesGolden builds the rule set for every testdata/<case>.status.json (a podgate.io/status
// value) and compares it with <case>.nft, or the error with <case>.error. New cases are picked up
// automatically; a golden file without its input fails.
func TestRulesGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.status.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	wanted := map[string]bool{}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".status.json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var got, golden string
			st, err := ParseStatus(string(raw))
			if err == nil {
				var rs RuleSet
				if rs, err = Rules(st); err == nil {
					got, golden = rs.String(), "testdata/"+name+".nft"
				}
			}
			if err != nil {
				got, golden = err.Error()+"\n", "testdata/"+name+".error"
			}
			wanted[golden] = true
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Fatalf("%s differs:\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
	outputs, _ := filepath.Glob("testdata/*.nft")
	errs, _ := filepath.Glob("testdata/*.error")
	for _, o := range append(outputs, errs...) {
		if !wanted[o] {
			t.Errorf("orphaned golden file %s: remove it or add its .status.json", o)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range Modes {
		if got, err := ParseMode(" " + string(m) + " "); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %q, %v", m, got, err)
		}
	}
	for _, bad := range []string{"", "CNI", "iptables", "none,cni"} {
		if _, err := ParseMode(bad); !errors.Is(err, ErrUnknownMode) {
			t.Errorf("ParseMode(%q) = %v, want ErrUnknownMode", bad, err)
		}
	}
}

// A status from before capture existed (no "capture" field) parses and asks for nothing.
func TestParseStatusWithoutCapture(t *testing.T) {
	st, err := ParseStatus(`{"version":1,"adminPort":4190,"ports":[{"container":"app","name":"http","appPort":8080,"proxyPort":4180}]}`)
	if err != nil || st.Capture != "" {
		t.Fatalf("ParseStatus = %+v, %v", st, err)
	}
}
