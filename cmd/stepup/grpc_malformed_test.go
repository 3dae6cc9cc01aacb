package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/stepup-dev/stepup/config"
)

// rawCodec sends pre-encoded bytes as the request, as a peer that does not
// hold a valid message would, and decodes the answer as a CheckResponse.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)   { return v.([]byte), nil }
func (rawCodec) Unmarshal(b []byte, v any) error { return proto.Unmarshal(b, v.(proto.Message)) }
func (rawCodec) Name() string                    { return "proto" }

// serveChecks runs the gRPC server `stepup serve` builds from cfg, with the
// Authorization service, on a loopback port, and returns a connection.
func serveChecks(t *testing.T, cfg *config.Config) *grpc.ClientConn {
	t.Helper()
	a, err := buildApp(context.Background(), cfg, slog.New(slog.DiscardHandler), buildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	gs, err := newGRPCServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.authz.Register(gs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	y := "data_dir: " + t.TempDir() + "\nnetworks: {corporate: [10.0.0.0/8]}\nsessions: {store: {type: memory}}\n"
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// corporateCheck is a CheckRequest as Envoy sends it at the edge, from a
// corporate address; header "x-obs" holds placeholder.
func corporateCheck(placeholder string) []byte {
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1", Method: "GET", Path: "/report", Host: "app.corp.example", Scheme: "https", Protocol: "HTTP/1.1",
			Headers: map[string]string{
				":authority": "app.corp.example", ":method": "GET", ":path": "/report", ":scheme": "https",
				"x-envoy-external-address": "10.1.2.3", "x-forwarded-for": "10.1.2.3",
				"x-stepup-user": "alice", "x-obs": placeholder,
			},
		}},
	}}
	b, err := proto.Marshal(req)
	if err != nil {
		panic(err)
	}
	return b
}

// TestEveryCheckRequestGetsADecision: requests that the standard protobuf
// decoding or grpc-go's receive limit would refuse (a gRPC error, which
// Envoy's failure_mode_allow turns into an allow) are denied instead.
func TestEveryCheckRequestGetsADecision(t *testing.T) {
	cfg := testConfig(t)
	conn := serveChecks(t, cfg)
	// obs-text: Latin-1 "café" in an HTTP/1.1 header, as Envoy forwards it.
	obs := bytes.Replace(corporateCheck("caf\x01PLACEHOLDER"), []byte("\x01PLACEHOLDER"), []byte("\xe9\xff\xfe PLACEHOLD"), 1)
	tests := []struct {
		name   string
		req    []byte
		status int32
	}{
		{"header value with obs-text bytes", obs, 400},
		{"over max_recv_bytes", corporateCheck(strings.Repeat("a", cfg.Server.GRPC.MaxRecvBytes)), 413},
		{"not protobuf", []byte("\xff\xff\xff\xff garbage"), 400},
		{"truncated", corporateCheck("x")[:40], 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var resp authv3.CheckResponse
			err := conn.Invoke(ctx, "/envoy.service.auth.v3.Authorization/Check", tc.req, &resp, grpc.ForceCodec(rawCodec{}))
			if err != nil {
				t.Fatalf("Check = %v, want a denial with %d", err, tc.status)
			}
			if resp.GetStatus().GetCode() == 0 || resp.GetOkResponse() != nil {
				t.Fatalf("Check allowed: %v", &resp)
			}
			if got := int32(resp.GetDeniedResponse().GetStatus().GetCode()); got != tc.status {
				t.Errorf("denied with HTTP %d, want %d (body %q)", got, tc.status, resp.GetDeniedResponse().GetBody())
			}
			// The same connection still decides a good request.
			var good authv3.CheckResponse
			if err := conn.Invoke(ctx, "/envoy.service.auth.v3.Authorization/Check", corporateCheck("ok"), &good, grpc.ForceCodec(rawCodec{})); err != nil {
				t.Fatalf("good Check after: %v", err)
			}
			if good.GetStatus() == nil {
				t.Fatalf("good Check after: no status")
			}
		})
	}
}
