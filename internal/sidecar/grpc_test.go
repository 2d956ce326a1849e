package sidecar

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/podgate/podgate/internal/options"
)

// grpcApp is a real gRPC server (grpc-go) on loopback: the app behind the sidecar. It records the
// metadata of every call, echoes streams, and fails with whatever status a request asks for.
type grpcApp struct {
	testpb.UnimplementedTestServiceServer
	addr string

	mu   sync.Mutex
	seen []metadata.MD
}

func startGRPCApp(t *testing.T) *grpcApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &grpcApp{addr: ln.Addr().String()}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, app)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return app
}

func (a *grpcApp) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	a.mu.Lock()
	a.seen = append(a.seen, md)
	a.mu.Unlock()
}

// last returns the metadata of the last call the app received.
func (a *grpcApp) last(t *testing.T) metadata.MD {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.seen) == 0 {
		t.Fatal("the app received no call")
	}
	return a.seen[len(a.seen)-1]
}

func (a *grpcApp) calls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.seen)
}

// echoStatus turns a requested status into the app's error, with a detail message attached so
// that the binary grpc-status-details-bin trailer travels too.
func echoStatus(s *testpb.EchoStatus) error {
	if s == nil || s.Code == 0 {
		return nil
	}
	st, err := status.New(codes.Code(s.Code), s.Message).WithDetails(&testpb.Payload{Body: []byte("detail")})
	if err != nil {
		return err
	}
	return st.Err()
}

func (a *grpcApp) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	a.record(ctx)
	if err := echoStatus(req.ResponseStatus); err != nil {
		return nil, err // before any message: a trailers-only response
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-app-header", "h"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-app-trailer", "t"))
	return &testpb.SimpleResponse{Payload: req.Payload}, nil
}

// FullDuplexCall echoes every message as it arrives; a message asking for a status ends the
// stream with it, after the echoes already sent.
func (a *grpcApp) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	a.record(stream.Context())
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			stream.SetTrailer(metadata.Pairs("x-app-trailer", "done"))
			return nil
		}
		if err != nil {
			return err
		}
		if err := echoStatus(req.ResponseStatus); err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.Payload}); err != nil {
			return err
		}
	}
}

// grpcClient dials the sidecar's proxy listener (h2c with prior knowledge, as in a cluster).
func grpcClient(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// grpcEnv is a sidecar whose protected listener forwards to a real gRPC app. The upstream is
// plain http://: gRPC calls must switch to HTTP/2 on their own.
func grpcEnv(t *testing.T, opts func(*options.Options)) (*env, *grpcApp, testpb.TestServiceClient) {
	t.Helper()
	app := startGRPCApp(t)
	e := newEnv(t, envOpt{opts: func(o *options.Options) {
		o.Proxies = []options.Proxy{{Listen: "127.0.0.1:0", Upstream: &url.URL{Scheme: "http", Host: app.addr}}}
		if opts != nil {
			opts(o)
		}
	}})
	return e, app, testpb.NewTestServiceClient(grpcClient(t, e.app.Addr("proxy", 0)))
}

func withBearer(ctx context.Context, tok string, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, append([]string{"authorization", "Bearer " + tok}, kv...)...)
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, err error, code codes.Code, msgPart string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), msgPart) {
		t.Fatalf("status = %v %q, want %v containing %q", st.Code(), st.Message(), code, msgPart)
	}
}

func TestGRPCUnaryWithBearer(t *testing.T) {
	e, app, c := grpcEnv(t, func(o *options.Options) { o.AllowedRoles = []string{"user"} })
	var hdr, trl metadata.MD
	resp, err := c.UnaryCall(withBearer(callCtx(t), e.idp.Mint(e.idp.Claims())),
		&testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("ping")}}, grpc.Header(&hdr), grpc.Trailer(&trl))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Payload.Body) != "ping" {
		t.Errorf("payload %q", resp.Payload.Body)
	}
	md := app.last(t)
	if got := md.Get("x-auth-request-user"); len(got) != 1 || got[0] != "alice" {
		t.Errorf("x-auth-request-user = %q; metadata %v", got, md)
	}
	if got := md.Get("x-auth-request-roles"); len(got) != 1 || got[0] != "user" {
		t.Errorf("x-auth-request-roles = %q", got)
	}
	if got := md.Get("authorization"); len(got) != 0 {
		t.Errorf("the consumed bearer token reached the app: %q", got)
	}
	if hdr.Get("x-app-header")[0] != "h" || len(trl.Get("x-app-trailer")) != 1 || trl.Get("x-app-trailer")[0] != "t" {
		t.Errorf("app header %v, trailer %v", hdr, trl)
	}
	if got := metricValue(t, e, `podgate_grpc_requests_total{outcome="bearer"}`); got != "1" {
		t.Errorf("gRPC bearer calls counted %q", got)
	}
}

