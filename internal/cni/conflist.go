package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Entry is the plugin's entry in a conflist, as the node agent writes it.
type Entry struct {
	// APIAccess and LogFile are host paths (see NetConf).
	APIAccess string
	LogFile   string
}

// object renders the entry as the JSON object the conflist gets.
func (e Entry) object() map[string]any {
	o := map[string]any{
		"type":         PluginType,
		"capabilities": map[string]any{CapabilityPodAnnotations: true},
	}
	if e.APIAccess != "" {
		o["apiAccess"] = e.APIAccess
	}
	if e.LogFile != "" {
		o["logFile"] = e.LogFile
	}
	return o
}

// ErrNotConflist: the file is valid JSON but not a conflist (a single-plugin .conf has no chain to
// join).
var ErrNotConflist = errors.New("not a conflist: no \"plugins\" list")

// decodeConflist keeps every field it does not touch (numbers exactly as written), so chaining in
// changes nothing but the plugins list.
func decodeConflist(data []byte) (map[string]any, []any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var conf map[string]any
	if err := dec.Decode(&conf); err != nil {
		return nil, nil, fmt.Errorf("conflist: %w", err)
	}
	plugins, ok := conf["plugins"].([]any)
	if !ok {
		return nil, nil, ErrNotConflist
	}
	return conf, plugins, nil
}

func isOurs(p any) bool {
	m, ok := p.(map[string]any)
	return ok && m["type"] == PluginType
}

func encodeConflist(conf map[string]any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(conf); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Chain returns the conflist with the entry as the last plugin (after the network plugin and any
// other chained plugin, so it sees the final result) and whether that changed anything. An entry
// of ours elsewhere in the list, or with other settings, is replaced: chaining is idempotent.
func Chain(data []byte, e Entry) ([]byte, bool, error) {
	conf, plugins, err := decodeConflist(data)
	if err != nil {
		return nil, false, err
	}
	want := e.object()
	if n := len(plugins); n > 0 && isOurs(plugins[n-1]) && !slices.ContainsFunc(plugins[:n-1], isOurs) {
		if same(plugins[n-1], want) {
			return data, false, nil
		}
	}
	if len(slices.DeleteFunc(slices.Clone(plugins), isOurs)) == 0 {
		return nil, false, errors.New("conflist has no network plugin to chain after")
	}
	conf["plugins"] = append(slices.DeleteFunc(plugins, isOurs), want)
	out, err := encodeConflist(conf)
	return out, err == nil, err
}

// Unchain returns the conflist without the plugin's entries and whether there were any.
func Unchain(data []byte) ([]byte, bool, error) {
	conf, plugins, err := decodeConflist(data)
	if err != nil {
		return nil, false, err
	}
	if !slices.ContainsFunc(plugins, isOurs) {
		return data, false, nil
	}
	conf["plugins"] = slices.DeleteFunc(plugins, isOurs)
	out, err := encodeConflist(conf)
	return out, err == nil, err
}

// Chained reports whether the conflist has the plugin as its last entry.
func Chained(data []byte) bool {
	_, plugins, err := decodeConflist(data)
	return err == nil && len(plugins) > 0 && isOurs(plugins[len(plugins)-1])
}

func same(a any, b map[string]any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// confExtensions are the files a runtime loads from the conf dir (libcni's ConfFiles).
var confExtensions = []string{".conf", ".conflist", ".json"}

// ErrNoConflist: the conf dir has no network configuration yet (the network plugin's own agent
// has not written it); the node agent waits for one.
var ErrNoConflist = errors.New("no network configuration in the CNI conf dir yet")

// ActiveConflist returns the file the runtime uses: the first, by name, of the conf dir's
// configuration files, as containerd and CRI-O pick it.
func ActiveConflist(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries { // sorted by name
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || !slices.Contains(confExtensions, filepath.Ext(e.Name())) {
			continue
		}
		return filepath.Join(dir, e.Name()), nil
	}
	return "", ErrNoConflist
}

// writeAtomic replaces path with data through a rename in the same directory, keeping the mode,
// so the runtime never reads half a file. The temporary name has no conf extension and starts
// with a dot, so the runtime never loads it.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".podgate-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// EditFile applies edit (Chain or Unchain) to the file at path and writes it back if it changed.
func EditFile(path string, edit func([]byte) ([]byte, bool, error)) (bool, error) {
	info, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	out, changed, err := edit(data)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	if !changed {
		return false, nil
	}
	return true, writeAtomic(path, out, info.Mode().Perm())
}
