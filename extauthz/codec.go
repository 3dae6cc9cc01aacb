package extauthz

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// DefaultMaxCheckBytes is the default decision limit on one CheckRequest.
const DefaultMaxCheckBytes = 4 << 20

// GRPCServerOptions are the gRPC server options the Authorization service
// needs so that every CheckRequest Envoy can send gets a decision rather
// than a gRPC error (which Envoy's failure_mode_allow would turn into an
// allow):
//
//   - a CheckRequest of more than maxCheckBytes is not decoded, and Check
//     denies it with 413;
//   - a CheckRequest whose strings are not valid UTF-8 (an HTTP/1.1 header
//     with obs-text bytes) is decoded with the bad bytes replaced by
//     U+FFFD, and Check denies it with 400;
//   - a CheckRequest that is not protobuf at all is denied with 400.
//
// The transport's own limit is raised to [TransportRecvLimit] so that
// grpc-go lets over-size requests through to the codec. Other services on
// the same server (health) decode as usual.
func GRPCServerOptions(maxCheckBytes int) []grpc.ServerOption {
	if maxCheckBytes <= 0 {
		maxCheckBytes = DefaultMaxCheckBytes
	}
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(newCheckCodec(maxCheckBytes)),
		grpc.MaxRecvMsgSize(TransportRecvLimit(maxCheckBytes)),
	}
}

// TransportRecvLimit is the gRPC receive limit for a decision limit of
// maxCheckBytes: four times that, and at least 16 MiB more, so that an
// over-size CheckRequest reaches the codec and is answered with 413. Only
// a message over this limit ends in a gRPC error (RESOURCE_EXHAUSTED).
func TransportRecvLimit(maxCheckBytes int) int {
	return int(min(max(4*int64(maxCheckBytes), int64(maxCheckBytes)+16<<20), math.MaxInt32))
}

// Why a CheckRequest could not be decoded as sent. The codec records it in
// the message's unknown fields under malformedField, which Envoy never
// sends (a client that does is denied, which is harmless).
const (
	malformedTooLarge   = "too_large"
	malformedUTF8       = "invalid_utf8"
	malformedWireFormat = "wire_format"

	malformedField protowire.Number = protowire.MaxValidNumber
)

// checkCodec is the proto codec with a fallback for CheckRequests that the
// standard decoding refuses.
type checkCodec struct {
	max   int
	proto encoding.CodecV2
}

func newCheckCodec(maxCheckBytes int) *checkCodec {
	return &checkCodec{max: maxCheckBytes, proto: encoding.GetCodecV2("proto")}
}

func (c *checkCodec) Name() string { return "proto" }

func (c *checkCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

// Unmarshal decodes as the proto codec does, except that a CheckRequest
// always decodes without error: what could not be decoded is recorded for
// Check to deny (see GRPCServerOptions).
func (c *checkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*authv3.CheckRequest)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	if data.Len() > c.max {
		markMalformed(req, malformedTooLarge)
		return nil
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	decodeCheckRequest(buf.ReadOnlyData(), req)
	return nil
}

// decodeCheckRequest decodes b into req, which must be empty. It never
// fails: a request whose strings are not valid UTF-8 is decoded with the
// bad bytes replaced and marked malformedUTF8; one that is not a
// CheckRequest at all is left empty and marked malformedWireFormat.
func decodeCheckRequest(b []byte, req *authv3.CheckRequest) {
	err := proto.Unmarshal(b, req)
	if err == nil {
		return
	}
	proto.Reset(req)
	clean, changed, err := sanitizeUTF8(b, req.ProtoReflect().Descriptor(), 0)
	if err == nil && changed {
		err = proto.Unmarshal(clean, req)
	} else if err == nil {
		err = errors.New("not a UTF-8 problem")
	}
	if err != nil {
		proto.Reset(req)
		markMalformed(req, malformedWireFormat)
		return
	}
	markMalformed(req, malformedUTF8)
}

// maxNesting bounds the recursion of sanitizeUTF8 as protobuf-go bounds
// its own (proto.UnmarshalOptions.RecursionLimit).
const maxNesting = 10000

// sanitizeUTF8 rewrites the wire-format message b of descriptor md so that
// every string field, at any depth (map keys and values included), holds
// valid UTF-8, each invalid byte sequence replaced by U+FFFD. It reports
// whether anything changed, and fails on input that is not wire format.
func sanitizeUTF8(b []byte, md protoreflect.MessageDescriptor, depth int) ([]byte, bool, error) {
	if depth > maxNesting {
		return nil, false, errors.New("message nested too deeply")
	}
	out := make([]byte, 0, len(b))
	changed := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false, protowire.ParseError(n)
		}
		tag := b[:n]
		b = b[n:]
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return nil, false, protowire.ParseError(m)
			}
			out = append(append(out, tag...), b[:m]...)
			b = b[m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return nil, false, protowire.ParseError(m)
		}
		b = b[m:]
		if fd := md.Fields().ByNumber(num); fd != nil {
			switch fd.Kind() {
			case protoreflect.StringKind:
				if !utf8.Valid(v) {
					v = []byte(strings.ToValidUTF8(string(v), "\uFFFD"))
					changed = true
				}
			case protoreflect.MessageKind:
				sub, c, err := sanitizeUTF8(v, fd.Message(), depth+1)
				if err != nil {
					return nil, false, fmt.Errorf("field %s: %w", fd.Name(), err)
				}
				if c {
					v, changed = sub, true
				}
			}
		}
		out = protowire.AppendBytes(append(out, tag...), v)
	}
	return out, changed, nil
}

// markMalformed records why req could not be decoded as sent.
func markMalformed(req *authv3.CheckRequest, why string) {
	m := req.ProtoReflect()
	u := protowire.AppendTag(m.GetUnknown(), malformedField, protowire.BytesType)
	m.SetUnknown(protowire.AppendString(u, why))
}

// malformed returns why the codec could not decode req as sent, or "".
func malformed(req *authv3.CheckRequest) string {
	u := req.ProtoReflect().GetUnknown()
	for len(u) > 0 {
		num, typ, n := protowire.ConsumeTag(u)
		if n < 0 {
			return malformedWireFormat
		}
		u = u[n:]
		m := protowire.ConsumeFieldValue(num, typ, u)
		if m < 0 {
			return malformedWireFormat
		}
		if num == malformedField && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(u[:m])
			switch why := string(v); why {
			case malformedTooLarge, malformedUTF8:
				return why
			default:
				return malformedWireFormat
			}
		}
		u = u[m:]
	}
	return ""
}

// malformedDecision is the answer to a request the codec marked.
func malformedDecision(why string) Decision {
	switch why {
	case malformedTooLarge:
		return Decision{Kind: Deny, Status: 413, Reason: ReasonTooLarge, Message: "check request too large"}
	case malformedUTF8:
		return badRequestDecision(errors.New("check request has bytes that are not UTF-8 (a header value, path or metadata)"))
	default:
		return badRequestDecision(errors.New("check request is not a valid protobuf message"))
	}
}
