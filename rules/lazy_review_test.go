package rules

import (
	"context"
	"fmt"
	"runtime/debug"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// manyStrings is a map[string]string with more keys than lazyIndexMin, so
// that the lazy object indexes its properties.
func manyStrings(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		// Insertion order differs from sorted order.
		m[fmt.Sprintf("k%02d", (i*7)%n)] = fmt.Sprintf("v%02d", (i*7)%n)
	}
	return m
}

// TestLazyStringMapsManyKeys: string maps (context.clientMetadata, string
// map claims) with enough keys to be indexed read back the right values.
func TestLazyStringMapsManyKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Input
		body string
	}{
		{"client metadata read", Input{Context: Context{ClientMetadata: manyStrings(40)}},
			`var m = context.clientMetadata, out = Object.keys(m).map(function (k) { return k + '=' + m[k]; });`},
		{"client metadata delete", Input{Context: Context{ClientMetadata: manyStrings(40)}},
			`var m = context.clientMetadata; delete m.k03; delete m.k39; m.k05 = 'x';
			var out = [Object.keys(m), m.k03, m.k04, m.k05, m.k38, JSON.stringify(m)];`},
		{"string map claim", Input{User: map[string]any{"labels": manyStrings(50)}},
			`var out = [user.labels.k00, user.labels.k17, user.labels.k49, 'k10' in user.labels, JSON.stringify(user.labels)];`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lazy, native := bothModes(t, Options{Rules: []Source{jsSource("r", ruleReporting(tc.body))}})
			want := native.Run(context.Background(), tc.in)
			got := lazy.Run(context.Background(), tc.in)
			if want.Err != nil {
				t.Fatal(want.Err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-native +lazy):\n%s", diff)
			}
		})
	}
}

// TestLazyPrototypeCycles: goja lets a dynamic object's prototype be set
// to anything, so without a check a rule could make a prototype chain
// loop, after which a property lookup recurses until the Go stack
// overflows (a fatal error: the whole server dies) and instanceof spins
// forever outside the reach of the interrupt. Such rules must fail (or
// get the TypeError a native object gives) and the server keep serving.
func TestLazyPrototypeCycles(t *testing.T) {
	// A crash should be quick and small rather than take 1 GB of stack.
	defer debug.SetMaxStack(debug.SetMaxStack(64 << 20))
	for _, tc := range []struct{ name, body string }{
		{"self via setPrototypeOf", `Object.setPrototypeOf(context, context); var out = context.nope;`},
		{"self via __proto__", `user.__proto__ = user; var out = user.nope;`},
		{"request via __proto__", `context.request.__proto__ = context.request; var out = 'x' in context.request;`},
		{"two lazy objects", `Object.setPrototypeOf(user, context); Object.setPrototypeOf(context, user); var out = user.nope;`},
		{"through a native object", `var n = Object.create(user); Object.setPrototypeOf(user, n); var out = n.nope;`},
		{"instanceof", `Object.setPrototypeOf(user, user); var out = user instanceof Array;`},
		{"isPrototypeOf", `Object.setPrototypeOf(context, context); var out = Array.prototype.isPrototypeOf(context);`},
		{"setter on a native object", `Object.setPrototypeOf(user, user); var out = 1; ({}).__proto__ = user;`},
		{"Reflect", `var R = globalThis['Refl' + 'ect']; var out = R.setPrototypeOf(user, user); out = [out, user.nope];`},
		{"Proxy", `var P = globalThis['Pro' + 'xy']; var p = new P(user, {}); Object.setPrototypeOf(p, user); var out = user.nope;`},
		{"caught", `var out; try { Object.setPrototypeOf(context, context); out = 'no error'; } catch (e) { out = e.name; } out = [out, context.nope];`},
		{"ipaddr object", `var a = require('ipaddr.js').parse('1.2.3.4'); Object.setPrototypeOf(a, a); var out = a.nope;`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rule := jsSource("r", ruleReporting(tc.body))
			lazy, native := bothModes(t, Options{Rules: []Source{rule}, RuleTimeout: 500 * time.Millisecond, PoolSize: 1})
			done := make(chan Result, 1)
			go func() { done <- lazy.RunDebug(context.Background(), richInput()) }()
			var res Result
			select {
			case res = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the run hangs")
			}
			// As on native objects: the same TypeError, or false from
			// Reflect.setPrototypeOf.
			// A Proxy whose target is user leads back to user itself: a
			// loop without a Proxy on it, refused up front as goja does.
			want := native.RunDebug(context.Background(), richInput())
			if diff := cmp.Diff(want, res); diff != "" {
				t.Errorf("(-native +lazy):\n%s", diff)
			}
			// The engine keeps serving.
			ok := newEngine(t, Options{Rules: []Source{jsSource("ok", "function (u, c, cb) { cb(null, u, c); }")}})
			if r := ok.Run(context.Background(), richInput()); r.Err != nil {
				t.Fatal(r.Err)
			}
		})
	}
}

// TestProtoKeysStayData: a "__proto__" key of input data (a JWT claim, a
// query parameter) is an own property, as JSON.parse makes it in Node,
// never the object's prototype: otherwise a claim could supply inherited
// values for claims the token does not have.
func TestProtoKeysStayData(t *testing.T) {
	evil := map[string]any{"email_verified": true, "roles": []any{"admin"}}
	for _, tc := range []struct {
		name string
		in   Input
		body string
		want any
	}{
		{"user claim", Input{User: map[string]any{"sub": "x", "__proto__": evil}},
			`var out = [user.email_verified, user.roles, user.hasOwnProperty('__proto__'), Object.getPrototypeOf(user) === Object.prototype, JSON.stringify(user.__proto__)];`,
			[]any{nil, nil, true, true, `{"email_verified":true,"roles":["admin"]}`}},
		{"nested claim", Input{User: map[string]any{"app_metadata": map[string]any{"__proto__": evil}}},
			`var m = user.app_metadata; var out = [m.email_verified, m.hasOwnProperty('__proto__'), Object.keys(m)];`,
			[]any{nil, true, []any{"__proto__"}}},
		{"claim in an array", Input{User: map[string]any{"orgs": []map[string]any{{"__proto__": evil}}}},
			`var out = [user.orgs[0].roles, Object.keys(user.orgs[0])];`,
			[]any{nil, []any{"__proto__"}}},
		{"context extra and query", Input{Context: Context{Extra: map[string]any{"__proto__": evil}, Request: Request{Query: map[string]any{"__proto__": evil}}}},
			`var out = [context.roles, context.request.query.roles, context.hasOwnProperty('__proto__'), context.request.query.hasOwnProperty('__proto__')];`,
			[]any{nil, nil, true, true}},
		{"client metadata", Input{Context: Context{ClientMetadata: map[string]string{"__proto__": "x"}}},
			`var out = [context.clientMetadata.__proto__, Object.keys(context.clientMetadata)];`,
			[]any{"x", []any{"__proto__"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lazy, native := bothModes(t, Options{Rules: []Source{jsSource("r", ruleReporting(tc.body))}})
			for _, e := range []*Engine{lazy, native} {
				res := e.Run(context.Background(), tc.in)
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				if diff := cmp.Diff(tc.want, res.IDTokenClaims["out"]); diff != "" {
					t.Errorf("native=%v (-want +got):\n%s", e.nativeInput, diff)
				}
			}
		})
	}
}
