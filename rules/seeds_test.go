package rules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The seed snippets are stored unmodified in testdata/auth0-examples. 003_frequency.js
// and 003_redirect.js call functions the seed leaves undefined
// (conditionIsMet, condition): alone they fail closed with a ReferenceError,
// exactly as they would in Auth0. To exercise their other branches without
// editing them, the tests run a harness rule first that defines the
// function on `global` (a normal Auth0 pattern: global is the global object).

// seedSnippets are the four code blocks of the "Configuring Custom MFA"
// document, in document order.
var seedSnippets = []string{"003_select_users.js", "003_frequency.js", "003_extranet.js", "003_redirect.js"}

func TestSeedSnippetsAreVerbatim(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("testdata", "auth0-examples", "003_custom_mfa.md"))
	if err != nil {
		t.Fatal(err)
	}
	rest := string(doc)
	for _, name := range seedSnippets {
		code, err := os.ReadFile(filepath.Join("testdata", "auth0-examples", name))
		if err != nil {
			t.Fatal(err)
		}
		i := strings.Index(rest, string(code))
		if i < 0 {
			t.Fatalf("%s is not a verbatim snippet of the seed document (or out of order)", name)
		}
		rest = rest[i+len(code):]
	}
	// And the Duo gallery file is the seed itself.
	g, err := ParseGallery(mustRead(t, filepath.Join("testdata", "auth0-examples", "000_duo.md")))
	if err != nil {
		t.Fatal(err)
	}
	if !g.FrontMatter.Gallery || len(g.FrontMatter.Fields) != 4 {
		t.Fatalf("front matter = %+v", g.FrontMatter)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// harness defines a global function before a seed rule runs.
func harness(fn, body string) Source {
	return jsSource("harness", "function (user, context, callback) {\n  global."+fn+" = function () { "+body+" };\n  callback(null, user, context);\n}")
}

func TestSeedExtranet(t *testing.T) {
	e := newEngine(t, Options{Rules: []Source{seedSource(t, "003_extranet.js")}})
	forced := &Multifactor{Provider: "any", AllowRememberBrowser: false}
	for _, tc := range []struct {
		ip       string
		want     *Multifactor
		wantKind ErrorKind
	}{
		{ip: "203.0.113.7", want: forced},   // the seed's "outside the corporate network"
		{ip: "192.168.1.140", want: nil},    // inside 192.168.1.134/26 (= .128–.191)
		{ip: "192.168.1.128", want: nil},    // first address of the /26
		{ip: "192.168.1.191", want: nil},    // last address of the /26
		{ip: "192.168.1.127", want: forced}, // just below
		{ip: "192.168.1.192", want: forced}, // just above
		{ip: "10.0.0.1", want: forced},
		// ipaddr.js throws when matching an IPv6 address with an IPv4 range:
		// the rule fails closed (the server unmaps IPv4-mapped addresses
		// before building context.request.ip).
		{ip: "2001:db8::1", wantKind: KindException},
		{ip: "::ffff:192.168.1.140", wantKind: KindException},
		{ip: "", wantKind: KindException},
		{ip: "not an ip", wantKind: KindException},
	} {
		t.Run(tc.ip, func(t *testing.T) {
			res := e.Run(context.Background(), Input{
				User:    map[string]any{"user_id": "auth0|1"},
				Context: Context{ClientID: "app", Request: Request{IP: tc.ip}},
			})
			if tc.wantKind != 0 {
				if res.Err == nil || res.Err.Kind != tc.wantKind || res.Rule != "003_extranet" {
					t.Fatalf("got %+v, want kind %v from 003_extranet", res.Err, tc.wantKind)
				}
				return
			}
			if res.Err != nil {
				t.Fatalf("unexpected error %v", res.Err)
			}
			if diff := cmp.Diff(tc.want, res.Multifactor); diff != "" {
				t.Errorf("multifactor (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSeedDuo(t *testing.T) {
	const client = "duo-client-id"
	declared := map[string]string{
		"DUO_MFA:CLIENT_ID":        client,
		"DUO_MFA:DUO_IKEY":         "DIXXXXXXXXXXXXXXXXXX",
		"DUO_MFA:DUO_SKEY":         "declared-skey",
		"DUO_MFA:DUO_API_HOSTNAME": "api-declared.duosecurity.com",
	}
	// The code reads DUO_MFA:IKEY, DUO_MFA:SKEY and DUO_MFA:API_HOSTNAME.
	readByCode := map[string]string{
		"DUO_MFA:IKEY":         "DIREADBYCODE",
		"DUO_MFA:SKEY":         "skey-read-by-code",
		"DUO_MFA:API_HOSTNAME": "api-1234.duosecurity.com",
	}
	both := map[string]string{}
	for _, m := range []map[string]string{declared, readByCode} {
		for k, v := range m {
			both[k] = v
		}
	}
	duo := &Multifactor{Provider: "duo", AllowRememberBrowser: true,
		Duo: &DuoOptions{IKey: "DIREADBYCODE", SKey: "skey-read-by-code", Host: "api-1234.duosecurity.com"}}
	for _, tc := range []struct {
		name     string
		cfg      map[string]string
		clientID string
		want     *Multifactor
		wantKind ErrorKind
	}{
		{name: "duo for its client", cfg: both, clientID: client, want: duo},
		{name: "no MFA for other clients", cfg: both, clientID: "other", want: nil},
		{name: "no MFA without client", cfg: both, clientID: "", want: nil},
		// Configured exactly as the front matter documents: the keys the
		// code reads are missing, so ikey/skey/host are undefined and the
		// rule fails closed for its client.
		{name: "declared keys only fail closed", cfg: declared, clientID: client, wantKind: KindInternal},
		{name: "declared keys only, other client", cfg: declared, clientID: "other", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runOne(t, Options{Rules: []Source{seedSource(t, "000_duo.md")}, Configuration: tc.cfg},
				Input{User: map[string]any{"user_id": "auth0|1", "nickname": "jo"}, Context: Context{ClientID: tc.clientID}})
			if tc.wantKind != 0 {
				if res.Err == nil || res.Err.Kind != tc.wantKind || res.Rule != "000_duo" {
					t.Fatalf("got %+v, want kind %v from 000_duo", res.Err, tc.wantKind)
				}
				if !strings.Contains(res.Err.Message, "ikey, skey and host") {
					t.Errorf("message %q should explain the missing Duo settings", res.Err.Message)
				}
				return
			}
			if res.Err != nil {
				t.Fatalf("unexpected error %v", res.Err)
			}
			if diff := cmp.Diff(tc.want, res.Multifactor); diff != "" {
				t.Errorf("multifactor (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSeedDuoMandatoryConfiguration(t *testing.T) {
	_, err := New(Options{Rules: []Source{seedSource(t, "000_duo.md")}, Configuration: map[string]string{
		"DUO_MFA:CLIENT_ID": "x",
	}})
	if err == nil {
		t.Fatal("New succeeded without the mandatory keys")
	}
	for _, k := range []string{"DUO_MFA:DUO_IKEY", "DUO_MFA:DUO_SKEY", "DUO_MFA:DUO_API_HOSTNAME"} {
		if !strings.Contains(err.Error(), `mandatory configuration key "`+k+`" is not set`) {
			t.Errorf("error %q does not name %s", err, k)
		}
	}
	if strings.Contains(err.Error(), "CLIENT_ID") {
		t.Errorf("error %q names a key that is set", err)
	}
}

func TestSeedSelectUsers(t *testing.T) {
	res := runOne(t, Options{Rules: []Source{seedSource(t, "003_select_users.js")}},
		Input{User: map[string]any{"user_id": "u"}})
	want := &Multifactor{Provider: "any", AllowRememberBrowser: false}
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if diff := cmp.Diff(want, res.Multifactor); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !res.Multifactor.ForceMFA() {
		t.Error("allowRememberBrowser: false must force MFA")
	}
}

func TestSeedFrequency(t *testing.T) {
	frequency := seedSource(t, "003_frequency.js")
	forced := &Multifactor{Provider: "any", AllowRememberBrowser: false}
	for _, tc := range []struct {
		name    string
		rules   []Source
		want    *Multifactor
		wantErr string
	}{
		{name: "undefined conditionIsMet fails closed", rules: []Source{frequency}, wantErr: "ReferenceError: conditionIsMet is not defined"},
		{name: "condition met", rules: []Source{harness("conditionIsMet", "return true;"), frequency}, want: forced},
		{name: "condition not met", rules: []Source{harness("conditionIsMet", "return false;"), frequency}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runOne(t, Options{Rules: tc.rules}, Input{User: map[string]any{"user_id": "u"}})
			if tc.wantErr != "" {
				if res.Err == nil || res.Err.Kind != KindException || res.Err.Name+": "+res.Err.Message != tc.wantErr {
					t.Fatalf("got %+v, want exception %q", res.Err, tc.wantErr)
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if diff := cmp.Diff(tc.want, res.Multifactor); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSeedRedirect(t *testing.T) {
	redirect := seedSource(t, "003_redirect.js")
	always := harness("condition", "return true;")
	for _, tc := range []struct {
		name     string
		rules    []Source
		protocol string
		want     *Redirect
		wantErr  string
	}{
		{name: "undefined condition fails closed", rules: []Source{redirect}, wantErr: "ReferenceError: condition is not defined"},
		{name: "redirects on login", rules: []Source{always, redirect}, want: &Redirect{URL: "https://your_custom_mfa"}},
		{name: "explicit oidc protocol", rules: []Source{always, redirect}, protocol: "oidc-basic-profile", want: &Redirect{URL: "https://your_custom_mfa"}},
		{name: "no redirect on redirect-callback", rules: []Source{always, redirect}, protocol: RedirectCallbackProtocol, want: nil},
		{name: "no redirect when condition false", rules: []Source{harness("condition", "return false;"), redirect}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runOne(t, Options{Rules: tc.rules}, Input{User: map[string]any{"user_id": "u"}, Context: Context{Protocol: tc.protocol}})
			if tc.wantErr != "" {
				if res.Err == nil || res.Err.Name+": "+res.Err.Message != tc.wantErr || res.Rule != "003_redirect" {
					t.Fatalf("got %+v, want %q from 003_redirect", res.Err, tc.wantErr)
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if diff := cmp.Diff(tc.want, res.Redirect); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestMultifactorSettings covers the provider values and flags the seed
// text describes.
func TestMultifactorSettings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mf       string
		want     *Multifactor
		wantKind ErrorKind
		wantMsg  string
	}{
		{name: "provider defaults to any", mf: `{}`, want: &Multifactor{Provider: "any", AllowRememberBrowser: true}},
		{name: "none removes MFA", mf: `{provider: 'none'}`, want: &Multifactor{Provider: "none", AllowRememberBrowser: true}},
		{name: "google-authenticator", mf: `{provider: 'google-authenticator'}`, want: &Multifactor{Provider: "google-authenticator", AllowRememberBrowser: true}},
		{name: "guardian maps to any", mf: `{provider: 'guardian'}`, want: &Multifactor{Provider: "any", RequestedProvider: "guardian", AllowRememberBrowser: true}},
		{name: "allowRememberBrowser false", mf: `{provider: 'any', allowRememberBrowser: false}`, want: &Multifactor{Provider: "any"}},
		{name: "allowRememberBrowser true", mf: `{provider: 'any', allowRememberBrowser: true}`, want: &Multifactor{Provider: "any", AllowRememberBrowser: true}},
		{name: "ignoreCookie true", mf: `{provider: 'any', ignoreCookie: true}`, want: &Multifactor{Provider: "any", AllowRememberBrowser: true, IgnoreCookie: true}},
		{name: "other keys kept", mf: `{provider: 'any', sso: true, extra: {a: 1}}`, want: &Multifactor{Provider: "any", AllowRememberBrowser: true, Options: map[string]any{"sso": true, "extra": map[string]any{"a": int64(1)}}}},
		{name: "duo with username and admin", mf: `{provider: 'duo', ikey: 'I', skey: 'S', host: 'h', username: user.nickname, admin: {ikey: 'AI', skey: 'AS'}}`,
			want: &Multifactor{Provider: "duo", AllowRememberBrowser: true, Duo: &DuoOptions{IKey: "I", SKey: "S", Host: "h", Username: "jo", Admin: map[string]any{"ikey": "AI", "skey": "AS"}}}},
		{name: "duo without keys", mf: `{provider: 'duo', host: 'h'}`, wantKind: KindInternal, wantMsg: "missing or empty: ikey, skey"},
		{name: "sms unsupported", mf: `{provider: 'sms'}`, wantKind: KindInternal, wantMsg: `unknown/unsupported multifactor provider "sms"`},
		{name: "unknown provider", mf: `{provider: 'carrier-pigeon'}`, wantKind: KindInternal, wantMsg: `unknown/unsupported multifactor provider "carrier-pigeon"`},
		{name: "non-string provider", mf: `{provider: 42}`, wantKind: KindInternal, wantMsg: "provider must be a string"},
		{name: "not an object", mf: `'any'`, wantKind: KindInternal, wantMsg: "must be an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setter := jsSource("sets-mfa", "function (user, context, callback) { context.multifactor = "+tc.mf+"; callback(null, user, context); }")
			other := jsSource("other", "function (user, context, callback) { callback(null, user, context); }")
			// The rule that set multifactor is found whether it ran first
			// (noted after it ran) or last (noted when results are read).
			for _, rules := range [][]Source{{setter, other}, {other, setter}} {
				res := runOne(t, Options{Rules: rules}, Input{User: map[string]any{"user_id": "u", "nickname": "jo"}})
				if tc.wantKind != 0 {
					if res.Err == nil || res.Err.Kind != tc.wantKind || !strings.Contains(res.Err.Message, tc.wantMsg) {
						t.Fatalf("got %+v, want %v containing %q", res.Err, tc.wantKind, tc.wantMsg)
					}
					if res.Rule != "sets-mfa" || res.Err.Rule != "sets-mfa" {
						t.Errorf("error names rule %q, want the rule that set multifactor", res.Rule)
					}
					continue
				}
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				if diff := cmp.Diff(tc.want, res.Multifactor); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestRedirectAndClaims(t *testing.T) {
	rule := jsSource("claims", `function (user, context, callback) {
  var ns = 'https://example.com/';
  context.idToken[ns + 'roles'] = ['admin', 'dev'];
  context.accessToken[ns + 'tier'] = 3;
  context.idToken.when = new Date(0);
  context.idToken.fn = function () {};
  callback(null, user, context);
}`)
	res := runOne(t, Options{Rules: []Source{rule}}, Input{User: map[string]any{"user_id": "u"}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	wantID := map[string]any{"https://example.com/roles": []any{"admin", "dev"}, "when": "1970-01-01T00:00:00.000Z"}
	if diff := cmp.Diff(wantID, res.IDTokenClaims); diff != "" {
		t.Errorf("id token claims (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"https://example.com/tier": int64(3)}, res.AccessTokenClaims); diff != "" {
		t.Errorf("access token claims (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		code string
		want *Redirect
		err  string
	}{
		{code: `context.redirect = {url: 'https://mfa.example.com/start'};`, want: &Redirect{URL: "https://mfa.example.com/start"}},
		{code: `context.redirect = {url: ''};`, err: "url must be a non-empty string"},
		{code: `context.redirect = {};`, err: "url must be a non-empty string"},
		{code: `context.redirect = 'https://x';`, err: "must be an object"},
		{code: `context.redirect = null;`},
	} {
		res := runOne(t, Options{Rules: []Source{jsSource("r", "function (user, context, callback) { "+tc.code+" callback(null, user, context); }")}}, Input{})
		if tc.err != "" {
			if res.Err == nil || res.Err.Kind != KindInternal || !strings.Contains(res.Err.Message, tc.err) {
				t.Errorf("%s: got %+v, want internal error %q", tc.code, res.Err, tc.err)
			}
			continue
		}
		if res.Err != nil {
			t.Errorf("%s: %v", tc.code, res.Err)
		}
		if diff := cmp.Diff(tc.want, res.Redirect); diff != "" {
			t.Errorf("%s: (-want +got):\n%s", tc.code, diff)
		}
	}
}
