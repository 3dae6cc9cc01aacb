package mfa

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stepup-dev/stepup/session"
)

func TestFactorsPage(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	mfaName, rememberName, _ := e.m.CookieNames()

	// Not enrolled: nothing to reset, no verification needed.
	rec := e.get("/.stepup/factors", alice)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "not set up yet") || strings.Contains(rec.Body.String(), "Reset my authenticator") {
		t.Fatalf("factors before enrolment: %d\n%s", rec.Code, rec.Body)
	}

	secret, _, enrolled := e.enrol(alice, anyRemember, true)
	remember := cookie(enrolled, rememberName)

	// Enrolled, no MFA session: through the step first, back here after.
	rec = e.get("/.stepup/factors", alice)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("factors without an mfa session: %d", rec.Code)
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	if loc.Path != "/.stepup/mfa" {
		t.Fatalf("redirect to %q", loc)
	}
	st := loc.Query().Get("state")
	state, err := e.m.LoadState(ctx, st, alice.user)
	if err != nil {
		t.Fatal(err)
	}
	want := session.Requirement{Provider: "any", Factors: []string{session.FactorOTP, session.FactorWebAuthnPlatform, session.FactorWebAuthnRoaming, session.FactorRecoveryCode}}
	if diff := cmp.Diff(want, state.Requirement); diff != "" || state.ReturnURL != "https://app.example/.stepup/factors" {
		t.Fatalf("state %+v (-want +got):\n%s", state, diff)
	}
	page := e.get(loc.RequestURI(), alice)
	if strings.Contains(page.Body.String(), `name="remember"`) {
		t.Error("remember offered for a factors verification")
	}
	e.clk.Advance(30 * time.Second)
	rec = e.post("/.stepup/mfa", alice, url.Values{"state": {st}, "csrf": {scrape(t, reCSRF, page.Body.String())}, "method": {"totp"}, "code": {e.code(secret, 0)}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "https://app.example/.stepup/factors" {
		t.Fatalf("verify for factors: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	sc := cookie(rec, mfaName)

	// Fresh session: the page and its reset form.
	rec = e.get("/.stepup/factors", alice, sc)
	body := rec.Body.String()
	for _, want := range []string{"Authenticator app: set up on 1 March 2026.", "You have 10 recovery codes left.", "Remembered browsers: 1.", "Reset my authenticator"} {
		if !strings.Contains(body, want) {
			t.Errorf("factors page lacks %q", want)
		}
	}
	csrf := scrape(t, reResetCSRF, body)

	// Another user's session cookie, a missing token, a cross-site post:
	// refused, nothing removed.
	bob := who{user: "auth0|bob"}
	if rec := e.post("/.stepup/factors", bob, url.Values{"csrf": {csrf}}, sc); rec.Code != http.StatusForbidden {
		t.Errorf("bob resets alice: %d", rec.Code)
	}
	if rec := e.post("/.stepup/factors", alice, url.Values{}, sc); rec.Code != http.StatusForbidden {
		t.Errorf("reset without token: %d", rec.Code)
	}
	if rec := e.do(http.MethodPost, "/.stepup/factors", alice, url.Values{"csrf": {csrf}}, []*http.Cookie{sc}, map[string]string{"Sec-Fetch-Site": "cross-site"}); rec.Code != http.StatusForbidden {
		t.Errorf("cross-site reset: %d", rec.Code)
	}
	// A stale session must verify again before a reset.
	e.clk.Advance(DefaultReauthAfter + time.Second)
	if rec := e.post("/.stepup/factors", alice, url.Values{"csrf": {csrf}}, sc); rec.Code != http.StatusSeeOther {
		t.Errorf("reset with a stale session: %d", rec.Code)
	}
	if _, err := e.h.loadTOTP(ctx, alice.user); err != nil {
		t.Fatalf("factor gone after refused resets: %v", err)
	}

	// Fresh again: reset.
	e.clk.Advance(30 * time.Second)
	_, form := e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, 0))
	sc = cookie(e.post("/.stepup/mfa", alice, form), mfaName)
	// First the confirmation, then the reset.
	rec = e.post("/.stepup/factors", alice, url.Values{"csrf": {csrf}}, sc)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `name="confirm" value="yes"`) {
		t.Fatalf("reset without confirmation: %d\n%s", rec.Code, rec.Body)
	}
	if _, err := e.h.loadTOTP(ctx, alice.user); err != nil {
		t.Fatalf("factor gone before the confirmation: %v", err)
	}
	rec = e.post("/.stepup/factors", alice, url.Values{"csrf": {csrf}, "confirm": {"yes"}}, sc)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Your authenticator was removed") {
		t.Fatalf("reset: %d\n%s", rec.Code, rec.Body)
	}
	for _, name := range []string{mfaName, rememberName} {
		if c := cookie(rec, name); c == nil || c.MaxAge >= 0 {
			t.Errorf("cookie %s not cleared: %+v", name, c)
		}
	}
	if _, err := e.h.loadTOTP(ctx, alice.user); !errors.Is(err, errNoFactor) {
		t.Errorf("factor after reset: %v", err)
	}
	if n, _ := e.h.recoveryCodesLeft(ctx, alice.user); n != 0 {
		t.Errorf("%d recovery codes after reset", n)
	}
	if _, err := e.m.VerifyMFASession(ctx, sc.Value, alice.user, alice.sid); !errors.Is(err, session.ErrRevoked) {
		t.Errorf("mfa session after reset: %v", err)
	}
	if _, err := e.m.VerifyRemember(ctx, remember.Value, alice.user); !errors.Is(err, session.ErrRevoked) {
		t.Errorf("remembered browser after reset: %v", err)
	}
	// The next step-up enrols afresh.
	if rec := e.get(mfaURL(e.state(alice.user, anyRemember, returnURL)), alice); !strings.Contains(rec.Body.String(), "totp-secret") {
		t.Errorf("no enrolment after reset")
	}
	if got := counterValue(e.h.metrics.resets); got != 1 {
		t.Errorf("resets metric %v", got)
	}
}

