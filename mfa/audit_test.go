package mfa

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingAuditor keeps every MFA event.
type recordingAuditor struct {
	mu  sync.Mutex
	evs []AuditEvent
}

func (a *recordingAuditor) AuditMFA(e AuditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evs = append(a.evs, e)
}

func (a *recordingAuditor) names() []AuditName {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AuditName
	for _, e := range a.evs {
		out = append(out, e.Name)
	}
	return out
}

// TestAuditEvents walks a user through enrolment, wrong codes up to a
// pause, a verification, a recovery code, new recovery codes, forgetting
// a remembered browser and a reset: the auditor gets each event, by the
// user, with who and where, and no code, secret, state or cookie.
func TestAuditEvents(t *testing.T) {
	aud := &recordingAuditor{}
	e := newEnv(t, func(o *Options) { o.Audit = aud })
	ctx := context.Background()
	mfaName, rememberName, _ := e.m.CookieNames()

	secret, codes, rec := e.enrol(alice, anyRemember, true)
	secrets := append([]string{secret, cookie(rec, mfaName).Value, cookie(rec, rememberName).Value}, codes...)
	e.clk.Advance(time.Minute)
	st, form := e.verifyForm(alice, anyRemember, returnURL, "totp", "000000")
	secrets = append(secrets, st, form.Get("csrf"), e.assertion(alice))
	for range 5 {
		e.post("/.stepup/mfa", alice, form)
	}
	e.clk.Advance(61 * time.Second)
	form.Set("code", e.code(secret, 0))
	secrets = append(secrets, form.Get("code"))
	if rec := e.post("/.stepup/mfa", alice, form); rec.Code != http.StatusSeeOther {
		t.Fatalf("verification: %d", rec.Code)
	}
	e.clk.Advance(time.Minute)
	_, form = e.verifyForm(alice, anyRemember, returnURL, "recovery", codes[0])
	sc := cookie(e.post("/.stepup/mfa", alice, form), mfaName)
	// A recovery code does not mint new codes: verify with the app again.
	e.clk.Advance(time.Minute)
	_, form = e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, 0))
	sc = cookie(e.post("/.stepup/mfa", alice, form), mfaName)
	if sc == nil {
		t.Fatal("no MFA session")
	}
	secrets = append(secrets, sc.Value)
	page := e.get("/.stepup/factors", alice, sc).Body.String()
	rec = e.post("/.stepup/factors", alice, url.Values{"action": {"recovery_codes"}, "csrf": {scrape(t, reCodesCSRF, page)}}, sc)
	if rec.Code != http.StatusOK {
		t.Fatalf("new recovery codes: %d", rec.Code)
	}
	for _, m := range reCodes.FindAllStringSubmatch(rec.Body.String(), -1) {
		secrets = append(secrets, m[1])
	}
	list, err := e.m.ListUser(ctx, alice.user)
	if err != nil || len(list.Devices) == 0 {
		t.Fatalf("remembered browsers: %v %v", list, err)
	}
	device := list.Devices[0].ID
	tok, err := e.h.csrfToken(alice.user, bindFactors, formForgetDevice, "")
	if err != nil {
		t.Fatal(err)
	}
	rec = e.post("/.stepup/factors", alice, url.Values{"action": {formForgetDevice}, "id": {device}, "confirm": {"yes"}, "csrf": {tok}}, sc)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("forget browser: %d\n%s", rec.Code, rec.Body)
	}
	page = e.get("/.stepup/factors", alice, sc).Body.String()
	rec = e.post("/.stepup/factors", alice, url.Values{"csrf": {scrape(t, reResetCSRF, page)}, "confirm": {"yes"}}, sc)
	if rec.Code != http.StatusOK {
		t.Fatalf("reset: %d", rec.Code)
	}

	want := []AuditName{AuditVerified, AuditEnrolled, // the enrolment's code, then the enrolment
		AuditFailed, AuditFailed, AuditFailed, AuditFailed, AuditFailed, AuditLocked,
		AuditVerified, AuditVerified, AuditVerified, AuditCodesRegenerated, AuditBrowserForgotten, AuditFactorsReset, AuditSessionsRevoked}
	if got := aud.names(); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	for i, ev := range aud.evs {
		if ev.By != AuditByUser || ev.User != alice.user || ev.ClientIP != "203.0.113.7" || ev.Host != host {
			t.Errorf("event %d %+v: want by the user, with user, address and host", i, ev)
		}
	}
	byName := func(n AuditName) AuditEvent {
		i := slices.IndexFunc(aud.evs, func(e AuditEvent) bool { return e.Name == n })
		return aud.evs[i]
	}
	if ev := byName(AuditEnrolled); ev.Factor != "otp" {
		t.Errorf("enrolled %+v", ev)
	}
	if ev := byName(AuditFailed); ev.Factor != "otp" || ev.Result != "failure" {
		t.Errorf("failed %+v", ev)
	}
	if ev := byName(AuditLocked); ev.Scope != "user" || ev.Failures != 5 || ev.Pause != time.Minute {
		t.Errorf("locked %+v", ev)
	}
	if ev := aud.evs[9]; ev.Factor != "recovery-code" {
		t.Errorf("verified with a recovery code %+v", ev)
	}
	if ev := byName(AuditBrowserForgotten); ev.Device != device {
		t.Errorf("forgotten %+v, want device %s", ev, device)
	}
	if ev := byName(AuditFactorsReset); ev.Removed == nil || ev.Removed.Authenticators != 1 || ev.Removed.RecoveryCodes == 0 {
		t.Errorf("reset %+v", ev)
	}
	if ev := byName(AuditSessionsRevoked); ev.Removed == nil || ev.Removed.Sessions == 0 {
		t.Errorf("revoked %+v", ev)
	}
	all := fmt.Sprintf("%+v", aud.evs)
	for _, s := range secrets {
		if len(s) >= 6 && strings.Contains(all, s) {
			t.Errorf("an audit event carries a secret value %q", s)
		}
	}
}
