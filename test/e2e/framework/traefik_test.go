package framework

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigratingShowsWhatTheE2EApplies: docs/migrating.md quotes the users' Traefik configuration
// before and after exactly as the e2e applies it; a change to one without the other fails here.
func TestMigratingShowsWhatTheE2EApplies(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "migrating.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"routes.yaml", "middlewares-before.yaml", "middlewares-after.yaml"} {
		b, err := os.ReadFile(filepath.Join(root, "test", "e2e", "traefik", "users", f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), "```yaml\n"+string(b)+"```") {
			t.Errorf("docs/migrating.md does not quote test/e2e/traefik/users/%s as it is", f)
		}
	}
}