func TestResetFactors(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	_, _, _ = e.enrol(alice, anyRemember, true)
	bob := who{user: "auth0|bob"}
	_, _, _ = e.enrol(bob, anyRemember, false)

	res, err := ResetFactors(ctx, e.store, e.m, alice.user)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ResetResult{Authenticators: 1, RecoveryCodes: RecoveryCodeCount, Sessions: 2}, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	recs, _ := e.store.ListUser(ctx, alice.user, "")
	if len(recs) != 0 {
		t.Errorf("alice still has %d records", len(recs))
	}
	// Bob is untouched.
	if _, err := e.h.loadTOTP(ctx, bob.user); err != nil {
		t.Errorf("bob's factor: %v", err)
	}
	// Again: nothing left, no error.
	res, err = ResetFactors(ctx, e.store, e.m, alice.user)
	if err != nil || res != (ResetResult{}) {
		t.Errorf("second reset: %+v, %v", res, err)
	}
	if _, err := ResetFactors(ctx, e.store, e.m, ""); err == nil {
		t.Error("empty user accepted")
	}
	e.store.Close()
	if _, err := ResetFactors(ctx, e.store, e.m, bob.user); !errors.Is(err, session.ErrStoreUnavailable) {
		t.Errorf("closed store: %v", err)
	}
}

func TestStoreDownFailsClosed(t *testing.T) {
	e := newEnv(t, nil)
	secret, _, _ := e.enrol(alice, anyRemember, false)
	e.clk.Advance(30 * time.Second)
	_, form := e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, 0))
	e.store.Close()
	rec := e.post("/.stepup/mfa", alice, form)
	if rec.Code != http.StatusServiceUnavailable || cookie(rec, "__Host-stepup_mfa") != nil {
		t.Fatalf("store down: %d", rec.Code)
	}
	if rec := e.get("/.stepup/factors", alice); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("factors with the store down: %d", rec.Code)
	}
}
