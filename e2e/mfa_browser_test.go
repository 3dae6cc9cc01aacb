package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/e2e/internal/browser"
)

// mfaDay is a day on the test clock.
const mfaDay = 24 * time.Hour

// TestMFAStepInBrowser is issue 6's "Must show": headless Chromium through
// a real proxy to the real stepup binary. A user with an identity token
// opens an application URL with a query string from an extranet address,
// is sent to the MFA step, enrols an authenticator (the test reads the
// secret from the page and computes the codes), and lands back on that
// exact URL, where the application sees stepup's identity headers. The
// same browser then passes without MFA; a fresh browser context is asked
// again; with "remember" ticked and allowed by the rule, a fresh session of
// the same browser skips MFA on day 29 but not on day 31 (stepup's clock
// moved with the --test-clock-file hook); with allowRememberBrowser: false
// it never skips. Along the way: another user's state link, state replay,
// a tampered state, a replayed code, a recovery code and a crafted return
// path, through the proxy.
//
// Everything runs twice: through real Caddy with forward_auth (stepup
// verifies the id_token cookie against a JWKS file; Caddy's
// X-Forwarded-For chooses the client address) and through the
// Envoy-faithful proxy (jwt_authn metadata, the gRPC Check, the
// CheckResponse applied as docs/envoy.md documents). Screenshots of every page
// are written to $STEPUP_E2E_ARTIFACTS/<test name>/ when it is set.
func TestMFAStepInBrowser(t *testing.T) {
	t.Parallel()
	for _, via := range []string{viaCaddy, viaEnvoy} {
		for _, remember := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/allowRememberBrowser=%t", via, remember), func(t *testing.T) {
				t.Parallel()
				b := browser.Shared(t)
				s := startMFAStack(t, via, remember)
				// Every page of the step is checked for accessibility.
				s.axe = requireAxe(t)
				if remember {
					rememberScenario(t, b, s)
				} else {
					neverRememberedScenario(t, b, s)
				}
				s.stepup.Stop(t)
				logs := s.stepup.Stderr()
				for _, secret := range s.secrets {
					if strings.Contains(logs, secret) {
						t.Errorf("a TOTP secret or recovery code appears in stepup's log")
					}
				}
			})
		}
	}
}

