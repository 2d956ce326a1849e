package framework

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/podgate/podgate/internal/session"
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

// TestAfterCopiesEveryCookieASessionWrites: the after configuration's addAuthCookiesToResponse
// names exactly the cookies the forward-auth service can write with a session (its cookie name,
// _podgate, under --cookie-domain): one left out would keep a refreshed (or expired) cookie from
// the browser.
func TestAfterCopiesEveryCookieASessionWrites(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "test", "e2e", "traefik", "users", "middlewares-after.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var mw struct {
			Spec struct {
				ForwardAuth struct {
					AddAuthCookiesToResponse []string `json:"addAuthCookiesToResponse"`
				} `json:"forwardAuth"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &mw); err != nil {
			t.Fatal(err)
		}
		listed = append(listed, mw.Spec.ForwardAuth.AddAuthCookiesToResponse...)
	}
	codec, err := session.NewCodec(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	want := session.NewStore(codec, "_podgate", true, time.Hour, nil).WithDomain(TraefikDomain).CookieNames()
	if !slices.Equal(listed, want) {
		t.Errorf("addAuthCookiesToResponse lists %v, the forward-auth service writes %v", listed, want)
	}
}
