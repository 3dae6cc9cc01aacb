package rules

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pollutingMerge is a rule doing what many real rules do with request
// data: a naive deep merge of JSON from the query string. A prefs value of
// {"__proto__": {"mfa_exempt": true}} walks into Object.prototype.
const pollutingMerge = `function (user, context, callback) {
  %s
  function merge(target, source) {
    for (var k in source) {
      var v = source[k];
      if (v !== null && typeof v === 'object') {
        if (target[k] === null || typeof target[k] !== 'object') { target[k] = {}; }
        merge(target[k], v);
      } else {
        target[k] = v;
      }
    }
    return target;
  }
  var prefs = merge({}, JSON.parse(context.request.query.prefs || '{}'));
  var settings = {};
  if (!settings.mfa_exempt) {
    context.multifactor = { provider: 'any' };
  }
  context.idToken.theme = prefs.theme || null;
  callback(null, user, context);
}`

func queryInput(prefs string) Input {
	in := Input{User: map[string]any{"user_id": "u"}}
	if prefs != "" {
		in.Context.Request.Query = map[string]any{"prefs": prefs}
	}
	return in
}

// TestPrototypePollutionDoesNotOutliveRun: a request that pollutes a
// built-in prototype through a rule's deep merge neither skips MFA itself
// nor changes what later requests on the same runtime see.
func TestPrototypePollutionDoesNotOutliveRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		strict bool
	}{{"sloppy", false}, {"strict", true}} {
		t.Run(tc.name, func(t *testing.T) {
			directive := ""
			if tc.strict {
				directive = "'use strict';"
			}
			code := fmt.Sprintf(pollutingMerge, directive)
			for _, native := range []bool{false, true} {
				e := newEngine(t, Options{Rules: []Source{jsSource("prefs", code)}, PoolSize: 1})
				e.nativeInput = native
				attack := e.Run(context.Background(), queryInput(`{"theme":"dark","__proto__":{"mfa_exempt":true}}`))
				switch {
				case tc.strict && attack.Err == nil:
					t.Errorf("native=%v: strict attacker run: no error; a write to a frozen prototype must throw", native)
				case !tc.strict && (attack.Err != nil || attack.Multifactor == nil):
					t.Errorf("native=%v: sloppy attacker run skipped MFA or failed: err=%v mfa=%v", native, attack.Err, attack.Multifactor)
				}
				for i := range 3 {
					victim := e.Run(context.Background(), queryInput(""))
					if victim.Err != nil || victim.Multifactor == nil {
						t.Fatalf("native=%v: victim run %d after the attack: err=%v mfa=%v (want MFA)", native, i, victim.Err, victim.Multifactor)
					}
				}
				if s := e.Stats(); s.RuntimesCreated != 1 {
					t.Errorf("native=%v: runtimes created = %d, want the one runtime reused", native, s.RuntimesCreated)
				}
			}
		})
	}
}

// TestBuiltinsPristineAcrossRuns: whatever a rule does to built-ins,
// modules and the standard globals, the next run on the same runtime
// sees them as they were; what it stores on global stays (Auth0's
// documented caching).
func TestBuiltinsPristineAcrossRuns(t *testing.T) {
	rule := jsSource("tamper", `function (user, context, callback) {
  if (user.user_id === 'attacker') {
    var tries = [
      function () { Object.prototype.mfa_exempt = true; },
      function () { Array.prototype.includes = function () { return true; }; },
      function () { String.prototype.toLowerCase = function () { return 'admin'; }; },
      function () { Function.prototype.call = function () { return true; }; },
      function () { JSON.parse = function () { return { admin: true }; }; },
      function () { Math.random = function () { return 0; }; },
      function () { Object.defineProperty(Object.prototype, 'role', { get: function () { return 'admin'; } }); },
      function () { Object.setPrototypeOf(Array.prototype, { evil: true }); },
      function () { Error.prototype.evil = true; },
      function () { Promise.prototype.then = function () {}; },
      function () { RegExp.prototype.test = function () { return false; }; },
      function () { Buffer.from = function () { return 'x'; }; },
      function () { require('ipaddr.js').isValid = function () { return true; }; },
      function () { require('jsonwebtoken').verify = function () { return {}; }; },
      function () { require('querystring').parse = function () { return {}; }; },
      function () { URL.prototype.toString = function () { return 'x'; }; },
      function () { UnauthorizedError.prototype.name = 'Nope'; },
      function () { console.log = function () {}; },
      function () { JSON = { parse: function () { return {}; } }; },
      function () { global.Array = function () {}; },
      function () { delete global.Object; },
      function () { Object.getPrototypeOf(function* () {}).evil = true; },
      function () { Object.getPrototypeOf([][Symbol.iterator]()).next = function () { return { done: true }; }; }
    ];
    tries.forEach(function (f) { try { f(); } catch (e) {} });
    global.cached = 'kept';
    return callback(null, user, context);
  }
  context.idToken.report = {
    exempt: ({}).mfa_exempt === undefined,
    includes: [1].includes(2) === false,
    lower: 'ABC'.toLowerCase() === 'abc',
    call: typeof Function.prototype.call.call(function () { return 7; }) === 'number',
    json: JSON.parse('{"a":1}').a === 1,
    random: typeof Math.random() === 'number',
    role: ({}).role === undefined,
    arrayProto: Object.getPrototypeOf(Array.prototype) === Object.prototype,
    error: new Error('x').evil === undefined,
    regexp: /a/.test('a'),
    buffer: Buffer.from('hi').toString('hex') === '6869',
    ipaddr: require('ipaddr.js').isValid('nope') === false,
    qs: require('querystring').parse('a=1').a === '1',
    url: new URL('https://example.org/x').toString() === 'https://example.org/x',
    unauthorized: new UnauthorizedError('x').name === 'UnauthorizedError' && UnauthorizedError.prototype.name === 'UnauthorizedError',
    array: Array.isArray([]) && typeof Array === 'function',
    object: typeof Object === 'function',
    generator: Object.getPrototypeOf(function* () {}).evil === undefined,
    iterator: Array.from([1, 2]).length === 2 && [...[1, 2]].length === 2,
    cached: global.cached === 'kept'
  };
  callback(null, user, context);
}`)
	e := newEngine(t, Options{Rules: []Source{rule}, PoolSize: 1})
	if res := e.Run(context.Background(), Input{User: map[string]any{"user_id": "attacker"}}); res.Err != nil {
		t.Fatalf("attacker run: %v", res.Err)
	}
	res := e.Run(context.Background(), Input{User: map[string]any{"user_id": "victim"}})
	if res.Err != nil {
		t.Fatalf("victim run: %v", res.Err)
	}
	want := map[string]any{}
	for k := range res.IDTokenClaims["report"].(map[string]any) {
		want[k] = true
	}
	if diff := cmp.Diff(want, res.IDTokenClaims["report"]); diff != "" {
		t.Errorf("the victim saw tampered built-ins (-want +got):\n%s", diff)
	}
	if s := e.Stats(); s.RuntimesCreated != 1 {
		t.Errorf("runtimes created = %d, want the one runtime reused", s.RuntimesCreated)
	}
}

