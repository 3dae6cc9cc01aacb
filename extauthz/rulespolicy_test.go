package extauthz

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/stepup-dev/stepup/rules"
)

func rulesServer(t *testing.T, f *sessionFixture, conf map[string]string, srcs ...rules.Source) *Server {
	t.Helper()
	e, err := rules.New(rules.Options{Rules: srcs, Configuration: conf, RuleTimeout: 500 * time.Millisecond, PipelineTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return newTestServer(t, func(o *Options) {
		o.Policy = NewRulesPolicy(e, map[string]string{"payroll": "Payroll"})
		if f != nil {
			o.Sessions = NewSessions(f.m)
			o.Now = func() time.Time { return f.now }
		}
	})
}

// rulesEngine runs srcs with the tests' budgets.
func rulesEngine(t *testing.T, srcs ...rules.Source) *rules.Engine {
	t.Helper()
	e, err := rules.New(rules.Options{Rules: srcs, RuleTimeout: 500 * time.Millisecond, PipelineTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func seed(t *testing.T, file string) rules.Source {
	t.Helper()
	src, err := rules.LoadFile("../rules/testdata/auth0-examples/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func inline(name, code string) rules.Source {
	return rules.Source{Name: name, Code: []byte(code), Enabled: true}
}

type outcome struct {
	status int // 200 = allowed
	reason string
	body   string // substring of a denial body
}

func run(t *testing.T, s *Server, req *authv3.CheckRequest) (outcome, *authv3.CheckResponse) {
	t.Helper()
	resp, err := s.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("gRPC error: %v", err)
	}
	o := outcome{status: 200, reason: reason(resp)}
	if dr := resp.GetDeniedResponse(); dr != nil {
		o.status = int(dr.GetStatus().GetCode())
		o.body = dr.GetBody()
	}
	return o, resp
}

// TestSeedRulesThroughCheck runs the seed snippets, unmodified, through
// the whole Check (rules/testdata/auth0-examples holds them verbatim).
func TestSeedRulesThroughCheck(t *testing.T) {
	if _, err := os.Stat("../rules/testdata/auth0-examples/003_extranet.js"); err != nil {
		t.Fatal(err)
	}
	t.Run("extranet rule", func(t *testing.T) {
		f := newSessionFixture(t, nil)
		s := rulesServer(t, f, nil, seed(t, "003_extranet.js"))
		rb := f.rememberCookie(t, "auth0|alice")
		for _, tc := range []struct {
			name string
			req  *authv3.CheckRequest
			want string
		}{
			{"inside 192.168.1.134/26", checkReq("192.168.1.140"), "network"},
			{"outside: MFA", checkReq("203.0.113.7"), "mfa_required"},
			// allowRememberBrowser: false: a remembered browser does not count.
			{"outside with a remembered browser", checkReq("203.0.113.7", withHeader("cookie", rb)), "mfa_required"},
			{"outside with an MFA session", checkReq("203.0.113.7", withHeader("cookie", f.mfaCookie(t, "auth0|alice"))), "mfa_session"},
		} {
			got, _ := run(t, s, tc.req)
			if got.reason != tc.want {
				t.Errorf("%s: reason %q, want %q", tc.name, got.reason, tc.want)
			}
		}
	})
	t.Run("duo rule asks Duo only for its client", func(t *testing.T) {
		f := newSessionFixture(t, nil)
		conf := map[string]string{
			"DUO_MFA:CLIENT_ID": "payroll", "DUO_MFA:DUO_IKEY": "x", "DUO_MFA:DUO_SKEY": "y", "DUO_MFA:DUO_API_HOSTNAME": "z",
			"DUO_MFA:IKEY": "DIXXXXXXXXXXXXXXXXXX", "DUO_MFA:SKEY": "s", "DUO_MFA:API_HOSTNAME": "api-x.duosecurity.com",
		}
		s := rulesServer(t, f, conf, seed(t, "000_duo.md"))
		got, resp := run(t, s, checkReq("192.168.1.140"))
		if got.reason != "mfa_required" {
			t.Fatalf("payroll: %+v", got)
		}
		loc, _ := header(resp.GetDeniedResponse().GetHeaders(), "location")
		u, _ := url.Parse(loc)
		st, err := f.m.LoadState(context.Background(), u.Query().Get("state"), "auth0|alice")
		if err != nil {
			t.Fatal(err)
		}
		if st.Requirement.Provider != "duo" || st.Requirement.Options["ikey"] != "DIXXXXXXXXXXXXXXXXXX" || st.Requirement.Options["host"] != "api-x.duosecurity.com" {
			t.Errorf("requirement = %+v", st.Requirement)
		}
		if _, ok := st.Requirement.Options["skey"]; ok {
			t.Error("the Duo secret key is stored in the transaction state")
		}
		other := checkReq("192.168.1.140")
		other.Attributes.ContextExtensions["client_id"] = "wiki"
		if got, _ := run(t, s, other); got.status != 200 {
			t.Errorf("other client: %+v", got)
		}
	})
}

func TestRuleOutcomesThroughCheck(t *testing.T) {
	f := newSessionFixture(t, nil)
	tests := []struct {
		name string
		code string
		req  *authv3.CheckRequest
		want outcome
	}{
		{"provider none removes MFA", `function (u, c, cb) { c.multifactor = {provider: 'none'}; cb(null, u, c); }`, checkReq("203.0.113.7"), outcome{200, "no_mfa_required", ""}},
		{"UnauthorizedError is a 403 with its message", `function (u, c, cb) { cb(new UnauthorizedError('contractors may not use payroll')); }`, checkReq("192.168.1.140"), outcome{403, "rule_denied", "contractors may not use payroll"}},
		{"Error is a 403", `function (u, c, cb) { cb(new Error('nope')); }`, checkReq("192.168.1.140"), outcome{403, "rule_denied", "nope"}},
		{"a throwing rule fails closed", `function (u, c, cb) { null.x; }`, checkReq("192.168.1.140"), outcome{403, "rule_exception", "access policy failed"}},
		{"an infinite loop fails closed", `function (u, c, cb) { while (true) {} }`, checkReq("192.168.1.140"), outcome{503, "rule_timeout", ""}},
		{"never calling back fails closed", `function (u, c, cb) { }`, checkReq("192.168.1.140"), outcome{503, "rule_timeout", ""}},
		{"unknown provider fails closed", `function (u, c, cb) { c.multifactor = {provider: 'carrier-pigeon'}; cb(null, u, c); }`, checkReq("192.168.1.140"), outcome{503, "rule_error", ""}},
		{"rules see the networks and client", `function (u, c, cb) {
			if (c.request.networks.indexOf('corporate') < 0 || c.clientID !== 'payroll' || c.clientName !== 'Payroll' || c.request.ip !== '10.1.2.3' || u.user_id !== 'auth0|alice' || u.email !== 'alice@corp.example' || c.request.query.month !== '11') { return cb(new Error('bad input ' + JSON.stringify(c.request))); }
			cb(null, u, c); }`, checkReq("10.1.2.3"), outcome{200, "network", ""}},
		{"mfa method is visible once passed", `function (u, c, cb) {
			var mfa = c.authentication.methods.some(function (m) { return m.name === 'mfa'; });
			if (!mfa) { c.multifactor = {provider: 'any'}; }
			cb(null, u, c); }`, checkReq("203.0.113.7", withHeader("cookie", f.mfaCookie(t, "auth0|alice"))), outcome{200, "no_mfa_required", ""}},
		{"without the MFA session the same rule steps up", `function (u, c, cb) {
			var mfa = c.authentication.methods.some(function (m) { return m.name === 'mfa'; });
			if (!mfa) { c.multifactor = {provider: 'any'}; }
			cb(null, u, c); }`, checkReq("203.0.113.7", withHeader("accept", "*/*")), outcome{401, "mfa_required", "insufficient_user_authentication"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := rulesServer(t, f, nil, inline("r", tc.code))
			got, _ := run(t, s, tc.req)
			if got.status != tc.want.status || got.reason != tc.want.reason || !strings.Contains(got.body, tc.want.body) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRuleRedirectAndClaims(t *testing.T) {
	f := newSessionFixture(t, nil)
	s := rulesServer(t, f, nil, inline("redirect", `function (u, c, cb) {
		if (c.protocol !== 'redirect-callback') { c.redirect = {url: 'https://mfa.example.com/verify?lang=en'}; }
		cb(null, u, c); }`))
	got, resp := run(t, s, checkReq("192.168.1.140"))
	if got.status != 302 || got.reason != "redirect" {
		t.Fatalf("got %+v", got)
	}
	loc, _ := header(resp.GetDeniedResponse().GetHeaders(), "location")
	u, err := url.Parse(loc)
	if err != nil || u.Host != "mfa.example.com" || u.Query().Get("lang") != "en" || u.Query().Get("state") == "" {
		t.Fatalf("location %q", loc)
	}
	st, err := f.m.LoadState(context.Background(), u.Query().Get("state"), "auth0|alice")
	if err != nil || st.RedirectURL != "https://mfa.example.com/verify?lang=en" {
		t.Errorf("state %+v, %v", st, err)
	}

	s = rulesServer(t, f, nil, inline("claims", `function (u, c, cb) {
		c.idToken['https://example.com/roles'] = ['admin', 'hr'];
		c.accessToken['https://example.com/tier'] = 'gold\r\nx-injected: 1';
		cb(null, u, c); }`))
	_, resp = run(t, s, checkReq("192.168.1.140", withHeader("x-stepup-claim-roles", "forged")))
	ok := resp.GetOkResponse()
	roles, _ := header(ok.GetHeaders(), "x-stepup-claim-roles")
	tier, _ := header(ok.GetHeaders(), "x-stepup-claim-tier")
	if roles != `["admin","hr"]` || tier != "goldx-injected: 1" {
		t.Errorf("claim headers roles=%q tier=%q", roles, tier)
	}
	for _, h := range ok.GetHeaders() {
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("%s not overwritten", h.GetHeader().GetKey())
		}
	}
	for _, h := range ok.GetHeadersToRemove() {
		if h == "x-stepup-claim-roles" {
			t.Error("a claim header is both set and removed")
		}
	}
}
