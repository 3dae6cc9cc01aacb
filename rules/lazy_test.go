package rules

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/dop251/goja"
	"github.com/google/go-cmp/cmp"
)

// bothModes builds two engines from the same options: one handing rules
// lazy user and context objects (the default when no rule needs native
// ones), one forced to build native objects as the engine always did.
func bothModes(t *testing.T, opts Options) (lazy, native *Engine) {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	lazy = newEngine(t, opts)
	if lazy.nativeInput {
		t.Fatal("the rules unexpectedly need native objects")
	}
	native = newEngine(t, opts)
	native.nativeInput = true
	return lazy, native
}

// richInput exercises every kind of input value.
func richInput() Input {
	return Input{
		User: map[string]any{
			"user_id":        "auth0|1",
			"email":          "jo@example.com",
			"email_verified": true,
			"logins":         3,
			"i32":            int32(-7),
			"u64":            uint64(1) << 40,
			"f32":            float32(0.25),
			"big":            json.Number("12345678901234567890"),
			"num":            json.Number("42"),
			"ratio":          0.5,
			"nil":            nil,
			"roles":          []any{"admin", map[string]any{"k": "v"}, 2, nil},
			"groups":         []string{"a", "b"},
			"orgs":           []map[string]any{{"id": "o1"}, nil},
			"labels":         map[string]string{"b": "2", "a": "1"},
			"app_metadata":   map[string]any{"plan": "gold", "flags": map[string]any{"beta": true}, "empty": map[string]any{}},
			"10":             "ten",
			"2":              "two",
			"01":             "zero-one",
			"":               "empty key",
			"ключ":           "значение",
		},
		Context: Context{
			ClientID:           "app-client-id",
			ClientName:         "App",
			ClientMetadata:     map[string]string{"tier": "gold", "a": "b"},
			Connection:         "stepup",
			ConnectionStrategy: "oidc",
			SessionID:          "sid",
			Tenant:             "acme",
			Request: Request{
				IP: "203.0.113.7", Hostname: "app.example.com", UserAgent: "Mozilla/5.0",
				Query:    map[string]any{"q": "1", "list": []any{"a", "b"}},
				Body:     map[string]any{"f": "v"},
				Networks: []string{"corporate", "vpn"},
				Geoip:    map[string]any{"country_code": "FR", "city": "Paris"},
			},
			AuthenticationMethods: []Method{{Name: "pwd", Timestamp: 1700000000000}, {Name: "mfa", Timestamp: 1700000001000}},
			Stats:                 map[string]any{"loginsCount": 3},
			SSO:                   map[string]any{"with_auth0": false},
			Extra:                 map[string]any{"extra": "yes", "clientID": "ignored", "request": "ignored", "custom": map[string]any{"n": 1}},
		},
	}
}

// ruleReporting runs body, then stores `out` in context.idToken.out.
func ruleReporting(body string) string {
	return "function (user, context, callback) {\n" + body + "\n  context.idToken.out = out;\n  callback(null, user, context);\n}"
}

