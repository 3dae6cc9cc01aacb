package rules

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSandboxRuntimeFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		code     string
		wantKind ErrorKind
		wantName string
		wantMsg  string
	}{
		{name: "infinite loop", code: "function (user, context, callback) { while (true) {} }", wantKind: KindTimeout, wantMsg: "time budget"},
		{name: "infinite loop after callback", code: "function (user, context, callback) { callback(null, user, context); for (;;) {} }", wantKind: KindTimeout},
		{name: "infinite loop in a promise job", code: "function (user, context, callback) { Promise.resolve().then(function () { while (true) {} }); }", wantKind: KindTimeout},
		{name: "infinite loop in a timer", code: "function (user, context, callback) { setTimeout(function () { while (true) {} }, 1); }", wantKind: KindTimeout},
		{name: "deep recursion", code: "function (user, context, callback) { function f(n) { return f(n + 1) + 1; } f(0); callback(null, user, context); }",
			wantKind: KindException, wantName: "RangeError", wantMsg: "Maximum call stack size exceeded"},
		{name: "deep recursion cannot be caught", code: "function (user, context, callback) { function f() { return f(); } try { f(); } catch (e) { } callback(null, user, context); }",
			wantKind: KindException, wantName: "RangeError"},
		{name: "no process", code: "function (user, context, callback) { callback(null, user, process.env); }", wantKind: KindException, wantName: "ReferenceError"},
		{name: "dynamic require of fs", code: "function (user, context, callback) { var m = 'f' + 's'; require(m); callback(null, user, context); }",
			wantKind: KindException, wantName: "Error", wantMsg: `module "fs" is not available`},
		{name: "dynamic require of child_process", code: "function (user, context, callback) { var m = ['child', 'process'].join('_'); require(m).exec('id'); }",
			wantKind: KindException, wantMsg: `module "child_process" is not available`},
		{name: "require needs a string", code: "function (user, context, callback) { require(42); }", wantKind: KindException, wantName: "TypeError"},
		{name: "strict mode cannot write configuration", code: "function (user, context, callback) { 'use strict'; configuration.X = 'y'; callback(null, user, context); }",
			wantKind: KindException, wantName: "TypeError"},
		{name: "huge Buffer refused", code: "function (user, context, callback) { Buffer.alloc(1e9); }", wantKind: KindException, wantName: "RangeError"},
		{name: "too many timers", code: "function (user, context, callback) { for (var i = 0; i < 2000; i++) setTimeout(function () {}, 1000); }",
			wantKind: KindException, wantName: "RangeError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Options{Rules: []Source{jsSource("r", tc.code)}, RuleTimeout: 50 * time.Millisecond, MaxCallStackSize: 256})
			res := e.Run(context.Background(), Input{User: map[string]any{"user_id": "u"}})
			if res.Err == nil || res.Err.Kind != tc.wantKind || res.Rule != "r" {
				t.Fatalf("got %+v, want kind %v", res.Err, tc.wantKind)
			}
			if tc.wantName != "" && res.Err.Name != tc.wantName {
				t.Errorf("name = %q, want %q", res.Err.Name, tc.wantName)
			}
			if !strings.Contains(res.Err.Message, tc.wantMsg) {
				t.Errorf("message = %q, want %q", res.Err.Message, tc.wantMsg)
			}
			// The engine keeps serving after the fault.
			ok := newEngine(t, Options{Rules: []Source{jsSource("ok", "function (u, c, cb) { cb(null, u, c); }")}})
			if res := ok.Run(context.Background(), Input{}); res.Err != nil {
				t.Fatal(res.Err)
			}
			if res := e.Run(context.Background(), Input{}); res.Err == nil || res.Err.Kind != tc.wantKind {
				t.Fatalf("second run: %+v", res.Err)
			}
		})
	}
}

