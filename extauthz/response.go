package extauthz

import (
	"encoding/json"
	"net/http"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
)

// WWWAuthenticateStepUp is the challenge API clients get when MFA is
// required (RFC 9470's insufficient_user_authentication).
const WWWAuthenticateStepUp = `Bearer error="insufficient_user_authentication", error_description="multi-factor authentication required"`

// WWWAuthenticateLogin is the challenge for requests without identity.
const WWWAuthenticateLogin = `Bearer realm="stepup"`

// LocationHeader names the MFA step (or login page) for API clients,
// which get a 401 instead of a 302.
const LocationHeader = "x-stepup-location"

// toCheckResponse maps a decision onto Envoy's CheckResponse with the
// portable header encoding of docs/envoy.md#header-encoding-across-envoy-versions.
func toCheckResponse(d *Decision) *authv3.CheckResponse {
	if d.Kind == Allow {
		ok := &authv3.OkHttpResponse{}
		if n := len(d.Headers); n > 0 {
			ok.Headers = make([]*corev3.HeaderValueOption, 0, n)
			for _, h := range d.Headers {
				if h.Value == "" {
					// Envoy cannot set an empty value portably: remove the
					// (possibly client-supplied) header instead.
					ok.HeadersToRemove = append(ok.HeadersToRemove, h.Key)
					continue
				}
				ok.Headers = append(ok.Headers, &corev3.HeaderValueOption{
					Header:       &corev3.HeaderValue{Key: h.Key, Value: h.Value},
					AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
				})
			}
		}
		ok.HeadersToRemove = append(ok.HeadersToRemove, d.RemoveHeaders...)
		for _, c := range d.SetCookies {
			// docs/envoy.md#header-encoding-across-envoy-versions: both append fields unset for Set-Cookie (adds a line).
			ok.ResponseHeadersToAdd = append(ok.ResponseHeadersToAdd, &corev3.HeaderValueOption{
				Header: &corev3.HeaderValue{Key: "set-cookie", Value: c},
			})
		}
		return &authv3.CheckResponse{
			Status:          &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
			DynamicMetadata: decisionMetadata(d),
		}
	}

	status := d.Status
	if status == 0 {
		status = http.StatusForbidden
	}
	code := codes.PermissionDenied
	if status == http.StatusUnauthorized || d.Kind == StepUp || d.Kind == Login {
		code = codes.Unauthenticated
	}
	headers, body := deniedHeadersAndBody(d, status)
	denied := &authv3.DeniedHttpResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode(status)},
		Body:   body,
	}
	denied.Headers = make([]*corev3.HeaderValueOption, 0, len(headers))
	for _, h := range headers {
		// docs/envoy.md#header-encoding-across-envoy-versions: denied headers leave both append fields unset; never
		// append: true (silently dropped by older Envoys).
		hv := sharedDeniedHeader(h)
		if hv == nil {
			hv = &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: h.Key, Value: h.Value}}
		}
		denied.Headers = append(denied.Headers, hv)
	}
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(code), Message: string(d.Reason)},
		HttpResponse:    &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied},
		DynamicMetadata: decisionMetadata(d),
	}
}

// deniedHeadersAndBody is shared by every protocol: what a client gets for
// a non-allow decision.
func deniedHeadersAndBody(d *Decision, status int) ([]HeaderKV, string) {
	h := make([]HeaderKV, 0, 4+len(d.SetCookies))
	h = append(h, HeaderKV{"cache-control", "no-store"})
	var body string
	switch {
	case status == http.StatusFound:
		h = append(h, HeaderKV{"location", d.Location})
	case status == http.StatusUnauthorized:
		if d.Kind == StepUp {
			h = append(h, HeaderKV{"www-authenticate", WWWAuthenticateStepUp})
		} else {
			h = append(h, HeaderKV{"www-authenticate", WWWAuthenticateLogin})
		}
		if d.Location != "" {
			h = append(h, HeaderKV{LocationHeader, d.Location})
		}
		body = jsonBody(d)
		h = append(h, HeaderKV{"content-type", "application/json"})
	default:
		body = d.Message
		if body == "" {
			body = http.StatusText(status)
		}
		body += "\n"
		h = append(h, HeaderKV{"content-type", "text/plain; charset=utf-8"})
	}
	for _, c := range d.SetCookies {
		h = append(h, HeaderKV{"set-cookie", c})
	}
	return h, body
}

