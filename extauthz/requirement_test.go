package extauthz

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/stepup-dev/stepup/session"
)

// fixedPolicy asks every request for the same thing.
type fixedPolicy struct{ res PolicyResult }

func (p fixedPolicy) Evaluate(context.Context, *PolicyInput) PolicyResult { return p.res }

// proofCookie issues alice's MFA session on realm proving factors, each
// proven age ago.
func (f *sessionFixture) proofCookie(t *testing.T, realm string, age time.Duration, factors ...string) string {
	t.Helper()
	now := f.now
	f.now = now.Add(-age)
	defer func() { f.now = now }()
	c, _, err := f.m.IssueMFASession(context.Background(), session.Grant{User: "auth0|alice", Realm: realm, Factors: factors})
	if err != nil {
		t.Fatal(err)
	}
	return c.Name + "=" + c.Value
}

func (f *sessionFixture) rememberProof(t *testing.T, realm string, factors ...string) string {
	t.Helper()
	c, _, err := f.m.IssueRemember(context.Background(), session.Grant{User: "auth0|alice", Realm: realm, Factors: factors})
	if err != nil {
		t.Fatal(err)
	}
	return c.Name + "=" + c.Value
}

// TestRequirementTable is the requirement × proof table of
// docs/security-model.md, through the whole Check: only the listed
// factors meet each provider, on the session's own realm.
func TestRequirementTable(t *testing.T) {
	allFactors := []string{
		session.FactorOTP, session.FactorRecoveryCode, session.FactorDuo, session.FactorDuoFallback,
		session.FactorWebAuthnPlatform, session.FactorWebAuthnRoaming, session.RedirectFactor("sms"),
		session.CompletedRedirect("https://terms.example/accept"),
	}
	meets := map[string][]string{
		"any":                  {session.FactorOTP, session.FactorRecoveryCode, session.FactorDuo, session.FactorWebAuthnPlatform, session.FactorWebAuthnRoaming, session.RedirectFactor("sms")},
		"google-authenticator": {session.FactorOTP, session.FactorRecoveryCode},
		"guardian":             {session.FactorOTP, session.FactorRecoveryCode},
		"duo":                  {session.FactorDuo},
		"sms":                  {},
	}
	for _, fallback := range []bool{false, true} {
		for provider, want := range meets {
			if provider == "duo" && fallback {
				want = append(want, session.FactorDuoFallback)
			}
			for _, factor := range allFactors {
				f := newSessionFixture(t, nil)
				s := newTestServer(t, func(o *Options) {
					o.Sessions = NewSessions(f.m)
					o.Now = func() time.Time { return f.now }
					o.DuoFallback = fallback
					o.RedirectServices = []RedirectService{{Name: "sms", URL: "https://sms.example/"}}
					o.Policy = fixedPolicy{PolicyResult{MFA: Requirement{Provider: provider, AllowRemember: true}}}
				})
				ok := false
				for _, w := range want {
					ok = ok || w == factor
				}
				got, _ := run(t, s, checkReq("203.0.113.7", withHeader("cookie", f.proofCookie(t, testRealm, 0, factor))))
				if ok != (got.status == 200) {
					t.Errorf("provider %q, fallback %v, session proving %q: %+v (want allowed %v)", provider, fallback, factor, got, ok)
				}
				if FactorMeets(provider, nil, factor, fallback) != ok {
					t.Errorf("FactorMeets(%q, %q, fallback %v) != %v", provider, factor, fallback, ok)
				}
				// A remembered browser stands in for the same factors.
				if session.IsFactor(factor) {
					got, _ = run(t, s, checkReq("203.0.113.7", withHeader("cookie", f.rememberProof(t, testRealm, factor))))
					if ok != (got.status == 200) {
						t.Errorf("provider %q, remembered browser proving %q: %+v (want allowed %v)", provider, factor, got, ok)
					}
				}
			}
		}
	}
}