// rememberScenario: allowRememberBrowser true.
func rememberScenario(t *testing.T, b *browser.Browser, s *mfaStack) {
	const orig = "/payroll/report?month=11&team=r%26d"
	alice := s.openBrowser(t, b, "auth0|alice", mfaExtranetIP)

	t.Log("extranet: the application URL leads to the MFA step, which offers enrolment")
	browser.Navigate(alice, t, s.url(orig))
	stateURL := s.requireSteppedUp(alice, t, "enrol")
	browser.Screenshot(alice, t, "enrol")
	s.axe.check(alice, t, "enrol")
	if !browser.Exists(alice, t, "#remember") {
		t.Error("the rule allows remembering, but the page offers no #remember box")
	}

	t.Log("another user opening alice's state link is refused, and the link stays usable")
	bob := s.openBrowser(t, b, "auth0|bob", mfaOtherIP)
	if st := browser.Navigate(bob, t, stateURL); st != http.StatusForbidden {
		t.Errorf("bob opening alice's state link: status %d, want 403", st)
	}
	browser.Screenshot(bob, t, "another-users-state-refused")
	s.axe.check(bob, t, "another-users-state-refused")
	if browser.Exists(bob, t, "#totp-secret") || browser.Exists(bob, t, "input#code") {
		t.Error("bob was offered a form on alice's state")
	}
	if _, ok := browser.Cookie(bob, t, mfaCookie); ok {
		t.Error("bob got an MFA session cookie from alice's state")
	}

	t.Log("enrolment: the secret from the page, one code, remember ticked")
	secret := s.readSecret(alice, t)
	enrolAt := s.clock.Now()
	browser.Fill(alice, t, "input#code", mfaTOTPCode(t, secret, enrolAt))
	browser.SetChecked(alice, t, "#remember", true)
	browser.Screenshot(alice, t, "enrol-filled")
	s.axe.check(alice, t, "enrol-filled")
	browser.ClickAndWait(alice, t, "button[type=submit]")
	rememberedAt := s.clock.Offset()
	s.readRecoveryCodes(alice, t)
	browser.Screenshot(alice, t, "recovery-codes")
	s.axe.check(alice, t, "recovery-codes")
	browser.ClickAndWait(alice, t, "#continue")
	s.requireOnApp(alice, t, orig, "auth0|alice", "otp")
	browser.Screenshot(alice, t, "back-on-the-application")
	for _, name := range []string{mfaCookie, rememberCookie} {
		if _, ok := browser.Cookie(alice, t, name); !ok {
			t.Errorf("no %s cookie after the step", name)
		}
	}

	t.Log("the used state link is refused")
	if st := browser.Navigate(alice, t, stateURL); st != http.StatusGone {
		t.Errorf("reusing the state link: status %d, want 410", st)
	}
	browser.Screenshot(alice, t, "state-replay-refused")
	s.axe.check(alice, t, "state-replay-refused")
	if !browser.Exists(alice, t, "#next") {
		t.Error("the used-state page has no start-again link (#next)")
	}

	t.Log("the same browser reopens the application without MFA")
	browser.Navigate(alice, t, s.url(orig))
	s.requireOnApp(alice, t, orig, "auth0|alice", "otp")
	browser.Screenshot(alice, t, "same-browser-no-mfa")

	t.Log("a fresh browser context is asked again: verification, not enrolment")
	other := s.openBrowser(t, b, "auth0|alice", mfaExtranetIP)
	browser.Navigate(other, t, s.url(orig))
	s.requireSteppedUp(other, t, "verify")
	browser.Screenshot(other, t, "fresh-context-verify")
	s.axe.check(other, t, "fresh-context-verify")

	t.Log("the enrolment code, replayed in its own time step, is refused")
	s.clock.Set(t, enrolAt)
	browser.Fill(other, t, "input#code", mfaTOTPCode(t, secret, enrolAt))
	browser.ClickAndWait(other, t, "button[type=submit]")
	s.requireOnStep(other, t, "verify")
	if !browser.Exists(other, t, "#form-error") {
		t.Fatal("a replayed code was not refused with an error")
	}
	t.Logf("replayed code: %q", browser.Text(other, t, "#form-error"))
	browser.Screenshot(other, t, "replayed-code-refused")
	s.axe.check(other, t, "replayed-code-refused")

	s.clock.Advance(t, time.Minute) // two time steps on: a code never used
	browser.Fill(other, t, "input#code", mfaTOTPCode(t, secret, s.clock.Now()))
	browser.SetChecked(other, t, "#remember", false)
	browser.ClickAndWait(other, t, "button[type=submit]")
	s.requireOnApp(other, t, orig, "auth0|alice", "otp")
	browser.Screenshot(other, t, "fresh-context-verified")
	if _, ok := browser.Cookie(other, t, rememberCookie); ok {
		t.Error("a remember cookie was set although the box was not ticked")
	}

	t.Log("a fresh session of the remembered browser skips MFA")
	s.deleteCookie(alice, t, mfaCookie)
	browser.Navigate(alice, t, s.url(orig))
	s.requireOnApp(alice, t, orig, "auth0|alice", "remembered")
	browser.Screenshot(alice, t, "fresh-session-remembered")

	t.Log("day 29: still remembered")
	s.clock.SetOffset(t, rememberedAt+29*mfaDay)
	s.signIn(alice, t, "auth0|alice") // today's identity token
	s.deleteCookie(alice, t, mfaCookie)
	browser.Navigate(alice, t, s.url(orig))
	s.requireOnApp(alice, t, orig, "auth0|alice", "remembered")
	browser.Screenshot(alice, t, "day-29-remembered")

	t.Log("day 31: asked again")
	s.clock.SetOffset(t, rememberedAt+31*mfaDay)
	s.signIn(alice, t, "auth0|alice")
	browser.Navigate(alice, t, s.url(orig))
	s.requireSteppedUp(alice, t, "verify")
	browser.Screenshot(alice, t, "day-31-asked-again")
	s.axe.check(alice, t, "day-31-asked-again")
	browser.Fill(alice, t, "input#code", mfaTOTPCode(t, secret, s.clock.Now()))
	browser.ClickAndWait(alice, t, "button[type=submit]")
	s.requireOnApp(alice, t, orig, "auth0|alice", "otp")
	browser.Screenshot(alice, t, "day-31-verified")

	factorsNewCodes(alice, t, s)

	s.stepup.Stop(t)
	replays := 0
	for _, l := range s.stepup.LogLines() {
		if l["msg"] == "mfa verification failed" && l["result"] == "replay" {
			replays++
		}
	}
	if replays != 1 {
		t.Errorf("stepup logged %d refused replays, want 1 (the enrolment code entered again)", replays)
	}
}

