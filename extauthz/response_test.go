package extauthz

import (
	"testing"
)

// TestResponseSharesItsConstants: a response's decision and reason, for
// every kind and every reason stepup sets, are the shared metadata values
// (no allocation per Check), and building responses leaves every shared
// value as it was (a response that wrote into one would corrupt all later
// ones). A rule's own reason is never shared.
func TestResponseSharesItsConstants(t *testing.T) {
	kinds := []Kind{Allow, Deny, StepUp, Login, Redirect}
	for _, k := range kinds {
		for _, r := range Reasons {
			d := &Decision{Kind: k, Reason: r.Reason, Rule: "r", ID: "id-1", Status: 302, Location: "https://a.example/mfa"}
			f := toCheckResponse(d).GetDynamicMetadata().GetFields()
			for key, want := range map[string]string{"decision": k.String(), "reason": string(r.Reason)} {
				got := f[key]
				if got.GetStringValue() != want {
					t.Errorf("%v/%s: metadata %s = %q, want %q", k, r.Reason, key, got.GetStringValue(), want)
				}
				if got != sharedMetadata[want] {
					t.Errorf("%v/%s: metadata %s is not the shared value", k, r.Reason, key)
				}
			}
			if got := f["rule"].GetStringValue(); got != "r" {
				t.Errorf("%v/%s: metadata rule = %q", k, r.Reason, got)
			}
		}
	}
	for s, v := range sharedMetadata {
		if v.GetStringValue() != s {
			t.Errorf("shared metadata %q now holds %q", s, v.GetStringValue())
		}
	}
	for h, v := range sharedDenied {
		if v.GetHeader().GetKey() != h.Key || v.GetHeader().GetValue() != h.Value {
			t.Errorf("shared header %v now holds %v", h, v.GetHeader())
		}
		if sharedDeniedHeader(h) != v {
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
}
