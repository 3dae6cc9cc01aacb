package e2e

// Attacks on the MFA guarantee by someone who holds only a user's primary
// login, through the real binary behind the Envoy-faithful proxy: a
// session proves a factor, for a user, on a host, at a time, and nothing
// more.

import (
	"crypto/x509"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// termsRule sends the portal (?portal=1) through a terms-of-service page
// (a redirect that is no MFA service) and asks everything else for a
// second factor.
const termsRule = `function (user, context, callback) {
  if (context.protocol !== 'redirect-callback') {
    if (context.request.query.portal === '1') {
      context.redirect = { url: 'https://terms.example/accept' };
    } else {
      context.multifactor = { provider: 'any', allowRememberBrowser: false };
    }
  }
  callback(null, user, context);
}
`

var secretRE = regexp.MustCompile(`id="totp-secret">([A-Z2-7 ]+)<`)

// enrolTOTP takes b (signed in as its user) through enrolment from the
// application's URL and returns the authenticator secret.
func enrolTOTP(t *testing.T, st *extStack, b *webClient, appURL string) string {
	t.Helper()
	step := expectPage(t, "the application", b.get(appURL), http.StatusFound, st.front.URL+"/.stepup/mfa?state=")
	page := expectPage(t, "enrolment", b.get(step.location), http.StatusOK, "totp-secret")
	m := secretRE.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no secret on the enrolment page:\n%s", page.body)
	}
	form := url.Values{
		"state": {extFormValue(t, page.body, "state")}, "csrf": {extFormValue(t, page.body, "csrf")},
		"method": {"enrol"}, "code": {mfaTOTPCode(t, m[1], time.Now())},
	}
	expectPage(t, "enrolment form", b.post(st.front.URL+"/.stepup/mfa", form), http.StatusOK, "recovery")
	return m[1]
}

// TestTermsRedirectIsNoMFA: completing a non-MFA redirect (calling the
// continue endpoint without ever visiting the terms page) gives a session
// that satisfies that redirect only: not a client that asks for MFA, and
// not the factors page, where it would let the attacker reset the
// victim's authenticator and enrol their own.
func TestTermsRedirectIsNoMFA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := startExtStack(t, extConfig{Rules: []string{writeFile(t, dir, "terms.js", []byte(termsRule))}})
	portal := st.appURL("/portal/home?portal=1")
	payroll := st.appURL("/payroll/report?month=11")

	// The victim enrols an authenticator.
	victim := st.newBrowser(t, "auth0|alice", "alice@corp.example", nil)
	enrolTOTP(t, st, victim, payroll)

	// The attacker has alice's primary login only.
	attacker := st.newBrowser(t, "auth0|alice", "alice@corp.example", nil)
	toTerms := expectPage(t, "the portal", attacker.get(portal), http.StatusFound, "https://terms.example/accept?")
	u, _ := url.Parse(toTerms.location)
	done := expectPage(t, "continue without visiting the terms",
		attacker.get(st.front.URL+"/.stepup/continue?"+url.Values{"state": {u.Query().Get("state")}, "accepted": {"yes"}}.Encode()),
		http.StatusSeeOther, portal)
	expectPage(t, "the portal afterwards", attacker.get(done.location), http.StatusOK, "application")
	if h, _ := st.app.last("/portal/home"); h.Get("X-Stepup-Mfa") != "none" {
		t.Errorf("the portal was told the user passed MFA: %q", h.Get("X-Stepup-Mfa"))
	}

	// The terms session is not a second factor for a client that asks for
	// one.
	expectPage(t, "payroll with the terms session", attacker.get(payroll), http.StatusFound, st.front.URL+"/.stepup/mfa?state=")

	// Nor for the factors page: it asks for a verification with the
	// user's own authenticator first, and the reset form is not shown.
	fp := expectPage(t, "the factors page with the terms session", attacker.get(st.front.URL+"/.stepup/factors"), http.StatusSeeOther, st.front.URL+"/.stepup/mfa?state=")
	expectPage(t, "the verification the factors page asks for", attacker.get(fp.location), http.StatusOK, `name="code"`)
	// A reset posted without the form's token is refused, and the
	// authenticator stays.
	expectPage(t, "a forged reset", attacker.post(st.front.URL+"/.stepup/factors", url.Values{"action": {"reset"}}), http.StatusForbidden, "")
	step := expectPage(t, "payroll again", attacker.get(payroll), http.StatusFound, st.front.URL+"/.stepup/mfa?state=")
	expectPage(t, "the step offers verification, not enrolment", attacker.get(step.location), http.StatusOK, `name="code"`)
}

