package rules

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The Action files in testdata/actions are modelled on the pure-logic
// post-login templates of Auth0's marketplace (no outside service); each
// runs unmodified with the decision its code implies.
func TestActionTemplates(t *testing.T) {
	load := func(t *testing.T, name string) Source {
		t.Helper()
		src, err := LoadFile(filepath.Join("testdata", "actions", name))
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	monday := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	sunday := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	alice := func() map[string]any {
		return map[string]any{"user_id": "auth0|alice", "email": "alice@example.com", "email_verified": true,
			"last_password_reset": "2026-02-01T00:00:00Z", "app_metadata": map[string]any{"roles": []any{"admin"}}}
	}
	bob := func() map[string]any {
		return map[string]any{"user_id": "auth0|bob", "email": "bob@example.com", "email_verified": false,
			"last_password_reset": "2025-01-01T00:00:00Z"}
	}
	type want struct {
		deny      string // substring of the denial, or "" for continue
		provider  string // "" for no MFA
		remember  bool
		factors   string // comma-joined
		redirect  string // prefix
		claim     string // idToken claim key that must be set
		appMeta   string // metadata key persisted
		userMeta  string
		noMetaKey bool
	}
	for _, tc := range []struct {
		name, file string
		user       map[string]any
		ctx        Context
		cfg        map[string]string
		now        time.Time
		want       want
	}{
		{"mfa once: first factor", "mfa_once_per_session.js", alice(), Context{}, nil, monday, want{provider: "any"}},
		{"mfa once: already passed", "mfa_once_per_session.js", alice(), Context{AuthenticationMethods: []Method{{Name: "pwd"}, {Name: "mfa"}}}, nil, monday, want{}},
		{"mfa for clients: listed", "mfa_for_clients.js", alice(), Context{ClientID: "payroll"}, map[string]string{"MFA_CLIENTS": "hr, payroll"}, monday, want{provider: "any"}},
		{"mfa for clients: other", "mfa_for_clients.js", alice(), Context{ClientID: "wiki"}, map[string]string{"MFA_CLIENTS": "hr, payroll"}, monday, want{}},
		{"email verified", "email_verified.js", alice(), Context{}, nil, monday, want{}},
		{"email not verified", "email_verified.js", bob(), Context{}, nil, monday, want{deny: "verify your email"}},
		{"deny ip: blocked", "deny_ip.js", alice(), Context{Request: Request{IP: "198.51.100.23"}}, nil, monday, want{deny: "198.51.100.23 is not allowed"}},
		{"deny ip: other", "deny_ip.js", alice(), Context{Request: Request{IP: "203.0.113.7"}}, nil, monday, want{}},
		{"weekdays: monday", "weekdays_only.js", alice(), Context{ClientName: "Payroll"}, nil, monday, want{}},
		{"weekdays: sunday", "weekdays_only.js", alice(), Context{ClientName: "Payroll"}, nil, sunday, want{deny: "Monday to Friday"}},
		{"weekdays: other app", "weekdays_only.js", alice(), Context{ClientName: "Wiki"}, nil, sunday, want{}},
		{"password age: recent", "password_age.js", alice(), Context{}, nil, monday, want{}},
		{"password age: expired", "password_age.js", bob(), Context{}, nil, monday, want{deny: "expired"}},
		{"country claim", "country_claim.js", alice(), Context{Request: Request{Geoip: map[string]any{"countryCode": "DE"}}}, nil, monday, want{claim: "https://example.com/country", userMeta: "last_country"}},
		{"country claim: no geoip", "country_claim.js", alice(), Context{}, nil, monday, want{noMetaKey: true}},
		{"webauthn: admin", "webauthn_stepup.js", alice(), Context{}, nil, monday, want{provider: "any", factors: "webauthn-roaming"}},
		{"webauthn: others", "webauthn_stepup.js", bob(), Context{}, nil, monday, want{provider: "any", factors: "otp,webauthn-platform,webauthn-roaming"}},
		{"consent: redirect", "consent_redirect.js", bob(), Context{}, map[string]string{"CONSENT_SECRET": "k", "CONSENT_URL": "https://consent.example.com/terms"}, monday, want{redirect: "https://consent.example.com/terms?session_token=ey"}},
		{"seeds: corporate, other app", "seeds.js", alice(), Context{ClientID: "wiki", Request: Request{IP: "192.168.1.140"}}, seedConfig(), monday, want{provider: "any"}},
		{"seeds: payroll", "seeds.js", alice(), Context{ClientID: "payroll", Request: Request{IP: "192.168.1.140"}}, seedConfig(), monday, want{provider: "duo"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			e := newEngine(t, Options{Rules: []Source{load(t, tc.file)}, Configuration: tc.cfg, Now: func() time.Time { return now }})
			res := e.RunDebug(context.Background(), Input{User: tc.user, Context: tc.ctx})
			w := tc.want
			if w.deny != "" {
				if res.Err == nil || res.Err.Kind != KindUnauthorized || !strings.Contains(res.Err.Message, w.deny) {
					t.Fatalf("want a denial with %q, got %v", w.deny, res.Err)
				}
				return
			}
			if res.Err != nil {
				t.Fatalf("error: %v", res.Err)
			}
			switch {
			case w.provider == "" && res.Multifactor != nil:
				t.Errorf("multifactor %+v, want none", res.Multifactor)
			case w.provider != "" && (res.Multifactor == nil || res.Multifactor.Provider != w.provider || res.Multifactor.AllowRememberBrowser != w.remember):
				t.Errorf("multifactor %+v, want %s remember=%v", res.Multifactor, w.provider, w.remember)
			case w.provider != "" && strings.Join(res.Multifactor.Factors, ",") != w.factors:
				t.Errorf("factors %v, want %s", res.Multifactor.Factors, w.factors)
			}
			if (w.redirect == "") != (res.Redirect == nil) || res.Redirect != nil && !strings.HasPrefix(res.Redirect.URL, w.redirect) {
				t.Errorf("redirect %+v, want %q", res.Redirect, w.redirect)
			}
			if w.claim != "" && res.IDTokenClaims[w.claim] == nil {
				t.Errorf("claims %v, want %s", res.IDTokenClaims, w.claim)
			}
			if w.userMeta != "" && (res.Metadata == nil || res.Metadata.User[w.userMeta] == nil) {
				t.Errorf("metadata %+v, want user_metadata.%s", res.Metadata, w.userMeta)
			}
			if w.noMetaKey && res.Metadata != nil {
				t.Errorf("metadata %+v, want none", res.Metadata)
			}
		})
	}
}

// seedConfig is the configuration the seed rules (and seeds.js) read.
func seedConfig() map[string]string {
	return map[string]string{
		"DUO_MFA:CLIENT_ID": "payroll", "DUO_MFA:IKEY": "DIXXXXXXXXXXXXXXXXXX",
		"DUO_MFA:SKEY": "skey-read-by-code", "DUO_MFA:API_HOSTNAME": "api-1234.duosecurity.com",
	}
}

// The consent template's callback pass: a token from the consent page
// with the accepted flag and the transaction's state records the
// acceptance; without the flag the login is denied.
func TestActionTemplateConsentCallback(t *testing.T) {
	src, err := LoadFile(filepath.Join("testdata", "actions", "consent_redirect.js"))
	if err != nil {
		t.Fatal(err)
	}
	sign := `exports.onExecutePostLogin = async (event, api) => {
  api.idToken.setCustomClaim('t', api.redirect.encodeToken({secret: 'k', payload: {state: 'st', accepted: event.user.accept}}));
};`
	mint := func(accept bool) string {
		res := runOne(t, Options{Rules: []Source{actionSource("sign", sign)}}, Input{User: map[string]any{"user_id": "u", "accept": accept}})
		return res.IDTokenClaims["t"].(string)
	}
	opts := Options{Rules: []Source{src}, Configuration: map[string]string{"CONSENT_SECRET": "k", "CONSENT_URL": "https://consent.example.com/"}}
	in := func(tok string) Input {
		return Input{User: map[string]any{"user_id": "u"}, Context: Context{Protocol: RedirectCallbackProtocol,
			Request: Request{Query: map[string]any{"state": "st"}, Body: map[string]any{"consent_token": tok}}}}
	}
	res := runOne(t, opts, in(mint(true)))
	if res.Err != nil || res.Metadata == nil || res.Metadata.App["terms_accepted"] != true {
		t.Fatalf("accepted: %v %+v", res.Err, res.Metadata)
	}
	res = runOne(t, opts, in(mint(false)))
	if res.Err == nil || res.Err.Kind != KindUnauthorized {
		t.Fatalf("declined: %v", res.Err)
	}
}