func TestGRPCBidiStreaming(t *testing.T) {
	e, app, c := grpcEnv(t, nil)
	stream, err := c.FullDuplexCall(withBearer(callCtx(t), e.idp.Mint(e.idp.Claims())))
	if err != nil {
		t.Fatal(err)
	}
	// Lock-step: each echo must arrive before the next message is sent, which only works if both
	// directions stream through the proxy at once.
	for _, m := range []string{"one", "two", "three"} {
		if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(m)}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Payload.Body) != m {
			t.Fatalf("echo %q, want %q", resp.Payload.Body, m)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
	if got := stream.Trailer().Get("x-app-trailer"); len(got) != 1 || got[0] != "done" {
		t.Errorf("trailer %v", stream.Trailer())
	}
	if got := app.last(t).Get("x-auth-request-user"); len(got) != 1 || got[0] != "alice" {
		t.Errorf("identity at the app: %v", app.last(t))
	}
}

func TestGRPCRefused(t *testing.T) {
	e, app, c := grpcEnv(t, func(o *options.Options) { o.AllowedRoles = []string{"admin"} })
	req := &testpb.SimpleRequest{}

	_, err := c.UnaryCall(callCtx(t), req)
	wantCode(t, err, codes.Unauthenticated, "authorization: Bearer")

	_, err = c.UnaryCall(withBearer(callCtx(t), "not-a-jwt"), req)
	wantCode(t, err, codes.Unauthenticated, "invalid bearer token")

	claims := e.idp.Claims()
	claims["exp"] = time.Now().Add(-time.Hour).Unix()
	_, err = c.UnaryCall(withBearer(callCtx(t), e.idp.Mint(claims)), req)
	wantCode(t, err, codes.Unauthenticated, "invalid bearer token")

	// Valid token, but the user has the role "user", not "admin".
	_, err = c.UnaryCall(withBearer(callCtx(t), e.idp.Mint(e.idp.Claims())), req)
	wantCode(t, err, codes.PermissionDenied, "not allowed")

	// A stream is refused before it reaches the app, on its first receive.
	stream, err := c.FullDuplexCall(callCtx(t))
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, err, codes.Unauthenticated, "authentication required")

	if n := app.calls(); n != 0 {
		t.Errorf("the app received %d refused calls", n)
	}
	if got := metricValue(t, e, `podgate_grpc_requests_total{outcome="invalid_token"}`); got != "2" {
		t.Errorf("invalid_token counted %q", got)
	}
	if got := metricValue(t, e, `podgate_grpc_requests_total{outcome="forbidden"}`); got != "1" {
		t.Errorf("forbidden counted %q", got)
	}
	if got := metricValue(t, e, `podgate_requests_total{outcome="unauthenticated"}`); got != "2" {
		t.Errorf("unauthenticated counted %q in all requests", got)
	}
}

