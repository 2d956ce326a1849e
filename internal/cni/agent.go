package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// Agent installs the plugin on its node and keeps it installed: the binary in the CNI bin dir, the
// API access file, and the entry at the end of the active conflist, put back whenever the network
// plugin rewrites that file.
type Agent struct {
	// Self is the binary to install (the agent's own executable).
	Self string
	// BinDir and ConfDir are the host's CNI directories as mounted into the agent.
	BinDir, ConfDir string
	// HostConfDir is ConfDir as the host (the runtime running the plugin) sees it.
	HostConfDir string
	// LogFile is the host path the plugin logs to; empty for no log.
	LogFile string
	// ServiceAccountDir holds the agent's token and CA; Server is the API server's URL. When either
	// is empty no API access is written and the plugin relies on the runtime's annotations.
	ServiceAccountDir, Server string
	// Resync is how often the agent checks everything even without a file event.
	Resync time.Duration
	Log    *zap.Logger

	ready atomic.Bool
}

// accessDir is the agent's own directory in the conf dir. Runtimes load only files with a conf
// extension directly in the conf dir, never subdirectories.
const accessDir = "podgate-cni.d"

func (a *Agent) entry() Entry {
	e := Entry{LogFile: a.LogFile}
	if a.ServiceAccountDir != "" && a.Server != "" {
		e.APIAccess = filepath.Join(a.HostConfDir, accessDir, "api.json")
	}
	return e
}

// Install puts everything in place once: binary first, then the access file, then the chain, so
// the runtime never runs a chain that names a missing binary.
func (a *Agent) Install() error {
	if err := a.installBinary(); err != nil {
		return fmt.Errorf("installing the plugin binary: %w", err)
	}
	if err := a.writeAccess(); err != nil {
		return fmt.Errorf("writing the API access file: %w", err)
	}
	path, err := ActiveConflist(a.ConfDir)
	if err != nil {
		return err
	}
	changed, err := EditFile(path, func(b []byte) ([]byte, bool, error) { return Chain(b, a.entry()) })
	if err != nil {
		return err
	}
	if changed {
		a.Log.Info("chained into the conflist", zap.String("conflist", path))
	}
	return nil
}

// Uninstall removes the entry from every conflist that has it, then the binary and the agent's
// files: the reverse order of Install.
func (a *Agent) Uninstall() error {
	var errs []error
	entries, err := os.ReadDir(a.ConfDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		path := filepath.Join(a.ConfDir, e.Name())
		if e.IsDir() || !slices.Contains(confExtensions, filepath.Ext(path)) {
			continue
		}
		changed, err := EditFile(path, Unchain)
		if err != nil && !errors.Is(err, ErrNotConflist) {
			// Files that are not JSON conflists are not ours to judge; only report real I/O errors.
			var syn *json.SyntaxError
			if !errors.As(err, &syn) {
				errs = append(errs, err)
			}
		}
		if changed {
			a.Log.Info("removed from the conflist", zap.String("conflist", path))
		}
	}
	if err := os.Remove(filepath.Join(a.BinDir, PluginType)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(filepath.Join(a.ConfDir, accessDir)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (a *Agent) installBinary() error {
	self, err := os.ReadFile(a.Self)
	if err != nil {
		return err
	}
	dst := filepath.Join(a.BinDir, PluginType)
	if cur, err := os.ReadFile(dst); err == nil && bytes.Equal(cur, self) {
		return nil
	}
	if err := writeAtomic(dst, self, 0o755); err != nil {
		return err
	}
	a.Log.Info("installed the plugin binary", zap.String("path", dst))
	return nil
}

// writeAccess copies the agent's current token (tokens rotate; every resync refreshes the copy).
func (a *Agent) writeAccess() error {
	if a.ServiceAccountDir == "" || a.Server == "" {
		return nil
	}
	token, err := os.ReadFile(filepath.Join(a.ServiceAccountDir, "token"))
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(filepath.Join(a.ServiceAccountDir, "ca.crt"))
	if err != nil {
		return err
	}
	b, err := json.Marshal(APIAccess{Server: a.Server, Token: string(bytes.TrimSpace(token)), CA: string(ca)})
	if err != nil {
		return err
	}
	dir := filepath.Join(a.ConfDir, accessDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, "api.json")
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, b) {
		return nil
	}
	// 0600: the token may read every pod; only root on the node (the runtime) needs it.
	return writeAtomic(path, b, 0o600)
}

// Run installs, then keeps the installation in place until ctx ends: on every change in the conf
// dir (the network plugin's agent rewriting its conflist drops our entry) and every Resync. When
// ctx ends it uninstalls if uninstall is set, so deleting the DaemonSet removes podgate-cni from
// the node.
func (a *Agent) Run(ctx context.Context, uninstall bool) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer func() { _ = w.Close() }()
	if err := w.Add(a.ConfDir); err != nil {
		return fmt.Errorf("watching %s: %w", a.ConfDir, err)
	}
	tick := time.NewTicker(a.Resync)
	defer tick.Stop()
	sync := func() {
		err := a.Install()
		a.ready.Store(err == nil)
		if err != nil {
			a.Log.Error("podgate-cni is not installed", zap.Error(err))
		}
	}
	sync()
	for {
		select {
		case <-ctx.Done():
			a.ready.Store(false)
			if !uninstall {
				return nil
			}
			a.Log.Info("uninstalling")
			return a.Uninstall()
		case ev := <-w.Events:
			if ev.Op == fsnotify.Chmod {
				continue
			}
			sync()
		case err := <-w.Errors:
			a.Log.Warn("watching the conf dir", zap.Error(err))
		case <-tick.C:
			sync()
		}
	}
}

// Ready answers 200 while the plugin is installed and chained, 503 otherwise: the DaemonSet's
// readiness says whether the node captures.
func (a *Agent) Ready(w http.ResponseWriter, _ *http.Request) {
	if a.ready.Load() {
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	http.Error(w, "podgate-cni is not installed and chained", http.StatusServiceUnavailable)
}