func TestSandboxGlobals(t *testing.T) {
	rule := jsSource("globals", `function (user, context, callback) {
  var report = {
    process: typeof process,
    require: typeof require,
    Buffer: typeof Buffer,
    console: typeof console,
    global: global === globalThis,
    module: typeof module,
    exports: typeof exports,
    fetch: typeof fetch,
    XMLHttpRequest: typeof XMLHttpRequest,
    setTimeout: typeof setTimeout,
    URL: typeof URL,
    cfg: configuration.KEY,
    frozen: Object.isFrozen(configuration)
  };
  configuration.KEY = 'changed';
  configuration = {};
  report.after = configuration.KEY;
  context.idToken.report = report;
  callback(null, user, context);
}`)
	res := runOne(t, Options{Rules: []Source{rule}, Configuration: map[string]string{"KEY": "value"}}, Input{})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	want := map[string]any{
		"process": "undefined", "require": "function", "Buffer": "function", "console": "object",
		"global": true, "module": "undefined", "exports": "undefined", "fetch": "undefined",
		"XMLHttpRequest": "undefined", "setTimeout": "function", "URL": "function",
		"cfg": "value", "frozen": true, "after": "value",
	}
	if diff := cmp.Diff(want, res.IDTokenClaims["report"]); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestUnavailableModulesAtLoad(t *testing.T) {
	for _, tc := range []struct {
		code, module string
	}{
		{"function (user, context, callback) { var fs = require('fs'); callback(null, user, context); }", "fs"},
		{"function (user, context, callback) { require('child_process').exec('rm -rf /'); }", "child_process"},
		{"function (user, context, callback) { require(`http`); }", "http"},
		{"function (user, context, callback) { if (false) { require('request@2.88.0'); } callback(null, user, context); }", "request@2.88.0"},
		{"function (user, context, callback) { require('@scope/pkg@1.0.0'); }", "@scope/pkg@1.0.0"},
	} {
		_, err := New(Options{Rules: []Source{jsSource("foo", tc.code)}})
		want := `rule "foo": module "` + tc.module + `" is not available`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%s) = %v, want %q", tc.code, err, want)
		}
		if !errors.Is(err, ErrInvalidRules) {
			t.Errorf("error does not wrap ErrInvalidRules")
		}
	}
	// Versions, the node: prefix and commented-out requires are fine.
	ok := `function (user, context, callback) {
  // var request = require('request');
  /* require('fs') */
  var ipaddr = require('ipaddr.js@1.9.0');
  var jwt = require("jsonwebtoken@8.5.1");
  var qs = require('node:querystring');
  var url = require('url');
  var B = require('buffer').Buffer;
  context.idToken.same = ipaddr === require('ipaddr.js') && B === Buffer && typeof jwt.sign === 'function' && typeof qs.parse === 'function' && typeof url.parse === 'function';
  callback(null, user, context);
}`
	res := runOne(t, Options{Rules: []Source{jsSource("ok", ok)}}, Input{})
	if res.Err != nil || res.IDTokenClaims["same"] != true {
		t.Fatalf("got %+v %v", res.Err, res.IDTokenClaims)
	}
}

func TestNoLeakageBetweenRuns(t *testing.T) {
	rule := jsSource("leaky", `function (user, context, callback) {
  context.idToken.sawSecret = !!(user.secret || context.secret || context.idToken.previous);
  if (user.user_id === 'alice') {
    user.secret = 'alice-secret';
    user.app_metadata.plan = 'gold';
    context.secret = 'alice-context';
    context.idToken.previous = 'alice';
    context.multifactor = {provider: 'any'};
    setTimeout(function () { global.leakedByTimer = user.secret; }, 30);
  }
  context.idToken.leakedByTimer = global.leakedByTimer || null;
  callback(null, user, context);
}`)
	e := newEngine(t, Options{Rules: []Source{rule}, PoolSize: 1})
	aliceUser := map[string]any{"user_id": "alice", "app_metadata": map[string]any{"plan": "free"}}
	a := e.RunDebug(context.Background(), Input{User: aliceUser})
	if a.Err != nil || a.Multifactor == nil {
		t.Fatalf("alice: %+v", a)
	}
	if aliceUser["secret"] != nil || aliceUser["app_metadata"].(map[string]any)["plan"] != "free" {
		t.Errorf("the caller's map was mutated: %v", aliceUser)
	}
	time.Sleep(50 * time.Millisecond) // the timer would have fired by now
	b := e.RunDebug(context.Background(), Input{User: map[string]any{"user_id": "bob"}})
	if b.Err != nil {
		t.Fatal(b.Err)
	}
	if b.Multifactor != nil || b.IDTokenClaims["sawSecret"] != false || b.IDTokenClaims["leakedByTimer"] != nil {
		t.Errorf("bob saw alice's data: %+v", b)
	}
	if _, ok := b.User["secret"]; ok {
		t.Errorf("bob's user = %v", b.User)
	}
	if _, ok := b.Context["secret"]; ok {
		t.Errorf("bob's context = %v", b.Context)
	}
	if s := e.Stats(); s.RuntimesCreated != 1 {
		t.Errorf("both runs should share one runtime: %+v", s)
	}
}