// TestGRPCSpoofedIdentityStripped sends every spelling of the identity metadata the app trusts;
// only the proxy's own values may arrive, on authenticated and skipped routes alike.
func TestGRPCSpoofedIdentityStripped(t *testing.T) {
	e, app, c := grpcEnv(t, func(o *options.Options) {
		o.SkipAuth = []options.SkipRule{{Path: "/grpc.testing.TestService/FullDuplexCall", Exact: true}}
	})
	spoof := []string{
		"x-auth-request-user", "mallory", "x-forwarded-user", "mallory", "x_auth_request_user", "mallory",
		"x-auth-request-roles", "admin", "x-auth-request-groups", "/admins", "x-forwarded-email", "m@evil.example",
	}
	if _, err := c.UnaryCall(withBearer(callCtx(t), e.idp.Mint(e.idp.Claims()), spoof...), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	md := app.last(t)
	for _, k := range []string{"x-auth-request-user", "x-forwarded-user"} {
		if got := md.Get(k); len(got) != 1 || got[0] != "alice" {
			t.Errorf("%s = %q", k, got)
		}
	}
	if got := md.Get("x-auth-request-roles"); len(got) != 1 || got[0] != "user" {
		t.Errorf("roles = %q", got)
	}
	for k, v := range md {
		if strings.Contains(strings.Join(v, ","), "mallory") || strings.Contains(strings.Join(v, ","), "evil") || k == "x_auth_request_user" {
			t.Errorf("spoofed metadata reached the app: %s: %q", k, v)
		}
	}

	// A skipped route gets no identity at all, and no spoofed one either.
	stream, err := c.FullDuplexCall(metadata.AppendToOutgoingContext(callCtx(t), spoof...))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("skipped stream: %v", err)
	}
	for k := range app.last(t) {
		if strings.HasPrefix(k, "x-auth-request") || strings.HasPrefix(k, "x-forwarded-user") || strings.HasPrefix(k, "x_") {
			t.Errorf("skipped route: %s reached the app", k)
		}
	}
}

// TestGRPCAppErrorsIntact: the app's own statuses reach the client as the app sent them. A unary
// error is a trailers-only response (one header block ending the stream); a proxy that reshapes it
// turns it into "Internal: server closed the stream without sending trailers".
func TestGRPCAppErrorsIntact(t *testing.T) {
	e, _, c := grpcEnv(t, nil)
	ctx := withBearer(callCtx(t), e.idp.Mint(e.idp.Claims()))
	_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such widget: 50% off, naïve"}})
	st, _ := status.FromError(err)
	if st.Code() != codes.NotFound || st.Message() != "no such widget: 50% off, naïve" {
		t.Fatalf("app error arrived as %v %q", st.Code(), st.Message())
	}
	if d := st.Details(); len(d) != 1 || string(d[0].(*testpb.Payload).Body) != "detail" {
		t.Errorf("status details (grpc-status-details-bin) = %v", d)
	}

	// Mid-stream: two echoes, then the app's error in the trailers.
	stream, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*testpb.StreamingOutputCallRequest{
		{Payload: &testpb.Payload{Body: []byte("a")}}, {Payload: &testpb.Payload{Body: []byte("b")}},
		{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.ResourceExhausted), Message: "slow down"}},
	} {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for {
		resp, err := stream.Recv()
		if err != nil {
			wantCode(t, err, codes.ResourceExhausted, "slow down")
			break
		}
		got = append(got, string(resp.Payload.Body))
	}
	if strings.Join(got, ",") != "a,b" {
		t.Errorf("echoes before the error: %q", got)
	}
}

// TestGRPCLongStream: a stream whose app says nothing for longer than --upstream-timeout stays
// open (gRPC calls are bounded by their own deadline, not the response-header timeout).
func TestGRPCLongStream(t *testing.T) {
	e, _, c := grpcEnv(t, func(o *options.Options) { o.UpstreamTimeout = 100 * time.Millisecond })
	stream, err := c.FullDuplexCall(withBearer(callCtx(t), e.idp.Mint(e.idp.Claims())))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // no response headers from the app meanwhile
	if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("late")}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || string(resp.Payload.Body) != "late" {
		t.Fatalf("after a quiet spell: %v %v", resp, err)
	}
	_ = stream.CloseSend()
}

// TestGRPCUnavailable: with the app or the IdP down a gRPC client gets Unavailable (retryable),
// not an HTML error page.
func TestGRPCUnavailable(t *testing.T) {
	dead := refusingAddr(t)
	e := newEnv(t, envOpt{opts: func(o *options.Options) {
		o.Proxies = []options.Proxy{{Listen: "127.0.0.1:0", Upstream: &url.URL{Scheme: "http", Host: dead}}}
	}})
	c := testpb.NewTestServiceClient(grpcClient(t, e.app.Addr("proxy", 0)))
	_, err := c.UnaryCall(withBearer(callCtx(t), e.idp.Mint(e.idp.Claims())), &testpb.SimpleRequest{})
	wantCode(t, err, codes.Unavailable, "not responding")

	down := newEnv(t, envOpt{idpDown: true})
	c = testpb.NewTestServiceClient(grpcClient(t, down.app.Addr("proxy", 0)))
	_, err = c.UnaryCall(withBearer(callCtx(t), "x"), &testpb.SimpleRequest{})
	wantCode(t, err, codes.Unavailable, "identity provider")
}

