package sidecar

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// A minimal RFC 6455 implementation for the tests: enough for a real handshake and one echoed
// text message, without pulling a WebSocket library into the module.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

func writeFrame(w io.Writer, payload []byte, mask bool) error {
	hdr := []byte{0x81, byte(len(payload))} // FIN + text; payloads < 126 bytes only
	if mask {
		hdr[1] |= 0x80
		key := []byte{1, 2, 3, 4}
		hdr = append(hdr, key...)
		masked := make([]byte, len(payload))
		for i := range payload {
			masked[i] = payload[i] ^ key[i%4]
		}
		payload = masked
	}
	_, err := w.Write(append(hdr, payload...))
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	n := int(hdr[1] & 0x7f)
	if n >= 126 {
		return nil, errors.New("long frames not supported in tests")
	}
	var key []byte
	if hdr[1]&0x80 != 0 {
		key = make([]byte, 4)
		if _, err := io.ReadFull(r, key); err != nil {
			return nil, err
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	for i := range p {
		if key != nil {
			p[i] ^= key[i%4]
		}
	}
	return p, nil
}

// serveEcho upgrades and echoes one message.
func serveEcho(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "not a websocket", 400)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		wsAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
	_ = rw.Flush()
	msg, err := readFrame(rw)
	if err != nil {
		return
	}
	_ = writeFrame(rw, append([]byte("echo: "), msg...), false)
	_ = rw.Flush()
}

// wsEcho dials addr, upgrades /ws with extra headers, sends msg and returns the reply.
func wsEcho(t *testing.T, addr string, hdr map[string]string, msg string) (string, int) {
	t.Helper()
	conn := dial(t, addr)
	defer conn.Close()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\nOrigin: http://" + addr + "\r\n"
	for k, v := range hdr {
		req += k + ": " + v + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return "", resp.StatusCode
	}
	if resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		t.Fatalf("bad Sec-WebSocket-Accept %q", resp.Header.Get("Sec-WebSocket-Accept"))
	}
	if err := writeFrame(conn, []byte(msg), true); err != nil {
		t.Fatal(err)
	}
	reply, err := readFrame(br)
	if err != nil {
		t.Fatal(err)
	}
	return string(reply), resp.StatusCode
}