// TestLazyObjectsBehaveAsNative runs rules doing everything a rule can do
// to user and context on both kinds of objects: the results, the final
// objects and the errors must be identical.
func TestLazyObjectsBehaveAsNative(t *testing.T) {
	cases := []struct{ name, body string }{
		{"keys", `var out = [Object.keys(user), Object.keys(context), Object.keys(context.request), Object.getOwnPropertyNames(user),
			Object.keys(context.clientMetadata), Object.keys(user.labels), Object.keys(user.app_metadata)];`},
		{"stringify", `var out = [JSON.stringify(user), JSON.stringify(context), JSON.stringify(context.request, null, 1), JSON.stringify(user.app_metadata)];`},
		{"in and hasOwnProperty", `var out = ['ip' in context.request, 'geoip' in context.request, 'nope' in context, 'toString' in context,
			context.hasOwnProperty('clientID'), context.hasOwnProperty('toString'), Object.prototype.hasOwnProperty.call(user, 'app_metadata'),
			user.propertyIsEnumerable('email'), 'user_metadata' in user, '' in user, 10 in user];`},
		{"delete and re-add", `var d1 = delete context.clientID, d2 = delete user.email, d3 = delete context.nope, d4 = delete context.request.geoip;
			context.clientID = 'back';
			var out = [d1, d2, d3, d4, Object.keys(context), JSON.stringify(user), context.clientID, user.email, 'geoip' in context.request, JSON.stringify(context.request)];`},
		{"assign existing keeps position", `user.email = 'new@example.com'; context.protocol = 'samlp'; context.request.ip = '10.0.0.1';
			var out = [Object.keys(user), Object.keys(context), JSON.stringify(context.request)];`},
		{"integer keys", `context[2] = 'b'; context[1] = 'a'; context['01'] = 'c'; context['4294967295'] = 'd'; user[0] = 'z'; delete user['10']; user[10] = 'again';
			var out = [Object.keys(context), Object.keys(user), context[1], context['1'], user[2], user['2'], user[10]];`},
		{"undefined and null values", `user.u = undefined; context.request.ip = undefined; context.n = null;
			var out = ['u' in user, Object.keys(user).indexOf('u'), JSON.stringify(user), typeof context.request.ip, JSON.stringify(context.request), context.n, user.nil];`},
		{"identity and nested mutation", `var r = context.request; r.geoip.city = 'Lyon'; user.app_metadata.flags.beta = false; user.app_metadata.added = [1];
			var out = [context.request === r, context.request.geoip === r.geoip, JSON.stringify(context.request.geoip), JSON.stringify(user.app_metadata),
				user.roles === user.roles, user.app_metadata === user.app_metadata, context.idToken === context.idToken];`},
		{"copies", `var a = Object.assign({}, context); var s = Object.assign({}, user);
			var out = [Object.keys(a), JSON.stringify(s), a.request === context.request, Object.entries(context.request).length,
				Object.values(user).length, JSON.stringify({...user}), Object.keys({...context.request}), JSON.stringify(Object.entries(context.clientMetadata))];`},
		{"assign into", `Object.assign(context, {clientID: 'x', added: 1}); Object.assign(user.app_metadata, {plan: 'free'});
			var out = [Object.keys(context), JSON.stringify(user.app_metadata)];`},
		{"for in", `Object.prototype.inheritedEnumerable = 1;
			var k = []; for (var x in context) k.push(x);
			var u = []; for (var y in user) { u.push(y); if (y === 'email') { delete user.groups; user.later = 1; } }
			delete Object.prototype.inheritedEnumerable;
			var out = [k, u];`},
		{"reflection", `var out = [JSON.stringify(Object.getOwnPropertyDescriptor(context, 'clientID')), Object.getOwnPropertyDescriptor(user, 'nope') === undefined,
			Object.isExtensible(context), Object.isFrozen(user), Object.isSealed(context), typeof context, Object.prototype.toString.call(user),
			context instanceof Object, Object.getPrototypeOf(context) === Object.prototype, user.constructor === Object, String(context), context + '',
			Object.getOwnPropertyNames(context.request)];`},
		{"prototypes", `var child = Object.create(context); child.clientID = 'child'; Object.setPrototypeOf(user, {inherited: 'yes'});
			var out = [child.request.ip, child.clientID, context.clientID, Object.keys(child), user.inherited, 'inherited' in user,
				Object.keys(user).indexOf('inherited'), user.hasOwnProperty('inherited'), JSON.stringify(user).indexOf('inherited')];`},
		{"proto setter", `context.__proto__ = {viaProto: 1};
			var out = [context.viaProto, Object.keys(context).indexOf('__proto__'), user.__proto__ === Object.prototype, context.hasOwnProperty('__proto__')];`},
		{"arrays", `var n = context.request.networks; n.push('x');
			var out = [Array.isArray(n), n.length, context.request.networks.length, Array.isArray(user.roles), user.roles[1].k, user.roles[3],
				user.groups.join(), user.orgs[0].id, JSON.stringify(user.orgs), JSON.stringify(context.authentication), context.authentication.methods[1].name,
				Array.isArray(context.request.query.list)];`},
		{"numbers", `var out = [typeof user.logins, user.big, typeof user.big, user.num, user.num === 42, user.i32, user.u64, user.f32, user.ratio, user.logins === 3];`},
		{"odd keys", `var out = [user['10'], user[10], user[2], user['01'], user[''], user['ключ'], Object.keys(user).indexOf('ключ')];`},
		{"context fields", `var out = [JSON.stringify(context.clientMetadata), context.stats.loginsCount, JSON.stringify(context.sso), context.extra,
			context.custom.n, context.protocol, context.clientName, context.connection, context.connectionStrategy, context.sessionID, context.tenant,
			context.request.userAgent, context.request.hostname, JSON.stringify(context.request.body), JSON.stringify(context.idToken)];`},
		{"collections", `var w = new WeakMap(); w.set(context, 1); var m = new Map([[user, 2]]); var st = new Set([context.request, context.request]);
			var out = [w.get(context), m.get(user), st.size, w.has(user), [user, context].indexOf(context)];`},
		{"round trip", `var out = JSON.parse(JSON.stringify({u: user, c: context}));`},
		{"strict mode", `'use strict'; user.x = 1; delete user.x; context.request.ip = '1.1.1.1'; context.flag = true;
			var out = [Object.keys(user).indexOf('x'), context.request.ip, context.flag];`},
		{"own methods", `user.toJSON = function () { return {only: this.user_id}; }; context.request.toString = function () { return 'req:' + this.ip; };
			var out = [JSON.stringify(user), String(context.request), 'x' + context.request, JSON.stringify(Object.fromEntries(Object.entries(context.clientMetadata))),
				JSON.stringify(context, ['clientID', 'request', 'ip']), JSON.stringify(context.request, function (k, v) { return typeof v === 'string' ? v.length : v; })];`},
		{"clear everything", `for (var k in user) delete user[k]; Object.keys(context).forEach(function (k) { if (k !== 'idToken') delete context[k]; });
			user.fresh = 1; var out = [JSON.stringify(user), Object.keys(context)];`},
		{"destructuring and generic array methods", `var {email, app_metadata: {plan}, ...rest} = user; var {ip, ...req} = context.request;
			Array.prototype.push.call(context.request, 'pushed'); Array.prototype.push.call(user, 'u'); var sorted = Array.prototype.sort.call({0: 'b', 1: 'a', length: 2});
			var out = [email, plan, Object.keys(rest), ip, Object.keys(req), JSON.stringify(context.request), Array.prototype.slice.call(user), Object.keys(user), JSON.stringify(sorted)];`},
		{"many properties", `for (var i = 0; i < 20000; i++) { context['k' + i] = i; user[i] = i; }
			for (var j = 0; j < 20000; j += 7) { delete context['k' + j]; }
			delete context.clientID; context.clientID = 'again'; delete user[5];
			var ck = Object.keys(context), uk = Object.keys(user);
			var out = [ck.length, ck.slice(0, 20), ck.slice(-3), uk.length, uk.slice(0, 8), uk.slice(-25), context.k1, context.k7, 'k14' in context, user[19999], context.request.ip];`},
		{"with", `var out; with (context.request) { out = [ip, hostname, typeof nope, networks.length]; }`},
		{"modules", `var qs = require('querystring'); var jwt = require('jsonwebtoken');
			console.log('user', user, context.request);
			var out = [qs.stringify(context.request.query), new URLSearchParams(context.request.body).toString(),
				jwt.sign({sub: user.user_id, email: user.email}, 'secret'), jwt.sign(user.app_metadata, 'k', {noTimestamp: true}),
				Buffer.from(JSON.stringify(context.request.geoip)).toString('base64'),
				require('ipaddr.js').parse(context.request.ip).match(require('ipaddr.js').parseCIDR('203.0.113.0/24'))];`},
		{"ipaddr objects", `var ip = require('ipaddr.js');
			var a = ip.parse(context.request.ip || '1.2.3.4'), r = ip.parseCIDR('203.0.113.0/24'), v6 = ip.parse('fe80::1%eth0'), m = ip.parse('::ffff:203.0.113.7');
			function attempt(f) { try { return f(); } catch (e) { return e.name + ': ' + e.message; } }
			var before = [a.match(r), a.kind(), a.toString(), JSON.stringify(a), Object.keys(a), Object.keys(v6), v6.toString(), JSON.stringify(r), r.toString(),
				m.toIPv4Address().toString(), a.range(), v6.zoneId, 'octets' in a, a.hasOwnProperty('octets'), Object.getPrototypeOf(a) === ip.IPv4.prototype,
				a instanceof ip.IPv4, ip.subnetMatch(a, {x: [r]}, 'none'), a.toByteArray(), JSON.stringify(ip.IPv4.networkAddressFromCIDR('10.1.2.3/8'))];
			a.octets[3] = 99; r[0].octets = [10, 0, 0, 0]; v6.parts[7] = 2; delete m.parts; var b = ip.parse('10.0.0.1'); Object.setPrototypeOf(b, ip.IPv6.prototype);
			var c = ip.parse('10.0.0.2'); c.kind = function () { return 'ipv6'; };
			var after = [a.match(r), a.toString(), r[0].toString(), v6.toString(), attempt(function () { return m.toString(); }),
				attempt(function () { return b.toString(); }), attempt(function () { return c.match(r); }), JSON.stringify([a, r, v6, m, b])];
			var out = [before, after];`},
		{"read back nested lazy objects", `context.multifactor = {provider: 'duo', ikey: 'i', skey: 's', host: 'h', geo: context.request.geoip, user: user.app_metadata};
			context.redirect = {url: 'https://' + context.request.hostname + '/x'};
			context.idToken['https://example.com/roles'] = user.roles; context.accessToken.req = context.request; context.accessToken.meta = user.app_metadata;
			var out = 1;`},
		{"callback with other objects", `var out = 1; callback(null, {replaced: true, meta: user.app_metadata}, Object.assign({}, context, {idToken: {out: 'other'}})); return;`},
		{"callback error naming context", `var out = 1; callback(context.request); return;`},
		{"throw lazy object", `var out = 1; throw user;`},
	}
	for i, in := range []Input{richInput(), {}} {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				lazy, native := bothModes(t, Options{Rules: []Source{jsSource("r", ruleReporting(tc.body))}})
				want := native.RunDebug(context.Background(), in)
				got := lazy.RunDebug(context.Background(), in)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("lazy objects differ from native ones (-native +lazy):\n%s", diff)
				}
				if i == 0 && want.Err != nil && !strings.Contains(tc.name, "error") && !strings.Contains(tc.name, "throw") {
					t.Errorf("rule failed: %v", want.Err)
				}
			})
		}
	}
}

