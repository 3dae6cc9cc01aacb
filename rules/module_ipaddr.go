package rules

import (
	"math"
	"strconv"
	"strings"

	"github.com/dop251/goja"
)

// The ipaddr.js module, implemented in Go over net/netip. It follows
// ipaddr.js 1.9 (the version Auth0 rules used): the same objects (IPv4 with
// an `octets` array, IPv6 with `parts` and optional `zoneId`), the same
// parser for IPv4 (four-part, long value, octal and hex parts), the same
// special range tables and the same error messages. IPv6 strings are parsed
// by net/netip, and IPv6 toString() uses RFC 5952 like ipaddr.js 2.x. This
// file is the JavaScript surface; ipaddr.go holds the address arithmetic.
var ipaddrModule = nativeModule{name: "ipaddr.js", load: (*jsRuntime).loadIPAddr}

// ipaddrProtos holds one runtime's ipaddr.js constructors.
type ipaddrProtos struct {
	v4Ctor, v6Ctor   *goja.Object
	v4Proto, v6Proto *goja.Object
	cidrProto        *goja.Object
}

// loadIPAddr builds the module exports and remembers the prototypes.
func (rt *jsRuntime) loadIPAddr() *goja.Object {
	p := rt.ipaddrClasses()
	rt.ip = p
	rt.ipaddrPrototypes(p)
	rt.ipaddrV4Statics(p)
	rt.ipaddrV6Statics(p)
	return rt.ipaddrExports(p)
}

// ipaddrClasses builds the IPv4 and IPv6 constructors and prototypes and
// the prototype of parseCIDR's results.
func (rt *jsRuntime) ipaddrClasses() *ipaddrProtos {
	vm := rt.vm
	p := &ipaddrProtos{}

	p.v4Proto = vm.NewObject()
	p.v6Proto = vm.NewObject()
	p.v4Ctor = vm.ToValue(func(call goja.ConstructorCall) *goja.Object {
		octets := call.Argument(0)
		parts := rt.numbers(octets)
		if msg := validV4(parts); msg != "" {
			panic(rt.newError("Error", msg))
		}
		must(call.This.Set("octets", octets))
		return nil
	}).ToObject(vm)
	p.v6Ctor = vm.ToValue(func(call goja.ConstructorCall) *goja.Object {
		parts := rt.numbers(call.Argument(0))
		if len(parts) == 16 {
			p8 := make([]float64, 8)
			for i := range p8 {
				p8[i] = float64(toInt32(parts[2*i])<<8 | toInt32(parts[2*i+1]))
			}
			parts = p8
			must(call.This.Set("parts", rt.numArray(parts)))
		} else if len(parts) == 8 {
			must(call.This.Set("parts", call.Argument(0)))
		} else {
			panic(rt.newError("Error", msgV6Count))
		}
		for _, v := range parts {
			if !(v >= 0 && v <= 0xffff) {
				panic(rt.newError("Error", msgV6Part))
			}
		}
		if z := call.Argument(1); z.ToBoolean() {
			must(call.This.Set("zoneId", z))
		}
		return nil
	}).ToObject(vm)
	for _, c := range []struct {
		ctor, proto *goja.Object
	}{{p.v4Ctor, p.v4Proto}, {p.v6Ctor, p.v6Proto}} {
		must(c.ctor.DefineDataProperty("prototype", c.proto, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE))
		must(c.proto.DefineDataProperty("constructor", c.ctor, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE))
	}
	p.cidrProto = vm.NewObject()
	must(p.cidrProto.SetPrototype(vm.NewArray().Prototype()))
	must(p.cidrProto.DefineDataProperty("toString", vm.ToValue(func(call goja.FunctionCall) goja.Value {
		obj := call.This.ToObject(vm)
		return vm.ToValue(getp(obj, "0").String() + "/" + getp(obj, "1").String())
	}), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE))
	return p
}