// TestSessionBoundToRealm: a session or remembered browser proven on one
// host proves nothing on another, unless both are in one configured realm.
func TestSessionBoundToRealm(t *testing.T) {
	realms, err := session.NewRealms(map[string][]string{"corp": {"app.corp.example", "*.intra.example"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		realms  *session.Realms
		proven  string
		allowed bool
	}{
		{"same host", nil, "app.corp.example", true},
		{"another host", nil, "other.example", false},
		{"a sub-domain", nil, "x.app.corp.example", false},
		{"same realm", realms, "realm:corp", true},
		{"host realm without realms configured", realms, "app.corp.example", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSessionFixture(t, nil)
			s := newTestServer(t, func(o *Options) {
				o.Sessions = NewSessions(f.m)
				o.Now = func() time.Time { return f.now }
				o.Realms = tc.realms
				o.Policy = fixedPolicy{PolicyResult{MFA: Requirement{Provider: "any", AllowRemember: true}}}
			})
			for _, cookie := range []string{f.proofCookie(t, tc.proven, 0, "otp"), f.rememberProof(t, tc.proven, "otp")} {
				got, _ := run(t, s, checkReq("203.0.113.7", withHeader("cookie", cookie)))
				if (got.status == 200) != tc.allowed {
					t.Errorf("proven on %q: %+v, want allowed %v", tc.proven, got, tc.allowed)
				}
			}
		})
	}
}

// TestHostCanonical: a host's case, trailing dot and port do not make it
// another host, for the client mapping and for the realm.
func TestHostCanonical(t *testing.T) {
	f := newSessionFixture(t, nil)
	var seen []string
	s := newTestServer(t, func(o *Options) {
		o.Sessions = NewSessions(f.m)
		o.Now = func() time.Time { return f.now }
		o.ClientHosts = map[string]string{"Payroll.Example.org": "payroll"}
		o.Policy = policyFunc(func(in *PolicyInput) PolicyResult {
			seen = append(seen, in.Req.ClientID)
			if in.Req.ClientID == "payroll" {
				return PolicyResult{MFA: Requirement{Provider: "any"}}
			}
			return PolicyResult{}
		})
	})
	for _, host := range []string{"payroll.example.org", "payroll.example.org.", "PAYROLL.example.org.:443", "payroll.example.org:8443"} {
		seen = nil
		req := checkReq("203.0.113.7", withHost(host), withoutExtension("client_id"))
		got, _ := run(t, s, req)
		if got.status != http.StatusFound || len(seen) != 1 || seen[0] != "payroll" {
			t.Errorf("host %q: %+v, client %v: the clients.hosts mapping was escaped", host, got, seen)
		}
		cookie := f.proofCookie(t, "payroll.example.org", 0, "otp")
		if got, _ := run(t, s, checkReq("203.0.113.7", withHost(host), withoutExtension("client_id"), withHeader("cookie", cookie))); got.status != 200 {
			t.Errorf("host %q: the session of payroll.example.org did not count: %+v", host, got)
		}
	}
}

type policyFunc func(*PolicyInput) PolicyResult

func (p policyFunc) Evaluate(_ context.Context, in *PolicyInput) PolicyResult { return p(in) }

func withHost(h string) reqOpt {
	return func(r *authv3.CheckRequest) {
		r.Attributes.Request.Http.Host = h
		r.Attributes.Request.Http.Headers[":authority"] = h
	}
}

func withoutExtension(k string) reqOpt {
	return func(r *authv3.CheckRequest) { delete(r.Attributes.ContextExtensions, k) }
}

func withExtension(k, v string) reqOpt {
	return func(r *authv3.CheckRequest) { r.Attributes.ContextExtensions[k] = v }
}

// TestMFAMaxAge: a factor proven longer ago than the route allows steps
// up again although the session is valid; the client's setting, the
// route's context extension and the rule's maxAge can only tighten it.
func TestMFAMaxAge(t *testing.T) {
	for _, tc := range []struct {
		name       string
		client     time.Duration // clients.mfa_max_age for payroll
		route      string        // context extension
		rule       time.Duration // context.multifactor.maxAge
		age        time.Duration // of the proof
		wantStatus int
	}{
		{"no max age", 0, "", 0, 50 * time.Minute, 200},
		{"client: fresh", 15 * time.Minute, "", 0, 10 * time.Minute, 200},
		{"client: stale", 15 * time.Minute, "", 0, 20 * time.Minute, http.StatusFound},
		{"route tightens the client", time.Hour, "5m", 0, 10 * time.Minute, http.StatusFound},
		{"route cannot loosen the client", 5 * time.Minute, "1h", 0, 10 * time.Minute, http.StatusFound},
		{"rule tightens", time.Hour, "", 5 * time.Minute, 10 * time.Minute, http.StatusFound},
		{"rule cannot loosen", 5 * time.Minute, "", time.Hour, 10 * time.Minute, http.StatusFound},
		{"route alone", 0, "30s", 0, time.Minute, http.StatusFound},
		{"route: invalid value fails closed", 0, "soon", 0, 0, http.StatusServiceUnavailable},
		{"route: negative fails closed", 0, "-5m", 0, 0, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSessionFixture(t, nil)
			s := newTestServer(t, func(o *Options) {
				o.Sessions = NewSessions(f.m)
				o.Now = func() time.Time { return f.now }
				if tc.client > 0 {
					o.ClientMaxAge = map[string]time.Duration{"payroll": tc.client}
				}
				o.Policy = fixedPolicy{PolicyResult{MFA: Requirement{Provider: "any", AllowRemember: true, MaxAge: tc.rule}}}
			})
			opts := []reqOpt{withHeader("cookie", f.proofCookie(t, testRealm, tc.age, "otp"))}
			if tc.route != "" {
				opts = append(opts, withExtension("mfa_max_age", tc.route))
			}
			if got, _ := run(t, s, checkReq("203.0.113.7", opts...)); got.status != tc.wantStatus {
				t.Errorf("got %+v, want status %d", got, tc.wantStatus)
			}
		})
	}
}