func TestGlobalPersistsPerRuntime(t *testing.T) {
	rule := jsSource("counter", `function (user, context, callback) {
  global.count = (global.count || 0) + 1;
  context.idToken.count = global.count;
  callback(null, user, context);
}`)
	e := newEngine(t, Options{Rules: []Source{rule}, PoolSize: 1})
	for i := int64(1); i <= 3; i++ {
		res := e.Run(context.Background(), Input{})
		if res.Err != nil || res.IDTokenClaims["count"] != i {
			t.Fatalf("run %d: %+v %v", i, res.Err, res.IDTokenClaims)
		}
	}
}

func TestInputLimits(t *testing.T) {
	rule := jsSource("r", "function (user, context, callback) { callback(null, user, context); }")
	e := newEngine(t, Options{Rules: []Source{rule}, MaxInputBytes: 1024})
	for _, tc := range []struct {
		name string
		in   Input
		ok   bool
	}{
		{name: "small", in: Input{User: map[string]any{"user_id": "u"}, Context: Context{Request: Request{IP: "1.2.3.4"}}}, ok: true},
		{name: "big claim", in: Input{User: map[string]any{"blob": strings.Repeat("x", 2000)}}},
		{name: "big user agent", in: Input{Context: Context{Request: Request{UserAgent: strings.Repeat("x", 2000)}}}},
		{name: "big query", in: Input{Context: Context{Request: Request{Query: map[string]any{"q": strings.Repeat("x", 2000)}}}}},
		{name: "many networks", in: Input{Context: Context{Request: Request{Networks: make([]string, 500)}}}},
		{name: "deep", in: Input{User: deepMap(100)}},
		{name: "not JSON", in: Input{User: map[string]any{"ch": make(chan int)}}},
	} {
		res := e.Run(context.Background(), tc.in)
		if tc.ok != (res.Err == nil) {
			t.Errorf("%s: err = %v", tc.name, res.Err)
		}
		if !tc.ok && res.Err != nil && res.Err.Kind != KindInternal {
			t.Errorf("%s: kind = %v, want internal", tc.name, res.Err.Kind)
		}
	}
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	if res := e.Run(context.Background(), Input{User: cyclic}); res.Err == nil || res.Err.Kind != KindInternal {
		t.Errorf("cyclic input: %+v", res.Err)
	}
}

func deepMap(n int) map[string]any {
	m := map[string]any{}
	cur := m
	for range n {
		next := map[string]any{}
		cur["n"] = next
		cur = next
	}
	return m
}

