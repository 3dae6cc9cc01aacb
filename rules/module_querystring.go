package rules

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// The querystring module, following Node.js's documented behaviour:
// parse/decode, stringify/encode, escape and unescape.
var querystringModule = nativeModule{name: "querystring", nodeCore: true, load: (*jsRuntime).loadQuerystring}

// maxQueryKeys is querystring.parse's default maxKeys.
const maxQueryKeys = 1000

// qsEscape escapes like querystring.escape (encodeURIComponent's set).
func qsEscape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// qsUnescape decodes percent escapes leniently (malformed ones are kept),
// optionally turning '+' into spaces, like querystring.unescape.
func qsUnescape(s string, plusSpace bool) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	buf := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+' && plusSpace:
			buf = append(buf, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			buf = append(buf, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			buf = append(buf, c)
		}
	}
	if utf8.Valid(buf) {
		return string(buf)
	}
	return encodeBytes(buf, encUTF8)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func strArg(v goja.Value, def string) string {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return def
	}
	s := v.String()
	if s == "" {
		return def
	}
	return s
}

// qsParse implements querystring.parse(str, sep, eq, {maxKeys}); the
// result has a null prototype, as in Node.
func (rt *jsRuntime) qsParse(str goja.Value, sepV, eqV, opts goja.Value) *goja.Object {
	vm := rt.vm
	obj := vm.CreateObject(nil)
	s, ok := str.Export().(string)
	if !ok || s == "" {
		return obj
	}
	sep, eq := strArg(sepV, "&"), strArg(eqV, "=")
	maxKeys := maxQueryKeys
	if o, ok := opts.(*goja.Object); ok {
		if mk := o.Get("maxKeys"); mk != nil && !goja.IsUndefined(mk) {
			n := mk.ToInteger()
			if n <= 0 || n > math.MaxInt32 {
				maxKeys = math.MaxInt32
			} else {
				maxKeys = int(n)
			}
		}
	}
	pairs := strings.Split(s, sep)
	if len(pairs) > maxKeys {
		pairs = pairs[:maxKeys]
	}
	for _, p := range pairs {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, eq)
		key := qsUnescape(k, true)
		val := vm.ToValue(qsUnescape(v, true))
		cur := obj.Get(key)
		switch {
		case cur == nil || goja.IsUndefined(cur):
			must(obj.Set(key, val))
		case isArray(cur):
			arr := cur.ToObject(vm)
			must(arr.Set(strconv.Itoa(toLength(arr.Get("length"))), val))
		default:
			must(obj.Set(key, vm.NewArray(cur, val)))
		}
	}
	return obj
}

// qsStringify implements querystring.stringify(obj, sep, eq).
func (rt *jsRuntime) qsStringify(v, sepV, eqV goja.Value) string {
	obj, ok := v.(*goja.Object)
	if !ok {
		return ""
	}
	sep, eq := strArg(sepV, "&"), strArg(eqV, "=")
	prim := func(x goja.Value) string {
		switch e := x.Export().(type) {
		case string:
			return qsEscape(e)
		case bool:
			return strconv.FormatBool(e)
		case int64:
			return x.String()
		case float64:
			if math.IsNaN(e) || math.IsInf(e, 0) {
				return ""
			}
			return x.String()
		}
		return ""
	}
	var parts []string
	for _, k := range obj.Keys() {
		ek := qsEscape(k) + eq
		val := obj.Get(k)
		if isArray(val) {
			arr := val.ToObject(rt.vm)
			n := toLength(arr.Get("length"))
			for i := 0; i < n; i++ {
				parts = append(parts, ek+prim(arr.Get(strconv.Itoa(i))))
			}
			continue
		}
		parts = append(parts, ek+prim(val))
	}
	return strings.Join(parts, sep)
}

// loadQuerystring builds the querystring module's exports.
func (rt *jsRuntime) loadQuerystring() *goja.Object {
	vm := rt.vm
	o := vm.NewObject()
	parse := func(call goja.FunctionCall) goja.Value {
		return rt.qsParse(call.Argument(0), call.Argument(1), call.Argument(2), call.Argument(3))
	}
	stringify := func(call goja.FunctionCall) goja.Value {
		return vm.ToValue(rt.qsStringify(call.Argument(0), call.Argument(1), call.Argument(2)))
	}
	must(o.Set("parse", parse))
	must(o.Set("decode", parse))
	must(o.Set("stringify", stringify))
	must(o.Set("encode", stringify))
	must(o.Set("escape", func(call goja.FunctionCall) goja.Value {
		return vm.ToValue(qsEscape(call.Argument(0).String()))
	}))
	must(o.Set("unescape", func(call goja.FunctionCall) goja.Value {
		return vm.ToValue(qsUnescape(call.Argument(0).String(), call.Argument(1).ToBoolean()))
	}))
	return o
}
