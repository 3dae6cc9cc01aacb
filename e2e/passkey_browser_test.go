package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/stepup-dev/stepup/e2e/internal/browser"
	"github.com/stepup-dev/stepup/e2e/internal/harness"
	"github.com/stepup-dev/stepup/e2e/internal/idp"
)

// passkeyRule asks for any second factor from outside the corporate
// network, remembering allowed.
const passkeyRule = `function (user, context, callback) {
  if (context.request.networks.indexOf('corporate') === -1) {
    context.multifactor = {provider: 'any', allowRememberBrowser: true};
  }
  callback(null, user, context);
}
`

// TestPasskeyWebAuthnInBrowser: real Chromium with the DevTools WebAuthn
// virtual authenticator, through the Envoy-faithful proxy to the real
// stepup binary on http://localhost (a relying party id cannot be an IP
// address), with user verification required. A user enrols a passkey
// (a platform authenticator: ctap2, internal transport, resident keys,
// user verification) as their first factor, saves the recovery codes and
// reaches the application, which sees webauthn-platform; verifies with it
// again and has the browser remembered; sees the passkey and the
// remembered browser on the factors page and forgets the browser; adds a
// second credential (a USB security key) and removes the first; then a
// bogus signature and an assertion without user verification are
// refused, and the security key passes (webauthn-roaming). Every page of
// the step and the factors page is checked with axe-core. Screenshots go
// to $STEPUP_E2E_ARTIFACTS/<test name>/.
func TestPasskeyWebAuthnInBrowser(t *testing.T) {
	t.Parallel()
	axe := requireAxe(t)
	b := browser.Shared(t)
	s := startPasskeyStack(t)
	const orig = "/payroll/report?month=11"
	alice := s.openBrowser(t, b, "auth0|alice", mfaExtranetIP)
	enableWebAuthn(alice, t)
	platform := addAuthenticator(alice, t, webauthn.AuthenticatorTransportInternal)

	t.Log("enrolment offers the choice: authenticator app or passkey")
	browser.Navigate(alice, t, s.url(orig))
	requirePasskeyForm(alice, t, "create")
	if !browser.Exists(alice, t, "#totp-secret") {
		t.Error("provider any: the enrolment page does not offer the authenticator app too")
	}
	browser.Screenshot(alice, t, "enrol-choice")
	axe.check(alice, t, "enrol-choice")

	t.Log("register a passkey, named")
	browser.Fill(alice, t, "#passkey-name", "Work laptop")
	browser.ClickAndWait(alice, t, "#passkey-submit")
	s.readRecoveryCodes(alice, t)
	browser.Screenshot(alice, t, "recovery-codes")
	axe.check(alice, t, "recovery-codes")
	for _, sel := range []string{"#download-codes", "#copy-codes", "#print-codes"} {
		if !browser.Exists(alice, t, sel+":not([hidden])") {
			t.Errorf("the recovery codes page offers no %s", sel)
		}
	}
	browser.ClickAndWait(alice, t, "#continue")
	s.requireOnApp(alice, t, orig, "auth0|alice", "webauthn-platform")
	if n := credentialCount(alice, t, platform); n != 1 {
		t.Errorf("the authenticator holds %d credentials, want 1", n)
	}

	t.Log("a new session verifies with the passkey, and remembers the browser")
	s.deleteCookie(alice, t, mfaCookie)
	browser.Navigate(alice, t, s.url(orig))
	requirePasskeyForm(alice, t, "get")
	if browser.Exists(alice, t, "input#code") {
		t.Error("the verification page offers a code form to a user without an authenticator app")
	}
	browser.Screenshot(alice, t, "verify-passkey")
	axe.check(alice, t, "verify-passkey")
	browser.SetChecked(alice, t, "#remember-passkey", true)
	browser.ClickAndWait(alice, t, "#passkey-submit")
	s.requireOnApp(alice, t, orig, "auth0|alice", "webauthn-platform")
	if _, ok := browser.Cookie(alice, t, rememberCookie); !ok {
		t.Error("no remember cookie after ticking the box")
	}

	t.Log("the factors page lists the passkey and the remembered browser")
	browser.Navigate(alice, t, s.url("/.stepup/factors"))
	browser.Screenshot(alice, t, "factors")
	axe.check(alice, t, "factors")
	if got := mfaTexts(alice, t, ".passkey-item .item-name"); len(got) != 1 || got[0] != "Work laptop" {
		t.Fatalf("passkeys listed: %q, want [Work laptop]\npage: %s", got, browser.Text(alice, t, "body"))
	}
	if got := mfaTexts(alice, t, ".device-item .item-name"); len(got) != 1 || !strings.Contains(got[0], "Chrome") {
		t.Errorf("remembered browsers listed: %q, want one Chrome", got)
	}
	if !browser.Exists(alice, t, "#back") {
		t.Error("the factors page offers no way back to the application")
	}

	t.Log("forget the remembered browser: a confirmation first")
	browser.ClickAndWait(alice, t, ".device-item .remove")
	browser.Screenshot(alice, t, "confirm-forget-browser")
	axe.check(alice, t, "confirm-forget-browser")
	browser.ClickAndWait(alice, t, "#confirm")
	if got := mfaTexts(alice, t, ".device-item"); len(got) != 0 {
		t.Errorf("remembered browsers after forgetting: %q", got)
	}

	t.Log("add a second credential: a USB security key")
	// One authenticator at a time: the platform one is taken away (its
	// credential kept by the test) and a security key plugged in.
	removeAuthenticator(alice, t, platform)
	key := addAuthenticator(alice, t, webauthn.AuthenticatorTransportUsb)
	browser.Fill(alice, t, "#passkey-name", "Blue key")
	browser.ClickAndWait(alice, t, "#passkey-submit")
	browser.Screenshot(alice, t, "factors-two-passkeys")
	if got := mfaTexts(alice, t, ".passkey-item .item-name"); len(got) != 2 || got[1] != "Blue key" {
		t.Fatalf("passkeys listed: %q, want [Work laptop Blue key]\npage: %s", got, browser.Text(alice, t, "body"))
	}

	t.Log("remove the first passkey, after a confirmation")
	browser.ClickAndWait(alice, t, ".passkey-item .remove")
	if !strings.Contains(browser.Text(alice, t, "h1"), "Work laptop") {
		t.Errorf("the confirmation does not name the passkey: %q", browser.Text(alice, t, "h1"))
	}
	browser.Screenshot(alice, t, "confirm-remove-passkey")
	axe.check(alice, t, "confirm-remove-passkey")
	browser.ClickAndWait(alice, t, "#confirm")
	if got := mfaTexts(alice, t, ".passkey-item .item-name"); len(got) != 1 || got[0] != "Blue key" {
		t.Fatalf("passkeys after removing one: %q, want [Blue key]", got)
	}
	if n := credentialCount(alice, t, key); n != 1 {
		t.Errorf("the security key holds %d credentials, want 1", n)
	}

	// Only the remaining credential is offered from now on.
	s.deleteCookie(alice, t, mfaCookie)

	t.Log("a bogus signature is refused")
	setOverride(alice, t, key, true, false)
	browser.Navigate(alice, t, s.url(orig))
	requirePasskeyForm(alice, t, "get")
	browser.ClickAndWait(alice, t, "#passkey-submit")
	requireRefused(alice, t, "bogus-signature-refused")
	axe.check(alice, t, "verify-refused")

	t.Log("user verification required but absent is refused")
	setOverride(alice, t, key, false, true)
	browser.Navigate(alice, t, s.url(orig))
	browser.ClickAndWait(alice, t, "#passkey-submit")
	requireRefused(alice, t, "no-user-verification-refused")

	t.Log("the security key passes")
	setOverride(alice, t, key, false, false)
	browser.Navigate(alice, t, s.url(orig))
	browser.ClickAndWait(alice, t, "#passkey-submit")
	s.requireOnApp(alice, t, orig, "auth0|alice", "webauthn-roaming")

	t.Log("German from Accept-Language")
	de := s.openBrowser(t, b, "auth0|bob", mfaOtherIP)
	browser.SetExtraHeaders(de, t, map[string]string{"X-Forwarded-For": mfaOtherIP, "Accept-Language": "de-DE,de;q=0.9"})
	browser.Navigate(de, t, s.url(orig))
	if got := browser.Text(de, t, "h1"); got != "Zweiten Schritt einrichten" {
		t.Errorf("German enrolment page title %q", got)
	}
	browser.Screenshot(de, t, "enrol-german")
	axe.check(de, t, "enrol-german")

	s.stepup.Stop(t)
	logs := s.stepup.Stderr()
	for _, bad := range []string{"clientDataJSON", "attestationObject", "authenticatorData", "\"signature\""} {
		if strings.Contains(logs, bad) {
			t.Errorf("stepup's log contains %s", bad)
		}
	}
	for _, secret := range s.secrets {
		if strings.Contains(logs, secret) {
			t.Error("a recovery code appears in stepup's log")
		}
	}
	refusals := 0
	for _, l := range s.stepup.LogLines() {
		if l["msg"] == "mfa passkey refused" {
			refusals++
		}
	}
	if refusals < 2 {
		t.Errorf("stepup logged %d refused passkeys, want at least 2 (bogus signature, no user verification)", refusals)
	}
}