// TestLazyMutationsFlowBetweenRules: what one rule does to user and context
// is what the next one sees, and what the read-back returns.
func TestLazyMutationsFlowBetweenRules(t *testing.T) {
	rules := []Source{
		jsSource("first", `function (user, context, callback) {
  user.added = 'by first';
  delete user.email;
  user.app_metadata.plan = 'changed';
  context.request.geoip.city = 'Lyon';
  delete context.clientName;
  context.stats = {replaced: true};
  context.request.networks.push('added');
  global.firstUser = user;
  callback(null, user, context);
}`),
		jsSource("second", `function (user, context, callback) {
  context.idToken.seen = {
    sameUser: user === global.firstUser,
    added: user.added, email: 'email' in user, plan: user.app_metadata.plan,
    city: context.request.geoip.city, clientName: 'clientName' in context, stats: context.stats,
    networks: context.request.networks, keys: Object.keys(context)
  };
  context.multifactor = {provider: 'google-authenticator', allowRememberBrowser: false};
  callback(null, user, context);
}`),
		jsSource("third", `function (user, context, callback) {
  // A later rule replacing nothing keeps the second rule's multifactor.
  context.accessToken.plan = user.app_metadata.plan;
  callback(null, user, context);
}`),
	}
	lazy, native := bothModes(t, Options{Rules: rules, PoolSize: 1})
	in := richInput()
	got := lazy.RunDebug(context.Background(), in)
	if got.Err != nil {
		t.Fatal(got.Err)
	}
	if diff := cmp.Diff(native.RunDebug(context.Background(), in), got); diff != "" {
		t.Errorf("(-native +lazy):\n%s", diff)
	}
	seen := got.IDTokenClaims["seen"].(map[string]any)
	want := map[string]any{
		"sameUser": true, "added": "by first", "email": false, "plan": "changed", "city": "Lyon", "clientName": false,
		"stats": map[string]any{"replaced": true}, "networks": []any{"corporate", "vpn", "added"},
		// Extra's keys sorted, the fields Extra also has in their place,
		// then the other fields (clientName deleted).
		"keys": []any{"clientID", "custom", "extra", "request", "connection", "connectionStrategy", "protocol", "sessionID",
			"tenant", "clientMetadata", "authentication", "stats", "sso", "idToken", "accessToken"},
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("seen (-want +got):\n%s", diff)
	}
	if got.Multifactor == nil || got.Multifactor.Provider != "google-authenticator" || !got.Multifactor.ForceMFA() {
		t.Errorf("multifactor = %+v", got.Multifactor)
	}
	if got.AccessTokenClaims["plan"] != "changed" || got.User["added"] != "by first" {
		t.Errorf("result = %+v", got)
	}
	if in.User["email"] != "jo@example.com" || in.User["app_metadata"].(map[string]any)["plan"] != "gold" ||
		in.Context.Request.Geoip["city"] != "Paris" || len(in.Context.Request.Networks) != 2 {
		t.Errorf("the caller's input was mutated: %+v", in)
	}
}

