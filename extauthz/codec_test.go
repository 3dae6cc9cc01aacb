package extauthz

import (
	"bytes"
	"context"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// withObsText returns checkReq's wire form with the bytes of marker (in a
// header value) replaced by bytes that are not UTF-8, of the same length.
func withObsText(t testing.TB, marker string, mods ...reqOpt) []byte {
	t.Helper()
	b, err := proto.Marshal(checkReq("192.168.1.140", mods...))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Repeat([]byte{0xff}, len(marker))
	if !bytes.Contains(b, []byte(marker)) {
		t.Fatalf("marker %q not in the request", marker)
	}
	return bytes.Replace(b, []byte(marker), bad, 1)
}

func TestCheckCodec(t *testing.T) {
	s := newTestServer(t, nil)
	c := newCheckCodec(64 << 10)
	good, err := proto.Marshal(checkReq("192.168.1.140"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := structpb.NewStruct(map[string]any{"sub": "auth0|alice", "name": "MARKNAME"})
	tests := []struct {
		name       string
		in         []byte
		wantStatus int // 0: allowed
	}{
		{"good", good, 0},
		{"obs-text in a header value", withObsText(t, "MARK", withHeader("x-name", "caf MARK")), 400},
		{"invalid UTF-8 in a header name", withObsText(t, "x-MARK", withHeader("x-MARK", "v")), 400},
		{"invalid UTF-8 in the path", withObsText(t, "MARK", func(r *authv3.CheckRequest) { r.Attributes.Request.Http.Path = "/MARK" }), 400},
		{"invalid UTF-8 deep in metadata", withObsText(t, "MARKNAME", func(r *authv3.CheckRequest) {
			r.Attributes.MetadataContext.FilterMetadata["envoy.filters.http.jwt_authn"].Fields["jwt_payload"] = structpb.NewStructValue(payload)
		}), 400},
		{"over the limit", mustMarshal(t, checkReq("192.168.1.140", withHeader("x-big", strings.Repeat("a", 64<<10)))), 413},
		{"not protobuf", []byte("GET / HTTP/1.1\r\n"), 400},
		{"empty", nil, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var req authv3.CheckRequest
			if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(tc.in)}, &req); err != nil {
				t.Fatalf("Unmarshal = %v, want nil", err)
			}
			resp, err := s.Check(context.Background(), &req)
			if err != nil {
				t.Fatalf("Check = %v", err)
			}
			got := 0
			if resp.GetOkResponse() == nil || resp.GetStatus().GetCode() != 0 {
				got = int(resp.GetDeniedResponse().GetStatus().GetCode())
			}
			if got != tc.wantStatus {
				t.Errorf("status %d, want %d (%v)", got, tc.wantStatus, resp.GetDeniedResponse().GetBody())
			}
		})
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzCheckCodec: whatever bytes arrive as a CheckRequest, the codec
// decodes without error and Check answers with a decision, never a gRPC
// error or a panic; bytes that protobuf refuses are never allowed.
func FuzzCheckCodec(f *testing.F) {
	f.Add(mustMarshal(f, checkReq("192.168.1.140")))
	f.Add(withObsText(f, "MARK", withHeader("x-name", "MARK")))
	f.Add(withObsText(f, "MARK", func(r *authv3.CheckRequest) { r.Attributes.Request.Http.Path = "/MARK" }))
	f.Add([]byte("\x0a\x03\x0a\x01\xff"))
	f.Add([]byte{})
	s := newTestServer(f, nil)
	c := newCheckCodec(16 << 10)
	f.Fuzz(func(t *testing.T, in []byte) {
		var req authv3.CheckRequest
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(in)}, &req); err != nil {
			t.Fatalf("Unmarshal = %v, want nil", err)
		}
		resp, err := s.Check(context.Background(), &req)
		if err != nil || resp.GetStatus() == nil {
			t.Fatalf("Check = %v, %v; want a decision", resp, err)
		}
		if resp.GetStatus().GetCode() != 0 {
			return
		}
		if len(in) > 16<<10 {
			t.Fatalf("a request over the limit was allowed")
		}
		if err := proto.Unmarshal(in, &authv3.CheckRequest{}); err != nil {
			t.Fatalf("bytes protobuf refuses (%v) were allowed", err)
		}
	})
}