func jsonBody(d *Decision) string {
	v := struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
		Location    string `json:"location,omitempty"`
	}{Error: string(d.Reason), Description: d.Message, Location: d.Location}
	if d.Kind == StepUp {
		v.Error = "insufficient_user_authentication"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// MetadataKeys are every key stepup may write into a CheckResponse's
// dynamic metadata (see decisionMetadata).
var MetadataKeys = []string{"decision", "reason", "rule", "decision_id", "request_id", "dry_run", "would"}

// decisionMetadata is copied by Envoy into the stream's dynamic metadata
// under envoy.filters.http.ext_authz, for access logs (docs/envoy.md#dynamic-metadata-and-access-logs).
//
// Keys: decision, reason, rule (when a rule decided), decision_id (the
// same as in stepup's decision log), request_id (x-request-id), and for a
// dry-run allow dry_run and would.
func decisionMetadata(d *Decision) *structpb.Struct {
	f := make(map[string]*structpb.Value, 4)
	f["decision"] = metadataString(d.Kind.String())
	f["reason"] = metadataString(string(d.Reason))
	if d.Rule != "" {
		f["rule"] = structpb.NewStringValue(d.Rule)
	}
	if d.DecisionID != "" {
		f["decision_id"] = structpb.NewStringValue(d.DecisionID)
	}
	if d.ID != "" {
		f["request_id"] = structpb.NewStringValue(d.ID)
	}
	if d.DryRun {
		f["dry_run"] = structpb.NewBoolValue(true)
		f["would"] = metadataString(d.Would.String())
	}
	return &structpb.Struct{Fields: f}
}

// The values below are built once and shared by every response. They are
// never modified after init: a response is only read (marshalled, or
// copied by the HTTP server), and protobuf messages are safe for
// concurrent reads.
var (
	// sharedMetadata holds the metadata strings of the fixed vocabulary:
	// decision kinds and the reasons stepup itself sets.
	sharedMetadata = func() map[string]*structpb.Value {
		m := make(map[string]*structpb.Value)
		for _, k := range []Kind{Allow, Deny, StepUp, Login, Redirect} {
			m[k.String()] = structpb.NewStringValue(k.String())
		}
		m[""] = structpb.NewStringValue("")
		for _, r := range Reasons {
			m[string(r.Reason)] = structpb.NewStringValue(string(r.Reason))
		}
		return m
	}()
	// sharedDenied holds the denied-response headers whose value never
	// varies.
	sharedDenied = func() map[HeaderKV]*corev3.HeaderValueOption {
		m := make(map[HeaderKV]*corev3.HeaderValueOption)
		for _, h := range []HeaderKV{
			{"cache-control", "no-store"},
			{"www-authenticate", WWWAuthenticateStepUp},
			{"www-authenticate", WWWAuthenticateLogin},
			{"content-type", "application/json"},
			{"content-type", "text/plain; charset=utf-8"},
		} {
			m[h] = &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: h.Key, Value: h.Value}}
		}
		return m
	}()
)

// metadataString returns the structpb string value of s, shared when s is
// one of the fixed vocabulary.
func metadataString(s string) *structpb.Value {
	if v, ok := sharedMetadata[s]; ok {
		return v
	}
	return structpb.NewStringValue(s)
}

// sharedDeniedHeader returns the shared header option of h, or nil when
// its value is not a constant one.
func sharedDeniedHeader(h HeaderKV) *corev3.HeaderValueOption {
	switch h.Key {
	case "cache-control", "www-authenticate", "content-type":
		return sharedDenied[h]
	}
	return nil
}