// TestRuleMaxAgeOption: context.multifactor.maxAge (seconds) reaches the
// requirement; a value that is not a positive number denies rather than
// loosening anything.
func TestRuleMaxAgeOption(t *testing.T) {
	f := newSessionFixture(t, nil)
	for _, tc := range []struct {
		value      string
		age        time.Duration
		wantStatus int
	}{
		{"300", 2 * time.Minute, 200},
		{"300", 10 * time.Minute, http.StatusFound},
		{"'300'", 2 * time.Minute, http.StatusForbidden},
		{"-1", 2 * time.Minute, http.StatusForbidden},
	} {
		s := rulesServer(t, f, nil, inline("fresh", `function (user, context, callback) {
  context.multifactor = { provider: 'any', maxAge: `+tc.value+` };
  callback(null, user, context);
}`))
		got, _ := run(t, s, checkReq("203.0.113.7", withHeader("cookie", f.proofCookie(t, testRealm, tc.age, "otp"))))
		if got.status != tc.wantStatus {
			t.Errorf("maxAge %s, proof %v old: %+v, want %d", tc.value, tc.age, got, tc.wantStatus)
		}
	}
}

// termsAndMFA is a pipeline with a non-MFA redirect for the portal and
// Duo for finance (an attacker's view of finding 1: complete the terms
// redirect without visiting it, then use that session everywhere).
var termsAndMFA = inline("terms-and-mfa", `function (user, context, callback) {
  if (context.clientID === 'portal' && context.protocol !== 'redirect-callback') {
    context.redirect = { url: 'https://terms.example/accept' };
  }
  if (context.clientID === 'finance') {
    context.multifactor = { provider: 'duo', ikey: 'DIXXXXXXXXXXXXXXXXXX', skey: 'a'.repeat(40), host: 'api-xxxxxxxx.duosecurity.com' };
  }
  if (context.clientID === 'payroll') {
    context.multifactor = { provider: 'any', allowRememberBrowser: false };
  }
  callback(null, user, context);
}`)

// TestRedirectCompletionIsNoFactor: completing a redirect that is not a
// declared MFA service satisfies that redirect and meets no MFA
// requirement, for any client.
func TestRedirectCompletionIsNoFactor(t *testing.T) {
	f := newSessionFixture(t, nil)
	s := rulesServer(t, f, nil, termsAndMFA)
	got, resp := run(t, s, checkReq("203.0.113.7", withExtension("client_id", "portal")))
	if got.status != http.StatusFound || got.reason != "redirect" {
		t.Fatalf("portal: %+v", got)
	}
	loc, _ := header(resp.GetDeniedResponse().GetHeaders(), "location")
	u, _ := url.Parse(loc)
	st, err := f.m.LoadState(context.Background(), u.Query().Get("state"), "auth0|alice")
	if err != nil || st.Completes != session.CompletedRedirect("https://terms.example/accept") || st.Host != testRealm {
		t.Fatalf("state %+v, %v", st, err)
	}
	done := f.proofCookie(t, testRealm, 0, st.Completes)
	if got, _ := run(t, s, checkReq("203.0.113.7", withExtension("client_id", "portal"), withHeader("cookie", done))); got.status != 200 {
		t.Errorf("portal after the terms: %+v", got)
	}
	for _, client := range []string{"finance", "payroll"} {
		if got, _ := run(t, s, checkReq("203.0.113.7", withExtension("client_id", client), withHeader("cookie", done))); got.status != http.StatusFound || got.reason != "mfa_required" {
			t.Errorf("%s with only the terms completed: %+v (want a step-up)", client, got)
		}
	}
}

