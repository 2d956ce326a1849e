package main

import (
	"bufio"
	"crypto/sha1" //nolint:gosec // RFC 6455 fixes SHA-1 for the handshake; it protects nothing
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"net/http"
	"strings"
)

// A minimal RFC 6455 WebSocket echo, enough for the routing tests to hold a connection open through
// podgate and see which app answers: every text message comes back as "<name> <pod>: <message>".
// No library, so the app stays one small static binary.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// maxWSMessage bounds one message: the app is a test fixture, not a chat server.
const maxWSMessage = 64 << 10

func serveWebSocket(name, pod string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Sec-WebSocket-Key")
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
			http.Error(w, "WebSocket upgrade expected", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "cannot hijack", http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		sum := sha1.Sum([]byte(key + wsGUID)) //nolint:gosec // see the import
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
		if err := rw.Flush(); err != nil {
			return
		}
		log.Printf("websocket opened identity=%t", r.Header.Get("X-Auth-Request-User") != "")
		for {
			op, msg, err := readWSFrame(rw.Reader)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					log.Printf("websocket: %v", err)
				}
				return
			}
			switch op {
			case 0x1: // text
				msg = append([]byte(name+" "+pod+": "), msg...)
			case 0x8: // close: answer it and stop
				_ = writeWSFrame(rw.Writer, 0x8, nil)
				return
			case 0x9: // ping
				op = 0xA
			default:
				continue
			}
			if err := writeWSFrame(rw.Writer, op, msg); err != nil {
				return
			}
		}
	}
}

// readWSFrame reads one unfragmented, masked client frame.
func readWSFrame(r *bufio.Reader) (byte, []byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	if hdr[0]&0x80 == 0 {
		return 0, nil, errors.New("fragmented frames are not supported")
	}
	if hdr[1]&0x80 == 0 {
		return 0, nil, errors.New("client frame is not masked")
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > maxWSMessage {
		return 0, nil, errors.New("message too large")
	}
	var mask [4]byte
	if _, err := io.ReadFull(r, mask[:]); err != nil {
		return 0, nil, err
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	for i := range p {
		p[i] ^= mask[i%4]
	}
	return hdr[0] & 0x0f, p, nil
}

// writeWSFrame writes one unmasked server frame and flushes it.
func writeWSFrame(w *bufio.Writer, op byte, p []byte) error {
	hdr := []byte{0x80 | op}
	switch n := len(p); {
	case n < 126:
		hdr = append(hdr, byte(n))
	case n < 1<<16:
		hdr = append(hdr, 126, byte(n>>8), byte(n))
	default:
		hdr = binary.BigEndian.AppendUint64(append(hdr, 127), uint64(n))
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	if _, err := w.Write(p); err != nil {
		return err
	}
	return w.Flush()
}