// startPasskeyStack runs stepup (provider any, user verification
// required, development mode for plain HTTP) behind the Envoy-faithful
// proxy, reached as http://localhost:<port>.
func startPasskeyStack(t *testing.T) *mfaStack {
	t.Helper()
	provider, err := idp.New("https://idp.example.com/", "payroll", "k1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rule := filepath.Join(dir, "any.js")
	if err := os.WriteFile(rule, []byte(passkeyRule), 0o600); err != nil {
		t.Fatal(err)
	}
	clock := newMFAClock(t, dir)
	cfg := serverConfig{
		Corporate: []string{"10.0.0.0/8"},
		Extra: fmt.Sprintf("development: true\nrules:\n  rule_timeout: 10s\n  pipeline_timeout: 20s\n  list:\n    - name: any\n      file: %q\n", rule) +
			"mfa:\n  totp_issuer: Payroll\n  webauthn:\n    user_verification: required\n  branding:\n    organisation: Example Payroll\n",
	}
	s := harness.StartStepup(t, stepupBin, harness.StepupOptions{
		Args: []string{"--config", writeConfig(t, cfg), "--test-clock-file", clock.path},
	})
	app := newMFAApp(t)
	st := &mfaStack{via: viaEnvoy, stepup: s, provider: provider, clock: clock}
	front := startMFAEnvoyProxy(t, s, app.URL, provider, clock)
	st.front = strings.Replace(front, "127.0.0.1", "localhost", 1)
	return st
}

// requirePasskeyForm requires the page to offer a passkey ceremony of
// mode ("create" or "get").
func requirePasskeyForm(ctx context.Context, t *testing.T, mode string) {
	t.Helper()
	if got, ok := browser.Attribute(ctx, t, "#passkey-form", "data-webauthn"); !ok || got != mode {
		t.Fatalf("want a passkey form (%s), got %q\npage: %s", mode, got, browser.Text(ctx, t, "body"))
	}
}

// requireRefused requires the verification page again with an error and
// no MFA session.
func requireRefused(ctx context.Context, t *testing.T, shot string) {
	t.Helper()
	browser.Screenshot(ctx, t, shot)
	if !browser.Exists(ctx, t, "#form-error") {
		t.Fatalf("%s: no error shown\npage: %s", shot, browser.Text(ctx, t, "body"))
	}
	if got := browser.Text(ctx, t, "#form-error"); !strings.Contains(got, "could not be verified") {
		t.Errorf("%s: error %q", shot, got)
	}
	if _, ok := browser.Cookie(ctx, t, mfaCookie); ok {
		t.Errorf("%s: an MFA session cookie was set", shot)
	}
	requirePasskeyForm(ctx, t, "get")
}

func enableWebAuthn(ctx context.Context, t *testing.T) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, browser.StepTimeout)
	defer cancel()
	off := false
	if _, err := chromedp.Call(cctx, webauthn.Enable, webauthn.EnableParams{EnableUI: &off}); err != nil {
		t.Fatalf("webauthn.Enable: %v", err)
	}
}

