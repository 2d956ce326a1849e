package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/podgate/podgate/internal/options"
)

// probeTimeout caps one probe when the kubelet's own timeout (it closes the connection) is longer.
const probeTimeout = 30 * time.Second

// Prober runs the app's original probes on loopback. The admin port needs no login, and the
// protected port never has to let probes through unauthenticated: a 302 to the IdP would count as
// probe success and a 401 would kill the pod.
type Prober struct {
	probes  map[string]*url.URL
	headers map[string]http.Header // configured headers by probe name
	http    *http.Client
	grpc    *http.Client
}

// NewProber returns a prober for probes, sending each HTTP probe's configured headers.
func NewProber(probes []options.Probe, headers []options.ProbeHeader) *Prober {
	m := make(map[string]*url.URL, len(probes))
	for _, p := range probes {
		m[p.Name] = p.Target
	}
	hs := map[string]http.Header{}
	for _, h := range headers {
		if hs[h.Probe] == nil {
			hs[h.Probe] = http.Header{}
		}
		hs[h.Probe].Add(h.Name, h.Value)
	}
	httpT := &http.Transport{
		// Targets are loopback only (options.ParseProbe enforces it); the app's certificate
		// cannot name 127.0.0.1, and the kubelet does not verify probe certificates either.
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	grpcT := &http.Transport{Protocols: new(http.Protocols), MaxIdleConnsPerHost: 1, IdleConnTimeout: 30 * time.Second}
	grpcT.Protocols.SetUnencryptedHTTP2(true)
	return &Prober{
		probes: m, headers: hs,
		http: &http.Client{Transport: httpT, Timeout: probeTimeout,
			// The kubelet treats 3xx as success without following off-host; report it as is.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		grpc: &http.Client{Transport: grpcT, Timeout: probeTimeout},
	}
}

// ServeHTTP serves /probe/<name>.
func (p *Prober) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/probe/")
	target, ok := p.probes[name]
	if !ok {
		http.Error(w, fmt.Sprintf("no probe named %q", name), http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	var code int
	var msg string
	switch target.Scheme {
	case "http", "https":
		code, msg = p.probeHTTP(ctx, target, r.Header, p.headers[name])
	case "tcp":
		code, msg = probeTCP(ctx, target)
	case "grpc":
		code, msg = p.probeGRPC(ctx, target)
	default:
		code, msg = http.StatusInternalServerError, "unsupported probe scheme"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// kubeletHeaders are the headers of a kubelet probe besides the configured ones; only these are
// taken from the caller of /probe/<name>.
var kubeletHeaders = []string{"User-Agent", "Accept"}

// probeHTTP GETs the target with what a kubelet probe sends: its User-Agent and Accept, and the
// probe's configured httpHeaders (which win). Nothing else the caller sent reaches the app: the
// admin port needs no login, so identity headers, Authorization or a Cookie on /probe/<name> could
// come from anyone in the cluster network and would meet the app's own endpoint unchecked.
func (p *Prober) probeHTTP(ctx context.Context, target *url.URL, in, configured http.Header) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return http.StatusInternalServerError, "bad probe target"
	}
	for _, k := range kubeletHeaders {
		if v := in.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	for k, vs := range configured {
		if k == "Host" {
			req.Host = vs[0]
			continue
		}
		req.Header[k] = vs
	}
	// Host stays the target's (127.0.0.1:<app port>) unless configured: the kubelet's Host names
	// the admin port.
	resp, err := p.http.Do(req)
	if err != nil {
		return http.StatusServiceUnavailable, "probe failed: app not reachable"
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, "app answered " + resp.Status
}

func probeTCP(ctx context.Context, target *url.URL) (int, string) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", target.Host)
	if err != nil {
		return http.StatusServiceUnavailable, "probe failed: connect refused or timed out"
	}
	_ = c.Close()
	return http.StatusOK, "connected"
}

// probeGRPC calls grpc.health.v1.Health/Check over HTTP/2 cleartext. The request and response
// are one-field protobuf messages, encoded here by hand, which spares the binary the gRPC library.
func (p *Prober) probeGRPC(ctx context.Context, target *url.URL) (int, string) {
	service := target.Query().Get("service")
	msg := appendProtoString(nil, 1, service)
	body := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(body[1:], uint32(len(msg)))
	body = append(body, msg...)
	u := "http://" + target.Host + "/grpc.health.v1.Health/Check"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return http.StatusInternalServerError, "bad probe target"
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	resp, err := p.grpc.Do(req)
	if err != nil {
		return http.StatusServiceUnavailable, "probe failed: app not reachable"
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return http.StatusServiceUnavailable, "probe failed: reading response"
	}
	status := resp.Trailer.Get("Grpc-Status")
	if status == "" {
		status = resp.Header.Get("Grpc-Status") // trailers-only response
	}
	if resp.StatusCode != http.StatusOK || status != "0" {
		return http.StatusServiceUnavailable, "probe failed: grpc-status " + status
	}
	st, err := parseHealthResponse(data)
	if err != nil {
		return http.StatusServiceUnavailable, "probe failed: " + err.Error()
	}
	if st != servingStatus {
		return http.StatusServiceUnavailable, fmt.Sprintf("not serving (status %d)", st)
	}
	return http.StatusOK, "serving"
}

// servingStatus is HealthCheckResponse.ServingStatus SERVING.
const servingStatus = 1

func appendProtoString(b []byte, field int, s string) []byte {
	if s == "" {
		return b
	}
	b = binary.AppendUvarint(b, uint64(field<<3|2))
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// parseHealthResponse reads the status field (1, varint) of a length-prefixed HealthCheckResponse.
// Absent means 0, UNKNOWN.
func parseHealthResponse(data []byte) (uint64, error) {
	if len(data) < 5 || data[0] != 0 {
		return 0, errors.New("malformed or compressed grpc message")
	}
	n := binary.BigEndian.Uint32(data[1:5])
	msg := data[5:]
	if uint32(len(msg)) < n {
		return 0, errors.New("truncated grpc message")
	}
	msg = msg[:n]
	var status uint64
	for len(msg) > 0 {
		tag, k := binary.Uvarint(msg)
		if k <= 0 {
			return 0, errors.New("malformed protobuf")
		}
		msg = msg[k:]
		switch tag & 7 {
		case 0:
			v, k := binary.Uvarint(msg)
			if k <= 0 {
				return 0, errors.New("malformed protobuf")
			}
			msg = msg[k:]
			if tag>>3 == 1 {
				status = v
			}
		case 2:
			l, k := binary.Uvarint(msg)
			if k <= 0 || uint64(len(msg)-k) < l {
				return 0, errors.New("malformed protobuf")
			}
			msg = msg[k+int(l):]
		default:
			return 0, errors.New("unexpected protobuf wire type")
		}
	}
	return status, nil
}
