package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
)

// This file holds what the tests know about Envoy's side of the contract:
// how it reads a CheckResponse (docs/envoy.md#what-envoy-does-with-the-answer).

// checkTimeout bounds one Check RPC; generous for a loaded machine.
const checkTimeout = 30 * time.Second

// mustCheck sends req and fails the test unless the answer is a decision
// Envoy can act on: a successful RPC with an explicit status, an
// ok_response exactly when the code is OK and a denied_response otherwise.
func mustCheck(t testing.TB, client authv3.AuthorizationClient, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	resp, err := client.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check returned a gRPC error; a decision must be a successful RPC, or Envoy applies failure_mode_allow (docs/envoy.md#errors-and-failure_mode_allow): %v", err)
	}
	if err := wellFormed(resp); err != "" {
		t.Fatalf("%s\nresponse: %v", err, resp)
	}
	return resp
}

// wellFormed returns "" or what is wrong with resp as Envoy would read it.
func wellFormed(resp *authv3.CheckResponse) string {
	if resp.GetStatus() == nil {
		return "no explicit status: Envoy reads an empty CheckResponse as OK (docs/envoy.md#errors-and-failure_mode_allow)"
	}
	allowed := codes.Code(resp.GetStatus().GetCode()) == codes.OK
	switch {
	case allowed && resp.GetOkResponse() == nil:
		return "status OK without ok_response"
	case allowed:
		for _, h := range resp.GetOkResponse().GetHeaders() {
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || h.GetAppend() != nil {
				return "ok_response header " + h.GetHeader().GetKey() + " is not OVERWRITE_IF_EXISTS_OR_ADD with append unset: a client's copy could survive (docs/envoy.md#header-encoding-across-envoy-versions)"
			}
		}
	case resp.GetDeniedResponse() == nil:
		return "denied without denied_response"
	case resp.GetDeniedResponse().GetStatus().GetCode() == 0:
		return "denied_response without an explicit HTTP status"
	default:
		for _, h := range resp.GetDeniedResponse().GetHeaders() {
			if h.GetAppend().GetValue() {
				return "denied header " + h.GetHeader().GetKey() + " has append: true, which older Envoys drop (docs/envoy.md#header-encoding-across-envoy-versions)"
			}
		}
	}
	return ""
}

// allowed reports whether Envoy lets the request through.
func allowed(resp *authv3.CheckResponse) bool {
	return codes.Code(resp.GetStatus().GetCode()) == codes.OK
}

// httpStatus is what the client (allowed: the upstream) sees: 200 for an
// allowed request, denied_response.status otherwise.
func httpStatus(resp *authv3.CheckResponse) int {
	if allowed(resp) {
		return 200
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode())
}

// deniedHeader returns the values of a denied_response header (name is
// lowercase; header names are compared case-insensitively, as HTTP does).
func deniedHeader(resp *authv3.CheckResponse, name string) []string {
	var vs []string
	for _, h := range resp.GetDeniedResponse().GetHeaders() {
		if strings.EqualFold(h.GetHeader().GetKey(), name) {
			vs = append(vs, h.GetHeader().GetValue())
		}
	}
	return vs
}

// upstreamHeaders applies an allowed response to the request's headers the
// way Envoy does (docs/envoy.md#headers-on-allow: set, then headers_to_remove) and returns
// the headers the upstream receives, lowercase.
func upstreamHeaders(req *authv3.CheckRequest, resp *authv3.CheckResponse) map[string]string {
	out := map[string]string{}
	for k, v := range req.GetAttributes().GetRequest().GetHttp().GetHeaders() {
		if !strings.HasPrefix(k, ":") {
			out[strings.ToLower(k)] = v
		}
	}
	ok := resp.GetOkResponse()
	for _, h := range ok.GetHeaders() {
		k := strings.ToLower(h.GetHeader().GetKey())
		if h.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			out[k] = h.GetHeader().GetValue()
		} else if old, dup := out[k]; dup {
			out[k] = old + "," + h.GetHeader().GetValue()
		} else {
			out[k] = h.GetHeader().GetValue()
		}
	}
	for _, k := range ok.GetHeadersToRemove() {
		delete(out, strings.ToLower(k))
	}
	return out
}

// stepupHeaders picks the identity headers stepup owns out of upstream
// headers.
func stepupHeaders(h map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if strings.HasPrefix(k, "x-stepup-") {
			out[k] = v
		}
	}
	return out
}
