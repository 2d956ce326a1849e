package inject

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testConfig is the injector configuration every golden case runs with.
func testConfig() *Config {
	c := DefaultConfig()
	c.Image = "ghcr.io/podgate/sidecar:test"
	c.IssuerURL = "https://keycloak.example.com/realms/demo"
	c.ClientID = "demo"
	return &c
}

const (
	injectedSuffix = ".injected.yaml"
	errorSuffix    = ".error"
	// deniedPrefix starts the name of every case that must be denied; every other case must be
	// injected. The name, not the golden file present, says which, so -update cannot silently turn
	// an injected case into a denied one (or back).
	deniedPrefix = "err-"
)

// goldenInputs lists testdata/<case>.yaml, the golden outputs excluded: a new file is a new case.
func goldenInputs(t testing.TB) []string {
	all, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var in []string
	for _, f := range all {
		if !strings.HasSuffix(f, injectedSuffix) {
			in = append(in, f)
		}
	}
	if len(in) < 10 {
		t.Fatalf("only %d golden inputs found", len(in))
	}
	return in
}

// TestGolden runs every testdata/<case>.yaml through the offline injection: the output must equal
// <case>.injected.yaml, or, for inputs that must be denied (err-<case>.yaml), the error must equal
// <case>.error. `go test ./internal/inject -run Golden -update` rewrites them.
func TestGolden(t *testing.T) {
	cfg := testConfig()
	for _, in := range goldenInputs(t) {
		base := strings.TrimSuffix(in, ".yaml")
		t.Run(filepath.Base(base), func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err = Manifests(bytes.NewReader(src), &out, nil, cfg)
			if denied := strings.HasPrefix(filepath.Base(base), deniedPrefix); denied != (err != nil) {
				t.Fatalf("denied = %v (error %v), but the case's name says denied = %v; rename the case if it should change", err != nil, err, denied)
			}
			got, want, other := out.Bytes(), base+injectedSuffix, base+errorSuffix
			if err != nil {
				got, want, other = []byte(err.Error()+"\n"), base+errorSuffix, base+injectedSuffix
			}
			if *update {
				if err := os.WriteFile(want, got, 0o644); err != nil {
					t.Fatal(err)
				}
				_ = os.Remove(other)
			}
			exp, rerr := os.ReadFile(want)
			if rerr != nil {
				t.Fatalf("no golden file %s (run with -update): got\n%s", want, got)
			}
			if !bytes.Equal(got, exp) {
				t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", want, got, exp)
			}
			if _, err := os.Stat(other); err == nil {
				t.Errorf("%s exists but the case produced %s", other, want)
			}
		})
	}
}

// TestNoOrphanedGoldens fails on golden outputs whose input was removed or renamed.
func TestNoOrphanedGoldens(t *testing.T) {
	for _, pattern := range []string{"testdata/*" + injectedSuffix, "testdata/*" + errorSuffix} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			in := strings.TrimSuffix(strings.TrimSuffix(f, injectedSuffix), errorSuffix) + ".yaml"
			if _, err := os.Stat(in); err != nil {
				t.Errorf("orphaned golden %s: its input %s does not exist", f, in)
			}
		}
	}
}

// TestIdempotent: inject(inject(p)) == inject(p) for every golden input, which is what makes the
// webhook's reinvocation (reinvocationPolicy: IfNeeded) and a second offline run harmless.
func TestIdempotent(t *testing.T) {
	cfg := testConfig()
	for _, in := range goldenInputs(t) {
		src, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		var once, twice bytes.Buffer
		if err := Manifests(bytes.NewReader(src), &once, nil, cfg); err != nil {
			continue // denied inputs have no injected form
		}
		if err := Manifests(bytes.NewReader(once.Bytes()), &twice, nil, cfg); err != nil {
			t.Errorf("%s: second pass failed: %v", in, err)
			continue
		}
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Errorf("%s: second pass changed the output:\n--- once\n%s\n--- twice\n%s", in, once.Bytes(), twice.Bytes())
		}
	}
}