// TestStateBoundToHost: a state made for one host does not complete on
// another, and sets nothing there.
func TestStateBoundToHost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := startExtStack(t, extConfig{Rules: []string{writeFile(t, dir, "terms.js", []byte(termsRule))}})
	// Two names for the same front (the proxy serves every host).
	port := st.frontURL.Port()
	app, evil := "app.example.com:"+port, "evil.example.com:"+port
	b := st.newBrowser(t, "auth0|alice", "alice@corp.example", nil,
		extHost{name: app, addr: st.frontURL.Host}, extHost{name: evil, addr: st.frontURL.Host})
	appURL, _ := url.Parse("https://" + app)
	evilURL, _ := url.Parse("https://" + evil)
	b.c.Jar.SetCookies(appURL, b.c.Jar.Cookies(st.frontURL))
	b.c.Jar.SetCookies(evilURL, b.c.Jar.Cookies(st.frontURL))

	step := expectPage(t, "the application", b.get("https://"+app+"/payroll/report"), http.StatusFound, "https://"+app+"/.stepup/mfa?state=")
	other := strings.Replace(step.location, app, evil, 1)
	p := expectPage(t, "the state on another host", b.get(other), http.StatusForbidden, "")
	if strings.Contains(p.body, "totp-secret") {
		t.Fatalf("the other host showed the step:\n%s", p.body)
	}
	// Nor can the other host's form complete it.
	page := expectPage(t, "the state on its own host", b.get(step.location), http.StatusOK, "totp-secret")
	m := secretRE.FindStringSubmatch(page.body)
	form := url.Values{
		"state": {extFormValue(t, page.body, "state")}, "csrf": {extFormValue(t, page.body, "csrf")},
		"method": {"enrol"}, "code": {mfaTOTPCode(t, m[1], time.Now())},
	}
	expectPage(t, "the enrolment posted to another host", b.post("https://"+evil+"/.stepup/mfa", form), http.StatusForbidden, "")
	for _, c := range b.c.Jar.Cookies(evilURL) {
		if strings.Contains(c.Name, "stepup_mfa") || strings.Contains(c.Name, "stepup_remember") {
			t.Errorf("cookie %s was set on the other host", c.Name)
		}
	}
	expectPage(t, "the enrolment on its own host", b.post("https://"+app+"/.stepup/mfa", form), http.StatusOK, "recovery")
}

// TestDuoFallbackNotForcedByDisconnect: with mfa.duo.fallback totp, a
// browser that goes away while stepup checks Duo's health must not make
// Duo count as down: the state then still refuses an authenticator code
// for a client that asked for Duo.
func TestDuoFallbackNotForcedByDisconnect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fake, st, duoCert := startDuoStack(t, "    fallback: totp\n", []string{writeFile(t, dir, "enrol.js", []byte(enrolRule))})
	report := st.appURL("/payroll/report?month=11")
	alice := st.newBrowser(t, "auth0|alice", "alice@corp.example", []*x509.Certificate{duoCert})

	// The fallback needs an authenticator: alice enrols one where the
	// rules ask for the authenticator app.
	enrolTOTP(t, st, alice, report+"&enrol=1")
	alice = st.newBrowser(t, "auth0|alice", "alice@corp.example", []*x509.Certificate{duoCert})

	step := expectPage(t, "the application", alice.get(report), http.StatusFound, st.front.URL+"/.stepup/mfa?state=")
	page := expectPage(t, "the step", alice.get(step.location), http.StatusOK, "Continue to Duo")
	form := url.Values{"state": {extFormValue(t, page.body, "state")}, "csrf": {extFormValue(t, page.body, "csrf")}, "method": {"duo"}}

	// Duo is healthy but slow; the browser gives up long before.
	fake.SetDelay(2 * time.Second)
	short := *alice.c
	short.Timeout = 300 * time.Millisecond
	req, _ := http.NewRequest(http.MethodPost, st.front.URL+"/.stepup/mfa", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := short.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the slow health check answered within the browser's timeout: %d", resp.StatusCode)
	}
	time.Sleep(2500 * time.Millisecond) // stepup's own check finishes
	fake.SetDelay(0)

	// The fallback is not open: an authenticator code is refused.
	expectPage(t, "the authenticator instead of Duo", alice.get(step.location+"&method=totp"), http.StatusForbidden, "")
	if p := alice.get(step.location); p.status != http.StatusOK || !strings.Contains(p.body, "Continue to Duo") {
		t.Fatalf("the step after the disconnect: %d\n%s", p.status, p.body)
	}
}

// enrolRule asks for the authenticator app on ?enrol=1 (after the Duo
// rule, so it wins there).
const enrolRule = `function (user, context, callback) {
  if (context.request.query.enrol === '1') {
    context.multifactor = { provider: 'google-authenticator' };
  }
  callback(null, user, context);
}
`