// ipaddrV4Statics installs IPv4.parse, isValid and the other static
// methods, and the CIDR edge functions of both classes.
func (rt *jsRuntime) ipaddrV4Statics(p *ipaddrProtos) {
	vm := rt.vm
	setFn(p.v4Ctor, "parse", func(call goja.FunctionCall) goja.Value { return rt.parseV4Obj(call.Argument(0)) })
	setFn(p.v4Ctor, "isValid", func(call goja.FunctionCall) goja.Value {
		return vm.ToValue(rt.v4Valid(call.Argument(0)))
	})
	setFn(p.v4Ctor, "isIPv4", func(call goja.FunctionCall) goja.Value {
		s, ok := stringOf(call.Argument(0))
		if !ok {
			return vm.ToValue(false)
		}
		_, ok, _ = parseV4Parts(s)
		return vm.ToValue(ok)
	})
	setFn(p.v4Ctor, "isValidFourPartDecimal", func(call goja.FunctionCall) goja.Value {
		s, ok := stringOf(call.Argument(0))
		if !ok || !rt.v4Valid(call.Argument(0)) {
			return vm.ToValue(false)
		}
		f := strings.Split(s, ".")
		if len(f) != 4 {
			return vm.ToValue(false)
		}
		for _, x := range f {
			if x == "" || strings.Trim(x, "0123456789") != "" {
				return vm.ToValue(false)
			}
		}
		return vm.ToValue(true)
	})
	setFn(p.v4Ctor, "parseCIDR", func(call goja.FunctionCall) goja.Value { return rt.parseCIDR(call.Argument(0), false) })
	setFn(p.v4Ctor, "subnetMaskFromPrefixLength", func(call goja.FunctionCall) goja.Value {
		n, ok := prefixArg(call.Argument(0), 32)
		if !ok {
			panic(rt.newError("Error", msgV4Prefix))
		}
		return rt.newV4(maskParts(n, 4, 8))
	})
	for _, kind := range []string{"broadcastAddressFromCIDR", "networkAddressFromCIDR"} {
		broadcast := kind == "broadcastAddressFromCIDR"
		setFn(p.v4Ctor, kind, func(call goja.FunctionCall) goja.Value {
			return rt.cidrEdge(call.Argument(0), false, broadcast)
		})
		setFn(p.v6Ctor, kind, func(call goja.FunctionCall) goja.Value {
			return rt.cidrEdge(call.Argument(0), true, broadcast)
		})
	}

}

// ipaddrV6Statics installs IPv6.parse, isValid and the other static
// methods.
func (rt *jsRuntime) ipaddrV6Statics(p *ipaddrProtos) {
	vm := rt.vm
	setFn(p.v6Ctor, "parse", func(call goja.FunctionCall) goja.Value { return rt.parseV6Obj(call.Argument(0)) })
	isV6 := func(call goja.FunctionCall) goja.Value { return vm.ToValue(isV6String(call.Argument(0))) }
	setFn(p.v6Ctor, "isValid", isV6)
	setFn(p.v6Ctor, "isIPv6", isV6)
	setFn(p.v6Ctor, "parseCIDR", func(call goja.FunctionCall) goja.Value { return rt.parseCIDR(call.Argument(0), true) })
	setFn(p.v6Ctor, "subnetMaskFromPrefixLength", func(call goja.FunctionCall) goja.Value {
		n, ok := prefixArg(call.Argument(0), 128)
		if !ok {
			panic(rt.newError("Error", msgV6Prefix))
		}
		return rt.newV6(maskParts(n, 8, 16), "")
	})
}

// ipaddrExports builds the module object: the classes and the
// module-level functions.
func (rt *jsRuntime) ipaddrExports(p *ipaddrProtos) *goja.Object {
	vm := rt.vm
	exports := vm.NewObject()
	must(exports.Set("IPv4", p.v4Ctor))
	must(exports.Set("IPv6", p.v6Ctor))
	setFn(exports, "isValid", func(call goja.FunctionCall) goja.Value {
		s, ok := stringOf(call.Argument(0))
		if !ok {
			return vm.ToValue(false)
		}
		if _, _, ok := parseV6(s); ok {
			return vm.ToValue(true)
		}
		return vm.ToValue(rt.v4Valid(call.Argument(0)))
	})
	setFn(exports, "parse", func(call goja.FunctionCall) goja.Value {
		return rt.parseAny(call.Argument(0))
	})
	setFn(exports, "parseCIDR", func(call goja.FunctionCall) goja.Value {
		s, _ := stringOf(call.Argument(0))
		if r := rt.tryCIDR(s, true); r != nil {
			return r
		}
		if r := rt.tryCIDR(s, false); r != nil {
			return r
		}
		panic(rt.newError("Error", msgNeitherCIDR))
	})
	setFn(exports, "process", func(call goja.FunctionCall) goja.Value {
		obj := rt.parseAny(call.Argument(0))
		a, _ := rt.addrOf(obj)
		if a.v6 && rangeName(&a, v6Special) == "ipv4Mapped" {
			m := a.mappedV4()
			return rt.newV4(m[:])
		}
		return obj
	})
	setFn(exports, "subnetMatch", rt.subnetMatch)
	setFn(exports, "fromByteArray", func(call goja.FunctionCall) goja.Value {
		b := call.Argument(0)
		switch len(rt.numbers(b)) {
		case 4:
			o, err := vm.New(p.v4Ctor, b)
			if err != nil {
				panic(err)
			}
			return o
		case 16:
			o, err := vm.New(p.v6Ctor, b)
			if err != nil {
				panic(err)
			}
			return o
		}
		panic(rt.newError("Error", msgByteArray))
	})
	return exports
}

