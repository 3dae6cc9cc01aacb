package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stepup-dev/stepup/mfa/duo/duotest"
)

// TestDuoSeedRoundTrip: the "Multifactor with Duo Security" gallery rule
// (seed 000), loaded unmodified with its configuration keys set, against a
// fake Duo over TLS that stepup trusts through mfa.duo.ca_file.
func TestDuoSeedRoundTrip(t *testing.T) {
	t.Parallel()
	fake, st, duoCert := startDuoStack(t, "", nil)
	report := st.appURL("/payroll/report?month=11")
	newBrowser := func() *webClient {
		return st.newBrowser(t, "auth0|alice", "alice@corp.example", []*x509.Certificate{duoCert})
	}
	// toDuo goes from the application to Duo's prompt: the step-up, the
	// "continue to Duo" page (the rule allows remembering the browser, so
	// the box is offered) and its form.
	toDuo := func(b *webClient, remember bool) extPage {
		t.Helper()
		step := expectPage(t, "the application", b.get(report), http.StatusFound, st.front.URL+"/.stepup/mfa?state=")
		page := expectPage(t, "the step", b.get(step.location), http.StatusOK, "Continue to Duo")
		if !strings.Contains(page.body, `name="remember"`) {
			t.Fatal("no remember box")
		}
		form := url.Values{"state": {extFormValue(t, page.body, "state")}, "csrf": {extFormValue(t, page.body, "csrf")}, "method": {"duo"}}
		if remember {
			form.Set("remember", "1")
		}
		return b.post(st.front.URL+"/.stepup/mfa", form)
	}
	// callback plays the user at Duo's prompt and returns where Duo sends
	// the browser back.
	callback := func(b *webClient, remember bool) string {
		t.Helper()
		atDuo := expectPage(t, "continue to duo", toDuo(b, remember), http.StatusSeeOther, fake.URL()+"/oauth/v1/authorize?")
		return expectPage(t, "duo's prompt", b.get(atDuo.location), http.StatusFound, st.front.URL+"/.stepup/duo/callback?").location
	}
	behave := func() {
		fake.SetOutcome(duotest.Allow)
		fake.SetFault(duotest.NoFault)
		fake.SetHealthy(true)
	}

	t.Run("full round trip", func(t *testing.T) {
		behave()
		alice := newBrowser()
		cb := callback(alice, true)
		done := expectPage(t, "duo's callback", alice.get(cb), http.StatusSeeOther, report)
		expectPage(t, "the application afterwards", alice.get(done.location), http.StatusOK, "application")
		h, _ := st.app.last("/payroll/report")
		if h.Get("X-Stepup-User") != "auth0|alice" || h.Get("X-Stepup-Mfa") != "duo" {
			t.Fatalf("upstream headers %v", h)
		}
		a := fake.Authorizations()
		if last := a[len(a)-1]; last.Username != "alice@corp.example" || last.RedirectURI != st.front.URL+"/.stepup/duo/callback" {
			t.Errorf("duo was asked for %+v", last)
		}
		names := map[string]bool{}
		for _, c := range alice.c.Jar.Cookies(st.frontURL) {
			names[c.Name] = true
		}
		if !names["__Host-stepup_mfa"] || !names["__Host-stepup_remember"] {
			t.Errorf("cookies after duo: %v", names)
		}
		// Replayed callback (state and code): refused.
		expectPage(t, "the callback again", alice.get(cb), http.StatusGone, "already used")
	})

	t.Run("a used code with a new transaction is refused", func(t *testing.T) {
		behave()
		alice := newBrowser()
		first, _ := url.Parse(callback(alice, false))
		expectPage(t, "first callback", alice.get(first.String()), http.StatusSeeOther, report)
		bob := newBrowser()
		second, _ := url.Parse(callback(bob, false))
		q := second.Query()
		q.Set("duo_code", first.Query().Get("duo_code"))
		second.RawQuery = q.Encode()
		expectPage(t, "callback with the used code", bob.get(second.String()), http.StatusForbidden, "could not be accepted")
		expectPage(t, "the application", bob.get(report), http.StatusFound, st.front.URL+"/.stepup/mfa")
	})

	t.Run("wrong state", func(t *testing.T) {
		behave()
		alice := newBrowser()
		cb, _ := url.Parse(callback(alice, false))
		forged := *cb
		q := forged.Query()
		orig := q.Get("state")
		other := "Z"
		if orig[0] == 'Z' {
			other = "Y"
		}
		q.Set("state", other+orig[1:])
		forged.RawQuery = q.Encode()
		expectPage(t, "callback with another state", alice.get(forged.String()), http.StatusGone, "expired")
		// The real one still works: nothing was used up.
		expectPage(t, "the real callback", alice.get(cb.String()), http.StatusSeeOther, report)
	})

	for _, tc := range []struct {
		name    string
		outcome duotest.Outcome
		fault   duotest.Fault
		want    string
	}{
		{"denied push", duotest.Deny, duotest.NoFault, "Duo did not approve this sign-in"},
		{"bad signature", duotest.Allow, duotest.BadSignature, "could not be accepted"},
		{"wrong audience", duotest.Allow, duotest.WrongAudience, "could not be accepted"},
		{"expired token", duotest.Allow, duotest.Expired, "could not be accepted"},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			behave()
			fake.SetOutcome(tc.outcome)
			alice := newBrowser()
			cb := callback(alice, true)
			fake.SetFault(tc.fault)
			expectPage(t, "duo's callback", alice.get(cb), http.StatusForbidden, tc.want)
			for _, c := range alice.c.Jar.Cookies(st.frontURL) {
				if strings.HasPrefix(c.Name, "__Host-stepup_") {
					t.Errorf("cookie %s set after a refusal", c.Name)
				}
			}
			expectPage(t, "the application", alice.get(report), http.StatusFound, st.front.URL+"/.stepup/mfa")
		})
	}

	t.Run("duo unreachable fails closed", func(t *testing.T) {
		behave()
		fake.SetHealthy(false)
		defer fake.SetHealthy(true)
		alice := newBrowser()
		expectPage(t, "continue to duo", toDuo(alice, false), http.StatusServiceUnavailable, "Duo is not available")
		expectPage(t, "the application", alice.get(report), http.StatusFound, st.front.URL+"/.stepup/mfa")
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get(st.stepup.HTTPURL("/metrics"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		if _, err := io.Copy(&b, resp.Body); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`stepup_duo_requests_total{op="health_check",result="ok"}`,
			`stepup_duo_requests_total{op="health_check",result="unavailable"} 1`,
			`stepup_duo_requests_total{op="token",result="denied"} 1`,
			`stepup_duo_requests_total{op="token",result="invalid_token"} 3`,
			`stepup_duo_requests_total{op="token",result="rejected"} 1`,
		} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	t.Run("the log holds no secret", func(t *testing.T) {
		if logs := st.stepup.Stderr(); strings.Contains(logs, fake.ClientSecret()) || strings.Contains(logs, "duo_code=") {
			t.Error("the Duo secret or a code is in stepup's log")
		}
	})
}

// startDuoStack runs the Duo gallery rule (Auth0's "Multifactor with Duo
// Security", unmodified), then extraRules, against a fake Duo over TLS
// that stepup trusts through mfa.duo.ca_file; mfaYAML is added under
// mfa.duo. It returns the fake, the stack and Duo's certificate for the
// browsers.
func startDuoStack(t *testing.T, mfaYAML string, extraRules []string) (*duotest.Server, *extStack, *x509.Certificate) {
	t.Helper()
	fake := duotest.New(t, duotest.Config{})
	dir := t.TempDir()
	caPEM := fake.CACertPEM()
	st := startExtStack(t, extConfig{
		Rules: append([]string{seedRulePath(t, "000_duo.md")}, extraRules...),
		// The front matter declares DUO_MFA:DUO_* (mandatory) while the
		// code reads DUO_MFA:IKEY, SKEY and API_HOSTNAME: set both.
		Configuration: map[string]string{
			"DUO_MFA:CLIENT_ID":        "payroll",
			"DUO_MFA:DUO_IKEY":         fake.ClientID(),
			"DUO_MFA:DUO_SKEY":         fake.ClientSecret(),
			"DUO_MFA:DUO_API_HOSTNAME": fake.Host(),
			"DUO_MFA:IKEY":             fake.ClientID(),
			"DUO_MFA:SKEY":             fake.ClientSecret(),
			"DUO_MFA:API_HOSTNAME":     fake.Host(),
		},
		MFA: "  duo:\n    ca_file: " + writeFile(t, dir, "duo-ca.pem", caPEM) + "\n    timeout: 5s\n" + mfaYAML,
	})
	block, _ := pem.Decode(caPEM)
	duoCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return fake, st, duoCert
}
