package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// protoHelperEnv selects TestHelperProtoCycle in a child test process; its
// value is the rule's body.
const protoHelperEnv = "STEPUP_PROTO_HELPER_BODY"

// protoPrelude gives a rule body P (Proxy) and R (Reflect): named plainly,
// which makes the engine build native user and context objects, or
// assembled at run time, which leaves them lazy.
func protoPrelude(native bool) string {
	if native {
		return "var P = Proxy, R = Reflect;\n"
	}
	return "var P = globalThis['Pro' + 'xy'], R = globalThis['Refl' + 'ect'];\n"
}

// protoHelperReport is what the child prints on its last line.
type protoHelperReport struct {
	Native bool `json:"native"`
	// Errs are the errors of two runs, as "kind name: message".
	Errs      []string `json:"errs"`
	Discarded int64    `json:"discarded"`
}

// TestHelperProtoCycle is not a test: it runs one rule in a child process
// for TestProtoCyclesThroughProxies, since without the guard the rule
// kills its process with a fatal stack overflow that recover cannot catch.
func TestHelperProtoCycle(t *testing.T) {
	body, ok := os.LookupEnv(protoHelperEnv)
	if !ok {
		t.Skip("helper for TestProtoCyclesThroughProxies")
	}
	// A crash is then quick and small rather than 1 GB of stack.
	debug.SetMaxStack(64 << 20)
	e := newEngine(t, Options{Rules: []Source{jsSource("r", ruleReporting(body))}, RuleTimeout: time.Second, PoolSize: 1})
	rep := protoHelperReport{Native: e.nativeInput}
	// Twice: the engine keeps serving, on a fresh runtime.
	for range 2 {
		done := make(chan Result, 1)
		go func() { done <- e.Run(context.Background(), richInput()) }()
		var res Result
		select {
		case res = <-done:
		case <-time.After(10 * time.Second):
			fmt.Println("HANG")
			os.Exit(3)
		}
		if res.Err == nil {
			rep.Errs = append(rep.Errs, "none")
		} else {
			rep.Errs = append(rep.Errs, fmt.Sprintf("%v %s: %s (%s)", res.Err.Kind, res.Err.Name, res.Err.Message, res.Err.Rule))
		}
	}
	rep.Discarded = e.Stats().RuntimesDiscarded
	out, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\nREPORT %s\n", out)
}

// TestProtoCyclesThroughProxies: goja refuses a prototype loop among
// ordinary objects, but its check stops at a Proxy, so without the guard
// a rule can close a loop through one, after which a lookup recurses in Go
// until the stack overflows (fatal: the whole server dies) and instanceof
// or isPrototypeOf spin forever. Each rule runs in a child process, which
// must exit normally and report the rule failed (fail closed, even when
// the rule catches the error) with its runtime discarded.
func TestProtoCyclesThroughProxies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	for _, tc := range []struct{ name, body string }{
		{"setPrototypeOf", `var a = {}; Object.setPrototypeOf(a, new P(a, {})); var out = a.nope;`},
		{"__proto__", `var a = {}; a.__proto__ = new P(a, {}); var out = a.nope;`},
		{"__proto__ setter called", `var a = {}, set = Object.getOwnPropertyDescriptor(Object.prototype, '__proto__').set;
			set.call(a, new P(a, {})); var out = 'x' in a;`},
		{"Reflect", `var a = {}; var ok = R.setPrototypeOf(a, new P(a, {})); var out = [ok, a.nope];`},
		{"setPrototypeOf trap", `var a = {}, b = {};
			var p = new P(b, { setPrototypeOf: function (t, v) { return R.setPrototypeOf(a, v); } });
			Object.setPrototypeOf(p, new P(a, {})); var out = a.nope;`},
		{"setPrototypeOf trap via __proto__", `var a = {};
			var p = new P(a, { setPrototypeOf: function (t, v) { t.__proto__ = v; return true; } });
			Object.setPrototypeOf(p, new P(p, {})); var out = a.nope;`},
		{"on the proxy", `var a = {}, p = new P(a, {}); Object.setPrototypeOf(p, new P(p, {})); var out = a.nope;`},
		{"two proxies", `var a = {}, b = {}; Object.setPrototypeOf(a, new P(b, {})); Object.setPrototypeOf(b, new P(a, {})); var out = a.nope;`},
		{"nested proxies", `var a = {}; Object.setPrototypeOf(a, new P(new P(Object.create(a), {}), {})); var out = a.nope;`},
		{"instanceof", `var a = {}; try { Object.setPrototypeOf(a, new P(a, {})); } catch (e) {} var out = a instanceof Array;`},
		{"isPrototypeOf", `var a = {}; try { a.__proto__ = new P(a, {}); } catch (e) {} var out = Array.prototype.isPrototypeOf(a);`},
		{"caught", `var a = {}, out; try { Object.setPrototypeOf(a, new P(a, {})); out = 'set'; } catch (e) { out = e.name; }`},
		{"user", `Object.setPrototypeOf(user, new P(user, {})); var out = user.nope;`},
		{"context", `context.__proto__ = new P(context, {}); var out = context instanceof Array;`},
		{"request", `R.setPrototypeOf(context.request, new P(context.request, {})); var out = context.request.nope;`},
	} {
		for _, native := range []bool{true, false} {
			mode := map[bool]string{true: "native", false: "lazy"}[native]
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProtoCycle$", "-test.count=1")
				cmd.Env = append(os.Environ(), protoHelperEnv+"="+protoPrelude(native)+tc.body)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("child process failed: %v\n%s", err, tail(out))
				}
				i := strings.LastIndex(string(out), "\nREPORT ")
				if i < 0 {
					t.Fatalf("no report:\n%s", tail(out))
				}
				line, _, _ := strings.Cut(string(out[i+len("\nREPORT "):]), "\n")
				var rep protoHelperReport
				if err := json.Unmarshal([]byte(line), &rep); err != nil {
					t.Fatalf("report %q: %v", line, err)
				}
				if rep.Native != native {
					t.Errorf("native objects = %v, want %v", rep.Native, native)
				}
				want := fmt.Sprintf("%v TypeError: Cyclic __proto__ value (r)", KindException)
				if diff := cmp.Diff([]string{want, want}, rep.Errs); diff != "" {
					t.Errorf("rule errors (-want +got):\n%s", diff)
				}
				if rep.Discarded != 2 {
					t.Errorf("runtimes discarded = %d, want 2", rep.Discarded)
				}
			})
		}
	}
}

