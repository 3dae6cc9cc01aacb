package extauthz

import (
	"context"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestUnderscoreSpellingsRemoved: application servers that map "_" to "-"
// (and fold case) would read a client's x_stepup_user as stepup's
// x-stepup-user, so on allow every such spelling of stepup's headers is
// removed, and other headers are left alone.
func TestUnderscoreSpellingsRemoved(t *testing.T) {
	s := newTestServer(t, func(o *Options) { o.RemoveHeaders = []string{"x-forwarded-user"} })
	client := bufconnClient(t, s)
	spoofed := []string{
		"x_stepup_user", "x_stepup_email", "x_stepup_mfa", "x_stepup_network",
		"x-stepup_user", "x_stepup-network",
		"x-stepup-claim_role", "x_stepup_claim_role", "x_stepup_assertion",
		"x_forwarded_user",
	}
	opts := []reqOpt{}
	for _, h := range spoofed {
		opts = append(opts, withHeader(h, "spoofed"))
	}
	opts = append(opts, withHeader("x_custom_app", "keep"), withHeader("x-stepup-userx", "keep"))
	resp, err := client.Check(context.Background(), checkReq("192.168.1.140", opts...))
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("not allowed: %v", resp)
	}
	removed := ok.GetHeadersToRemove()
	for _, h := range spoofed {
		if !slices.Contains(removed, h) {
			t.Errorf("client-supplied %s is not removed", h)
		}
	}
	for _, h := range []string{"x_custom_app", "x-stepup-userx"} {
		if slices.Contains(removed, h) {
			t.Errorf("%s, not a spelling of a stepup header, is removed", h)
		}
	}
}

func TestIdentityHeaderSpellings(t *testing.T) {
	names := []string{"x-stepup-user", "x-stepup-mfa"}
	prefixes := []string{"x-stepup-claim-"}
	headers := map[string]string{
		"x-stepup-user":       "exact: overwritten, not in the list",
		"x_stepup_user":       "",
		"X_Stepup_MFA":        "",
		"x-stepup-claim_role": "",
		"x_stepup_claim_":     "",
		"x-stepup-claim-role": "exact prefix match: handled by the caller",
		"x_stepup_users":      "",
		"x_other":             "",
	}
	got := identityHeaderSpellings(headers, names, prefixes)
	slices.Sort(got)
	want := []string{"X_Stepup_MFA", "x-stepup-claim_role", "x_stepup_claim_", "x_stepup_user"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spellings to remove (-want +got):\n%s", diff)
	}
}
