package sidecar

import (
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/podgate/podgate/internal/metrics"
	"github.com/podgate/podgate/internal/proxy"
)

// overCapacity is written, whole, to a connection accepted past the cap. The request is never
// parsed: holding it is the cost the cap exists to bound.
var overCapacity = func() []byte {
	const body = "Service Unavailable: too many connections\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Retry-After: 1\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// limitListener caps the connections open at once. Past the cap a connection is answered 503 and
// closed at once instead of waiting in the backlog: a client learns to back off, and a flood of
// slow connections cannot hold more than the cap's worth of header buffers.
type limitListener struct {
	net.Listener
	sem chan struct{}
	m   *metrics.Sidecar
}

func newLimitListener(ln net.Listener, max int, m *metrics.Sidecar) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), m: m}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			l.m.Requests.With(proxy.OutcomeOverCapacity).Inc()
			go refuse(c)
		}
	}
}

// refuse answers 503, then reads (and drops) what the client sent for up to a second before
// closing: closing with unread data would reset the connection, and the client might see the reset
// instead of the 503.
func refuse(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(overCapacity); err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// limitConn gives its slot back once, when closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
