package framework

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 6455 fixes SHA-1 for the handshake; it protects nothing
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// WebSocket is a minimal RFC 6455 client (text messages up to 125 bytes, unfragmented), enough to
// hold a connection open through podgate and exchange messages with the echo app's /ws.
type WebSocket struct {
	conn net.Conn
	br   *bufio.Reader
}

// DialWebSocket upgrades u (http://) with the browser's cookies for it, as a browser page would.
// It returns the handshake's status code, and the connection when it is 101.
func (b *Browser) DialWebSocket(ctx context.Context, u string) (*WebSocket, int, error) {
	target, err := url.Parse(u)
	if err != nil {
		return nil, 0, err
	}
	host := target.Host
	if target.Port() == "" {
		host = net.JoinHostPort(target.Hostname(), "80")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, 0, err
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	k := base64.StdEncoding.EncodeToString(key)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", k)
	req.Header.Set("Origin", target.Scheme+"://"+target.Host)
	for _, c := range b.Client.Jar.Cookies(target) {
		req.AddCookie(c)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, 0, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, resp.StatusCode, nil
	}
	sum := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) //nolint:gosec // see the import
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, resp.StatusCode, errors.New("wrong Sec-WebSocket-Accept")
	}
	return &WebSocket{conn: conn, br: br}, resp.StatusCode, nil
}

// Echo sends a text message and returns the text message that comes back.
func (ws *WebSocket) Echo(msg string) (string, error) {
	if len(msg) > 125 {
		return "", errors.New("message too long for this client")
	}
	_ = ws.conn.SetDeadline(time.Now().Add(30 * time.Second))
	mask := make([]byte, 4)
	_, _ = rand.Read(mask)
	frame := append([]byte{0x81, 0x80 | byte(len(msg))}, mask...)
	for i := range len(msg) {
		frame = append(frame, msg[i]^mask[i%4])
	}
	if _, err := ws.conn.Write(frame); err != nil {
		return "", err
	}
	var hdr [2]byte
	if _, err := io.ReadFull(ws.br, hdr[:]); err != nil {
		return "", err
	}
	n := int(hdr[1] & 0x7f)
	if hdr[0]&0x0f != 0x1 || n >= 126 {
		return "", fmt.Errorf("unexpected frame %#x/%d", hdr[0], n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(ws.br, p); err != nil {
		return "", err
	}
	return string(p), nil
}

// Close closes the connection.
func (ws *WebSocket) Close() error { return ws.conn.Close() }
