package sidecar

import (
	"io"
	"testing"

	"golang.org/x/net/http2"
)

// TestH2CStreamLimit: a client's HTTP/2 connection is told, in the server's first SETTINGS, that it
// may open at most maxConcurrentStreams streams (each holds a header block in memory).
func TestH2CStreamLimit(t *testing.T) {
	e := newEnv(t, envOpt{})
	for _, addr := range []string{e.app.Addr("proxy", 0), e.app.Addr("forwardAuth", 0), e.app.Addr("admin", 0)} {
		conn := dial(t, addr)
		if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(conn, conn)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("%s: no HTTP/2 with prior knowledge: %v", addr, err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok {
			t.Fatalf("%s: first frame %T, want SETTINGS", addr, f)
		}
		if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != maxConcurrentStreams {
			t.Errorf("%s: SETTINGS_MAX_CONCURRENT_STREAMS = %d (sent %v), want %d", addr, v, ok, maxConcurrentStreams)
		}
		conn.Close()
	}
}
