package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/podgate/podgate/internal/inject"
)

func TestAnnotationsCommandPrintsTheTable(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"annotations"}, nil, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != inject.MarkdownTable() {
		t.Fatal("annotations output differs from inject.MarkdownTable")
	}
}

func TestInjectCommandFromStdin(t *testing.T) {
	cfg := t.TempDir() + "/config.yaml"
	if err := os.WriteFile(cfg, []byte("issuerURL: https://kc.example.com/realms/x\nclientID: app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../internal/inject/testdata/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"inject", "-f", "-", "--config", cfg, "--sidecar-image", "podgate.local/sidecar:e2e"}, bytes.NewReader(src), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"image: podgate.local/sidecar:e2e", "--client-id=app", "kind: Service", "kind: ConfigMap", inject.AnnotationStatus} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"inject"}, {"inject", "-f", "/nonexistent"}, {"inject", "-f", "-", "--config", "/nonexistent"}} {
		if err := run(args, strings.NewReader(""), &bytes.Buffer{}); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// TestServeRejectsABadMemoryLimit: a MEMORY_LIMIT that is not a byte count, or a negative
// --memory-limit, stops serve before it starts anything, naming the setting.
func TestServeRejectsABadMemoryLimit(t *testing.T) {
	t.Setenv("MEMORY_LIMIT", "256Mi")
	if err := run([]string{"serve"}, strings.NewReader(""), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `MEMORY_LIMIT: "256Mi"`) {
		t.Errorf("MEMORY_LIMIT=256Mi: %v", err)
	}
	t.Setenv("MEMORY_LIMIT", "")
	if err := run([]string{"serve", "--memory-limit=-1"}, strings.NewReader(""), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--memory-limit: -1") {
		t.Errorf("--memory-limit=-1: %v", err)
	}
}