// TestLazyNoLeakBetweenRuns: consecutive runs on one pooled runtime each
// get their own objects; a rule that keeps user and context in global sees
// them unchanged later, with their own request's data, even for the parts
// it never read in its own run.
func TestLazyNoLeakBetweenRuns(t *testing.T) {
	rule := jsSource("stash", `function (user, context, callback) {
  var prev = global.saved;
  context.idToken.current = {user: user.user_id, ip: context.request.ip};
  if (prev) {
    // Parts of the kept objects that nobody read during their own run.
    context.idToken.saved = {
      user: prev.user.user_id, email: prev.user.email, ip: prev.context.request.ip, geoip: prev.context.request.geoip,
      networks: prev.context.request.networks, clientID: prev.context.clientID, marked: prev.context.marked,
      json: JSON.stringify(prev.context), sameAsCurrent: prev.context === context || prev.user === user
    };
  } else {
    context.marked = 'first run';
    global.saved = {user: user, context: context};
  }
  callback(null, user, context);
}`)
	e := newEngine(t, Options{Rules: []Source{rule}, PoolSize: 1})
	if e.nativeInput {
		t.Fatal("expected lazy objects")
	}
	alice := Input{
		User:    map[string]any{"user_id": "alice", "email": "alice@example.com"},
		Context: Context{ClientID: "c1", Request: Request{IP: "192.0.2.1", Geoip: map[string]any{"city": "Paris"}, Networks: []string{"corporate"}}},
	}
	bob := Input{
		User:    map[string]any{"user_id": "bob", "email": "bob@example.com"},
		Context: Context{ClientID: "c2", Request: Request{IP: "198.51.100.2", Geoip: map[string]any{"city": "Berlin"}}},
	}
	first := e.RunDebug(context.Background(), alice)
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	aliceJSON := ""
	for i, in := range []Input{bob, bob, alice} {
		res := e.RunDebug(context.Background(), in)
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		cur := res.IDTokenClaims["current"].(map[string]any)
		if cur["user"] != in.User["user_id"] || cur["ip"] != in.Context.Request.IP {
			t.Errorf("run %d: current = %v", i, cur)
		}
		saved := res.IDTokenClaims["saved"].(map[string]any)
		js := saved["json"].(string)
		delete(saved, "json")
		want := map[string]any{
			"user": "alice", "email": "alice@example.com", "ip": "192.0.2.1", "geoip": map[string]any{"city": "Paris"},
			"networks": []any{"corporate"}, "clientID": "c1", "marked": "first run", "sameAsCurrent": false,
		}
		if diff := cmp.Diff(want, saved); diff != "" {
			t.Errorf("run %d: saved (-want +got):\n%s", i, diff)
		}
		if strings.Contains(js, "bob") || strings.Contains(js, "198.51.100.2") || !strings.Contains(js, "192.0.2.1") {
			t.Errorf("run %d: saved context = %s", i, js)
		}
		if aliceJSON == "" {
			aliceJSON = js
		} else if js != aliceJSON {
			t.Errorf("run %d: the kept context changed:\n%s\n%s", i, aliceJSON, js)
		}
		if _, ok := res.Context["marked"]; ok {
			t.Errorf("run %d: a later run's context has the first run's property: %v", i, res.Context)
		}
	}
	if s := e.Stats(); s.RuntimesCreated != 1 {
		t.Errorf("the runs should share one runtime: %+v", s)
	}
}

