// Command grpc is the e2e tests' gRPC app and its client, in one binary and one image.
//
//	grpc serve   a gRPC server (grpc.health.v1 and grpc.testing.TestService: UnaryCall reports the
//	             identity metadata it received, FullDuplexCall echoes a stream) on -listen, and a
//	             plain TCP echo on -echo-listen: a non-HTTP port that podgate must leave alone.
//	grpc call    runs the calls a test asks for against -target and writes what happened as JSON to
//	             stdout and the pod's termination message, where the test reads it.
//
// Like the echo app it is unaware of authentication.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: grpc serve|call [flags]")
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "call":
		err = call(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q: want serve or call", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}

// server implements the two TestService methods the tests use.
type server struct {
	testpb.UnimplementedTestServiceServer
}

// identityKeys are the metadata UnaryCall reports back (the identity podgate adds, and a header a
// client might spoof).
var identityKeys = []string{"x-auth-request-user", "x-auth-request-roles", "x-forwarded-user", "authorization"}

// UnaryCall answers with the identity metadata it received, JSON-encoded in the payload.
func (server) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	seen := map[string][]string{}
	for _, k := range identityKeys {
		if v := md.Get(k); len(v) > 0 {
			seen[k] = v
		}
	}
	b, err := json.Marshal(seen)
	if err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: b}}, nil
}

// FullDuplexCall echoes every message as it arrives.
func (server) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.Payload}); err != nil {
			return err
		}
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", ":9090", "gRPC address")
	echoListen := fs.String("echo-listen", ":7070", "TCP echo address")
	_ = fs.Parse(args)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	echoLn, err := net.Listen("tcp", *echoListen)
	if err != nil {
		return err
	}
	go tcpEcho(echoLn)
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, server{})
	healthpb.RegisterHealthServer(srv, health.NewServer()) // SERVING for ""
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); srv.GracefulStop(); _ = echoLn.Close() }()
	log.Printf("gRPC on %s, TCP echo on %s", *listen, *echoListen)
	return srv.Serve(ln)
}

func tcpEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			_, _ = io.Copy(c, c)
		}()
	}
}

// Result is what a call run writes; test/e2e decodes it, so its shape is a contract with it.
type Result struct {
	Calls []CallResult `json:"calls"`
	// TCPEcho is what the TCP echo port sent back, or the error.
	TCPEcho string `json:"tcpEcho,omitempty"`
}

// CallResult is one RPC: its gRPC status and what came back.
type CallResult struct {
	Name    string `json:"name"`
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
	// Identity is UnaryCall's report of the metadata the app received.
	Identity map[string][]string `json:"identity,omitempty"`
	// Echoes are FullDuplexCall's answers, in order.
	Echoes []string `json:"echoes,omitempty"`
	// Health is the health check's serving status.
	Health string `json:"health,omitempty"`
}

func call(args []string) error {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	target := fs.String("target", "", "host:port of the gRPC service")
	tokenEnv := fs.String("token-env", "PODGATE_E2E_TOKEN", "environment variable holding the bearer token for the calls with a token")
	tcp := fs.String("tcp-echo", "", "host:port of a TCP echo to check, if any")
	_ = fs.Parse(args)

	cc, err := grpc.NewClient("passthrough:///"+*target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+os.Getenv(*tokenEnv),
		"x-auth-request-user", "mallory") // spoofed: must never reach the app
	tc, hc := testpb.NewTestServiceClient(cc), healthpb.NewHealthClient(cc)

	var res Result
	res.Calls = append(res.Calls,
		unary("unary with token", authed, tc),
		unary("unary without token", ctx, tc),
		bidi("stream with token", authed, tc),
		bidi("stream without token", ctx, tc),
		check("health with token", authed, hc),
		check("health without token", ctx, hc),
	)
	if *tcp != "" {
		res.TCPEcho = echoOnce(*tcp, "hello, not HTTP\n")
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	// The kubelet keeps up to 4 KB of this as the container's termination message.
	if err := os.WriteFile("/dev/termination-log", b, 0o644); err != nil {
		log.Printf("termination message: %v", err)
	}
	return nil
}

func result(name string, err error) CallResult {
	st := status.Convert(err)
	return CallResult{Name: name, Code: st.Code().String(), Message: st.Message()}
}

func unary(name string, ctx context.Context, c testpb.TestServiceClient) CallResult {
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
	r := result(name, err)
	if err == nil {
		_ = json.Unmarshal(resp.Payload.Body, &r.Identity)
	}
	return r
}

// bidi sends three messages, reading each echo before sending the next.
func bidi(name string, ctx context.Context, c testpb.TestServiceClient) CallResult {
	var echoes []string
	err := func() error {
		stream, err := c.FullDuplexCall(ctx)
		if err != nil {
			return err
		}
		for _, m := range []string{"one", "two", "three"} {
			if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(m)}}); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			resp, err := stream.Recv()
			if err != nil {
				return err
			}
			echoes = append(echoes, string(resp.Payload.Body))
		}
		if err := stream.CloseSend(); err != nil {
			return err
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}()
	r := result(name, err)
	r.Echoes = echoes
	return r
}

func check(name string, ctx context.Context, c healthpb.HealthClient) CallResult {
	resp, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
	r := result(name, err)
	if err == nil {
		r.Health = resp.Status.String()
	}
	return r
}

func echoOnce(addr, msg string) string {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "error: " + err.Error()
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return "error: " + err.Error()
	}
	return string(buf)
}
