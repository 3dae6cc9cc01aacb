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

// TestCallbackContract is the Auth0 callback contract, table-driven. Each
// case's rule runs before a final rule that records that the pipeline got
// there (context.idToken.reached).
func TestCallbackContract(t *testing.T) {
	const ok = "function (user, context, callback) { callback(null, user, context); }"
	for _, tc := range []struct {
		name     string
		code     string
		wantKind ErrorKind // 0: the pipeline continues
		wantName string
		wantMsg  string
		wantLog  string
		check    func(t *testing.T, res Result)
	}{
		{name: "continue", code: ok},
		{name: "UnauthorizedError", code: "function (user, context, callback) { callback(new UnauthorizedError('Access denied: outside office hours')); }",
			wantKind: KindUnauthorized, wantName: "UnauthorizedError", wantMsg: "Access denied: outside office hours"},
		{name: "UnauthorizedError is an Error", code: `function (user, context, callback) {
  var e = new UnauthorizedError('x');
  if (!(e instanceof Error) || !(e instanceof UnauthorizedError) || e.name !== 'UnauthorizedError' || e.message !== 'x' || String(e) !== 'UnauthorizedError: x' || typeof e.stack !== 'string') {
    return callback(new Error('bad UnauthorizedError: ' + e.name + '/' + e.message + '/' + String(e)));
  }
  callback(null, user, context);
}`},
		{name: "plain Error", code: "function (user, context, callback) { callback(new Error('you shall not pass')); }",
			wantKind: KindRule, wantName: "Error", wantMsg: "you shall not pass"},
		{name: "TypeError passed", code: "function (user, context, callback) { callback(new TypeError('typed')); }",
			wantKind: KindRule, wantName: "TypeError", wantMsg: "typed"},
		{name: "string error", code: "function (user, context, callback) { callback('just a string'); }",
			wantKind: KindRule, wantName: "Error", wantMsg: "just a string"},
		{name: "object error", code: "function (user, context, callback) { callback({message: 'object message'}); }",
			wantKind: KindRule, wantName: "Error", wantMsg: "object message"},
		{name: "false is an error", code: "function (user, context, callback) { callback(false); }",
			wantKind: KindRule, wantMsg: "false"},
		{name: "undefined error continues", code: "function (user, context, callback) { callback(undefined, user, context); }"},
		{name: "double call: first success wins", code: "function (user, context, callback) { callback(null, user, context); callback(new Error('late')); }",
			wantLog: "callback called more than once"},
		{name: "double call: first error wins", code: "function (user, context, callback) { callback(new Error('first')); callback(null, user, context); }",
			wantKind: KindRule, wantName: "Error", wantMsg: "first", wantLog: "callback called more than once"},
		{name: "double call from a promise is ignored", code: `function (user, context, callback) {
  Promise.resolve().then(function () { callback(new Error('async second')); });
  callback(null, user, context);
}`, wantLog: "callback called more than once"},
		{name: "never called", code: "function (user, context, callback) { }",
			wantKind: KindTimeout, wantMsg: "never called callback"},
		{name: "never called with a timer beyond the budget", code: "function (user, context, callback) { setTimeout(function () { callback(null, user, context); }, 60000); }",
			wantKind: KindTimeout, wantMsg: "within its time budget"},
		{name: "cleared timer", code: "function (user, context, callback) { var t = setTimeout(function () { callback(null, user, context); }, 1); clearTimeout(t); }",
			wantKind: KindTimeout},
		{name: "throws", code: "function (user, context, callback) { throw new Error('boom'); }",
			wantKind: KindException, wantName: "Error", wantMsg: "boom"},
		{name: "throws a string", code: "function (user, context, callback) { throw 'raw'; }",
			wantKind: KindException, wantName: "Error", wantMsg: "raw"},
		{name: "TypeError at run time", code: "function (user, context, callback) { user.nothing.here = 1; callback(null, user, context); }",
			wantKind: KindException, wantName: "TypeError"},
		{name: "throws after calling back fails closed", code: "function (user, context, callback) { callback(null, user, context); throw new Error('after'); }",
			wantKind: KindException, wantMsg: "after"},
		{name: "async via Promise", code: `function (user, context, callback) {
  Promise.resolve(42).then(function (v) {
    context.idToken.v = v;
    callback(null, user, context);
  });
}`, check: func(t *testing.T, res Result) {
			if res.IDTokenClaims["v"] != int64(42) {
				t.Errorf("claims = %v", res.IDTokenClaims)
			}
		}},
		{name: "async via setTimeout", code: `function (user, context, callback) {
  setTimeout(function (a, b) { context.idToken.args = [a, b]; callback(null, user, context); }, 5, 'x', 'y');
}`, check: func(t *testing.T, res Result) {
			if diff := cmp.Diff([]any{"x", "y"}, res.IDTokenClaims["args"]); diff != "" {
				t.Error(diff)
			}
		}},
		{name: "async via setImmediate", code: "function (user, context, callback) { setImmediate(function () { callback(null, user, context); }); }"},
		{name: "timers in order", code: `function (user, context, callback) {
  var seen = [];
  setTimeout(function () { seen.push('t10'); }, 10);
  setTimeout(function () { seen.push('t1'); }, 1);
  setImmediate(function () { seen.push('imm'); });
  Promise.resolve().then(function () { seen.push('micro'); });
  setTimeout(function () { context.idToken.seen = seen; callback(null, user, context); }, 20);
}`, check: func(t *testing.T, res Result) {
			if diff := cmp.Diff([]any{"micro", "imm", "t1", "t10"}, res.IDTokenClaims["seen"]); diff != "" {
				t.Error(diff)
			}
		}},
		{name: "setInterval", code: `function (user, context, callback) {
  var n = 0;
  var id = setInterval(function () {
    n++;
    if (n === 3) { clearInterval(id); context.idToken.n = n; callback(null, user, context); }
  }, 1);
}`, check: func(t *testing.T, res Result) {
			if res.IDTokenClaims["n"] != int64(3) {
				t.Errorf("claims = %v", res.IDTokenClaims)
			}
		}},
		{name: "async function rule", code: "async function (user, context, callback) { await null; callback(null, user, context); }"},
		{name: "async function rejects", code: "async function (user, context, callback) { await null; throw new Error('async boom'); }",
			wantKind: KindException, wantName: "Error", wantMsg: "async boom"},
		{name: "unhandled rejection without callback", code: "function (user, context, callback) { Promise.reject(new RangeError('nope')); }",
			wantKind: KindException, wantName: "RangeError", wantMsg: "nope"},
		{name: "throw inside a timer", code: "function (user, context, callback) { setTimeout(function () { throw new Error('in timer'); }, 1); }",
			wantKind: KindException, wantMsg: "in timer"},
		{name: "callback without arguments keeps objects", code: "function (user, context, callback) { context.idToken.kept = true; callback(); }",
			check: func(t *testing.T, res Result) {
				if res.IDTokenClaims["kept"] != true || res.IDTokenClaims["reached"] != true {
					t.Errorf("claims = %v", res.IDTokenClaims)
				}
			}},
		{name: "replaced objects are passed on", code: `function (user, context, callback) {
  var c = {idToken: {replaced: true}, accessToken: {}};
  callback(null, {user_id: 'other'}, c);
}`, check: func(t *testing.T, res Result) {
			if res.IDTokenClaims["replaced"] != true || res.User["user_id"] != "other" {
				t.Errorf("claims = %v user = %v", res.IDTokenClaims, res.User)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logRecorder{}
			rules := []Source{
				jsSource("under-test", tc.code),
				jsSource("last", "function (user, context, callback) { context.idToken.reached = true; callback(null, user, context); }"),
			}
			res := runOne(t, Options{Rules: rules, Logger: slog.New(logs), RuleTimeout: 2 * time.Second, PipelineTimeout: 4 * time.Second},
				Input{User: map[string]any{"user_id": "u1"}})
			if tc.wantKind == 0 {
				if res.Err != nil {
					t.Fatalf("unexpected error: %v", res.Err)
				}
				if res.IDTokenClaims["reached"] != true {
					t.Fatalf("pipeline did not reach the last rule: %v", res.IDTokenClaims)
				}
			} else {
				if res.Err == nil {
					t.Fatalf("no error, want %v", tc.wantKind)
				}
				if res.Err.Kind != tc.wantKind || res.Rule != "under-test" || res.Err.Rule != "under-test" {
					t.Fatalf("got %+v (rule %q), want kind %v from under-test", res.Err, res.Rule, tc.wantKind)
				}
				if tc.wantName != "" && res.Err.Name != tc.wantName {
					t.Errorf("name = %q, want %q", res.Err.Name, tc.wantName)
				}
				if !strings.Contains(res.Err.Message, tc.wantMsg) {
					t.Errorf("message = %q, want %q", res.Err.Message, tc.wantMsg)
				}
				if res.IDTokenClaims["reached"] == true {
					t.Error("the pipeline went on after an error")
				}
			}
			if tc.wantLog != "" {
				rec, ok := logs.find(tc.wantLog)
				if !ok {
					t.Fatalf("no log containing %q", tc.wantLog)
				}
				if rec.Attrs["rule"] != "under-test" || rec.Level != slog.LevelWarn {
					t.Errorf("log %+v: want Warn with rule=under-test", rec)
				}
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
}

func TestPipelineOrderAndStop(t *testing.T) {
	rules := []Source{
		jsSource("a", "function (user, context, callback) { context.idToken.order = ['a']; callback(null, user, context); }"),
		jsSource("b", "function (user, context, callback) { context.idToken.order.push('b'); callback(null, user, context); }"),
		{Name: "disabled", Code: []byte("function (user, context, callback) { context.idToken.order.push('disabled'); callback(null, user, context); }")},
		jsSource("c", "function (user, context, callback) { context.idToken.order.push('c'); callback(null, user, context); }"),
	}
	e := newEngine(t, Options{Rules: rules})
	if diff := cmp.Diff([]string{"a", "b", "c"}, e.Rules()); diff != "" {
		t.Errorf("Rules() (-want +got):\n%s", diff)
	}
	res := e.Run(context.Background(), Input{})
	if diff := cmp.Diff([]any{"a", "b", "c"}, res.IDTokenClaims["order"]); diff != "" || res.Err != nil {
		t.Errorf("order (-want +got):\n%s (err %v)", diff, res.Err)
	}

	stop := newEngine(t, Options{Rules: []Source{
		rules[0],
		jsSource("stopper", "function (user, context, callback) { callback(new UnauthorizedError('no')); }"),
		jsSource("after", "function (user, context, callback) { global.afterRan = true; callback(null, user, context); }"),
		jsSource("probe", "function (user, context, callback) { callback(null, user, context); }"),
	}, PoolSize: 1})
	res = stop.Run(context.Background(), Input{})
	if res.Err == nil || res.Rule != "stopper" || res.Multifactor != nil || res.IDTokenClaims != nil {
		t.Fatalf("got %+v", res)
	}
}

func TestObserver(t *testing.T) {
	obs := &recordingObserver{}
	rules := []Source{
		jsSource("fine", "function (user, context, callback) { callback(null, user, context); }"),
		jsSource("denies", "function (user, context, callback) { callback(new Error('x')); }"),
	}
	e := newEngine(t, Options{Rules: rules, Observer: obs})
	e.Run(context.Background(), Input{})
	want := []string{"fine:ok", "denies:error"}
	if diff := cmp.Diff(want, obs.got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ code, outcome string }{
		{"function (user, context, callback) { throw new Error('x'); }", "exception"},
		{"function (user, context, callback) { while (true) {} }", "timeout"},
	} {
		obs := &recordingObserver{}
		e := newEngine(t, Options{Rules: []Source{jsSource("r", tc.code)}, Observer: obs, RuleTimeout: 20 * time.Millisecond})
		e.Run(context.Background(), Input{})
		if diff := cmp.Diff([]string{"r:" + tc.outcome}, obs.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.code, diff)
		}
	}
}

type recordingObserver struct{ got []string }

func (o *recordingObserver) ObserveRule(rule, outcome string, d time.Duration) {
	if d < 0 {
		outcome += "(negative duration)"
	}
	o.got = append(o.got, rule+":"+outcome)
}

func TestConsole(t *testing.T) {
	logs := &logRecorder{}
	rule := jsSource("chatty", `function (user, context, callback) {
  var cyclic = {name: 'loop'};
  cyclic.self = cyclic;
  console.log('hello', user.user_id, 42, {a: [1, 2]});
  console.warn('cyclic %s', 'object:', cyclic);
  console.error(new Error('shown'));
  console.debug('%d%% done %j', 50, {x: 1});
  callback(null, user, context);
}`)
	res := runOne(t, Options{Rules: []Source{rule}, Logger: slog.New(logs)}, Input{User: map[string]any{"user_id": "alice"}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, tc := range []struct {
		msg   string
		level slog.Level
	}{
		{`hello alice 42 {"a":[1,2]}`, slog.LevelInfo},
		{`cyclic object: {"name":"loop","self":"[Circular]"}`, slog.LevelWarn},
		{"Error: shown", slog.LevelError},
		{`50% done {"x":1}`, slog.LevelDebug},
	} {
		rec, ok := logs.find(tc.msg)
		if !ok {
			t.Errorf("no log %q in %+v", tc.msg, logs.records)
			continue
		}
		if rec.Level != tc.level || rec.Attrs["rule"] != "chatty" {
			t.Errorf("log %+v: want level %v and rule=chatty", rec, tc.level)
		}
	}
}

func TestEngineOptions(t *testing.T) {
	if _, err := New(Options{RuleTimeout: -1}); err == nil {
		t.Error("negative timeout accepted")
	}
	e := newEngine(t, Options{})
	if res := e.Run(context.Background(), Input{}); res.Err != nil {
		t.Errorf("no rules: %v", res.Err)
	}
	e.Close()
	e.Close()
	res := e.Run(context.Background(), Input{})
	if res.Err == nil || res.Err.Kind != KindInternal {
		t.Errorf("after Close: %+v", res.Err)
	}
	var le *LoadError
	_, err := New(Options{Rules: []Source{jsSource("x", "function (user, context, callback, extra) {}"), jsSource("x", "1")}})
	if !errors.As(err, &le) || !errors.Is(err, ErrInvalidRules) {
		t.Fatalf("err = %v", err)
	}
}
