package extauthz

import "testing"

// BenchmarkToCheckResponse is response building alone, for an allow with
// identity headers and for a step-up.
func BenchmarkToCheckResponse(b *testing.B) {
	allow := Decision{Kind: Allow, Reason: "mfa_session", Method: "otp", ID: "5f8a3a2e-1c1b-4d57-9f1e-0d6a9c1c3b11",
		Headers: []HeaderKV{{"x-stepup-user", "auth0|alice"}, {"x-stepup-email", "alice@corp.example"}, {"x-stepup-mfa", "otp"}, {"x-stepup-network", ""}, {"cookie", benchAppCookies}}}
	stepUp := Decision{Kind: StepUp, Status: 302, Reason: "mfa_required", Message: "multi-factor authentication required", Browser: true,
		Location: "https://app.corp.example/.stepup/mfa?state=v1.eyJ1IjoiYXV0aDB8YWxpY2UiLCJpZCI6IngifQ.c2lnbmF0dXJl", ID: "5f8a3a2e-1c1b-4d57-9f1e-0d6a9c1c3b11"}
	for _, tc := range []struct {
		name string
		d    *Decision
	}{{"allow", &allow}, {"step-up", &stepUp}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if toCheckResponse(tc.d) == nil {
					b.Fatal("nil response")
				}
			}
		})
	}
}
