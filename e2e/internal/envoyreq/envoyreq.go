// Package envoyreq builds ext_authz CheckRequests shaped exactly the way
// Envoy sends them (docs/envoy.md#what-envoy-sends), so that end-to-end tests exercise stepup
// with what it will really receive and not with a convenient simplification.
//
// The model is an edge Envoy with use_remote_address: true and
// xff_num_trusted_hops: 0 (the example configuration envoy/envoy.yaml):
// attributes.source.address is the TCP peer, Envoy appends the peer to
// whatever x-forwarded-for the client sent (with a bare ","), writes
// x-envoy-external-address, and copies the pseudo-headers into the header
// map; request.http.path carries the query string; request.http.id is the
// stream id in decimal; jwt_authn's verified payload arrives in
// metadata_context under envoy.filters.http.jwt_authn / jwt_payload.
package envoyreq

import (
	"fmt"
	"maps"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// JWTAuthnNamespace is the metadata namespace jwt_authn writes to
// (hard-coded in Envoy, docs/envoy.md#claims-from-jwt_authn).
const JWTAuthnNamespace = "envoy.filters.http.jwt_authn"

// JWTPayloadKey is payload_in_metadata in the example configuration.
const JWTPayloadKey = "jwt_payload"

// Request describes one downstream request as Envoy sees it. The zero value
// is not useful: start from [Browser] or [API] and adjust the fields.
type Request struct {
	// Peer is the TCP peer of Envoy's listener (the client, at the edge).
	Peer     string
	PeerPort uint32
	// ClientXFF is the x-forwarded-for the client itself sent ("" for
	// none). Envoy appends Peer to it.
	ClientXFF string
	// Edge: Envoy runs at the edge (use_remote_address: true) and writes
	// x-envoy-external-address = Peer. Default true.
	Edge bool
	// Method, Scheme, Authority and Path (with the query) are the request
	// line; they become both the attributes and the pseudo-headers.
	Method, Scheme, Authority, Path string
	// Protocol is "HTTP/1.1", "HTTP/2", ...
	Protocol string
	// StreamID is Envoy's stream id (request.http.id).
	StreamID string
	// RequestID is x-request-id, which Envoy generates at the edge.
	RequestID string
	// Headers are further request headers (lowercase names). A header the
	// client sent several times must already be joined with ",", as
	// Envoy does.
	Headers map[string]string
	// ContextExtensions are the route's check_settings.context_extensions.
	ContextExtensions map[string]string
	// Claims is the payload jwt_authn verified; nil means no jwt_authn
	// metadata at all (no token, or a route without a requirement).
	Claims map[string]any
	// Time is when the stream started (request.time).
	Time time.Time
}

// Alice is the identity the tests use: the claims of e2e/testdata/envoy-example.json.
func Alice() map[string]any {
	return map[string]any{
		"iss":   "https://idp.example.com/",
		"sub":   "auth0|alice",
		"aud":   "payroll",
		"email": "alice@corp.example",
		"exp":   1900000000,
	}
}

// Browser is a top-level GET navigation from peer by a signed-in user
// (jwt_authn payload [Alice]) to https://app.corp.example/payroll/report.
func Browser(peer string) *Request {
	return &Request{
		Peer:      peer,
		PeerPort:  51234,
		Edge:      true,
		Method:    "GET",
		Scheme:    "https",
		Authority: "app.corp.example",
		Path:      "/payroll/report?month=11",
		Protocol:  "HTTP/1.1",
		StreamID:  "12693513931553146283",
		RequestID: "5f8a3a2e-1c1b-4d57-9f1e-0d6a9c1c3b11",
		Headers: map[string]string{
			"accept":          "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
			"user-agent":      "Mozilla/5.0",
			"sec-fetch-mode":  "navigate",
			"sec-fetch-dest":  "document",
			"accept-language": "en",
		},
		ContextExtensions: map[string]string{"client_id": "payroll", "virtual_host": "app"},
		Claims:            Alice(),
		Time:              time.Date(2026, 11, 23, 16, 51, 44, 30443872, time.UTC),
	}
}

// API is a script's call (fetch/XHR, Accept: application/json) from peer by
// a signed-in user.
func API(peer string) *Request {
	r := Browser(peer)
	r.Path = "/payroll/api/report?month=11"
	r.Headers = map[string]string{
		"accept":         "application/json",
		"user-agent":     "curl/8.5.0",
		"sec-fetch-mode": "cors",
	}
	return r
}

// With returns a copy of r with header k set to v.
func (r *Request) With(k, v string) *Request {
	c := r.Clone()
	c.Headers[strings.ToLower(k)] = v
	return c
}

// Clone returns a deep copy of r.
func (r *Request) Clone() *Request {
	c := *r
	c.Headers = maps.Clone(r.Headers)
	if c.Headers == nil {
		c.Headers = map[string]string{}
	}
	c.ContextExtensions = maps.Clone(r.ContextExtensions)
	c.Claims = maps.Clone(r.Claims)
	return &c
}

// XFF returns the x-forwarded-for Envoy passes on: the client's value with
// the peer appended with a bare "," (docs/envoy.md#client-address).
func (r *Request) XFF() string {
	if r.ClientXFF == "" {
		return r.Peer
	}
	return r.ClientXFF + "," + r.Peer
}

// Proto builds the CheckRequest. It returns an error only when Claims
// cannot be represented as a protobuf Struct.
func (r *Request) Proto() (*authv3.CheckRequest, error) {
	headers := make(map[string]string, len(r.Headers)+10)
	for k, v := range r.Headers {
		headers[strings.ToLower(k)] = v
	}
	headers[":authority"] = r.Authority
	headers[":method"] = r.Method
	headers[":path"] = r.Path
	headers[":scheme"] = r.Scheme
	headers["x-forwarded-for"] = r.XFF()
	headers["x-forwarded-proto"] = r.Scheme
	if r.RequestID != "" {
		headers["x-request-id"] = r.RequestID
	}
	if r.Edge {
		headers["x-envoy-external-address"] = r.Peer
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: socketAddress(r.Peer, r.PeerPort)},
		Destination: &authv3.AttributeContext_Peer{
			Address: socketAddress("10.0.0.10", 8080),
		},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(r.Time),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:       r.StreamID,
				Method:   r.Method,
				Headers:  headers,
				Path:     r.Path,
				Host:     r.Authority,
				Scheme:   r.Scheme,
				Protocol: r.Protocol,
			},
		},
		ContextExtensions: maps.Clone(r.ContextExtensions),
	}}
	if r.Claims != nil {
		payload, err := structpb.NewStruct(r.Claims)
		if err != nil {
			return nil, fmt.Errorf("jwt payload: %w", err)
		}
		req.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			JWTAuthnNamespace: {Fields: map[string]*structpb.Value{JWTPayloadKey: structpb.NewStructValue(payload)}},
		}}
	}
	return req, nil
}

// MustProto is Proto for requests whose claims are known to be valid.
func (r *Request) MustProto() *authv3.CheckRequest {
	req, err := r.Proto()
	if err != nil {
		panic(err)
	}
	return req
}

func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       addr,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}