// TestLazyInputErrorsAsNative: inputs that are too large, too deep, cyclic
// or not JSON fail the same way with lazy objects.
func TestLazyInputErrorsAsNative(t *testing.T) {
	type custom struct {
		A int `json:"a"`
	}
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	big := strings.Repeat("x", 2000)
	for _, tc := range []struct {
		name string
		in   Input
	}{
		{"small", Input{User: map[string]any{"user_id": "u"}, Context: Context{Request: Request{IP: "1.2.3.4"}}}},
		{"big claim", Input{User: map[string]any{"blob": big}}},
		{"big user agent", Input{Context: Context{Request: Request{UserAgent: big}}}},
		{"big query", Input{Context: Context{Request: Request{Query: map[string]any{"q": big}}}}},
		{"big geoip", Input{Context: Context{Request: Request{Geoip: map[string]any{"q": big}}}}},
		{"big extra", Input{Context: Context{Extra: map[string]any{"q": big}}}},
		{"big client metadata", Input{Context: Context{ClientMetadata: map[string]string{"q": big}}}},
		{"many networks", Input{Context: Context{Request: Request{Networks: make([]string, 500)}}}},
		{"many methods", Input{Context: Context{AuthenticationMethods: make([]Method, 40)}}},
		{"deep", Input{User: deepMap(100)}},
		{"deep array", Input{User: map[string]any{"a": deepArray(40)}}},
		{"cyclic", Input{User: cyclic}},
		{"not JSON", Input{User: map[string]any{"ch": make(chan int)}}},
		{"not JSON after a big value", Input{User: map[string]any{"a": make(chan int), "b": big}}},
		{"custom type", Input{User: map[string]any{"c": custom{A: 1}}, Context: Context{Stats: map[string]any{"c": custom{A: 2}}}}},
		{"proto key", Input{User: map[string]any{"__proto__": map[string]any{"polluted": true}, "a": 1}, Context: Context{Extra: map[string]any{"__proto__": "x"}}}},
		{"proto key in client metadata", Input{Context: Context{ClientMetadata: map[string]string{"__proto__": "x", "b": "y"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rule := jsSource("r", ruleReporting(`var out = [JSON.stringify(user), JSON.stringify(context), user.polluted === true, Object.keys(context.clientMetadata)];`))
			lazy, native := bothModes(t, Options{Rules: []Source{rule}, MaxInputBytes: 1024})
			want := native.RunDebug(context.Background(), tc.in)
			got := lazy.RunDebug(context.Background(), tc.in)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-native +lazy):\n%s", diff)
			}
		})
	}
}