// addAuthenticator adds a CTAP2 virtual authenticator with resident keys
// and user verification (which succeeds) on transport.
func addAuthenticator(ctx context.Context, t *testing.T, transport webauthn.AuthenticatorTransport) webauthn.AuthenticatorID {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, browser.StepTimeout)
	defer cancel()
	res, err := chromedp.Call(cctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol:                    webauthn.AuthenticatorProtocolCtap2,
		Ctap2version:                webauthn.Ctap2versionCtap21,
		Transport:                   transport,
		HasResidentKey:              true,
		HasUserVerification:         true,
		IsUserVerified:              true,
		AutomaticPresenceSimulation: true,
	}})
	if err != nil {
		t.Fatalf("webauthn.AddVirtualAuthenticator: %v", err)
	}
	return res.AuthenticatorID
}

func removeAuthenticator(ctx context.Context, t *testing.T, id webauthn.AuthenticatorID) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, browser.StepTimeout)
	defer cancel()
	if _, err := chromedp.Call(cctx, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: id}); err != nil {
		t.Fatalf("webauthn.RemoveVirtualAuthenticator: %v", err)
	}
}

func credentials(ctx context.Context, t *testing.T, id webauthn.AuthenticatorID) []*webauthn.Credential {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, browser.StepTimeout)
	defer cancel()
	res, err := chromedp.Call(cctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		t.Fatalf("webauthn.GetCredentials: %v", err)
	}
	return res.Credentials
}

func credentialCount(ctx context.Context, t *testing.T, id webauthn.AuthenticatorID) int {
	t.Helper()
	return len(credentials(ctx, t, id))
}

func addCredential(ctx context.Context, t *testing.T, id webauthn.AuthenticatorID, c *webauthn.Credential) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, browser.StepTimeout)
	defer cancel()
	if _, err := chromedp.Call(cctx, webauthn.AddCredential, webauthn.AddCredentialParams{AuthenticatorID: id, Credential: c}); err != nil {
		t.Fatalf("webauthn.AddCredential: %v", err)
	}
}

// setOverride makes the authenticator answer with a zero signature
// (bogus) or without the user-verified flag (badUV).
func setOverride(ctx context.Context, t *testing.T, id webauthn.AuthenticatorID, bogus, badUV bool) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, browser.StepTimeout)
	defer cancel()
	if _, err := chromedp.Call(cctx, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{
		AuthenticatorID: id, IsBogusSignature: &bogus, IsBadUV: &badUV,
	}); err != nil {
		t.Fatalf("webauthn.SetResponseOverrideBits: %v", err)
	}
}
