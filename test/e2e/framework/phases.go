// Package framework runs podgate's end-to-end stack: a Kubernetes cluster from a pluggable
// provider, a real Keycloak, images built without a container engine, and the injector deployed
// from manifests. The e2e tests (build tag e2e) and the demo command are both built on it.
package framework

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Phases records how long each named step of a run took, for the summary printed at the end:
// `make e2e` promises cold and warm budgets, and this is how a run shows whether it kept them.
type Phases struct {
	mu   sync.Mutex
	list []Phase
}

// Phase is one timed step and how it ended.
type Phase struct {
	Name     string
	Duration time.Duration
	Err      error
}

// Run times f under name and records its outcome.
func (p *Phases) Run(name string, f func() error) error {
	start := time.Now()
	err := f()
	p.Add(name, time.Since(start), err)
	return err
}

// Add records a phase timed elsewhere.
func (p *Phases) Add(name string, d time.Duration, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, Phase{Name: name, Duration: d, Err: err})
}

// List returns the phases recorded so far, in order.
func (p *Phases) List() []Phase {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Phase(nil), p.list...)
}

// Write prints the phases as an aligned table with a total.
func (p *Phases) Write(w io.Writer) {
	var total time.Duration
	for _, ph := range p.List() {
		status := "ok"
		if ph.Err != nil {
			status = "FAILED: " + ph.Err.Error()
		}
		fmt.Fprintf(w, "  %-38s %7.1fs  %s\n", ph.Name, ph.Duration.Seconds(), strings.TrimSpace(status))
		total += ph.Duration
	}
	fmt.Fprintf(w, "  %-38s %7.1fs\n", "total", total.Seconds())
}