// TestLazyInputLimitBoundary: the input budget counts the same bytes.
func TestLazyInputLimitBoundary(t *testing.T) {
	lazy, native := bothModes(t, Options{Rules: []Source{jsSource("r", "function (u, c, cb) { cb(null, u, c); }")}, MaxInputBytes: 1024})
	failures := 0
	for n := 700; n <= 1024; n++ {
		in := Input{User: map[string]any{"k": strings.Repeat("x", n)}, Context: Context{ClientID: "cid", Request: Request{IP: "1.2.3.4", Networks: []string{"n"}}}}
		want, got := native.Run(context.Background(), in), lazy.Run(context.Background(), in)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("n=%d (-native +lazy):\n%s", n, diff)
		}
		if got.Err != nil {
			failures++
		}
	}
	if failures == 0 || failures == 325 {
		t.Errorf("the sizes did not cross the limit (%d failures)", failures)
	}
}

func deepArray(n int) any {
	var v any = "leaf"
	for range n {
		v = []any{v}
	}
	return v
}

// TestSeedsLazyAsNative runs the whole seed pipeline on both kinds of
// objects.
func TestSeedsLazyAsNative(t *testing.T) {
	lazy, native := bothModes(t, Options{Rules: allSeedRules(t), Configuration: duoConfig})
	for _, in := range []Input{seedInput("203.0.113.7"), seedInput("192.168.1.140"), richInput(), {}} {
		want := native.RunDebug(context.Background(), in)
		got := lazy.RunDebug(context.Background(), in)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: (-native +lazy):\n%s", in.Context.Request.IP, diff)
		}
	}
}