// TestRedirectThenMFA: with a redirect and a requirement in one pipeline,
// the redirect comes first and both must be satisfied; a declared MFA
// service's factor meets "any".
func TestRedirectThenMFA(t *testing.T) {
	both := inline("both", `function (user, context, callback) {
  if (context.protocol !== 'redirect-callback') {
    context.redirect = { url: 'https://sms.example/verify?x=1' };
  }
  context.multifactor = { provider: context.clientID === 'finance' ? 'google-authenticator' : 'any' };
  callback(null, user, context);
}`)
	f := newSessionFixture(t, nil)
	e := rulesEngine(t, both)
	mk := func(services []RedirectService) *Server {
		return newTestServer(t, func(o *Options) {
			o.Policy = NewRulesPolicy(e, nil)
			o.Sessions = NewSessions(f.m)
			o.Now = func() time.Time { return f.now }
			o.RedirectServices = services
		})
	}
	plain, declared := mk(nil), mk([]RedirectService{{Name: "sms", URL: "https://sms.example/"}})
	completion := session.CompletedRedirect("https://sms.example/verify")
	for _, tc := range []struct {
		name    string
		s       *Server
		client  string
		proofs  []string
		status  int
		reason  string
		factors string
	}{
		{"nothing yet: the redirect first", plain, "payroll", nil, http.StatusFound, "redirect", ""},
		{"an otp session alone: still the redirect", plain, "payroll", []string{"otp"}, http.StatusFound, "redirect", ""},
		{"the redirect alone: then MFA", plain, "payroll", []string{completion}, http.StatusFound, "mfa_required", ""},
		{"both", plain, "payroll", []string{completion, "otp"}, 200, "mfa_session", "otp"},
		{"declared service: its factor meets any", declared, "payroll", []string{"redirect:sms"}, 200, "mfa_session", "redirect:sms"},
		{"declared service: not google-authenticator", declared, "finance", []string{"redirect:sms"}, http.StatusFound, "mfa_required", ""},
		{"declared service: a plain completion is not its factor", declared, "payroll", []string{completion}, http.StatusFound, "redirect", ""},
		{"a service no longer declared proves nothing", mk([]RedirectService{{Name: "other", URL: "https://sms.example/"}}), "payroll", []string{"redirect:sms"}, http.StatusFound, "redirect", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []reqOpt{withExtension("client_id", tc.client)}
			if len(tc.proofs) > 0 {
				opts = append(opts, withHeader("cookie", f.proofCookie(t, testRealm, 0, tc.proofs...)))
			}
			got, resp := run(t, tc.s, checkReq("203.0.113.7", opts...))
			if got.status != tc.status || got.reason != tc.reason {
				t.Fatalf("got %+v, want %d %s", got, tc.status, tc.reason)
			}
			if tc.factors != "" {
				if m, _ := header(resp.GetOkResponse().GetHeaders(), "x-stepup-mfa"); m != tc.factors {
					t.Errorf("x-stepup-mfa %q, want %q", m, tc.factors)
				}
			}
		})
	}
}

