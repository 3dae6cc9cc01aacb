package extauthz

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// The shared metadata values and denied headers must be exactly what
// building them per response gives.
func TestSharedResponseValues(t *testing.T) {
	for s, v := range sharedMetadata {
		if !proto.Equal(v, structpb.NewStringValue(s)) {
			t.Errorf("sharedMetadata[%q] = %v", s, v)
		}
	}
	for h, v := range sharedDenied {
		want := &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: h.Key, Value: h.Value}}
		if !proto.Equal(v, want) {
			t.Errorf("sharedDenied[%v] = %v", h, v)
		}
		if got := sharedDeniedHeader(h); got != v {
			t.Errorf("sharedDeniedHeader(%v) is not the shared value", h)
		}
	}
	for _, h := range []HeaderKV{{"location", "https://app.example/"}, {"set-cookie", "a=b"}, {"content-type", "text/html"}, {LocationHeader, "x"}} {
		if sharedDeniedHeader(h) != nil {
			t.Errorf("sharedDeniedHeader(%v) is shared", h)
		}
	}
	if metadataString("a rule's own reason") == metadataString("a rule's own reason") {
		t.Error("metadataString shares a value outside the vocabulary")
	}
	d := &Decision{Kind: StepUp, Reason: "mfa_required", Rule: "r", ID: "id-1", DecisionID: "d-1", Status: 302, Location: "https://a.example/mfa"}
	f := toCheckResponse(d).GetDynamicMetadata().GetFields()
	for k, want := range map[string]string{"decision": "mfa_required", "reason": "mfa_required", "rule": "r", "decision_id": "d-1", "request_id": "id-1"} {
		if got := f[k].GetStringValue(); got != want {
			t.Errorf("metadata %s = %q, want %q", k, got, want)
		}
	}
}
