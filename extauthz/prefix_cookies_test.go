package extauthz

import (
	"context"
	"slices"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// TestStepupCookiesUnderThePrefix: stepup's cookies are removed before
// the application, but reach stepup's own MFA step under the reserved
// prefix: the factors page needs the MFA session cookie to see a recent
// verification, and without it a browser behind Envoy went round the
// step forever.
func TestStepupCookiesUnderThePrefix(t *testing.T) {
	f := newSessionFixture(t, nil)
	mfa := f.mfaCookie(t, "auth0|alice")
	remember := f.rememberCookie(t, "auth0|alice")
	all := "id_token=abc; " + mfa + "; " + remember + "; theme=dark"
	tests := []struct {
		name   string
		path   string
		cookie string
		// want is the cookie header the upstream sees: "" = unchanged (no
		// mutation), "-" = removed.
		want string
	}{
		{"application: stepup's cookies removed", "/payroll/report?month=11", all, "id_token=abc; theme=dark"},
		{"application: only stepup's cookie", "/payroll", mfa, "-"},
		{"factors page: untouched", "/.stepup/factors", all, ""},
		{"mfa step: untouched", "/.stepup/mfa?state=abc", all, ""},
		{"factors page: only stepup's cookie", "/.stepup/factors", mfa, ""},
		{"near miss of the prefix", "/.stepupx/factors", all, "id_token=abc; theme=dark"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.srv.Check(context.Background(), checkReq("203.0.113.7", withHeader("cookie", tc.cookie),
				func(r *authv3.CheckRequest) {
					r.Attributes.Request.Http.Path = tc.path
					r.Attributes.Request.Http.Headers[":path"] = tc.path
				}))
			if err != nil {
				t.Fatal(err)
			}
			ok := resp.GetOkResponse()
			if ok == nil {
				t.Fatalf("not allowed: %v", resp)
			}
			got, set := header(ok.GetHeaders(), "cookie")
			removed := slices.Contains(ok.GetHeadersToRemove(), "cookie")
			switch tc.want {
			case "":
				if set || removed {
					t.Errorf("cookie header changed (set %q: %v, removed: %v), want it untouched", got, set, removed)
				}
			case "-":
				if !removed {
					t.Errorf("cookie header not removed (set %q: %v)", got, set)
				}
			default:
				if !set || got != tc.want || removed {
					t.Errorf("cookie header %q (set %v, removed %v), want %q", got, set, removed, tc.want)
				}
			}
		})
	}
}