// ipaddrPrototypes installs the instance methods.
func (rt *jsRuntime) ipaddrPrototypes(p *ipaddrProtos) {
	vm := rt.vm
	method := func(proto *goja.Object, name string, fn func(a ipVal, this *goja.Object, call goja.FunctionCall) goja.Value) {
		must(proto.DefineDataProperty(name, vm.ToValue(func(call goja.FunctionCall) goja.Value {
			this, ok := call.This.(*goja.Object)
			if !ok {
				panic(vm.NewTypeError("ipaddr method called on a non-object"))
			}
			a, ok := rt.addrOf(this)
			if !ok {
				panic(vm.NewTypeError("ipaddr method called on an object that is not an address"))
			}
			return fn(a, this, call)
		}), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE))
	}
	for _, proto := range []*goja.Object{p.v4Proto, p.v6Proto} {
		isV6 := proto == p.v6Proto
		kind := "ipv4"
		if isV6 {
			kind = "ipv6"
		}
		kindV := vm.ToValue(kind)
		must(proto.DefineDataProperty("kind", vm.ToValue(func(goja.FunctionCall) goja.Value { return kindV }),
			goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE))
		method(proto, "match", func(a ipVal, _ *goja.Object, call goja.FunctionCall) goja.Value {
			return vm.ToValue(rt.match(a, call.Argument(0), call.Argument(1)))
		})
		method(proto, "range", func(a ipVal, _ *goja.Object, _ goja.FunctionCall) goja.Value {
			if a.v6 {
				return vm.ToValue(rangeName(&a, v6Special))
			}
			return vm.ToValue(rangeName(&a, v4Special))
		})
		method(proto, "toByteArray", func(a ipVal, _ *goja.Object, _ goja.FunctionCall) goja.Value {
			var out []float64
			if a.v6 {
				for _, x := range a.parts() {
					out = append(out, float64(toInt32(x)>>8), float64(toInt32(x)&0xff))
				}
			} else {
				out = append(out, a.parts()...)
			}
			return rt.numArray(out)
		})
		method(proto, "prefixLengthFromSubnetMask", func(a ipVal, _ *goja.Object, _ goja.FunctionCall) goja.Value {
			size := 8
			if a.v6 {
				size = 16
			}
			n, ok := prefixFromMask(a.parts(), size)
			if !ok {
				return goja.Null()
			}
			return vm.ToValue(n)
		})
	}
	joinParts := func(this *goja.Object, field, sep string) string {
		arr, _ := this.Get(field).(*goja.Object)
		if arr == nil {
			return ""
		}
		n := toLength(arr.Get("length"))
		var b strings.Builder
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(sep)
			}
			if v := arr.Get(strconv.Itoa(i)); v != nil && !goja.IsUndefined(v) && !goja.IsNull(v) {
				b.WriteString(v.String())
			}
		}
		return b.String()
	}
	v4String := func(_ ipVal, this *goja.Object, _ goja.FunctionCall) goja.Value {
		return vm.ToValue(joinParts(this, "octets", "."))
	}
	method(p.v4Proto, "toString", v4String)
	method(p.v4Proto, "toNormalizedString", v4String)
	method(p.v4Proto, "toIPv4MappedAddress", func(a ipVal, _ *goja.Object, _ goja.FunctionCall) goja.Value {
		o := a.p
		return rt.newV6([]float64{0, 0, 0, 0, 0, 0xffff,
			float64(toInt32(o[0])<<8 | toInt32(o[1])), float64(toInt32(o[2])<<8 | toInt32(o[3]))}, "")
	})

	zoneSuffix := func(this *goja.Object) string {
		if z := this.Get("zoneId"); z != nil && z.ToBoolean() {
			return "%" + z.String()
		}
		return ""
	}
	rfc5952 := func(a ipVal, this *goja.Object, _ goja.FunctionCall) goja.Value {
		return vm.ToValue(formatV6(a.parts(), false) + zoneSuffix(this))
	}
	method(p.v6Proto, "toString", rfc5952)
	method(p.v6Proto, "toRFC5952String", rfc5952)
	method(p.v6Proto, "toNormalizedString", func(a ipVal, this *goja.Object, _ goja.FunctionCall) goja.Value {
		hexes := make([]string, a.n)
		for i, x := range a.parts() {
			hexes[i] = strconv.FormatInt(int64(toInt32(x)), 16)
		}
		return vm.ToValue(strings.Join(hexes, ":") + zoneSuffix(this))
	})
	method(p.v6Proto, "toFixedLengthString", func(a ipVal, this *goja.Object, _ goja.FunctionCall) goja.Value {
		return vm.ToValue(formatV6(a.parts(), true) + zoneSuffix(this))
	})
	method(p.v6Proto, "isIPv4MappedAddress", func(a ipVal, _ *goja.Object, _ goja.FunctionCall) goja.Value {
		return vm.ToValue(rangeName(&a, v6Special) == "ipv4Mapped")
	})
	method(p.v6Proto, "toIPv4Address", func(a ipVal, _ *goja.Object, _ goja.FunctionCall) goja.Value {
		if rangeName(&a, v6Special) != "ipv4Mapped" {
			panic(rt.newError("Error", msgGenericToV4))
		}
		m := a.mappedV4()
		return rt.newV4(m[:])
	})
}

