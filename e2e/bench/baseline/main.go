// Command baseline is the floor of stepup's side-by-side benchmark: an
// Envoy ext_authz gRPC server that allows every request and does nothing
// else. It answers Check with Status OK and an empty OkHttpResponse, and
// grpc.health.v1 with SERVING, on a gRPC server built with the options
// stepup uses where they affect the cost of a call (message size limit,
// keepalive policy, stream workers), so that the difference the benchmark measures is
// stepup's decision work and nothing else.
//
//	baseline -listen 127.0.0.1:0
//
// It prints "baseline listening on ADDR" on stdout once it accepts
// connections, and stops gracefully on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "gRPC listen address (host:port; port 0 picks a free one)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// The same options as stepup's gRPC server with its default
	// configuration (cmd/stepup: server.grpc.max_recv_bytes 4 MiB,
	// keepalive_min_time 5s, stream workers 16 × GOMAXPROCS).
	g := grpc.NewServer(
		grpc.NumStreamWorkers(uint32(16*runtime.GOMAXPROCS(0))),
		grpc.MaxRecvMsgSize(4<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
	)
	healthpb.RegisterHealthServer(g, health.NewServer()) // "" is SERVING
	authv3.RegisterAuthorizationServer(g, allowAll{})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		g.GracefulStop()
	}()
	fmt.Printf("baseline listening on %s\n", lis.Addr())
	if err := g.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// allowAll allows every request.
type allowAll struct {
	authv3.UnimplementedAuthorizationServer
}

// Check implements envoy.service.auth.v3.Authorization/Check.
func (allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}, nil
}
