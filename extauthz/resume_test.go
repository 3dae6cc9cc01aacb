package extauthz

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/stepup-dev/stepup/rules"
	"github.com/stepup-dev/stepup/session"
)

// conditionHarness defines the function seed 003's redirect snippet calls
// but leaves undefined (see rules/seeds_test.go).
var conditionHarness = inline("harness", `function (user, context, callback) {
  global.condition = function () { return true; };
  callback(null, user, context);
}`)

// smsRule is Auth0's custom-MFA pattern: redirect on login, verify the
// service's token itself on the way back.
var smsRule = inline("sms-mfa", `function (user, context, callback) {
  if (context.protocol !== 'redirect-callback') {
    context.redirect = { url: 'https://sms.example/verify' };
    return callback(null, user, context);
  }
  var jwt = require('jsonwebtoken');
  var decoded;
  try {
    decoded = jwt.verify(context.request.query.id_token, Buffer.from(configuration.SMS_SECRET, 'base64'));
  } catch (e) {
    return callback(new UnauthorizedError('Invalid token: ' + e.message));
  }
  if (decoded.sub !== user.user_id) {
    return callback(new UnauthorizedError('The code was for another user'));
  }
  if (context.request.body.device && context.request.body.device !== 'phone') {
    return callback(new UnauthorizedError('Unknown device'));
  }
  callback(null, user, context);
}`)

func resumeInput(q, body url.Values) ResumeInput {
	return ResumeInput{
		User: "auth0|alice", Claims: map[string]any{"sub": "auth0|alice", "email": "alice@corp.example"},
		ClientID: "payroll", ReturnURL: "https://payroll.example/report?month=11", Hostname: "payroll.example",
		ClientIP: netip.MustParseAddr("203.0.113.7"), UserAgent: "Mozilla/5.0", Query: q, Body: body,
	}
}