// TestGRPCHealthSkipped: a skip rule on the health service lets an unauthenticated health check
// through (and only it).
func TestGRPCHealthSkipped(t *testing.T) {
	e, _, c := grpcEnv(t, func(o *options.Options) {
		o.SkipAuth = []options.SkipRule{{Path: "/grpc.health.v1.Health/Check", Exact: true}}
	})
	cc := grpcClient(t, e.app.Addr("proxy", 0))
	resp, err := healthpb.NewHealthClient(cc).Check(callCtx(t), &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", resp, err)
	}
	_, err = c.EmptyCall(callCtx(t), &testpb.Empty{})
	wantCode(t, err, codes.Unauthenticated, "")
}

// TestHTTPProtocolChoice: every listener speaks HTTP/1.1 and h2c; the app gets HTTP/1.1 unless its
// upstream is pinned to h2c.
func TestHTTPProtocolChoice(t *testing.T) {
	for _, pinned := range []bool{false, true} {
		var got []int
		var mu sync.Mutex
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got = append(got, r.ProtoMajor)
			mu.Unlock()
			_, _ = io.WriteString(w, "ok")
		})
		protocols := new(http.Protocols)
		protocols.SetHTTP1(!pinned)
		protocols.SetUnencryptedHTTP2(pinned)
		srv := &http.Server{Handler: h, Protocols: protocols}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		e := newEnv(t, envOpt{opts: func(o *options.Options) {
			o.Proxies = []options.Proxy{{Listen: "127.0.0.1:0", Upstream: &url.URL{Scheme: "http", Host: ln.Addr().String()}, H2C: pinned}}
		}})
		tok := e.idp.Mint(e.idp.Claims())
		for _, clientH2 := range []bool{false, true} {
			cp := new(http.Protocols)
			cp.SetHTTP1(!clientH2)
			cp.SetUnencryptedHTTP2(clientH2)
			c := &http.Client{Transport: &http.Transport{Protocols: cp}}
			resp, body := do(t, c, "GET", e.proxyURL+"/x", bearer(tok))
			if resp.StatusCode != 200 || body != "ok" || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[clientH2] {
				t.Errorf("pinned=%v client h2=%v: %s %d %q", pinned, clientH2, resp.Proto, resp.StatusCode, body)
			}
		}
		want := 1
		if pinned {
			want = 2
		}
		mu.Lock()
		for _, p := range got {
			if p != want {
				t.Errorf("pinned=%v: the app got HTTP/%d, want HTTP/%d", pinned, p, want)
			}
		}
		mu.Unlock()
	}
}

// metricValue returns the value of one series on /metrics, or "" when it is absent.
func metricValue(t *testing.T, e *env, series string) string {
	t.Helper()
	for line := range strings.SplitSeq(scrape(t, e), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestGRPCWebIsHTTP: gRPC-Web is not translated; it takes the HTTP path, where a refusal is the
// plain 401 that gRPC-Web clients map to Unauthenticated, and an allowed call reaches the app over
// HTTP/1.1 (an app serving gRPC-Web speaks that).
func TestGRPCWebIsHTTP(t *testing.T) {
	e := newEnv(t, envOpt{})
	hdr := map[string]string{"Content-Type": "application/grpc-web+proto", "Accept": "text/html"}
	if resp, _ := do(t, nil, "POST", e.proxyURL+"/grpc.testing.TestService/EmptyCall", hdr); resp.StatusCode != 401 || resp.Header.Get("Grpc-Status") != "" {
		t.Fatalf("gRPC-Web without a token: %d %v", resp.StatusCode, resp.Header)
	}
	hdr["Authorization"] = "Bearer " + e.idp.Mint(e.idp.Claims())
	if resp, _ := do(t, nil, "POST", e.proxyURL+"/grpc.testing.TestService/EmptyCall", hdr); resp.StatusCode != 200 || e.last().ProtoMajor != 1 {
		t.Fatalf("gRPC-Web with a token: %d, app saw %s", resp.StatusCode, e.last().Proto)
	}
}