// numbers reads an array-like of numbers; nil when v is not an object.
func (rt *jsRuntime) numbers(v goja.Value) []float64 {
	obj, ok := v.(*goja.Object)
	if !ok {
		return nil
	}
	n := toLength(obj.Get("length"))
	if n > 64 {
		n = 64
	}
	out := make([]float64, n)
	for i := range out {
		e := obj.Get(strconv.Itoa(i))
		if e == nil || goja.IsUndefined(e) {
			out[i] = math.NaN()
			continue
		}
		out[i] = e.ToFloat()
	}
	return out
}

func (rt *jsRuntime) numArray(vals []float64) *goja.Object {
	var buf [maxParts]any
	items := buf[:0]
	if len(vals) > maxParts {
		items = make([]any, 0, len(vals))
	}
	items = items[:len(vals)]
	for i, v := range vals {
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			items[i] = int64(v)
		} else {
			items[i] = v
		}
	}
	return rt.vm.NewArray(items...)
}

func (rt *jsRuntime) newV4(octets []float64) *goja.Object {
	if !rt.e.nativeInput {
		return rt.lazyAddress(false, octets, "")
	}
	obj := rt.vm.CreateObject(rt.ip.v4Proto)
	must(obj.Set("octets", rt.numArray(octets)))
	return obj
}

func (rt *jsRuntime) newV6(parts []float64, zone string) *goja.Object {
	if !rt.e.nativeInput {
		return rt.lazyAddress(true, parts, zone)
	}
	obj := rt.vm.CreateObject(rt.ip.v6Proto)
	must(obj.Set("parts", rt.numArray(parts)))
	if zone != "" {
		must(obj.Set("zoneId", zone))
	}
	return obj
}

// addrOf reads an address object: its kind() (or the presence of octets /
// parts) and its numbers.
func (rt *jsRuntime) addrOf(v goja.Value) (ipVal, bool) {
	obj, ok := v.(*goja.Object)
	if !ok {
		return ipVal{}, false
	}
	kind := ""
	if rt.ip != nil {
		switch obj.Prototype() {
		case rt.ip.v4Proto:
			kind = "ipv4"
		case rt.ip.v6Proto:
			kind = "ipv6"
		}
	}
	// Read even when the prototype tells the kind, as ipaddr.js would
	// (a getter may run); only the function wrapper is skipped.
	if kv := obj.Get("kind"); kind == "" {
		if fn, ok := goja.AssertFunction(kv); ok {
			k, err := fn(obj)
			if err != nil {
				panic(err)
			}
			kind = k.String()
		}
	}
	switch kind {
	case "ipv4":
		if a, ok := pendingAddr(obj, "octets"); ok {
			return a, true
		}
		return readIP(false, obj.Get("octets")), true
	case "ipv6":
		if a, ok := pendingAddr(obj, "parts"); ok {
			return a, true
		}
		return readIP(true, obj.Get("parts")), true
	case "":
		if o := obj.Get("octets"); o != nil && !goja.IsUndefined(o) {
			return readIP(false, o), true
		}
		if p := obj.Get("parts"); p != nil && !goja.IsUndefined(p) {
			return readIP(true, p), true
		}
	}
	return ipVal{}, false
}

