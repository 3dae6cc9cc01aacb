package rules

import (
	"os"
	"strings"
	"testing"

	"github.com/dop251/goja"
	"github.com/google/go-cmp/cmp"
)

// TestModules covers querystring, url and Buffer against Node's
// documented behaviour.
func TestModules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    string
		want    any
		wantErr string
	}{
		// querystring
		{name: "qs.parse", code: `var o = require('querystring').parse('a=1&b=2&a=3&c=%20x+y&d&&e=');
return [o.a, o.b, o.c, o.d, o.e, Object.getPrototypeOf(o) === null];`,
			want: []any{[]any{"1", "3"}, "2", " x y", "", "", true}},
		{name: "qs.parse separators", code: `return require('querystring').parse('a:1;b:2', ';', ':');`, want: map[string]any{"a": "1", "b": "2"}},
		{name: "qs.parse maxKeys", code: `return Object.keys(require('querystring').parse('a=1&b=2&c=3', null, null, {maxKeys: 2}));`, want: []any{"a", "b"}},
		{name: "qs.parse malformed escapes", code: `return require('querystring').parse('x=%zz%41%E2%82%AC');`, want: map[string]any{"x": "%zzA€"}},
		{name: "qs.stringify", code: `return require('querystring').stringify({a: [1, 2], b: 'x y&z', c: true, d: null, e: {}});`, want: "a=1&a=2&b=x%20y%26z&c=true&d=&e="},
		{name: "qs.stringify separators", code: `return require('querystring').stringify({a: 1, b: 2}, ';', ':');`, want: "a:1;b:2"},
		{name: "qs.escape", code: `return require('querystring').escape("a b&c=d/é!'()*~");`, want: "a%20b%26c%3Dd%2F%C3%A9!'()*~"},
		{name: "qs.unescape", code: `return require('querystring').unescape('%41%20b+c%zz');`, want: "A b+c%zz"},

		// url (legacy)
		{name: "url.parse", code: `var u = require('url').parse('HTTPS://user:pw@Example.COM:8443/p/a th?x=1&y=2#frag');
return [u.protocol, u.slashes, u.auth, u.host, u.port, u.hostname, u.hash, u.search, u.query, u.pathname, u.path, u.href];`,
			want: []any{"https:", true, "user:pw", "example.com:8443", "8443", "example.com", "#frag", "?x=1&y=2", "x=1&y=2", "/p/a%20th", "/p/a%20th?x=1&y=2",
				"https://user:pw@example.com:8443/p/a%20th?x=1&y=2#frag"}},
		{name: "url.parse query object", code: `var u = require('url').parse('http://a.com/?x=1&x=2&y=z', true); return [u.query.x, u.query.y, u.search];`,
			want: []any{[]any{"1", "2"}, "z", "?x=1&x=2&y=z"}},
		{name: "url.parse no path", code: `var u = require('url').parse('http://a.com'); return [u.pathname, u.path, u.href, u.search, u.query];`,
			want: []any{"/", "/", "http://a.com/", nil, nil}},
		{name: "url.parse relative", code: `var u = require('url').parse('/cb?state=abc'); return [u.protocol, u.host, u.pathname, u.query];`,
			want: []any{nil, nil, "/cb", "state=abc"}},
		{name: "url.parse ipv6 host", code: `var u = require('url').parse('http://[::1]:8080/x'); return [u.hostname, u.host, u.port];`,
			want: []any{"::1", "[::1]:8080", "8080"}},
		{name: "url.parse backslashes", code: `return require('url').parse('http:\\\\evil.com\\path').hostname;`, want: "evil.com"},
		{name: "url.parse mailto", code: `var u = require('url').parse('mailto:jo@example.com'); return [u.protocol, u.auth, u.host, u.slashes];`,
			want: []any{"mailto:", "jo", "example.com", false}},
		{name: "url.parse needs a string", code: `require('url').parse(42);`, wantErr: "TypeError"},
		{name: "url.format object", code: `return require('url').format({protocol: 'https', hostname: 'a.com', port: 444, pathname: 'x/y', query: {q: 'a b', r: 1}, hash: 'h'});`,
			want: "https://a.com:444/x/y?q=a%20b&r=1#h"},
		{name: "url.format string round trip", code: `return require('url').format('https://a.com/x?y=1#z');`, want: "https://a.com/x?y=1#z"},
		{name: "url.resolve", code: `var url = require('url'); return [url.resolve('https://a.com/b/c', '../d'), url.resolve('https://a.com/b', 'https://e.com/f')];`,
			want: []any{"https://a.com/d", "https://e.com/f"}},

		// WHATWG URL
		{name: "URL", code: `var u = new URL('https://a.example.com:8443/p?q=1&r=two#h'); return [u.hostname, u.port, u.pathname, u.searchParams.get('r'), u.hash, u.host];`,
			want: []any{"a.example.com", "8443", "/p", "two", "#h", "a.example.com:8443"}},
		{name: "URLSearchParams", code: `var p = new URLSearchParams('a=1&b=2'); p.append('c', 'x y'); return p.toString();`, want: "a=1&b=2&c=x+y"},
		{name: "url module URL", code: `return require('url').URL === URL;`, want: true},
		{name: "invalid URL", code: `new URL('not a url');`, wantErr: "TypeError"},

		// Buffer
		{name: "base64 decode", code: `return Buffer.from('aGVsbG8gd29ybGQ=', 'base64').toString();`, want: "hello world"},
		{name: "base64 lenient", code: `return Buffer.from('aGVs bG8\n', 'base64').toString('utf8');`, want: "hello"},
		{name: "base64url", code: `return [Buffer.from([251, 255]).toString('base64url'), Buffer.from('-_8', 'base64url').length];`, want: []any{"-_8", int64(2)}},
		{name: "hex", code: `return [Buffer.from('hello').toString('hex'), Buffer.from('68656c6c6f', 'hex').toString('utf8'), Buffer.from('6g', 'hex').length];`,
			want: []any{"68656c6c6f", "hello", int64(0)}},
		{name: "base64 encode", code: `return Buffer.from('héllo', 'utf8').toString('base64');`, want: "aMOpbGxv"},
		{name: "latin1", code: `return [Buffer.from('é', 'latin1')[0], Buffer.from([233]).toString('latin1'), Buffer.from([0xe9]).toString('ascii')];`, want: []any{int64(233), "é", "i"}},
		{name: "invalid utf8", code: `return Buffer.from([0x61, 0xff, 0x62]).toString();`, want: "a\ufffdb"},
		{name: "isBuffer and byteLength", code: `return [Buffer.isBuffer(Buffer.from('x')), Buffer.isBuffer('x'), Buffer.isBuffer(new Uint8Array(1)), Buffer.byteLength('héllo'), Buffer.byteLength('aGk=', 'base64')];`,
			want: []any{true, false, false, int64(6), int64(2)}},
		{name: "concat, slice, equals", code: `var b = Buffer.concat([Buffer.from('ab'), Buffer.from('cd')]);
var s = b.slice(1, 3);
return [b.toString(), s.toString(), Buffer.isBuffer(s), s.equals(Buffer.from('bc')), b.length, Buffer.compare(Buffer.from('a'), Buffer.from('b'))];`,
			want: []any{"abcd", "bc", true, true, int64(4), int64(-1)}},
		{name: "alloc and fill", code: `return [Buffer.alloc(3).toString('hex'), Buffer.alloc(4, 'ab').toString(), Buffer.alloc(2, 1).toString('hex')];`,
			want: []any{"000000", "abab", "0101"}},
		{name: "toJSON", code: `return JSON.parse(JSON.stringify(Buffer.from('hi')));`, want: map[string]any{"type": "Buffer", "data": []any{int64(104), int64(105)}}},
		{name: "unknown encoding", code: `Buffer.from('x', 'klingon');`, wantErr: "TypeError"},
		{name: "from number", code: `Buffer.from(5);`, wantErr: "TypeError"},
		{name: "write", code: `var b = Buffer.alloc(4); var n = b.write('hi', 1); return [n, b.toString('hex')];`, want: []any{int64(2), "00686900"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := jsEval(t, Options{}, tc.code)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("got %v, want error %q", got, tc.wantErr)
				}
				if err.Name != tc.wantErr && err.Name+": "+err.Message != tc.wantErr {
					t.Fatalf("error %s: %s, want %q", err.Name, err.Message, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestModuleRegistry: every registered module loads under each name
// require() accepts for it, is frozen like the other built-ins, and is
// listed in the package documentation; other names are refused.
func TestModuleRegistry(t *testing.T) {
	names := builtinModules.names()
	if want := []string{"buffer", "ipaddr.js", "jsonwebtoken", "querystring", "url"}; !cmp.Equal(names, want) {
		t.Fatalf("registered modules %v, want %v", names, want)
	}
	e := newEngine(t, Options{})
	rt, err := e.newRuntime()
	if err != nil {
		t.Fatal(err)
	}
	defer rt.close()
	isFrozen, _ := goja.AssertFunction(rt.vm.Get("Object").ToObject(rt.vm).Get("isFrozen"))
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		ids := []string{name, name + "@1.0.0"}
		if m, _ := builtinModules.resolve(name); m.nodeCore {
			ids = append(ids, "node:"+name)
		}
		for _, id := range ids {
			v, err := rt.requireModule(id)
			if err != nil {
				t.Errorf("require(%q): %v", id, err)
				continue
			}
			r, err := isFrozen(goja.Undefined(), v)
			if err != nil || !r.ToBoolean() {
				t.Errorf("require(%q) is not frozen (%v)", id, err)
			}
		}
		if !strings.Contains(string(doc), name) {
			t.Errorf("doc.go does not mention module %q", name)
		}
	}
	for _, id := range []string{"fs", "node:ipaddr.js", "node:jsonwebtoken", "child_process@1.0.0", ""} {
		if _, ok := builtinModules.resolve(id); ok {
			t.Errorf("resolve(%q) succeeded", id)
		}
	}
}