func TestInputConversion(t *testing.T) {
	type custom struct {
		A int    `json:"a"`
		B string `json:"b"`
	}
	rule := jsSource("types", `function (user, context, callback) {
  context.idToken.types = {
    n: typeof user.n, big: user.big, f: user.f, b: user.b, nil: user.nil, arr: user.arr, custom: user.custom,
    strs: user.strs, app: user.app_metadata, meta: user.user_metadata,
    req: context.request, auth: context.authentication, protocol: context.protocol, client: context.clientID,
    extra: context.extra, stats: context.stats
  };
  callback(null, user, context);
}`)
	res := runOne(t, Options{Rules: []Source{rule}}, Input{
		User: map[string]any{"n": 1, "big": int64(1) << 40, "f": 1.5, "b": true, "nil": nil, "arr": []any{"x", 2},
			"custom": custom{A: 1, B: "z"}, "strs": []string{"p", "q"}, "app_metadata": map[string]any{"roles": []any{"r"}}},
		Context: Context{ClientID: "cid", Request: Request{IP: "1.2.3.4", Hostname: "app.example.com", UserAgent: "ua",
			Query: map[string]any{"q": "1"}, Networks: []string{"corporate"}, Geoip: map[string]any{"country_code": "FR"}},
			AuthenticationMethods: []Method{{Name: "pwd", Timestamp: 1700000000000}},
			Stats:                 map[string]any{"loginsCount": 3},
			Extra:                 map[string]any{"extra": "yes", "clientID": "ignored"}},
	})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	want := map[string]any{
		"n": "number", "big": int64(1) << 40, "f": 1.5, "b": true, "nil": nil, "arr": []any{"x", int64(2)},
		"custom": map[string]any{"a": int64(1), "b": "z"}, "strs": []any{"p", "q"},
		"app": map[string]any{"roles": []any{"r"}}, "meta": map[string]any{},
		"req": map[string]any{"ip": "1.2.3.4", "hostname": "app.example.com", "userAgent": "ua", "query": map[string]any{"q": "1"},
			"body": map[string]any{}, "networks": []any{"corporate"}, "geoip": map[string]any{"country_code": "FR"}},
		"auth":     map[string]any{"methods": []any{map[string]any{"name": "pwd", "timestamp": int64(1700000000000)}}},
		"protocol": "oidc-basic-profile", "client": "cid", "extra": "yes", "stats": map[string]any{"loginsCount": int64(3)},
	}
	if diff := cmp.Diff(want, res.IDTokenClaims["types"]); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestContextCancellationAndDeadline(t *testing.T) {
	loop := jsSource("loop", "function (user, context, callback) { while (true) {} }")
	e := newEngine(t, Options{Rules: []Source{loop}, RuleTimeout: time.Minute, PipelineTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if res := e.Run(ctx, Input{}); res.Err == nil || res.Err.Kind != KindTimeout {
		t.Fatalf("deadline: %+v", res.Err)
	}

	wait := jsSource("wait", "function (user, context, callback) { setTimeout(function () { callback(null, user, context); }, 10000); }")
	e2 := newEngine(t, Options{Rules: []Source{wait}, RuleTimeout: time.Minute, PipelineTimeout: time.Minute})
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel2() }()
	if res := e2.Run(ctx2, Input{}); res.Err == nil || res.Err.Kind != KindTimeout || !strings.Contains(res.Err.Message, "cancel") {
		t.Fatalf("cancel: %+v", res.Err)
	}
	cancelled, cancel3 := context.WithCancel(context.Background())
	cancel3()
	if res := e2.Run(cancelled, Input{}); res.Err == nil || res.Err.Kind != KindTimeout {
		t.Fatalf("already cancelled: %+v", res.Err)
	}
}

// TestPoolExhaustion: with one runtime busy, a run whose deadline ends
// first fails closed instead of waiting forever.
func TestPoolExhaustion(t *testing.T) {
	started := make(chan struct{}, 1)
	logs := &logRecorder{onLog: func(r logRecord) {
		if r.Message == "started" {
			started <- struct{}{}
		}
	}}
	rule := jsSource("slow", `function (user, context, callback) {
  if (user.slow) { console.log('started'); setTimeout(function () { callback(null, user, context); }, 300); return; }
  callback(null, user, context);
}`)
	e := newEngine(t, Options{Rules: []Source{rule}, PoolSize: 1, MaxWaitingRuns: -1, RuleTimeout: 5 * time.Second, PipelineTimeout: 5 * time.Second, Logger: slog.New(logs)})
	done := make(chan Result)
	go func() { done <- e.Run(context.Background(), Input{User: map[string]any{"slow": true}}) }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	res := e.Run(ctx, Input{})
	if res.Err == nil || res.Err.Kind != KindTimeout || !strings.Contains(res.Err.Message, "no runtime") {
		t.Fatalf("got %+v", res.Err)
	}
	if slow := <-done; slow.Err != nil {
		t.Fatal(slow.Err)
	}
	if res := e.Run(context.Background(), Input{}); res.Err != nil {
		t.Fatal(res.Err)
	}
}

// TestSteadyState shows that runs reuse compiled programs and pooled
// runtimes: no compile and no runtime construction per call.
func TestSteadyState(t *testing.T) {
	e := newEngine(t, Options{Rules: allSeedRules(t), Configuration: duoConfig, PoolSize: 2})
	if s := e.Stats(); s.Compiles != 6 || s.RuntimesCreated != 0 {
		t.Fatalf("after New: %+v", s)
	}
	if err := e.Warm(2); err != nil {
		t.Fatal(err)
	}
	before := e.Stats()
	for i := range 200 {
		ip := "203.0.113.7"
		if i%2 == 0 {
			ip = "192.168.1.140"
		}
		if res := e.Run(context.Background(), seedInput(ip)); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	after := e.Stats()
	if after.Compiles != before.Compiles || after.RuntimesCreated != before.RuntimesCreated || after.RuntimesDiscarded != 0 {
		t.Errorf("steady state built things: before %+v after %+v", before, after)
	}
	if after.RuntimesCreated != 2 || after.Runs != before.Runs+200 {
		t.Errorf("stats = %+v", after)
	}
}

func TestTimeoutDiscardsRuntime(t *testing.T) {
	rule := jsSource("r", "function (user, context, callback) { if (user.loop) { while (true) {} } callback(null, user, context); }")
	e := newEngine(t, Options{Rules: []Source{rule}, PoolSize: 1, RuleTimeout: 20 * time.Millisecond})
	if res := e.Run(context.Background(), Input{User: map[string]any{"loop": true}}); res.Err == nil || res.Err.Kind != KindTimeout {
		t.Fatal(res.Err)
	}
	if res := e.Run(context.Background(), Input{}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if s := e.Stats(); s.RuntimesDiscarded != 1 || s.RuntimesCreated != 2 {
		t.Errorf("stats = %+v", s)
	}
}