// TestOutdatedSessionProvesNothing: a session record written before
// records named their factors counts for nothing.
func TestOutdatedSessionProvesNothing(t *testing.T) {
	f := newSessionFixture(t, nil)
	s := newTestServer(t, func(o *Options) {
		o.Sessions = NewSessions(f.m)
		o.Now = func() time.Time { return f.now }
		o.Policy = fixedPolicy{PolicyResult{MFA: Requirement{Provider: "any", AllowRemember: true}}}
	})
	cookie, id := f.proofCookie(t, testRealm, 0, "otp"), ""
	list, err := f.m.ListUser(context.Background(), "auth0|alice")
	if err != nil || len(list.MFA) != 1 {
		t.Fatal(list, err)
	}
	id = list.MFA[0].ID
	old := []byte(`{"m":"otp","at":` + itoa(f.now.Unix()) + `,"iat":` + itoa(f.now.Unix()) + `,"exp":` + itoa(f.now.Add(time.Hour).Unix()) + `,"ls":` + itoa(f.now.Unix()) + `}`)
	if err := f.st.UpdateUser(context.Background(), "auth0|alice", session.KindMFA, id, old, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, _ := run(t, s, checkReq("203.0.113.7", withHeader("cookie", cookie))); got.status != http.StatusFound {
		t.Errorf("an outdated session record: %+v, want a step-up", got)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestUndeclaredServiceProvesNothing: the factor of a custom MFA service
// that the configuration no longer declares meets no requirement.
func TestUndeclaredServiceProvesNothing(t *testing.T) {
	f := newSessionFixture(t, nil)
	s := newTestServer(t, func(o *Options) {
		o.Sessions = NewSessions(f.m)
		o.Now = func() time.Time { return f.now }
		o.RedirectServices = []RedirectService{{Name: "sms", URL: "https://sms.example/"}}
		o.Policy = fixedPolicy{PolicyResult{MFA: Requirement{Provider: "any"}}}
	})
	for factor, want := range map[string]int{"redirect:sms": 200, "redirect:gone": http.StatusFound} {
		if got, _ := run(t, s, checkReq("203.0.113.7", withHeader("cookie", f.proofCookie(t, testRealm, 0, factor)))); got.status != want {
			t.Errorf("%s: %+v, want %d", factor, got, want)
		}
	}
}

// TestServiceRedirectFreshness: Auth0's "custom MFA service" rule sets
// only context.redirect (no context.multifactor); the route's and the
// client's mfa_max_age still apply to the service's factor, which then
// sends the browser to the service again.
func TestServiceRedirectFreshness(t *testing.T) {
	f := newSessionFixture(t, nil)
	s := newTestServer(t, func(o *Options) {
		o.Sessions = NewSessions(f.m)
		o.Now = func() time.Time { return f.now }
		o.RedirectServices = []RedirectService{{Name: "sms", URL: "https://sms.example/"}}
		o.ClientMaxAge = map[string]time.Duration{"payroll": 15 * time.Minute}
		o.Policy = policyFunc(func(in *PolicyInput) PolicyResult {
			if in.Protocol == "redirect-callback" {
				return PolicyResult{}
			}
			return PolicyResult{RedirectURL: "https://sms.example/verify"}
		})
	})
	old := f.proofCookie(t, testRealm, 50*time.Minute, session.RedirectFactor("sms"))
	got, _ := run(t, s, checkReq("203.0.113.7", withHeader("cookie", old), withExtension("mfa_max_age", "5m")))
	if got.status == 200 {
		t.Errorf("a 50 min old redirect:sms proof passed a client with mfa_max_age 15m and a route with 5m: %+v", got)
	}
	fresh := f.proofCookie(t, testRealm, 2*time.Minute, session.RedirectFactor("sms"))
	if got, _ := run(t, s, checkReq("203.0.113.7", withHeader("cookie", fresh), withExtension("mfa_max_age", "5m"))); got.status != 200 {
		t.Errorf("a 2 min old proof: %+v", got)
	}
	// Control: the same proof under a provider:any requirement is refused.
	s2 := newTestServer(t, func(o *Options) {
		o.Sessions = NewSessions(f.m)
		o.Now = func() time.Time { return f.now }
		o.RedirectServices = []RedirectService{{Name: "sms", URL: "https://sms.example/"}}
		o.ClientMaxAge = map[string]time.Duration{"payroll": 15 * time.Minute}
		o.Policy = fixedPolicy{PolicyResult{MFA: Requirement{Provider: "any"}}}
	})
	if got, _ := run(t, s2, checkReq("203.0.113.7", withHeader("cookie", old))); got.status == 200 {
		t.Errorf("control: %+v", got)
	}
}

func withJWTClaim(k string, v any) reqOpt {
	return func(r *authv3.CheckRequest) {
		p := r.Attributes.MetadataContext.FilterMetadata["envoy.filters.http.jwt_authn"].Fields["jwt_payload"].GetStructValue()
		if v == nil {
			delete(p.Fields, k)
			return
		}
		val, _ := structpb.NewValue(v)
		p.Fields[k] = val
	}
}

// TestSessionBoundToIdPSession: an MFA session bound to the IdP session
// "idp-1" proves nothing to an identity of another IdP session, nor to one
// that carries no sid at all (a cookie thief who also holds the password
// logs in anew and presents a token without sid).
func TestSessionBoundToIdPSession(t *testing.T) {
	f := newSessionFixture(t, nil)
	s := newTestServer(t, func(o *Options) {
		o.Sessions = NewSessions(f.m)
		o.Now = func() time.Time { return f.now }
		o.Policy = fixedPolicy{PolicyResult{MFA: Requirement{Provider: "any"}}}
	})
	c, _, err := f.m.IssueMFASession(context.Background(), session.Grant{User: "auth0|alice", SID: "idp-1", Realm: testRealm, Factors: []string{"otp"}})
	if err != nil {
		t.Fatal(err)
	}
	cookie := c.Name + "=" + c.Value
	if got, _ := run(t, s, checkReq("203.0.113.7", withHeader("cookie", cookie), withJWTClaim("sid", "idp-1"))); got.status != 200 {
		t.Fatalf("control, same sid: %+v", got)
	}
	if got, _ := run(t, s, checkReq("203.0.113.7", withHeader("cookie", cookie), withJWTClaim("sid", "idp-2"))); got.status == 200 {
		t.Fatalf("control, other sid passed: %+v", got)
	}
	if got, _ := run(t, s, checkReq("203.0.113.7", withHeader("cookie", cookie))); got.status == http.StatusOK {
		t.Errorf("a session bound to IdP session idp-1 passed an identity without sid: %+v", got)
	}
}

// TestUndeclaredServiceHiddenFromRules: the factor of a custom MFA service
// the configuration does not declare is not {name: 'mfa'} in
// context.authentication.methods either, so a rule written the common
// Auth0 way ("no MFA again when the session already did MFA") asks again.
func TestUndeclaredServiceHiddenFromRules(t *testing.T) {
	f := newSessionFixture(t, nil)
	s := rulesServer(t, f, nil, inline("mfa-once", `function (user, context, callback) {
  var done = (context.authentication.methods || []).some(function (m) { return m.name === 'mfa'; });
  if (!done) { context.multifactor = { provider: 'any' }; }
  callback(null, user, context);
}`))
	// No RedirectServices: "redirect:gone" is not declared.
	cookie := f.proofCookie(t, testRealm, 0, "redirect:gone")
	if got, _ := run(t, s, checkReq("203.0.113.7", withHeader("cookie", cookie))); got.status == 200 {
		t.Errorf("an undeclared service's proof counted as 'mfa' for the rules: %+v", got)
	}
}

// TestRequirementFactorsList: a requirement's allowed list (an Action's
// challengeWith) narrows the table: with [webauthn-roaming] only a
// security key meets "any"; passkeys never meet google-authenticator or
// guardian, whatever the list says.
func TestRequirementFactorsList(t *testing.T) {
	for _, tc := range []struct {
		provider string
		allowed  []string
		meets    []string
	}{
		{"any", []string{session.FactorWebAuthnRoaming}, []string{session.FactorWebAuthnRoaming}},
		{"any", []string{session.FactorWebAuthnPlatform, session.FactorWebAuthnRoaming}, []string{session.FactorWebAuthnPlatform, session.FactorWebAuthnRoaming}},
		{"any", []string{session.FactorOTP}, []string{session.FactorOTP}},
		{"google-authenticator", []string{session.FactorWebAuthnRoaming}, nil},
		{"guardian", []string{session.FactorWebAuthnPlatform, session.FactorOTP}, []string{session.FactorOTP}},
	} {
		for _, factor := range []string{session.FactorOTP, session.FactorRecoveryCode, session.FactorDuo, session.FactorWebAuthnPlatform, session.FactorWebAuthnRoaming} {
			want := slices.Contains(tc.meets, factor)
			if got := FactorMeets(tc.provider, tc.allowed, factor, false); got != want {
				t.Errorf("FactorMeets(%q, %q, %q) = %v, want %v", tc.provider, tc.allowed, factor, got, want)
			}
			f := newSessionFixture(t, nil)
			s := newTestServer(t, func(o *Options) {
				o.Sessions = NewSessions(f.m)
				o.Now = func() time.Time { return f.now }
				o.Policy = fixedPolicy{PolicyResult{MFA: Requirement{Provider: tc.provider, Factors: tc.allowed}}}
			})
			got, _ := run(t, s, checkReq("203.0.113.7", withHeader("cookie", f.proofCookie(t, testRealm, 0, factor))))
			if want != (got.status == 200) {
				t.Errorf("provider %q allowing %q, session proving %q: %+v (want allowed %v)", tc.provider, tc.allowed, factor, got, want)
			}
		}
	}
}