// neverRememberedScenario: allowRememberBrowser false.
func neverRememberedScenario(t *testing.T, b *browser.Browser, s *mfaStack) {
	const orig = "/payroll/payslips?year=2024&sort=desc"
	alice := s.openBrowser(t, b, "auth0|alice", mfaExtranetIP)

	t.Log("extranet: enrolment, with no remember box")
	browser.Navigate(alice, t, s.url(orig))
	stateURL := s.requireSteppedUp(alice, t, "enrol")
	browser.Screenshot(alice, t, "enrol")
	s.axe.check(alice, t, "enrol")
	if browser.Exists(alice, t, "#remember") {
		t.Error("the rule forbids remembering, but the page offers a #remember box")
	}

	t.Log("a tampered state is refused")
	if st := browser.Navigate(alice, t, mfaTamperState(t, stateURL)); st != http.StatusBadRequest {
		t.Errorf("tampered state: status %d, want 400", st)
	}
	browser.Screenshot(alice, t, "tampered-state-refused")
	s.axe.check(alice, t, "tampered-state-refused")

	t.Log("enrolment with a forged remember field")
	browser.Navigate(alice, t, stateURL)
	s.requireSteppedUp(alice, t, "enrol")
	secret := s.readSecret(alice, t)
	browser.Fill(alice, t, "input#code", mfaTOTPCode(t, secret, s.clock.Now()))
	mfaForgeFormField(alice, t, "remember", "1")
	browser.ClickAndWait(alice, t, "button[type=submit]")
	codes := s.readRecoveryCodes(alice, t)
	browser.Screenshot(alice, t, "recovery-codes")
	s.axe.check(alice, t, "recovery-codes")
	browser.ClickAndWait(alice, t, "#continue")
	s.requireOnApp(alice, t, orig, "auth0|alice", "otp")
	browser.Screenshot(alice, t, "back-on-the-application")
	if _, ok := browser.Cookie(alice, t, rememberCookie); ok {
		t.Error("the rule forbids remembering, but a forged remember field got a remember cookie")
	}

	t.Log("the same browser reopens the application without MFA")
	browser.Navigate(alice, t, s.url(orig))
	s.requireOnApp(alice, t, orig, "auth0|alice", "otp")

	t.Log("a fresh session of the same browser is asked again; a recovery code works")
	s.deleteCookie(alice, t, mfaCookie)
	browser.Navigate(alice, t, s.url(orig))
	s.requireSteppedUp(alice, t, "verify")
	if browser.Exists(alice, t, "#remember") {
		t.Error("the verification page offers a #remember box the rule forbids")
	}
	browser.Screenshot(alice, t, "fresh-session-asked-again")
	s.axe.check(alice, t, "fresh-session-asked-again")
	browser.ClickAndWait(alice, t, "#alt-link")
	browser.Screenshot(alice, t, "recovery-code-form")
	s.axe.check(alice, t, "recovery-code-form")
	browser.Fill(alice, t, "input#code", codes[0])
	browser.ClickAndWait(alice, t, "button[type=submit]")
	s.requireOnApp(alice, t, orig, "auth0|alice", "recovery-code")
	browser.Screenshot(alice, t, "recovery-code-accepted")

	t.Log("day 29: asked again, and a crafted return path stays on this host")
	s.clock.Advance(t, 29*mfaDay)
	s.signIn(alice, t, "auth0|alice")
	s.deleteCookie(alice, t, mfaCookie)
	browser.Navigate(alice, t, s.url("//evil.example/landing?from=mfa"))
	s.requireSteppedUp(alice, t, "verify")
	browser.Screenshot(alice, t, "day-29-asked-again")
	s.axe.check(alice, t, "day-29-asked-again")
	browser.Fill(alice, t, "input#code", mfaTOTPCode(t, secret, s.clock.Now()))
	browser.ClickAndWait(alice, t, "button[type=submit]")
	s.requireOnApp(alice, t, "/", "auth0|alice", "otp")
	browser.Screenshot(alice, t, "crafted-return-path-stays-here")

	t.Log("the factors page: new recovery codes replace the old ones")
	fresh := factorsNewCodes(alice, t, s)

	t.Log("an old recovery code no longer works; wrong codes end in a pause")
	s.deleteCookie(alice, t, mfaCookie)
	browser.Navigate(alice, t, s.url(orig))
	s.requireSteppedUp(alice, t, "verify")
	browser.ClickAndWait(alice, t, "#alt-link")
	browser.Fill(alice, t, "input#code", codes[1])
	browser.ClickAndWait(alice, t, "button[type=submit]")
	if !browser.Exists(alice, t, "#form-error") {
		t.Fatalf("an old recovery code was not refused after new ones were made\npage: %s", browser.Text(alice, t, "body"))
	}
	browser.Screenshot(alice, t, "old-recovery-code-refused")
	s.axe.check(alice, t, "old-recovery-code-refused")
	for i := 0; i < 10 && !strings.Contains(browser.Text(alice, t, "#form-error"), "Too many"); i++ {
		browser.Fill(alice, t, "input#code", "0000-0000-0000-0000")
		browser.ClickAndWait(alice, t, "button[type=submit]")
	}
	if msg := browser.Text(alice, t, "#form-error"); !strings.Contains(msg, "Too many wrong codes") {
		t.Fatalf("no pause after wrong recovery codes: %q", msg)
	}
	browser.Screenshot(alice, t, "locked-out")
	s.axe.check(alice, t, "locked-out")
	s.clock.Advance(t, 2*time.Minute) // past the one-minute pause
	browser.Fill(alice, t, "input#code", fresh[0])
	browser.ClickAndWait(alice, t, "button[type=submit]")
	s.requireOnApp(alice, t, orig, "auth0|alice", "recovery-code")
	browser.Screenshot(alice, t, "new-recovery-code-accepted")
}