func mfaCookieWith(t *testing.T, f *sessionFixture, method string) string {
	t.Helper()
	c, _, err := f.m.IssueMFASession(context.Background(), session.Grant{User: "auth0|alice", SID: "", Realm: testRealm, Factors: []string{method}, UserAgent: "Mozilla/5.0"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Name + "=" + c.Value
}

func TestSeedRedirectRoundTrip(t *testing.T) {
	f := newSessionFixture(t, nil)
	s := rulesServer(t, f, nil, conditionHarness, seed(t, "003_redirect.js"))

	// Login: a 302 to the service with the state appended.
	got, resp := run(t, s, checkReq("203.0.113.7"))
	if got.status != http.StatusFound || got.reason != "redirect" {
		t.Fatalf("check: %+v", got)
	}
	loc, _ := header(resp.GetDeniedResponse().GetHeaders(), "location")
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "https" || u.Host != "your_custom_mfa" || u.Path != "" {
		t.Fatalf("location %q", loc)
	}
	st, err := f.m.LoadState(context.Background(), u.Query().Get("state"), "auth0|alice")
	if err != nil || st.RedirectURL != "https://your_custom_mfa" || st.ClientID != "payroll" || st.Host != testRealm ||
		st.Completes != session.CompletedRedirect("https://your_custom_mfa") {
		t.Fatalf("state %+v, %v", st, err)
	}

	// Back: the snippet's redirect-callback branch continues.
	if res := s.Resume(context.Background(), resumeInput(url.Values{"state": {u.Query().Get("state")}}, nil)); res.Err != nil {
		t.Fatalf("resume: %+v", res.Err)
	}

	// Later requests: a session with the redirect's completion satisfies
	// the redirect; the service is not declared as an MFA service, so
	// the completion proves no factor. Another proof does not satisfy it.
	got, resp = run(t, s, checkReq("203.0.113.7", withHeader("cookie", mfaCookieWith(t, f, st.Completes))))
	if got.status != 200 || got.reason != "no_mfa_required" {
		t.Fatalf("with the redirect's completion: %+v", got)
	}
	if m, _ := header(resp.GetOkResponse().GetHeaders(), "x-stepup-mfa"); m != "none" {
		t.Errorf("x-stepup-mfa %q", m)
	}
	if got, _ := run(t, s, checkReq("203.0.113.7", withHeader("cookie", mfaCookieWith(t, f, "otp")))); got.status != http.StatusFound {
		t.Errorf("an authenticator session satisfied the redirect: %+v", got)
	}
}

func TestResumeRuleVerifiesToken(t *testing.T) {
	f := newSessionFixture(t, nil)
	secret := []byte("a shared secret of the sms service, 32+ bytes")
	conf := map[string]string{"SMS_SECRET": base64.StdEncoding.EncodeToString(secret)}
	s := rulesServer(t, f, conf, smsRule)
	sign := func(claims jwt.MapClaims, key []byte) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	exp := time.Now().Add(5 * time.Minute).Unix()
	for _, tc := range []struct {
		name    string
		q, body url.Values
		wantMsg string
	}{
		{"valid token", url.Values{"id_token": {sign(jwt.MapClaims{"sub": "auth0|alice", "exp": exp}, secret)}}, nil, ""},
		{"valid token, form body", url.Values{"id_token": {sign(jwt.MapClaims{"sub": "auth0|alice", "exp": exp}, secret)}}, url.Values{"device": {"phone"}}, ""},
		{"body the rule refuses", url.Values{"id_token": {sign(jwt.MapClaims{"sub": "auth0|alice", "exp": exp}, secret)}}, url.Values{"device": {"fax"}}, "Unknown device"},
		{"wrong secret", url.Values{"id_token": {sign(jwt.MapClaims{"sub": "auth0|alice", "exp": exp}, []byte("another secret of the same length!!!!!!!!"))}}, nil, "Invalid token: invalid signature"},
		{"another user", url.Values{"id_token": {sign(jwt.MapClaims{"sub": "auth0|bob", "exp": exp}, secret)}}, nil, "The code was for another user"},
		{"expired", url.Values{"id_token": {sign(jwt.MapClaims{"sub": "auth0|alice", "exp": time.Now().Add(-time.Hour).Unix()}, secret)}}, nil, "Invalid token: jwt expired"},
		{"no token", nil, nil, "Invalid token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.Resume(context.Background(), resumeInput(tc.q, tc.body))
			if tc.wantMsg == "" {
				if res.Err != nil {
					t.Fatalf("denied: %+v", res.Err)
				}
				return
			}
			if res.Err == nil || res.Err.Status != http.StatusForbidden || !strings.Contains(res.Err.Message, tc.wantMsg) || res.Err.Rule != "sms-mfa" {
				t.Fatalf("got %+v, want a 403 from sms-mfa with %q", res.Err, tc.wantMsg)
			}
		})
	}
}

func TestResumeContext(t *testing.T) {
	f := newSessionFixture(t, nil)
	// The rule sees what came back, the user and the client as Check did,
	// and its redirect on this pass is ignored.
	s := rulesServer(t, f, nil, inline("check", `function (user, context, callback) {
  context.redirect = { url: 'https://mfa.example/again' };
  var r = context.request;
  var problems = [];
  if (context.protocol !== 'redirect-callback') problems.push('protocol ' + context.protocol);
  if (r.query.code !== 'ok' || r.query.multi.length !== 2) problems.push('query ' + JSON.stringify(r.query));
  if (r.body.otp !== '123') problems.push('body ' + JSON.stringify(r.body));
  if (user.user_id !== 'auth0|alice' || user.email !== 'alice@corp.example' || user.app_metadata.plan !== 'gold') problems.push('user ' + JSON.stringify(user));
  if (context.clientID !== 'payroll' || context.clientName !== 'Payroll') problems.push('client ' + context.clientID);
  if (r.ip !== '203.0.113.7' || r.hostname !== 'payroll.example' || r.userAgent !== 'Mozilla/5.0') problems.push('request ' + JSON.stringify(r));
  if (r.networks.length !== 0) problems.push('networks ' + r.networks);
  if (problems.length) return callback(new Error(problems.join('; ')));
  callback(null, user, context);
}`))
	in := resumeInput(url.Values{"code": {"ok"}, "multi": {"a", "b"}}, url.Values{"otp": {"123"}})
	in.Claims["app_metadata"] = map[string]any{"plan": "gold"}
	if res := s.Resume(context.Background(), in); res.Err != nil {
		t.Fatalf("%+v", res.Err)
	}
	// A corporate address is looked up again.
	s2 := rulesServer(t, f, nil, inline("nets", `function (user, context, callback) {
  if (context.request.networks.indexOf('corporate') < 0) return callback(new Error('not corporate'));
  callback(null, user, context);
}`))
	in.ClientIP = netip.MustParseAddr("::ffff:10.1.2.3")
	if res := s2.Resume(context.Background(), in); res.Err != nil {
		t.Fatalf("%+v", res.Err)
	}
	in.User = ""
	if res := s2.Resume(context.Background(), in); res.Err == nil || res.Err.Status != http.StatusBadRequest {
		t.Fatalf("no user: %+v", res.Err)
	}
	// A rule that fails on the way back fails closed.
	s3 := rulesServer(t, f, nil, inline("slow", `function (user, context, callback) { while (true) {} }`))
	if res := s3.Resume(context.Background(), resumeInput(nil, nil)); res.Err == nil || res.Err.Status != http.StatusServiceUnavailable {
		t.Fatalf("timeout: %+v", res.Err)
	}
}

func TestDuoSecretSealedInState(t *testing.T) {
	f := newSessionFixture(t, nil)
	key, err := session.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := session.NewSealer([]session.Key{key})
	if err != nil {
		t.Fatal(err)
	}
	const skey = "fakeduoclientsecretfakeduoclientsecret01"
	conf := map[string]string{
		"DUO_MFA:CLIENT_ID": "payroll", "DUO_MFA:DUO_IKEY": "x", "DUO_MFA:DUO_SKEY": "y", "DUO_MFA:DUO_API_HOSTNAME": "z",
		"DUO_MFA:IKEY": "DIXXXXXXXXXXXXXXXXXX", "DUO_MFA:SKEY": skey, "DUO_MFA:API_HOSTNAME": "api-x.duosecurity.com",
	}
	e, err := rules.New(rules.Options{Rules: []rules.Source{seed(t, "000_duo.md")}, Configuration: conf, RuleTimeout: 500 * time.Millisecond, PipelineTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	s := newTestServer(t, func(o *Options) {
		o.Policy = NewRulesPolicy(e, nil)
		o.Sessions = NewSessions(f.m, WithSealer(sealer))
		o.Now = func() time.Time { return f.now }
	})
	_, resp := run(t, s, checkReq("203.0.113.7"))
	loc, _ := header(resp.GetDeniedResponse().GetHeaders(), "location")
	u, _ := url.Parse(loc)
	st, err := f.m.LoadState(context.Background(), u.Query().Get("state"), "auth0|alice")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range st.Requirement.Options {
		if k == "skey" || strings.Contains(v, skey) {
			t.Errorf("option %s holds the secret in plain", k)
		}
	}
	got, err := sealer.OpenOption(st.Requirement, "auth0|alice", "skey")
	if err != nil || got != skey {
		t.Fatalf("sealed skey opens to %q, %v", got, err)
	}
	if _, err := sealer.OpenOption(st.Requirement, "auth0|bob", "skey"); err == nil {
		t.Error("the sealed secret opens for another user")
	}
	// A rule cannot plant a "sealed" option of its own.
	planted := PolicyResult{MFA: Requirement{Provider: "duo", Options: map[string]any{"skey_sealed": "s1.x.y", "ikey": "DI"}}}
	if tok, err := NewSessions(f.m).NewState(context.Background(), StepUpState{User: "auth0|alice", Requirement: planted.MFA}); err != nil {
		t.Fatal(err)
	} else if st, _ := f.m.LoadState(context.Background(), tok, "auth0|alice"); st.Requirement.Options["skey_sealed"] != "" {
		t.Error("a rule's skey_sealed option reached the state")
	}
}

func TestAssertionCarriesUserClaims(t *testing.T) {
	f := newSessionFixture(t, nil)
	prefixReq := func(extra string) *authv3.CheckRequest {
		return checkReq("203.0.113.7", func(r *authv3.CheckRequest) {
			r.Attributes.Request.Http.Path = "/.stepup/continue?state=abc"
			if extra != "" {
				r.Attributes.MetadataContext.FilterMetadata["envoy.filters.http.jwt_authn"].Fields["jwt_payload"].GetStructValue().Fields["big"] = structpb.NewStringValue(extra)
			}
		})
	}
	for _, tc := range []struct {
		name     string
		extra    string
		wantUser bool
	}{
		{"small identity: every claim", "", true},
		{"large identity: the subset", strings.Repeat("x", 5000), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.srv.Check(context.Background(), prefixReq(tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			tok, _ := header(resp.GetOkResponse().GetHeaders(), AssertionHeader)
			a, err := f.m.VerifyAssertion(tok)
			if err != nil {
				t.Fatal(err)
			}
			user, ok := a.Claims[AssertionUserClaim].(map[string]any)
			if ok != tc.wantUser || a.Claims["email"] != "alice@corp.example" {
				t.Fatalf("claims %v", a.Claims)
			}
			if ok && (user["sub"] != "auth0|alice" || user["email"] != "alice@corp.example") {
				t.Errorf("user claims %v", user)
			}
		})
	}
}
