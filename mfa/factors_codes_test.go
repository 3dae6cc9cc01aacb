package mfa

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/session"
)

// reCodesCSRF and reResetCSRF are the tokens of the factors page's "new
// recovery codes" and reset forms.
var (
	reCodesCSRF = regexp.MustCompile(`name="csrf" value="([^"]*)">\s*<input type="hidden" name="action" value="recovery_codes">`)
	reResetCSRF = regexp.MustCompile(`name="csrf" value="([^"]*)">\s*<input type="hidden" name="action" value="reset">`)
)

// TestRegenerateRecoveryCodes: a user whose recovery codes are used up
// gets a new set from the factors page, behind a fresh authenticator
// verification and CSRF protection. The new set replaces the old one;
// every refused request leaves the old set alone.
func TestRegenerateRecoveryCodes(t *testing.T) {
	type fixture struct {
		e           *env
		secret      string
		old         []string
		session     *http.Cookie // alice's MFA session
		resetCSRF   string
		codesCSRF   string
		recoveryMFA bool // the session came from a recovery code
	}
	// setup enrols alice, verifies her (with a recovery code when
	// byRecovery) and opens the factors page.
	setup := func(t *testing.T, byRecovery bool) *fixture {
		e := newEnv(t, nil)
		f := &fixture{e: e, recoveryMFA: byRecovery}
		f.secret, f.old, _ = e.enrol(alice, anyRemember, false)
		e.clk.Advance(30 * time.Second)
		method, code := "totp", e.code(f.secret, 0)
		if byRecovery {
			method, code = "recovery", f.old[0]
		}
		_, form := e.verifyForm(alice, anyRemember, returnURL, method, code)
		mfaName, _, _ := e.m.CookieNames()
		f.session = cookie(e.post("/.stepup/mfa", alice, form), mfaName)
		if f.session == nil {
			t.Fatal("no MFA session after verification")
		}
		page := e.get("/.stepup/factors", alice, f.session)
		if page.Code != http.StatusOK {
			// A recovery-code session is fresh enough for the page itself.
			t.Fatalf("factors page: %d\n%s", page.Code, page.Body)
		}
		body := page.Body.String()
		if !strings.Contains(body, "Get new recovery codes") {
			t.Fatalf("the factors page offers no new recovery codes:\n%s", body)
		}
		f.resetCSRF, f.codesCSRF = scrape(t, reCSRF, body), scrape(t, reCodesCSRF, body)
		return f
	}
	bob := who{user: "auth0|bob"}

	tests := []struct {
		name       string
		byRecovery bool
		// req posts to the factors page; the fixture's tokens and session
		// are at hand.
		req        func(f *fixture) *httptest.ResponseRecorder
		wantStatus int
		wantNew    bool // a new set was made and shown
	}{
		{"fresh authenticator session", false, func(f *fixture) *httptest.ResponseRecorder {
			return f.e.post("/.stepup/factors", alice, url.Values{"action": {"recovery_codes"}, "csrf": {f.codesCSRF}}, f.session)
		}, http.StatusOK, true},
		{"no token", false, func(f *fixture) *httptest.ResponseRecorder {
			return f.e.post("/.stepup/factors", alice, url.Values{"action": {"recovery_codes"}}, f.session)
		}, http.StatusForbidden, false},
		{"the reset form's token", false, func(f *fixture) *httptest.ResponseRecorder {
			return f.e.post("/.stepup/factors", alice, url.Values{"action": {"recovery_codes"}, "csrf": {f.resetCSRF}}, f.session)
		}, http.StatusForbidden, false},
		{"the codes token for a reset", false, func(f *fixture) *httptest.ResponseRecorder {
			return f.e.post("/.stepup/factors", alice, url.Values{"csrf": {f.codesCSRF}}, f.session)
		}, http.StatusForbidden, false},
		{"unknown action", false, func(f *fixture) *httptest.ResponseRecorder {
			return f.e.post("/.stepup/factors", alice, url.Values{"action": {"everything"}, "csrf": {f.codesCSRF}}, f.session)
		}, http.StatusBadRequest, false},
		{"cross-site post", false, func(f *fixture) *httptest.ResponseRecorder {
			return f.e.do(http.MethodPost, "/.stepup/factors", alice, url.Values{"action": {"recovery_codes"}, "csrf": {f.codesCSRF}},
				[]*http.Cookie{f.session}, map[string]string{"Sec-Fetch-Site": "cross-site"})
		}, http.StatusForbidden, false},
		{"another user with alice's token and session", false, func(f *fixture) *httptest.ResponseRecorder {
			return f.e.post("/.stepup/factors", bob, url.Values{"action": {"recovery_codes"}, "csrf": {f.codesCSRF}}, f.session)
		}, http.StatusForbidden, false},
		{"no MFA session", false, func(f *fixture) *httptest.ResponseRecorder {
			return f.e.post("/.stepup/factors", alice, url.Values{"action": {"recovery_codes"}, "csrf": {f.codesCSRF}})
		}, http.StatusSeeOther, false},
		{"stale authenticator session", false, func(f *fixture) *httptest.ResponseRecorder {
			f.e.clk.Advance(DefaultReauthAfter + time.Second)
			return f.e.post("/.stepup/factors", alice, url.Values{"action": {"recovery_codes"}, "csrf": {f.codesCSRF}}, f.session)
		}, http.StatusSeeOther, false},
		{"fresh session from a recovery code", true, func(f *fixture) *httptest.ResponseRecorder {
			return f.e.post("/.stepup/factors", alice, url.Values{"action": {"recovery_codes"}, "csrf": {f.codesCSRF}}, f.session)
		}, http.StatusSeeOther, false},
		{"a user without an authenticator", false, func(f *fixture) *httptest.ResponseRecorder {
			tok, err := f.e.h.csrfToken(bob.user, bindFactors, formCodes, "")
			if err != nil {
				t.Fatal(err)
			}
			return f.e.post("/.stepup/factors", bob, url.Values{"action": {"recovery_codes"}, "csrf": {tok}})
		}, http.StatusConflict, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t, tt.byRecovery)
			ctx := context.Background()
			rec := tt.req(f)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d\n%s", rec.Code, tt.wantStatus, rec.Body)
			}
			if rec.Code == http.StatusSeeOther {
				loc, _ := url.Parse(rec.Header().Get("Location"))
				st, err := f.e.m.LoadState(ctx, loc.Query().Get("state"), alice.user)
				if loc.Path != "/.stepup/mfa" || err != nil || st.Requirement.Provider != "any" || slices.Contains(st.Requirement.Factors, session.FactorRecoveryCode) || !slices.Contains(st.Requirement.Factors, session.FactorOTP) || st.ReturnURL != "https://app.example/.stepup/factors" {
					t.Errorf("redirect to %q (state %+v, %v), want a step with the own factors but recovery codes, back to the factors page", loc, st, err)
				}
			}
			var shown []string
			for _, m := range reCodes.FindAllStringSubmatch(rec.Body.String(), -1) {
				shown = append(shown, m[1])
			}
			left, err := f.e.h.recoveryCodesLeft(ctx, alice.user)
			if err != nil {
				t.Fatal(err)
			}
			// The old set: the code used to verify (if any) is gone, the
			// others work exactly when no new set was made.
			oldLeft := RecoveryCodeCount
			if f.recoveryMFA {
				oldLeft--
			}
			oldWorks := func(code string) bool {
				canon, _ := normalizeRecovery(code)
				_, err := f.e.store.GetUser(ctx, alice.user, KindRecoveryCode, recoveryID(alice.user, canon))
				return err == nil
			}
			if !tt.wantNew {
				if len(shown) != 0 || left != oldLeft || !oldWorks(f.old[1]) {
					t.Errorf("refused request: %d codes shown, %d left (want %d), old code works: %v", len(shown), left, oldLeft, oldWorks(f.old[1]))
				}
				if got := counterValue(f.e.h.metrics.regenerations); got != 0 {
					t.Errorf("regenerations metric %v after a refused request", got)
				}
				return
			}
			if len(shown) != RecoveryCodeCount || left != RecoveryCodeCount {
				t.Fatalf("%d codes shown, %d stored, want %d", len(shown), left, RecoveryCodeCount)
			}
			if !strings.Contains(rec.Body.String(), "Your previous recovery codes no longer work") || !strings.Contains(rec.Body.String(), `href="/.stepup/factors"`) {
				t.Errorf("the new codes page does not say the old ones stopped working, or does not lead back to the factors page:\n%s", rec.Body)
			}
			for _, c := range f.old {
				if slices.Contains(shown, c) || oldWorks(c) {
					t.Errorf("old recovery code %q still works after regeneration", c)
				}
			}
			if got := counterValue(f.e.h.metrics.regenerations); got != 1 {
				t.Errorf("regenerations metric %v, want 1", got)
			}
			if logs := f.e.logs.String(); !strings.Contains(logs, "mfa recovery codes regenerated by the user") {
				t.Error("the regeneration was not logged")
			} else {
				for _, c := range shown {
					if strings.Contains(logs, c) {
						t.Errorf("a recovery code appears in the log")
					}
				}
			}
			// The authenticator and the MFA session are untouched; a new
			// code signs in once, an old one not at all.
			if _, err := f.e.h.loadTOTP(ctx, alice.user); err != nil {
				t.Errorf("authenticator after regeneration: %v", err)
			}
			for _, tc := range []struct {
				code string
				want int
			}{{f.old[1], http.StatusOK}, {shown[0], http.StatusSeeOther}, {shown[0], http.StatusOK}} {
				_, form := f.e.verifyForm(alice, anyRemember, returnURL, "recovery", tc.code)
				if got := f.e.post("/.stepup/mfa", alice, form).Code; got != tc.want {
					t.Errorf("recovery code %q: status %d, want %d", tc.code, got, tc.want)
				}
			}
		})
	}
}

// TestFactorsPageRecoveryCodesLine: with no codes left, the factors page
// points at the new-codes form instead of the administrator.
func TestFactorsPageRecoveryCodesLine(t *testing.T) {
	e := newEnv(t, nil)
	secret, codes, _ := e.enrol(alice, anyRemember, false)
	for _, c := range codes {
		canon, _ := normalizeRecovery(c)
		if ok, err := e.h.useRecoveryCode(context.Background(), alice.user, canon); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	e.clk.Advance(30 * time.Second)
	_, form := e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, 0))
	mfaName, _, _ := e.m.CookieNames()
	page := e.get("/.stepup/factors", alice, cookie(e.post("/.stepup/mfa", alice, form), mfaName))
	body := page.Body.String()
	if !strings.Contains(body, "You have no recovery codes left. You can get new ones below.") || !strings.Contains(body, "Get new recovery codes") {
		t.Errorf("factors page with no codes left:\n%s", body)
	}
}
