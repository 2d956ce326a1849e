package main

import (
	"context"
	"net"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/reflection"
)

// unaryServer answers grpc.testing.TestService/UnaryCall with the request's payload: the gRPC
// counterpart of the trivial HTTP upstream.
type unaryServer struct {
	testpb.UnimplementedTestServiceServer
}

func (unaryServer) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: req.Payload}, nil
}

// serveGRPC starts the gRPC upstream, with server reflection so that a load tool needs no .proto
// file, and returns its address.
func serveGRPC(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, unaryServer{})
	reflection.Register(srv)
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), nil
}