// factorsNewCodes opens the factors page (the browser's MFA session is
// fresh from an authenticator code), asks for new recovery codes, and
// returns them after going back to the factors page.
func factorsNewCodes(ctx context.Context, t *testing.T, s *mfaStack) []string {
	t.Helper()
	browser.Navigate(ctx, t, s.url("/.stepup/factors"))
	if !browser.Exists(ctx, t, "#reset") || !browser.Exists(ctx, t, "#new-codes") {
		t.Fatalf("the factors page offers no reset or new-codes form\npage: %s", browser.Text(ctx, t, "body"))
	}
	browser.Screenshot(ctx, t, "factors")
	s.axe.check(ctx, t, "factors")
	browser.ClickAndWait(ctx, t, "#new-codes")
	codes := s.readRecoveryCodes(ctx, t)
	browser.Screenshot(ctx, t, "new-recovery-codes")
	s.axe.check(ctx, t, "new-recovery-codes")
	browser.ClickAndWait(ctx, t, "#continue")
	if got, want := browser.URL(ctx, t), s.url("/.stepup/factors"); got != want {
		t.Errorf("after saving the new codes the browser is on %s, want %s", got, want)
	}
	if !strings.Contains(browser.Text(ctx, t, "body"), "You have 10 recovery codes left.") {
		t.Errorf("the factors page does not count the new codes\npage: %s", browser.Text(ctx, t, "body"))
	}
	return codes
}

