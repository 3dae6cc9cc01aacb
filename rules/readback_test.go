package rules

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dop251/goja"
	"github.com/google/go-cmp/cmp"
)

// readMultifactorExport is readMultifactor as it was before it stopped
// exporting the whole object: the reference for TestReadMultifactorParity.
func (rt *jsRuntime) readMultifactorExport(v goja.Value, rule string) (*Multifactor, *Error) {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil, nil
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		return nil, internalErr(rule, "MultifactorError", "context.multifactor must be an object")
	}
	m := rt.exportMap(obj)
	if m == nil {
		return nil, internalErr(rule, "MultifactorError", "context.multifactor must be an object")
	}
	provider := "any"
	switch p := m["provider"].(type) {
	case nil:
	case string:
		if t := strings.ToLower(strings.TrimSpace(p)); t != "" {
			provider = t
		}
	default:
		return nil, internalErr(rule, "MultifactorError", "context.multifactor.provider must be a string")
	}
	mf := &Multifactor{Provider: provider, AllowRememberBrowser: true}
	switch provider {
	case "any", "google-authenticator", "duo", "none":
	case "guardian":
		mf.Provider, mf.RequestedProvider = "any", provider
	default:
		return nil, internalErr(rule, "MultifactorError", "unknown/unsupported multifactor provider %q", provider)
	}
	if b, ok := m["allowRememberBrowser"].(bool); ok && !b {
		mf.AllowRememberBrowser = false
	}
	mf.IgnoreCookie = getp(obj, "ignoreCookie").ToBoolean()
	skip := []string{"provider", "allowRememberBrowser", "ignoreCookie"}
	if mf.Provider == "duo" {
		skip = append(skip, mfDuoKeys[:]...)
		duo := &DuoOptions{}
		var missing []string
		for _, f := range []struct {
			key string
			dst *string
		}{{"ikey", &duo.IKey}, {"skey", &duo.SKey}, {"host", &duo.Host}} {
			s, _ := m[f.key].(string)
			if strings.TrimSpace(s) == "" {
				missing = append(missing, f.key)
			}
			*f.dst = s
		}
		if len(missing) > 0 {
			return nil, internalErr(rule, "MultifactorError", "duo multifactor requires ikey, skey and host (missing or empty: %s)", strings.Join(missing, ", "))
		}
		if u, ok := m["username"]; ok && u != nil {
			s, ok := u.(string)
			if !ok {
				return nil, internalErr(rule, "MultifactorError", "context.multifactor.username must be a string")
			}
			duo.Username = s
		}
		if a, ok := m["admin"]; ok && a != nil {
			am, ok := a.(map[string]any)
			if !ok {
				return nil, internalErr(rule, "MultifactorError", "context.multifactor.admin must be an object")
			}
			duo.Admin = am
		}
		mf.Duo = duo
	}
	for k, val := range m {
		if slices.Contains(skip, k) {
			continue
		}
		if mf.Options == nil {
			mf.Options = map[string]any{}
		}
		mf.Options[k] = val
	}
	return mf, nil
}