// readIP reads an octets / parts array without allocating.
func readIP(v6 bool, v goja.Value) ipVal {
	a := ipVal{v6: v6}
	obj, ok := v.(*goja.Object)
	if !ok {
		return a
	}
	a.n = min(toLength(obj.Get("length")), maxParts)
	for i := 0; i < a.n; i++ {
		e := obj.Get(smallIndex[i])
		if e == nil || goja.IsUndefined(e) {
			a.p[i] = math.NaN()
			continue
		}
		a.p[i] = e.ToFloat()
	}
	return a
}

// match implements addr.match(range) / addr.match(addr, bits).
func (rt *jsRuntime) match(a ipVal, other, bits goja.Value) bool {
	if bits == nil || goja.IsUndefined(bits) {
		if other == nil || goja.IsUndefined(other) || goja.IsNull(other) {
			panic(rt.vm.NewTypeError("Cannot read properties of " + rt.inspect(other) + " (reading '0')"))
		}
		o := other.ToObject(rt.vm)
		other, bits = o.Get("0"), o.Get("1")
	}
	if other == nil || goja.IsUndefined(other) || goja.IsNull(other) {
		panic(rt.vm.NewTypeError("Cannot read properties of " + rt.inspect(other) + " (reading 'kind')"))
	}
	b, ok := rt.addrOf(other)
	if !ok {
		panic(rt.vm.NewTypeError("other.kind is not a function"))
	}
	if a.v6 != b.v6 {
		if a.v6 {
			panic(rt.newError("Error", msgMatchV6))
		}
		panic(rt.newError("Error", msgMatchV4))
	}
	size := 8.0
	if a.v6 {
		size = 16
	}
	if bits == nil {
		bits = goja.Undefined()
	}
	res, ok := matchCIDR(a.parts(), b.parts(), size, bits.ToFloat())
	if !ok {
		panic(rt.newError("Error", msgMatchLengths))
	}
	return res
}

func (rt *jsRuntime) v4Valid(v goja.Value) bool {
	s, ok := stringOf(v)
	if !ok {
		return false
	}
	parts, ok, _ := parseV4Parts(s)
	return ok && validV4(parts[:]) == ""
}

func (rt *jsRuntime) parseV4Obj(v goja.Value) goja.Value {
	s, _ := stringOf(v)
	parts, ok, msg := parseV4Parts(s)
	if msg != "" {
		panic(rt.newError("Error", msg))
	}
	if !ok {
		panic(rt.newError("Error", msgNotFormatted))
	}
	if msg := validV4(parts[:]); msg != "" {
		panic(rt.newError("Error", msg))
	}
	return rt.newV4(parts[:])
}

func (rt *jsRuntime) parseV6Obj(v goja.Value) goja.Value {
	s, _ := stringOf(v)
	parts, zone, ok := parseV6(s)
	if !ok {
		panic(rt.newError("Error", msgNotFormatted))
	}
	return rt.newV6(parts, zone)
}

func (rt *jsRuntime) parseAny(v goja.Value) goja.Value {
	s, ok := stringOf(v)
	if ok {
		if parts, zone, ok := parseV6(s); ok {
			return rt.newV6(parts, zone)
		}
		if parts, ok, _ := parseV4Parts(s); ok && validV4(parts[:]) == "" {
			return rt.newV4(parts[:])
		}
	}
	panic(rt.newError("Error", msgNeither))
}

// tryCIDR parses an IPv6 or IPv4 CIDR into [addr, bits] or returns nil.
func (rt *jsRuntime) tryCIDR(s string, isV6 bool) goja.Value {
	addr, n, ok := splitCIDR(s)
	if !ok {
		return nil
	}
	var obj *goja.Object
	if isV6 {
		parts, zone, ok := parseV6(addr)
		if !ok || n > 128 {
			return nil
		}
		obj = rt.newV6(parts, zone)
	} else {
		parts, ok, _ := parseV4Parts(addr)
		if !ok || validV4(parts[:]) != "" || n > 32 {
			return nil
		}
		obj = rt.newV4(parts[:])
	}
	// [addr, bits], whose prototype adds ipaddr.js 2.x's toString.
	arr := rt.vm.NewArray(obj, int64(n))
	must(arr.SetPrototype(rt.ip.cidrProto))
	return arr
}

