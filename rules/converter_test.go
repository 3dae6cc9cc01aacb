package rules

import (
	"encoding/json"
	"testing"

	"github.com/dop251/goja"
	"github.com/google/go-cmp/cmp"
)

// describeJS is what a rule can see of a value: every own key in
// enumeration order, with each value's type and (for primitives) value,
// recursively.
const describeJS = `(function describe(v, depth) {
  if (v === null || typeof v !== 'object') return [typeof v, v === undefined ? 'undefined' : JSON.stringify(v)];
  if (depth > 40) return 'deep';
  var out = [Array.isArray(v) ? 'array' : 'object', Object.getPrototypeOf(v) === Object.prototype || Array.isArray(v)];
  var keys = Object.keys(v);
  for (var i = 0; i < keys.length; i++) out.push(keys[i], describe(v[keys[i]], depth + 1));
  out.push('json', JSON.stringify(v));
  return out;
})`

// TestLazyBuilderMatchesNative feeds the same inputs through the native
// builders (the reference) and the lazy ones, and compares what
// JavaScript sees of user and context, and the budget each charged.
func TestLazyBuilderMatchesNative(t *testing.T) {
	e := newEngine(t, Options{})
	rt, err := e.newRuntime()
	if err != nil {
		t.Fatal(err)
	}
	defer rt.close()
	dv, err := rt.vm.RunString(describeJS)
	if err != nil {
		t.Fatal(err)
	}
	describe, _ := goja.AssertFunction(dv)
	see := func(o *goja.Object) string {
		v, err := describe(goja.Undefined(), o, rt.vm.ToValue(0))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v.Export())
		return string(b)
	}
	extra := seedInput("198.51.100.4")
	extra.Context.Extra = map[string]any{"zz": 1, "request": "shadowed", "aa": map[string]any{"b": []any{1, "x"}}}
	extra.Context.Protocol = "oidc-basic-profile"
	extra.Context.ClientMetadata = map[string]string{"k": "v", "a": ""}
	extra.Context.Request.Geoip = map[string]any{"country_code": "FR"}
	extra.Context.Request.Query = map[string]any{"q": []string{"1", "2"}}
	extra.Context.Stats = map[string]any{"loginsCount": json.Number("7")}
	for name, in := range map[string]Input{
		"empty": {},
		"seed":  seedInput("203.0.113.7"),
		"rich":  richInput(),
		"extra": extra,
	} {
		t.Run(name, func(t *testing.T) {
			nb := inputBudget{limit: 1 << 20}
			nu, err := rt.buildUser(in.User, &nb)
			if err != nil {
				t.Fatal(err)
			}
			nc, err := rt.buildContext(&in.Context, &nb)
			if err != nil {
				t.Fatal(err)
			}
			lb := inputBudget{limit: 1 << 20}
			li := &lazyInput{}
			lu, ok := rt.lazyUser(li, in.User, &lb)
			if !ok {
				t.Fatal("lazyUser refused the input")
			}
			lc, ok := rt.lazyContext(li, &in.Context, &lb)
			if !ok {
				t.Fatal("lazyContext refused the input")
			}
			if diff := cmp.Diff(see(nu), see(lu)); diff != "" {
				t.Errorf("user (-native +lazy):\n%s", diff)
			}
			if diff := cmp.Diff(see(nc), see(lc)); diff != "" {
				t.Errorf("context (-native +lazy):\n%s", diff)
			}
			if nb.used != lb.used {
				t.Errorf("budget: native %d, lazy %d", nb.used, lb.used)
			}
		})
	}
}