// TestFrozenBuiltinsKeepCommonIdioms: code that assigns properties that
// built-in prototypes also have (a custom error's name, a prototype's
// constructor or toString) keeps working on its own objects, in sloppy
// and strict mode, and helpers may still be added to global.
func TestFrozenBuiltinsKeepCommonIdioms(t *testing.T) {
	for _, directive := range []string{"", "'use strict';"} {
		got, err := jsEval(t, Options{}, directive+`
  function MyError(message) { this.message = message; this.name = 'MyError'; }
  MyError.prototype = Object.create(Error.prototype);
  MyError.prototype.constructor = MyError;
  MyError.prototype.name = 'MyError';
  function Point(x) { this.x = x; }
  Point.prototype.toString = function () { return 'P' + this.x; };
  Point.prototype.valueOf = function () { return this.x; };
  var o = {};
  o.toString = function () { return 'custom'; };
  o.constructor = 'c';
  var u = new UnauthorizedError('no');
  u.name = 'Renamed';
  u.message = 'changed';
  var err = new TypeError('t');
  err.name = 'Other';
  err.message = 'm';
  class Sub extends Error { constructor(m) { super(m); this.name = 'Sub'; } }
  global.helper = global.helper || function (a) { return a + 1; };
  return {
    my: String(new MyError('boom')), myProto: MyError.prototype.constructor === MyError,
    point: String(new Point(3)) + (new Point(4) + 1), o: String(o) + o.constructor,
    u: u.name + ':' + u.message, err: String(err), sub: String(new Sub('s')),
    helper: helper(1), errorName: Error.prototype.name, objToString: Object.prototype.toString.call([])
  };`)
		if err != nil {
			t.Fatalf("%q: %v", directive, err)
		}
		want := map[string]any{
			"my": "MyError: boom", "myProto": true, "point": "P35", "o": "customc",
			"u": "Renamed:changed", "err": "Other: m", "sub": "Sub: s", "helper": int64(2),
			"errorName": "Error", "objToString": "[object Array]",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", directive, diff)
		}
	}
}

// TestFrozenPrototypeWriteRefused: a write to a built-in prototype
// itself is refused: ignored in sloppy mode like any write to a frozen
// object, a TypeError in strict mode. The properties kept overridable
// for inheriting objects (constructor, toString, valueOf, an error's name
// and message...) refuse with a TypeError in both modes.
func TestFrozenPrototypeWriteRefused(t *testing.T) {
	got, err := jsEval(t, Options{}, `
  Error.prototype.evil = true;
  Array.prototype.push = null;
  return [new Error('x').evil === undefined, typeof [].push];`)
	if diff := cmp.Diff([]any{true, "function"}, got); err != nil || diff != "" {
		t.Errorf("sloppy: err %v, (-want +got):\n%s", err, diff)
	}
	for _, code := range []string{
		`'use strict'; Error.prototype.evil = true; return 'written';`,
		`Object.prototype.toString = function () { return 'evil'; }; return 'written';`,
		`Error.prototype.name = 'Evil'; return 'written';`,
	} {
		_, err = jsEval(t, Options{}, code)
		if err == nil || err.Kind != KindException || err.Name != "TypeError" {
			t.Errorf("%s: got %v, want a TypeError", code, err)
		}
	}
}