// parseCIDR implements IPv4.parseCIDR / IPv6.parseCIDR with their errors.
func (rt *jsRuntime) parseCIDR(v goja.Value, isV6 bool) goja.Value {
	s, _ := stringOf(v)
	if r := rt.tryCIDR(s, isV6); r != nil {
		return r
	}
	if addr, n, ok := splitCIDR(s); ok && ((isV6 && n <= 128) || (!isV6 && n <= 32)) {
		// The prefix is fine: the address is what failed.
		if isV6 {
			rt.parseV6Obj(rt.vm.ToValue(addr))
		} else {
			rt.parseV4Obj(rt.vm.ToValue(addr))
		}
	}
	if isV6 {
		panic(rt.newError("Error", msgV6CIDR))
	}
	panic(rt.newError("Error", msgV4CIDR))
}

// cidrEdge implements broadcastAddressFromCIDR / networkAddressFromCIDR.
func (rt *jsRuntime) cidrEdge(v goja.Value, isV6 bool, broadcast bool) goja.Value {
	s, _ := stringOf(v)
	r := rt.tryCIDR(s, isV6)
	if r == nil {
		if isV6 {
			panic(rt.newError("Error", msgV6CIDRFormat))
		}
		panic(rt.newError("Error", msgV4CIDRFormat))
	}
	arr := r.ToObject(rt.vm)
	a, _ := rt.addrOf(arr.Get("0"))
	bits := int(getp(arr, "1").ToInteger())
	size, count := 8, 4
	if isV6 {
		size, count = 16, 8
	}
	mask := maskParts(bits, count, size)
	out := make([]float64, count)
	full := int32(1)<<size - 1
	for i := range out {
		x, m := toInt32(a.p[i]), toInt32(mask[i])
		if broadcast {
			out[i] = float64(x | (m ^ full))
		} else {
			out[i] = float64(x & m)
		}
	}
	if isV6 {
		return rt.newV6(out, "")
	}
	return rt.newV4(out)
}

func prefixArg(v goja.Value, maxBits int) (int, bool) {
	f := v.ToFloat()
	if math.IsNaN(f) {
		f = 0
	}
	f = math.Trunc(f)
	if f < 0 || f > float64(maxBits) {
		return 0, false
	}
	return int(f), true
}

// subnetMatch implements ipaddr.subnetMatch(address, rangeList, default).
func (rt *jsRuntime) subnetMatch(call goja.FunctionCall) goja.Value {
	a, ok := rt.addrOf(call.Argument(0))
	if !ok {
		panic(rt.vm.NewTypeError("address.kind is not a function"))
	}
	def := call.Argument(2)
	if goja.IsUndefined(def) || goja.IsNull(def) {
		def = rt.vm.ToValue("unicast")
	}
	list, ok := call.Argument(1).(*goja.Object)
	if !ok {
		return def
	}
	for _, name := range list.Keys() {
		subs, ok := list.Get(name).(*goja.Object)
		if !ok {
			continue
		}
		first := subs.Get("0")
		if first != nil && first.ToBoolean() && !isArray(first) {
			subs = rt.vm.NewArray(subs)
		}
		n := toLength(subs.Get("length"))
		for i := 0; i < n; i++ {
			sub, ok := subs.Get(strconv.Itoa(i)).(*goja.Object)
			if !ok {
				continue
			}
			b, ok := rt.addrOf(sub.Get("0"))
			if !ok || b.v6 != a.v6 {
				continue
			}
			if rt.match(a, sub.Get("0"), sub.Get("1")) {
				return rt.vm.ToValue(name)
			}
		}
	}
	return def
}

func isArray(v goja.Value) bool {
	o, ok := v.(*goja.Object)
	return ok && o.ClassName() == "Array"
}

// setFn sets o[name] to a native function.
func setFn(o *goja.Object, name string, fn func(goja.FunctionCall) goja.Value) { must(o.Set(name, fn)) }

// isV6String reports whether v is a string in IPv6 format.
func isV6String(v goja.Value) bool {
	s, ok := stringOf(v)
	if !ok {
		return false
	}
	_, _, valid := parseV6(s)
	return valid
}
