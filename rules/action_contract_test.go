package rules

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// actionSource is an enabled in-memory Action.
func actionSource(name, code string) Source {
	return Source{Name: name, Path: name + ".js", Code: []byte(code), Enabled: true}
}

// tryJSON runs Try and returns its JSON form, decoded.
func tryJSON(t *testing.T, opts Options, in Input) map[string]any {
	t.Helper()
	out, err := Try(context.Background(), opts, in)
	if err != nil {
		t.Fatalf("Try: %v", err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestActionDetection(t *testing.T) {
	for _, tc := range []struct {
		name, code, kind string
		action           bool
	}{
		{"arrow", "exports.onExecutePostLogin = async (event, api) => {};", "", true},
		{"module.exports", "module.exports.onExecutePostLogin = function (event, api) {};", "", true},
		{"rule mentioning it", "function (user, context, callback) { /* onExecutePostLogin */ callback(null, user, context); }", "", false},
		{"kind action", "exports.onExecutePostLogin = async () => {};", "action", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := Source{Name: "x", Code: []byte(tc.code), Enabled: true, Kind: tc.kind}
			r, f := analyze(src, 0, nil, builtinModules)
			if r == nil {
				t.Fatalf("not loaded: %v", f)
			}
			if r.action != tc.action {
				t.Errorf("action = %v, want %v", r.action, tc.action)
			}
		})
	}
}

func TestActionLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, code, kind, want string
	}{
		{"no handler", "exports.onContinuePostLogin = async () => {};", "", "must assign a function to exports.onExecutePostLogin"},
		{"kind action without handler", "var x = 1;", "action", "must assign a function to exports.onExecutePostLogin"},
		{"unknown kind", "exports.onExecutePostLogin = async () => {};", "hook", `unknown kind "hook"`},
		{"module", "const axios = require('axios');\nexports.onExecutePostLogin = async () => {};", "", `module "axios" is not available`},
		{"management client", "exports.onExecutePostLogin = async (event) => { auth0.users.getUsersByEmail(event.user.email); };", "", "auth0.users.getUsersByEmail is not available"},
		{"syntax", "exports.onExecutePostLogin = async (event, api) => { if ( };", "", "syntax error"},
		{"escapes the wrapper", "}); exports.onExecutePostLogin = 1; ({", "", "unbalanced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{Rules: []Source{{Name: "a", Code: []byte(tc.code), Enabled: true, Kind: tc.kind}}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestRuleAuth0Management(t *testing.T) {
	code := `function (user, context, callback) {
  auth0.users.getUsersByEmail(user.email, function () { callback(null, user, context); });
}`
	_, err := New(Options{Rules: []Source{jsSource("r", code)}})
	if err == nil || !strings.Contains(err.Error(), "auth0.users.getUsersByEmail is not available") {
		t.Fatalf("New error = %v", err)
	}
	f := Lint(Options{Rules: []Source{jsSource("r", "function (user, context, callback) { var t = auth0.accessToken; callback(null, user, context); }")}})
	if len(f) != 1 || !strings.Contains(f[0].Message, "auth0.accessToken is not available") {
		t.Fatalf("Lint = %v", f)
	}
	// A rule's own auth0 is not Auth0's.
	ok := "function (user, context, callback) { var auth0 = {x: 1}; context.idToken.x = auth0.x; callback(null, user, context); }"
	if _, err := New(Options{Rules: []Source{jsSource("r", ok)}}); err != nil {
		t.Fatal(err)
	}
}

func TestActionEventMapping(t *testing.T) {
	code := `exports.onExecutePostLogin = async (event, api) => {
  api.idToken.setCustomClaim('event', event);
};`
	in := Input{
		User: map[string]any{"user_id": "auth0|1", "email": "a@example.com"},
		Context: Context{
			ClientID: "c1", ClientName: "App", Connection: "db", ConnectionStrategy: "auth0", Protocol: "oidc-basic-profile",
			Request:               Request{IP: "203.0.113.7", Hostname: "app.example.com", UserAgent: "UA", Query: map[string]any{"a": "1"}},
			AuthenticationMethods: []Method{{Name: "pwd", Timestamp: 1000}},
			Stats:                 map[string]any{"loginsCount": 3},
		},
		Event: map[string]any{"request": map[string]any{"geoip": map[string]any{"countryCode": "DE"}}, "client": map[string]any{"metadata": map[string]any{"tier": "gold"}}},
	}
	m := tryJSON(t, Options{Rules: []Source{actionSource("ev", code)}, Configuration: map[string]string{"K": "v"}}, in)
	if m["outcome"] != "continue" {
		t.Fatalf("outcome: %v", m)
	}
	got := m["context"].(map[string]any)["idToken"].(map[string]any)["event"]
	want := map[string]any{
		"user":           map[string]any{"user_id": "auth0|1", "email": "a@example.com", "app_metadata": map[string]any{}, "user_metadata": map[string]any{}},
		"client":         map[string]any{"client_id": "c1", "name": "App", "metadata": map[string]any{"tier": "gold"}},
		"connection":     map[string]any{"name": "db", "strategy": "auth0"},
		"request":        map[string]any{"ip": "203.0.113.7", "hostname": "app.example.com", "user_agent": "UA", "query": map[string]any{"a": "1"}, "body": map[string]any{}, "geoip": map[string]any{"countryCode": "DE"}},
		"transaction":    map[string]any{"protocol": "oidc-basic-profile", "acr_values": []any{}, "requested_scopes": []any{}},
		"authentication": map[string]any{"methods": []any{map[string]any{"name": "pwd", "timestamp": float64(1000)}}},
		"secrets":        map[string]any{"K": "v"},
		"stats":          map[string]any{"loginsCount": float64(3)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
}

func TestActionAPI(t *testing.T) {
	user := map[string]any{"user_id": "auth0|1", "email": "a@example.com"}
	for _, tc := range []struct {
		name, code string
		cfg        map[string]string
		ctx        Context
		check      func(t *testing.T, m map[string]any)
	}{
		{
			name: "deny",
			code: `exports.onExecutePostLogin = async (event, api) => { api.access.deny('nope'); };`,
			check: func(t *testing.T, m map[string]any) {
				want := map[string]any{"name": "UnauthorizedError", "message": "nope", "kind": "unauthorized"}
				if diff := cmp.Diff(want, m["error"]); diff != "" || m["outcome"] != "error" || m["rule"] != "a" {
					t.Errorf("%v %v %s", m["outcome"], m["rule"], diff)
				}
			},
		},
		{
			name: "enable",
			code: `exports.onExecutePostLogin = async (event, api) => { api.multifactor.enable('guardian'); };`,
			check: func(t *testing.T, m map[string]any) {
				want := map[string]any{"provider": "any", "requestedProvider": "guardian", "allowRememberBrowser": false, "ignoreCookie": false}
				if diff := cmp.Diff(want, m["multifactor"]); diff != "" {
					t.Error(diff)
				}
			},
		},
		{
			name: "enable remember",
			code: `exports.onExecutePostLogin = async (event, api) => { api.multifactor.enable('any', {allowRememberBrowser: true}); };`,
			check: func(t *testing.T, m map[string]any) {
				want := map[string]any{"provider": "any", "requestedProvider": "any", "allowRememberBrowser": true, "ignoreCookie": false}
				if diff := cmp.Diff(want, m["multifactor"]); diff != "" {
					t.Error(diff)
				}
			},
		},
		{
			name: "duo",
			cfg:  map[string]string{"SKEY": "s3cr3t-skey"},
			code: `exports.onExecutePostLogin = async (event, api) => {
  api.multifactor.enable('duo', {providerOptions: {ikey: 'DIX', skey: event.secrets.SKEY, host: 'api-1.duosecurity.com', username: event.user.email}});
};`,
			check: func(t *testing.T, m map[string]any) {
				want := map[string]any{"provider": "duo", "requestedProvider": "duo", "allowRememberBrowser": false, "ignoreCookie": false,
					"duo": map[string]any{"ikey": "DIX", "skey": "[redacted]", "host": "api-1.duosecurity.com", "username": "a@example.com"}}
				if diff := cmp.Diff(want, m["multifactor"]); diff != "" {
					t.Error(diff)
				}
			},
		},
		{
			name: "challengeWith",
			code: `exports.onExecutePostLogin = async (event, api) => {
  api.authentication.challengeWith({type: 'webauthn-roaming'}, {additionalFactors: [{type: 'otp'}, {type: 'recovery-code'}]});
};`,
			check: func(t *testing.T, m map[string]any) {
				want := map[string]any{"provider": "any", "allowRememberBrowser": false, "ignoreCookie": false,
					"factors": []any{"webauthn-roaming", "otp", "recovery-code"}}
				if diff := cmp.Diff(want, m["multifactor"]); diff != "" {
					t.Error(diff)
				}
			},
		},
		{
			name: "challengeWithAny",
			code: `exports.onExecutePostLogin = async (event, api) => { api.authentication.challengeWithAny([{type: 'webauthn-platform'}, {type: 'webauthn-roaming'}]); };`,
			check: func(t *testing.T, m map[string]any) {
				if diff := cmp.Diff([]any{"webauthn-platform", "webauthn-roaming"}, m["multifactor"].(map[string]any)["factors"]); diff != "" {
					t.Error(diff)
				}
			},
		},
		{
			name: "enrollWith",
			code: `exports.onExecutePostLogin = async (event, api) => { api.authentication.enrollWith({type: 'otp'}); };`,
			check: func(t *testing.T, m map[string]any) {
				if diff := cmp.Diff([]any{"otp"}, m["multifactor"].(map[string]any)["factors"]); diff != "" {
					t.Error(diff)
				}
			},
		},
		{
			name: "sendUserTo",
			code: `exports.onExecutePostLogin = async (event, api) => { api.redirect.sendUserTo('https://mfa.example.com/start', {query: {a: 'b c', n: 1}}); };`,
			check: func(t *testing.T, m map[string]any) {
				if diff := cmp.Diff(map[string]any{"url": "https://mfa.example.com/start?a=b+c&n=1"}, m["redirect"]); diff != "" {
					t.Error(diff)
				}
			},
		},
		{
			name: "claims and metadata",
			code: `exports.onExecutePostLogin = async (event, api) => {
  api.idToken.setCustomClaim('https://example.com/roles', ['admin']);
  api.accessToken.setCustomClaim('tier', 'gold');
  api.user.setAppMetadata('plan', 'pro');
  api.user.setUserMetadata('theme', 'dark');
  console.log('hello from', event.user.email);
};`,
			check: func(t *testing.T, m map[string]any) {
				c := m["context"].(map[string]any)
				if diff := cmp.Diff(map[string]any{"https://example.com/roles": []any{"admin"}}, c["idToken"]); diff != "" {
					t.Error(diff)
				}
				if diff := cmp.Diff(map[string]any{"tier": "gold"}, c["accessToken"]); diff != "" {
					t.Error(diff)
				}
				u := m["user"].(map[string]any)
				if u["app_metadata"].(map[string]any)["plan"] != "pro" || u["user_metadata"].(map[string]any)["theme"] != "dark" {
					t.Errorf("user = %v", u)
				}
			},
		},
		{
			name: "cache",
			code: `exports.onExecutePostLogin = async (event, api) => {
  const miss = api.cache.get('k');
  const set = api.cache.set('k', 'v', {ttl: 60000});
  const hit = api.cache.get('k');
  const big = api.cache.set('big', 'x'.repeat(5000));
  api.cache.delete('k');
  api.idToken.setCustomClaim('r', {miss: miss === undefined, set: set.type, hit: hit.value, exp: typeof hit.expires_at, big: big.type, gone: api.cache.get('k') === undefined});
};`,
			check: func(t *testing.T, m map[string]any) {
				want := map[string]any{"miss": true, "set": "success", "hit": "v", "exp": "number", "big": "error", "gone": true}
				if diff := cmp.Diff(want, m["context"].(map[string]any)["idToken"].(map[string]any)["r"]); diff != "" {
					t.Error(diff)
				}
			},
		},
		{
			name: "namespaces that mean nothing here",
			code: `exports.onExecutePostLogin = async (event, api) => {
  api.samlResponse.setAttribute('x', 'y');
  api.session.setExpiresAt(Date.now());
  api.prompt.render('form');
  api.transaction.setResultUrl('https://x');
  api.authentication.recordMethod('https://x');
  api.accessToken.addScope('read');
  if (api.rules.wasExecuted('rul_1')) { api.access.deny('no'); }
};`,
			check: func(t *testing.T, m map[string]any) {
				if m["outcome"] != "continue" {
					t.Errorf("%v", m)
				}
			},
		},
		{
			name: "session revoke denies",
			code: `exports.onExecutePostLogin = async (event, api) => { api.session.revoke('compromised'); };`,
			check: func(t *testing.T, m map[string]any) {
				if m["outcome"] != "error" || m["error"].(map[string]any)["message"] != "compromised" {
					t.Errorf("%v", m)
				}
			},
		},
		{
			name: "module at run time",
			code: `const axios = require('axios');
exports.onExecutePostLogin = async (event, api) => {};`,
			check: func(t *testing.T, m map[string]any) {
				e := m["error"].(map[string]any)
				if m["outcome"] != "error" || !strings.Contains(e["message"].(string), `"axios"`) {
					t.Errorf("%v", m)
				}
			},
		},
		{
			name: "throw",
			code: `exports.onExecutePostLogin = async (event, api) => { throw new Error('boom'); };`,
			check: func(t *testing.T, m map[string]any) {
				e := m["error"].(map[string]any)
				if m["outcome"] != "error" || e["message"] != "boom" || e["kind"] != "exception" {
					t.Errorf("%v", m)
				}
			},
		},
		{
			name: "awaits a timer",
			code: `exports.onExecutePostLogin = async (event, api) => {
  await new Promise((resolve) => setTimeout(resolve, 5));
  api.access.deny('late');
};`,
			check: func(t *testing.T, m map[string]any) {
				if m["outcome"] != "error" || m["error"].(map[string]any)["message"] != "late" {
					t.Errorf("%v", m)
				}
			},
		},
		{
			name: "continue pass",
			ctx:  Context{Protocol: RedirectCallbackProtocol},
			code: `exports.onExecutePostLogin = async (event, api) => { api.access.deny('execute ran'); };
exports.onContinuePostLogin = async (event, api) => { api.idToken.setCustomClaim('continued', true); };`,
			check: func(t *testing.T, m map[string]any) {
				if m["outcome"] != "continue" || m["context"].(map[string]any)["idToken"].(map[string]any)["continued"] != true {
					t.Errorf("%v", m)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tryJSON(t, Options{Rules: []Source{actionSource("a", tc.code)}, Configuration: tc.cfg}, Input{User: user, Context: tc.ctx})
			tc.check(t, m)
			if tc.cfg != nil {
				b, _ := json.Marshal(m)
				for _, v := range tc.cfg {
					if strings.Contains(string(b), v) {
						t.Errorf("secret %q in try output: %s", v, b)
					}
				}
			}
		})
	}
}

func TestActionRedirectTokens(t *testing.T) {
	code := `exports.onExecutePostLogin = async (event, api) => {
  const token = api.redirect.encodeToken({secret: event.secrets.S, payload: {state: event.request.query.state, email: event.user.email}, expiresInSeconds: 60});
  api.redirect.sendUserTo('https://mfa.example.com/', {query: {session_token: token}});
};
exports.onContinuePostLogin = async (event, api) => {
  const p = api.redirect.validateToken({secret: event.secrets.S});
  api.idToken.setCustomClaim('email', p.email);
  api.idToken.setCustomClaim('sub', p.sub);
};`
	opts := Options{Rules: []Source{actionSource("a", code)}, Configuration: map[string]string{"S": "shared-secret"}}
	user := map[string]any{"user_id": "auth0|1", "email": "a@example.com"}
	m := tryJSON(t, opts, Input{User: user, Context: Context{Request: Request{Query: map[string]any{"state": "st1"}}}})
	u := m["redirect"].(map[string]any)["url"].(string)
	tok := u[strings.Index(u, "session_token=")+len("session_token="):]
	cb := func(state string) map[string]any {
		return tryJSON(t, opts, Input{User: user, Context: Context{Protocol: RedirectCallbackProtocol,
			Request: Request{Query: map[string]any{"state": state, "session_token": tok}}}})
	}
	m = cb("st1")
	if m["outcome"] != "continue" {
		t.Fatalf("%v", m)
	}
	if c := m["context"].(map[string]any)["idToken"].(map[string]any); c["email"] != "a@example.com" || c["sub"] != "auth0|1" {
		t.Errorf("claims %v", c)
	}
	if m = cb("other"); m["outcome"] != "error" || !strings.Contains(m["error"].(map[string]any)["message"].(string), "state") {
		t.Errorf("state mismatch accepted: %v", m)
	}
	opts.Configuration["S"] = "another-secret"
	if m = cb("st1"); m["outcome"] != "error" {
		t.Errorf("wrong secret accepted: %v", m)
	}
}

func TestRulesAndActionsMixed(t *testing.T) {
	rule := `function (user, context, callback) { user.app_metadata.fromRule = true; context.idToken.rule = 1; callback(null, user, context); }`
	action := `exports.onExecutePostLogin = async (event, api) => {
  if (event.user.app_metadata.fromRule) { api.authentication.challengeWith({type: 'otp'}); }
};`
	rule2 := `function (user, context, callback) {
  auth0.users.updateAppMetadata(user.user_id, {seen: context.multifactor.provider}).then(function () { callback(null, user, context); });
}`
	e := newEngine(t, Options{Rules: []Source{jsSource("r1", rule), actionSource("a", action), jsSource("r2", rule2)}})
	res := e.Run(context.Background(), Input{User: map[string]any{"user_id": "auth0|1"}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Multifactor == nil || res.Multifactor.Provider != "any" || !cmp.Equal(res.Multifactor.Factors, []string{"otp"}) {
		t.Errorf("multifactor %+v", res.Multifactor)
	}
	if diff := cmp.Diff(&MetadataUpdate{App: map[string]any{"seen": "any"}}, res.Metadata); diff != "" {
		t.Error(diff)
	}
	if !e.UsesMetadata() {
		t.Error("UsesMetadata false")
	}
	// A rule after an Action that set the requirement replaces it: the
	// factors go with the Action's object.
	over := `function (user, context, callback) { context.multifactor = {provider: 'any'}; callback(null, user, context); }`
	res = runOne(t, Options{Rules: []Source{actionSource("a", action), jsSource("r1", rule), jsSource("r3", over)}}, Input{User: map[string]any{"user_id": "u"}})
	if res.Multifactor == nil || res.Multifactor.Factors != nil {
		t.Errorf("multifactor %+v", res.Multifactor)
	}
}
