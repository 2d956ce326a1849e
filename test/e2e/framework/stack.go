package framework

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Stack is everything an e2e run or the demo stands on: the cluster, Keycloak, the images and the
// injector deployed from manifests/. Up builds it in timed phases; Down removes all of it.
type Stack struct {
	Root     string // repository root
	Scripts  Scripts
	Provider Provider
	Keycloak *Keycloak
	Kube     *Kube
	Images   []Image
	Phases   Phases
	Log      io.Writer

	// webhookName is the injector's webhook as registered, found by DeployInjector.
	webhookName string
	// kustomizeDir is the kustomization DeployInjector applied (the e2e overlay with the
	// provider's CNI directories); Down removes it.
	kustomizeDir string
}

// NewStack prepares a stack for the provider PODGATE_E2E_PROVIDER names (local by default).
func NewStack(log io.Writer) (*Stack, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	scripts := Scripts{Dir: filepath.Join(root, "test", "e2e"), Log: log, Env: Env()}
	provider, err := NewProvider(os.Getenv("PODGATE_E2E_PROVIDER"), scripts)
	if err != nil {
		return nil, err
	}
	return &Stack{Root: root, Scripts: scripts, Provider: provider, Keycloak: NewKeycloak(), Log: log}, nil
}

// repoRoot finds the repository from the working directory (go test runs in test/e2e, the demo
// command at the root).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(b), "module github.com/podgate/podgate\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no podgate go.mod above %s", dir)
		}
	}
}

// Up brings the whole stack up. On error the caller still calls Down: each phase leaves a record
// of what it changed, so a partial Up is torn down as exactly as a complete one.
func (s *Stack) Up(ctx context.Context) error {
	p := s.Provider
	// A run that was killed outright (SIGKILL, a machine's session ending) leaves state behind;
	// start from a clean machine rather than from its half-dead cluster.
	if err := s.Phases.Run("clean up an earlier run", func() error { return p.Destroy(ctx) }); err != nil {
		return err
	}
	if err := s.Phases.Run("prepare ("+p.Name()+": install, build)", func() error { return p.Prepare(ctx) }); err != nil {
		return err
	}
	if err := s.Phases.Run("images", func() error { return s.buildImages(ctx) }); err != nil {
		return err
	}
	if err := s.Phases.Run("host network", func() error { return p.Network(ctx) }); err != nil {
		return err
	}
	// Keycloak boots (tens of seconds of JVM start) while the cluster comes up.
	kcStart := time.Now()
	if err := s.Scripts.Run(ctx, "keycloak/keycloak.sh", "start"); err != nil {
		s.Phases.Add("keycloak", time.Since(kcStart), err)
		return err
	}
	if err := s.Phases.Run("cluster", func() error { return p.Create(ctx, s.Images) }); err != nil {
		return err
	}
	kcWaitStart := time.Now()
	err := s.Scripts.Run(ctx, "keycloak/keycloak.sh", "wait")
	s.Phases.Add(fmt.Sprintf("keycloak (ready %.0fs after start)", time.Since(kcStart).Seconds()), time.Since(kcWaitStart), err)
	if err != nil {
		return err
	}
	kube, err := NewKube(p.Kubeconfig(), p.Kubectl())
	if err != nil {
		return err
	}
	s.Kube = kube
	return nil
}

func (s *Stack) buildImages(ctx context.Context) error {
	if err := s.Scripts.Run(ctx, "images/images.sh", "build"); err != nil {
		return err
	}
	out, err := s.Scripts.Output(ctx, "images/images.sh", "list")
	if err != nil {
		return err
	}
	s.Images = nil
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		ref, tarball, ok := strings.Cut(line, " ")
		if !ok {
			return fmt.Errorf("images.sh list: unexpected line %q", line)
		}
		s.Images = append(s.Images, Image{Ref: ref, Tarball: tarball})
	}
	return nil
}

// Down tears everything down, whatever state Up reached. It ignores ctx's cancellation (an
// interrupted run must still clean up) but not its deadline-free parent: it gets its own timeout.
func (s *Stack) Down(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	if s.kustomizeDir != "" {
		_ = os.RemoveAll(s.kustomizeDir)
	}
	return s.Phases.Run("teardown", func() error { return s.Provider.Destroy(ctx) })
}

// Summary writes the phase timings, and which phase failed if one did.
func (s *Stack) Summary(w io.Writer) {
	fmt.Fprintf(w, "podgate e2e (%s provider) phases:\n", s.Provider.Name())
	s.Phases.Write(w)
}