// TestReadMultifactorParity checks that readMultifactor gives what
// exporting the whole object gave, and runs the same getters in the same
// order.
func TestReadMultifactorParity(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	rt, err := e.newRuntime()
	if err != nil {
		t.Fatal(err)
	}
	many := "{provider: 'any'"
	for i := range maxExportNodes + 5 {
		many += fmt.Sprintf(", k%d: %d", i, i)
	}
	many += ", allowRememberBrowser: false}"
	for _, mf := range []string{
		`undefined`, `null`, `'any'`, `42`, `function () {}`, `new Date(0)`, `[1, 2]`, `new Uint8Array(2)`, `/re/`, `new Error('x')`,
		`{}`, `{provider: 'any', allowRememberBrowser: false}`, `{provider: 'any', allowRememberBrowser: true}`,
		`{provider: ' Google-Authenticator '}`, `{provider: 'guardian'}`, `{provider: 'none', ignoreCookie: 1}`,
		`{provider: ''}`, `{provider: null}`, `{provider: undefined}`, `{provider: NaN}`, `{provider: Symbol('s')}`, `{provider: 10n}`,
		`{provider: 5}`, `{provider: new String('duo')}`, `{provider: function () {}}`, `{provider: 'sms'}`,
		`{allowRememberBrowser: 0}`, `{allowRememberBrowser: 'false'}`, `{allowRememberBrowser: new Boolean(false)}`,
		`{provider: 'any', extra: {a: [1, 'b', null, undefined, NaN]}, n: 1.5, s: 'x', d: new Date(0), f: function () {}}`,
		`{provider: 'any', ikey: 'i', skey: 's', host: 'h', username: 7, admin: {skey: 'a'}}`,
		`{provider: 'duo', ikey: 'i', skey: 's', host: 'h', username: 'u', admin: {ikey: 'a'}, other: 1}`,
		`{provider: 'duo', ikey: 'i', skey: ' ', username: null, admin: null}`,
		`{provider: 'duo', ikey: 'i', skey: 's', host: 'h', username: 7}`,
		`{provider: 'duo', ikey: 'i', skey: 's', host: 'h', admin: 'x'}`,
		`{provider: 'duo', ikey: 'i', skey: 's', host: 'h', admin: [1]}`,
		`(function () { var o = {provider: 'any'}; o.self = o; o.deep = {o: o}; return o; })()`,
		`Object.create({provider: 'duo', ignoreCookie: true}, {allowRememberBrowser: {value: false, enumerable: true}, hidden: {value: 1}})`,
		`{get provider() { log.push('provider'); return 'any'; }, get x() { log.push('x'); return {get y() { log.push('y'); return 1; }}; }, get ignoreCookie() { log.push('ic'); return true; }, get allowRememberBrowser() { log.push('arb'); return false; }}`,
		`{get x() { log.push('x'); return 1; }, provider: 'sms', get z() { log.push('z'); return 2; }}`,
		`{provider: {get toString() { log.push('ts'); return function () { return 'any'; }; }}, get after() { log.push('after'); return 1; }}`,
		`new Proxy({provider: 'any', a: 1}, {get: function (t, k) { log.push('get ' + String(k)); return t[k]; }})`,
		many,
	} {
		t.Run(mf, func(t *testing.T) {
			var got, want *Multifactor
			var gotErr, wantErr *Error
			var gotLog, wantLog any
			for i, read := range []func(goja.Value, string) (*Multifactor, *Error){rt.readMultifactor, rt.readMultifactorExport} {
				v, err := rt.vm.RunString("var log = []; (" + mf + ")")
				if err != nil {
					t.Fatal(err)
				}
				var m *Multifactor
				var rerr *Error
				if err, _ := rt.guard(time.Now().Add(time.Second), func() { m, rerr = read(v, "r") }); err != nil {
					t.Fatal(err)
				}
				l := rt.vm.Get("log").Export()
				if i == 0 {
					got, gotErr, gotLog = m, rerr, l
				} else {
					want, wantErr, wantLog = m, rerr, l
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("multifactor (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantErr, gotErr); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantLog, gotLog); diff != "" {
				t.Errorf("getters run (-want +got):\n%s", diff)
			}
		})
	}
}

// TestThrowingGetterNamesItsRule: a getter on context.redirect that
// throws fails the rule whose context carries it, as an exception of
// that rule, also when it is the last one and an earlier rule set
// multifactor (the read after each rule catches it, not the read-back).
func TestThrowingGetterNamesItsRule(t *testing.T) {
	rules := []Source{
		jsSource("sets-mfa", `function (user, context, callback) { context.multifactor = {provider: 'any'}; callback(null, user, context); }`),
		jsSource("getter", `function (user, context, callback) {
  var c = {multifactor: context.multifactor, get redirect() { throw new Error('boom'); }};
  callback(null, user, c);
}`),
	}
	res := runOne(t, Options{Rules: rules}, Input{User: map[string]any{"user_id": "u"}})
	if res.Err == nil || res.Err.Kind != KindException || res.Rule != "getter" || res.Err.Rule != "getter" {
		t.Fatalf("got rule %q, %+v; want an exception of rule getter", res.Rule, res.Err)
	}
	if strings.HasPrefix(res.Err.Message, "reading results") || !strings.Contains(res.Err.Message, "boom") {
		t.Errorf("message %q, want the getter's error", res.Err.Message)
	}
}