// requireOnStep requires the browser to be on the MFA step of this host,
// showing the enrolment ("enrol") or code ("verify") form, and returns the
// page's URL. After a redirect from the application the URL carries the
// state; after a form was posted it does not.
func (s *mfaStack) requireOnStep(ctx context.Context, t *testing.T, form string) string {
	t.Helper()
	raw := browser.URL(ctx, t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	front, _ := url.Parse(s.front)
	if u.Host != front.Host || u.Path != "/.stepup/mfa" {
		t.Fatalf("the browser is on %s, want %s/.stepup/mfa\npage: %s", raw, s.front, browser.Text(ctx, t, "body"))
	}
	enrol := browser.Exists(ctx, t, "#totp-secret")
	if !browser.Exists(ctx, t, "input#code") || enrol != (form == "enrol") {
		t.Fatalf("want the %s form; enrolment secret shown: %v\npage: %s", form, enrol, browser.Text(ctx, t, "body"))
	}
	return raw
}

// requireSteppedUp requires the browser to have been sent to the MFA step
// of this host with a state (see requireOnStep), and returns that URL.
func (s *mfaStack) requireSteppedUp(ctx context.Context, t *testing.T, form string) string {
	t.Helper()
	raw := s.requireOnStep(ctx, t, form)
	if u, _ := url.Parse(raw); u.Query().Get("state") == "" {
		t.Fatalf("the browser is on %s, want %s/.stepup/mfa?state=...", raw, s.front)
	}
	return raw
}

// requireOnApp requires the browser to be on path (and query) of this
// host's application, which received it with the user and the MFA method
// stepup set.
func (s *mfaStack) requireOnApp(ctx context.Context, t *testing.T, path, user, method string) {
	t.Helper()
	if got := browser.URL(ctx, t); got != s.url(path) {
		t.Fatalf("the browser is on %s, want %s\npage: %s", got, s.url(path), browser.Text(ctx, t, "body"))
	}
	seen := mfaAppSaw(ctx, t)
	if seen.URI != path {
		t.Errorf("the application received %q, want %q", seen.URI, path)
	}
	got := map[string]string{
		"X-Stepup-User": strings.Join(seen.Headers.Values("X-Stepup-User"), " | "),
		"X-Stepup-Mfa":  strings.Join(seen.Headers.Values("X-Stepup-Mfa"), " | "),
	}
	if want := map[string]string{"X-Stepup-User": user, "X-Stepup-Mfa": method}; got["X-Stepup-User"] != want["X-Stepup-User"] || got["X-Stepup-Mfa"] != want["X-Stepup-Mfa"] {
		t.Errorf("the application received %v, want %v", got, want)
	}
	if v := seen.Headers.Values("X-Stepup-Assertion"); len(v) > 0 {
		t.Errorf("the application received the MFA step's identity assertion")
	}
}

// readSecret reads the TOTP secret from the enrolment page.
func (s *mfaStack) readSecret(ctx context.Context, t *testing.T) string {
	t.Helper()
	secret := strings.ReplaceAll(browser.Text(ctx, t, "#totp-secret"), " ", "")
	if len(secret) < 16 {
		t.Fatalf("enrolment secret %q is too short", secret)
	}
	s.secrets = append(s.secrets, secret)
	return secret
}

// readRecoveryCodes reads the codes shown once after enrolment.
func (s *mfaStack) readRecoveryCodes(ctx context.Context, t *testing.T) []string {
	t.Helper()
	codes := mfaTexts(ctx, t, "#recovery-codes li code")
	if len(codes) != 10 || codes[0] == "" {
		t.Fatalf("recovery codes page shows %q, want 10 codes\npage: %s", codes, browser.Text(ctx, t, "body"))
	}
	s.secrets = append(s.secrets, codes...)
	return codes
}

// mfaTamperState changes one character of the state token in an MFA step
// URL, keeping it well-formed base64url.
func mfaTamperState(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	st := []byte(q.Get("state"))
	i := len(st) / 2
	if st[i] == 'A' {
		st[i] = 'B'
	} else {
		st[i] = 'A'
	}
	q.Set("state", string(st))
	u.RawQuery = q.Encode()
	return u.String()
}
