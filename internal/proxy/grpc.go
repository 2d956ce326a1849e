package proxy

import (
	"net/http"
	"strconv"
	"strings"
)

// gRPC status codes the proxy answers with (google.golang.org/grpc/codes; the sidecar does not
// link the gRPC library).
const (
	grpcUnavailable      = 14
	grpcUnauthenticated  = 16
	grpcPermissionDenied = 7
)

// isGRPC reports whether r is a gRPC call: "application/grpc", optionally followed by "+codec" or
// parameters. gRPC-Web ("application/grpc-web…") is not: browsers send it over HTTP/1.1 to an app
// that serves gRPC-Web itself, and its clients map plain 401/403 answers to Unauthenticated and
// PermissionDenied, so it takes the HTTP path.
func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	const base = "application/grpc"
	if len(ct) < len(base) || !strings.EqualFold(ct[:len(base)], base) {
		return false
	}
	return len(ct) == len(base) || ct[len(base)] == '+' || ct[len(base)] == ';'
}

// grpcError answers a gRPC call the proxy refuses: HTTP 200 and a single header block carrying
// grpc-status and grpc-message ("trailers-only"), which a gRPC client reports as the status code
// and message (a bare 401 would surface as an opaque Unavailable or Unknown). Nothing is written
// after the header block, so the HTTP/2 server ends the stream with it.
func grpcError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(code))
	h.Set("Grpc-Message", grpcEncodeMessage(msg))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// grpcEncodeMessage percent-encodes a grpc-message value as the gRPC protocol requires: every byte
// outside printable ASCII, and '%' itself.
func grpcEncodeMessage(msg string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