// tail is the end of a child's output, enough to show a fatal error.
func tail(b []byte) string {
	const n = 4000
	if len(b) > n {
		b = b[:n] // the fatal error and the first goroutine come first
	}
	return string(b)
}

// TestProtoGuardOrdinary: the guard leaves ordinary prototype changes
// alone, Proxies included, and a loop among ordinary objects keeps goja's
// own refusal (a TypeError the rule may catch, false from Reflect), in
// both modes.
func TestProtoGuardOrdinary(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       any
	}{
		{"set prototypes", `var base = { greet: function () { return 'hi ' + this.n; } };
			var a = { n: 'a' }, b = { n: 'b' }, c = { n: 'c' }, d = { n: 'd' };
			Object.setPrototypeOf(a, base); b.__proto__ = new P(base, {}); var ok = R.setPrototypeOf(c, a);
			Object.setPrototypeOf(user, base); context.__proto__ = a; R.setPrototypeOf(d, new P(new P(a, {}), {}));
			user.n = 'u';
			var out = [a.greet(), b.greet(), c.greet(), d.greet(), user.greet(), context.greet(), ok, base.isPrototypeOf(c),
				a instanceof Object, Object.getPrototypeOf(c) === a, 'greet' in d];`,
			[]any{"hi a", "hi b", "hi c", "hi d", "hi u", "hi a", true, true, true, true, true}},
		{"same prototype again", `var a = {}, p = new P(a, {}), b = Object.create(p);
			Object.setPrototypeOf(b, p); b.__proto__ = p; var out = [R.setPrototypeOf(b, p), Object.getPrototypeOf(b) === p];`,
			[]any{true, true}},
		{"null", `var a = {}; Object.setPrototypeOf(a, null); user.__proto__ = null; var out = [Object.getPrototypeOf(a), Object.getPrototypeOf(user), R.setPrototypeOf(a, Object.prototype)];`,
			[]any{nil, nil, true}},
		{"plain loop caught", `var a = {}, b = Object.create(a), out = [];
			try { Object.setPrototypeOf(a, b); } catch (e) { out.push(e.name + ': ' + e.message); }
			try { a.__proto__ = a; } catch (e) { out.push(e.name + ': ' + e.message); }
			try { Object.setPrototypeOf(user, Object.create(user)); } catch (e) { out.push(e.name + ': ' + e.message); }
			out.push(R.setPrototypeOf(a, b), R.setPrototypeOf(context, context), a.nope);`,
			[]any{"TypeError: Cyclic __proto__ value", "TypeError: Cyclic __proto__ value", "TypeError: Cyclic __proto__ value", false, false, nil}},
		{"proxy of a proxy made the prototype", `var a = {}, p = new P(a, {});
			var out = [R.setPrototypeOf(p, Object.create(null)), Object.getPrototypeOf(a) === Object.getPrototypeOf(p), a.nope];`,
			[]any{true, true, nil}},
	} {
		for _, native := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/native=%v", tc.name, native), func(t *testing.T) {
				e := newEngine(t, Options{Rules: []Source{jsSource("r", ruleReporting(protoPrelude(native)+tc.body))}})
				if e.nativeInput != native {
					t.Fatalf("native objects = %v, want %v", e.nativeInput, native)
				}
				res := e.Run(context.Background(), richInput())
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				if diff := cmp.Diff(tc.want, res.IDTokenClaims["out"]); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				if d := e.Stats().RuntimesDiscarded; d != 0 {
					t.Errorf("runtimes discarded = %d", d)
				}
			})
		}
	}
}