// TestNativeObjectsWhenNeeded: a rule that could use what dynamic objects
// do not support gets native objects, with their exact semantics.
func TestNativeObjectsWhenNeeded(t *testing.T) {
	for _, tc := range []struct {
		code   string
		native bool
	}{
		{"function (u, c, cb) { cb(null, u, c); }", false},
		{"function (u, c, cb) { Object.freeze(c); cb(null, u, c); }", true},
		{"function (u, c, cb) { Object.seal(c); cb(null, u, c); }", true},
		{"function (u, c, cb) { Object.preventExtensions(u); cb(null, u, c); }", true},
		{"function (u, c, cb) { Object.defineProperty(c, 'x', {value: 1}); cb(null, u, c); }", true},
		{"function (u, c, cb) { Object.defineProperties(c, {x: {value: 1}}); cb(null, u, c); }", true},
		{"function (u, c, cb) { c.__defineGetter__('x', function () { return 1; }); cb(null, u, c); }", true},
		{"function (u, c, cb) { Reflect.set(c, 'x', 1); cb(null, u, c); }", true},
		{"function (u, c, cb) { c[Symbol.for('x')] = 1; cb(null, u, c); }", true},
		{"function (u, c, cb) { var s = Object.getOwnPropertySymbols(Array.prototype); cb(null, u, c); }", true},
		{"function (u, c, cb) { Object.assign(c, Object.getOwnPropertyDescriptors(Array.prototype)); cb(null, u, c); }", true},
		{"function (u, c, cb) { new Proxy(c, {}); cb(null, u, c); }", true},
		{"function (u, c, cb) { eval('1'); cb(null, u, c); }", true},
		{"function (u, c, cb) { new Function('return 1')(); cb(null, u, c); }", true},
		{"function (u, c, cb) { class A extends Object {} cb(null, u, c); }", true},
		{"function (u, c, cb) { c['fr\\u0065eze'] = 1; cb(null, u, c); }", true},
		{"function (u, c, cb) { c['\\x66'] = 1; cb(null, u, c); }", true},
		{"function (u, c, cb) { // no Object.freeze here, only a comment\n cb(null, u, c); }", true},
		// Whole words only: these are ordinary names.
		{"function (u, c, cb) { var evaluate = 1, sealed = Object.isSealed(c), frozen = Object.isFrozen(c), isFunction = typeof u === 'function'; cb(null, u, c); }", false},
		{"function (u, c, cb) { var d = Object.getOwnPropertyDescriptor(c, 'clientID'); Object.setPrototypeOf(u, null); cb(null, u, c); }", false},
		{"function (u, c, cb) { c.idToken.x = 'a\\nb\\t\"'; cb(null, u, c); }", false},
	} {
		if got := needsNativeObjects([]byte(tc.code)); got != tc.native {
			t.Errorf("needsNativeObjects(%q) = %v, want %v", tc.code, got, tc.native)
		}
	}

	// One such rule makes the whole engine use native objects.
	rules := []Source{
		jsSource("plain", "function (u, c, cb) { cb(null, u, c); }"),
		jsSource("exotic", `function (user, context, callback) {
  Object.defineProperty(context, 'hidden', {value: 'h'});
  Object.defineProperty(user, 'computed', {get: function () { return this.user_id + '!'; }, enumerable: true});
  Object.freeze(context.request);
  context.request.ip = 'changed';
  context.idToken.r = [context.hidden, Object.keys(context).indexOf('hidden'), user.computed, context.request.ip, Object.isFrozen(context.request)];
  Object.seal(context);
  callback(null, user, context);
}`),
	}
	e := newEngine(t, Options{Rules: rules})
	if !e.nativeInput {
		t.Fatal("expected native objects")
	}
	res := e.Run(context.Background(), Input{User: map[string]any{"user_id": "u"}, Context: Context{Request: Request{IP: "1.2.3.4"}}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if diff := cmp.Diff([]any{"h", int64(-1), "u!", "1.2.3.4", true}, res.IDTokenClaims["r"]); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestLazyObjectKeys checks the property list directly.
func TestLazyObjectKeys(t *testing.T) {
	o := &lazyObject{}
	for _, k := range []string{"b", "10", "a", "2", "01", "-1", "4294967295", "4294967294", "0"} {
		o.Set(k, nil)
	}
	if diff := cmp.Diff([]string{"0", "2", "10", "4294967294", "b", "a", "01", "-1", "4294967295"}, o.Keys()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	o.Delete("2")
	o.Delete("b")
	o.Delete("missing")
	o.Set("b", nil)
	if diff := cmp.Diff([]string{"0", "10", "4294967294", "a", "01", "-1", "4294967295", "b"}, o.Keys()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !o.Has("0") || o.Has("2") || o.Get("missing") != nil || o.nIdx != 3 {
		t.Errorf("has/get/nIdx wrong: %+v", o)
	}
}

// TestLazyObjectModel applies random assignments and deletions to a
// lazyObject (small, then indexed with deleted entries left in place) and
// compares it with a plain ordered model after every step.
func TestLazyObjectModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	vm := goja.New()
	for _, size := range []int{8, 40, 400} {
		o := &lazyObject{}
		var order []string
		vals := map[string]int64{}
		for step := range min(20*size, 2000) {
			k := strconv.Itoa(rng.IntN(size))
			if rng.IntN(3) == 0 {
				k = "k" + k
			}
			if rng.IntN(3) == 0 {
				o.Delete(k)
				if _, ok := vals[k]; ok {
					delete(vals, k)
					order = slices.DeleteFunc(order, func(s string) bool { return s == k })
				}
			} else {
				v := int64(step)
				o.Set(k, vm.ToValue(v))
				if _, ok := vals[k]; !ok {
					order = append(order, k)
				}
				vals[k] = v
			}
			var want []string
			for _, name := range order {
				if _, ok := isArrayIndex(name); ok {
					want = append(want, name)
				}
			}
			slices.SortFunc(want, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
			for _, name := range order {
				if _, ok := isArrayIndex(name); !ok {
					want = append(want, name)
				}
			}
			got := o.Keys()
			if !slices.Equal(want, got) {
				t.Fatalf("size %d step %d: keys\n got %v\nwant %v", size, step, got, want)
			}
			for name, v := range vals {
				if g := o.Get(name); g == nil || g.ToInteger() != v || !o.Has(name) {
					t.Fatalf("size %d step %d: %s = %v, want %d", size, step, name, g, v)
				}
			}
			if _, ok := vals[k]; o.Has(k) != ok {
				t.Fatalf("size %d step %d: Has(%s) wrong", size, step, k)
			}
		}
		if size > lazyIndexMin && (o.idx == nil || len(o.idx) != len(vals)) {
			t.Errorf("size %d: index %d entries, want %d", size, len(o.idx), len(vals))
		}
	}
}

// TestBudgetTimerReuse: the interrupt timer is shared by the rules and runs
// of a runtime and only reset when it would fire too late; budgets must
// still hold whatever it was left scheduled for.
func TestBudgetTimerReuse(t *testing.T) {
	rules := []Source{
		jsSource("quick", "function (u, c, cb) { cb(null, u, c); }"),
		jsSource("loop", "function (u, c, cb) { if (u.loop) { while (true) {} } cb(null, u, c); }"),
	}
	e := newEngine(t, Options{Rules: rules, RuleTimeout: 80 * time.Millisecond, PipelineTimeout: 10 * time.Second, PoolSize: 1})
	for i := range 3 {
		// Quick runs leave the timer scheduled 80 ms ahead.
		for range 5 {
			if res := e.Run(context.Background(), Input{}); res.Err != nil {
				t.Fatal(res.Err)
			}
		}
		// The timer fires for the quick runs' deadline during the loop
		// and must re-schedule itself, not interrupt early.
		time.Sleep(30 * time.Millisecond)
		start := time.Now()
		res := e.Run(context.Background(), Input{User: map[string]any{"loop": true}})
		if res.Err == nil || res.Err.Kind != KindTimeout || res.Rule != "loop" {
			t.Fatalf("round %d: %+v", i, res.Err)
		}
		if d := time.Since(start); d > 2*time.Second || d < 75*time.Millisecond {
			t.Errorf("round %d: the interrupt came after %v (budget 80 ms)", i, d)
		}
	}
	// A context deadline earlier than the scheduled firing resets the timer.
	if res := e.Run(context.Background(), Input{}); res.Err != nil {
		t.Fatal(res.Err)
	}
	long := newEngine(t, Options{Rules: rules, RuleTimeout: 5 * time.Second, PipelineTimeout: 10 * time.Second, PoolSize: 1})
	if res := long.Run(context.Background(), Input{}); res.Err != nil {
		t.Fatal(res.Err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := long.Run(ctx, Input{User: map[string]any{"loop": true}})
	if res.Err == nil || res.Err.Kind != KindTimeout {
		t.Fatalf("%+v", res.Err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the interrupt came after %v (rule budget 5 s, context 60 ms)", d)
	}
	// After all this the runtime still serves quick runs.
	if res := e.Run(context.Background(), Input{}); res.Err != nil {
		t.Fatal(res.Err)
	}
}

// TestLazyInputSizeClass keeps the one allocation behind every run's
// lazy user and context within Go's 2 KiB size class: the next class is
// 2304 bytes, and this allocation is the largest a Check makes
// (docs/performance.md).
func TestLazyInputSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(lazyInput{}); n > 2048 {
		t.Fatalf("lazyInput is %d bytes, more than 2048: shrink lazyProp or its arrays", n)
	}
}
