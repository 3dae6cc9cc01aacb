package rules

import (
	"net/netip"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dop251/goja"
)

func FuzzParseGallery(f *testing.F) {
	f.Add(mustRead(f, filepath.Join("testdata", "auth0-examples", "000_duo.md")))
	for _, s := range []string{
		"# T\n```js\nfunction (u, c, cb) {}\n```\n",
		"---\ntitle: x\n---\n```javascript\nA\n```",
		"~~~JS\nA\n~~~\n",
		"\ufeff---\r\ngallery: true\r\n---\r\n```js\r\nA\r\n```\r\n",
		"---\na: [1\n---\n```js\nA\n```",
		"---\n- a\n---\n```js\nA\n```",
		"---\nfields:\n  - value: K\n    mandatory: true\n---\n```js\nA\n```",
		"---\na: &x [*x]\n---\n",
		"```js\n```js\n```",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGallery(data)
		if err != nil {
			return
		}
		if g.CodeLine < 1 {
			t.Fatalf("CodeLine = %d", g.CodeLine)
		}
		// Whatever parses must also go through the analyser without panics.
		_, _ = analyze(Source{Name: "f", Path: "f.md", Code: data, Enabled: true}, 0, map[string]string{}, builtinModules)
	})
}

// FuzzIPAddr feeds random strings through the ipaddr.js shim: the Go side
// must never panic, and where net/netip understands the input the answers
// must agree with it.
func FuzzIPAddr(f *testing.F) {
	for _, s := range [][2]string{
		{"192.168.1.140", "192.168.1.134/26"},
		{"203.0.113.7", "192.168.1.134/26"},
		{"::ffff:192.168.1.1", "::ffff:0:0/96"},
		{"2001:db8::1", "2001:db8::/32"},
		{"fe80::1%eth0", "fe80::/10"},
		{"0xc0.0250.1.1", "3232235777/8"},
		{"1.2.3.4", "::/0"},
		{"", "/"},
		{"1::2::3", "1.2.3.4/99999999999999999999"},
	} {
		f.Add(s[0], s[1], int64(24))
	}
	e, err := New(Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(e.Close)
	rt, err := e.newRuntime()
	if err != nil {
		f.Fatal(err)
	}
	modV, err := rt.requireModule("ipaddr.js")
	if err != nil {
		f.Fatal(err)
	}
	mod := modV.ToObject(rt.vm)
	fn := func(o *goja.Object, name string) goja.Callable {
		c, ok := goja.AssertFunction(o.Get(name))
		if !ok {
			f.Fatalf("%s is not a function", name)
		}
		return c
	}
	parse, parseCIDR, isValid, process, subnetMatch := fn(mod, "parse"), fn(mod, "parseCIDR"), fn(mod, "isValid"), fn(mod, "process"), fn(mod, "subnetMatch")
	v4 := mod.Get("IPv4").ToObject(rt.vm)
	v4parse := fn(v4, "parse")
	var mu sync.Mutex

	f.Fuzz(func(t *testing.T, addr, cidr string, bits int64) {
		mu.Lock()
		defer mu.Unlock()
		vm := rt.vm
		call := func(c goja.Callable, this goja.Value, args ...goja.Value) (goja.Value, bool) {
			v, err := c(this, args...)
			return v, err == nil
		}
		a, aok := call(parse, goja.Undefined(), vm.ToValue(addr))
		_, _ = call(isValid, goja.Undefined(), vm.ToValue(addr))
		_, _ = call(process, goja.Undefined(), vm.ToValue(addr))
		_, _ = call(v4parse, goja.Undefined(), vm.ToValue(addr))
		r, rok := call(parseCIDR, goja.Undefined(), vm.ToValue(cidr))
		if aok {
			ao := a.ToObject(vm)
			for _, m := range []string{"toString", "toNormalizedString", "range", "toByteArray", "prefixLengthFromSubnetMask", "kind"} {
				_, _ = call(fn(ao, m), ao)
			}
			match := fn(ao, "match")
			_, _ = call(match, ao, a, vm.ToValue(bits))
			if rok {
				got, ok := call(match, ao, r)
				want, comparable := netipMatch(addr, cidr)
				if ok && comparable && got.ToBoolean() != want {
					t.Fatalf("%q.match(parseCIDR(%q)) = %v, net/netip says %v", addr, cidr, got, want)
				}
				list := vm.NewObject()
				_ = list.Set("net", vm.NewArray(r))
				_, _ = call(subnetMatch, goja.Undefined(), a, list, vm.ToValue("none"))
			}
			if p, err := netip.ParseAddr(addr); err == nil && p.Is4() {
				s, _ := call(fn(ao, "toString"), ao)
				if s.String() != p.String() {
					t.Fatalf("parse(%q).toString() = %q, want %q", addr, s, p)
				}
			}
		}
		rt.vm.ClearInterrupt()
	})
}

// netipMatch answers addr ∈ cidr with net/netip when both are plain
// canonical forms of the same family.
func netipMatch(addr, cidr string) (match, comparable bool) {
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Zone() != "" {
		return false, false
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil || p.Addr().Zone() != "" || a.Is4() != p.Addr().Is4() {
		return false, false
	}
	return p.Masked().Contains(a), true
}
