package rules

import (
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/dop251/goja"
)

// The ipaddr.js module, implemented in Go over net/netip. It follows
// ipaddr.js 1.9 (the version Auth0 rules used): the same objects (IPv4 with
// an `octets` array, IPv6 with `parts` and optional `zoneId`), the same
// parser for IPv4 (four-part, long value, octal and hex parts), the same
// special range tables and the same error messages. IPv6 strings are parsed
// by net/netip, and IPv6 toString() uses RFC 5952 like ipaddr.js 2.x.

// ipaddrProtos holds one runtime's ipaddr.js constructors.
type ipaddrProtos struct {
	v4Ctor, v6Ctor   *goja.Object
	v4Proto, v6Proto *goja.Object
	cidrProto        *goja.Object
}

// maxParts bounds how many elements of an octets / parts array are read.
const maxParts = 16

// ipVal is an address read from a JS object: its octets or parts as JS
// numbers (kept as float64 because scripts may store anything there).
// It is a value type so that reading an address does not allocate.
type ipVal struct {
	v6 bool
	n  int               // length of the JS array, at most maxParts
	p  [maxParts]float64 // NaN where the array has no element
}

// parts returns the numbers read.
func (a *ipVal) parts() []float64 { return a.p[:a.n] }

func mkIP(v6 bool, vals ...float64) ipVal {
	a := ipVal{v6: v6, n: min(len(vals), maxParts)}
	copy(a.p[:], vals)
	return a
}

type specialRange struct {
	name  string
	addrs []ipVal
	bits  []float64
}

func v4(a, b, c, d float64) ipVal { return mkIP(false, a, b, c, d) }
func v6(p ...float64) ipVal       { return mkIP(true, p...) }
func rng(name string, pairs ...any) specialRange {
	r := specialRange{name: name}
	for i := 0; i+1 < len(pairs); i += 2 {
		r.addrs = append(r.addrs, pairs[i].(ipVal))
		r.bits = append(r.bits, float64(pairs[i+1].(int)))
	}
	return r
}

// Special ranges of ipaddr.js 1.9, in its order (order matters: the first
// match wins).
var (
	v4Special = []specialRange{
		rng("unspecified", v4(0, 0, 0, 0), 8),
		rng("broadcast", v4(255, 255, 255, 255), 32),
		rng("multicast", v4(224, 0, 0, 0), 4),
		rng("linkLocal", v4(169, 254, 0, 0), 16),
		rng("loopback", v4(127, 0, 0, 0), 8),
		rng("carrierGradeNat", v4(100, 64, 0, 0), 10),
		rng("private", v4(10, 0, 0, 0), 8, v4(172, 16, 0, 0), 12, v4(192, 168, 0, 0), 16),
		rng("reserved", v4(192, 0, 0, 0), 24, v4(192, 0, 2, 0), 24, v4(192, 88, 99, 0), 24,
			v4(198, 51, 100, 0), 24, v4(203, 0, 113, 0), 24, v4(240, 0, 0, 0), 4),
	}
	v6Special = []specialRange{
		rng("unspecified", v6(0, 0, 0, 0, 0, 0, 0, 0), 128),
		rng("linkLocal", v6(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
		rng("multicast", v6(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
		rng("loopback", v6(0, 0, 0, 0, 0, 0, 0, 1), 128),
		rng("uniqueLocal", v6(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
		rng("ipv4Mapped", v6(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
		rng("rfc6145", v6(0, 0, 0, 0, 0xffff, 0, 0, 0), 96),
		rng("rfc6052", v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
		rng("6to4", v6(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),
		rng("teredo", v6(0x2001, 0, 0, 0, 0, 0, 0, 0), 32),
		rng("reserved", v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
	}
)

// Error messages of ipaddr.js.
const (
	msgNotFormatted   = "ipaddr: string is not formatted like ip address"
	msgNeither        = "ipaddr: the address has neither IPv6 nor IPv4 format"
	msgNeitherCIDR    = "ipaddr: the address has neither IPv6 nor IPv4 CIDR format"
	msgV4CIDR         = "ipaddr: string is not formatted like an IPv4 CIDR range"
	msgV6CIDR         = "ipaddr: string is not formatted like an IPv6 CIDR range"
	msgV4Count        = "ipaddr: ipv4 octet count should be 4"
	msgV4Octet        = "ipaddr: ipv4 octet should fit in 8 bits"
	msgV6Count        = "ipaddr: ipv6 part count should be 8 or 16"
	msgV6Part         = "ipaddr: ipv6 part should fit in 16 bits"
	msgOutsideRange   = "ipaddr: address outside defined range"
	msgMatchV4        = "ipaddr: cannot match ipv4 address with non-ipv4 one"
	msgMatchV6        = "ipaddr: cannot match ipv6 address with non-ipv6 one"
	msgMatchLengths   = "ipaddr: cannot match CIDR for objects with different lengths"
	msgGenericToV4    = "ipaddr: trying to convert a generic ipv6 address to ipv4"
	msgByteArray      = "ipaddr: the binary input is neither an IPv6 nor IPv4 address"
	msgV4Prefix       = "ipaddr: invalid IPv4 prefix length"
	msgV6Prefix       = "ipaddr: invalid IPv6 prefix length"
	msgV4CIDRFormat   = "ipaddr: the address does not have IPv4 CIDR format"
	msgV6CIDRFormat   = "ipaddr: the address does not have IPv6 CIDR format"
	maxIPStringLength = 512
)

// parseV4Parts implements ipaddr.js 1.x's IPv4 parser: "a.b.c.d" with each
// part decimal, 0x-hex or 0-octal, or a single 32-bit value. It returns
// nil when the string does not have that shape, and an error message for a
// long value out of range.
func parseV4Parts(s string) ([4]float64, bool, string) {
	var none [4]float64
	if len(s) > maxIPStringLength {
		return none, false, ""
	}
	var vals [4]float64
	n := 0
	for rest := s; ; {
		i := strings.IndexByte(rest, '.')
		field := rest
		if i >= 0 {
			field = rest[:i]
		}
		if n == 4 {
			return none, false, ""
		}
		v, ok := parseIntAuto(field)
		if !ok {
			return none, false, ""
		}
		vals[n] = v
		n++
		if i < 0 {
			break
		}
		rest = rest[i+1:]
	}
	switch n {
	case 4:
		return vals, true, ""
	case 1:
	default:
		return none, false, ""
	}
	v := vals[0]
	if v > 0xffffffff || v < 0 {
		return none, false, msgOutsideRange
	}
	u := uint32(v)
	return [4]float64{float64(u >> 24), float64(u >> 16 & 0xff), float64(u >> 8 & 0xff), float64(u & 0xff)}, true, ""
}

// parseIntAuto matches ipaddr.js's ipv4Part regexp (0?\d+|0x[a-f0-9]+, case
// insensitive) and converts like its parseIntAuto (JS parseInt semantics).
func parseIntAuto(p string) (float64, bool) {
	if p == "" {
		return 0, false
	}
	isDigits := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return s != ""
	}
	isHex := len(p) > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')
	if isHex {
		for i := 2; i < len(p); i++ {
			c := p[i] | 0x20
			if !(p[i] >= '0' && p[i] <= '9' || c >= 'a' && c <= 'f') {
				return 0, false
			}
		}
	} else if !isDigits(p) {
		return 0, false
	}
	switch {
	case p[0] == '0' && (len(p) == 1 || p[1] != 'x'):
		// parseInt(p, 8): the longest octal prefix ("0X1f" and "09" give 0).
		v := 0.0
		for i := 0; i < len(p) && p[i] >= '0' && p[i] <= '7'; i++ {
			v = v*8 + float64(p[i]-'0')
		}
		return v, true
	case isHex:
		v := 0.0
		for i := 2; i < len(p); i++ {
			d, _ := strconv.ParseUint(p[i:i+1], 16, 8)
			v = v*16 + float64(d)
		}
		return v, true
	default:
		v, err := strconv.ParseFloat(p, 64)
		if err != nil && !math.IsInf(v, 0) {
			return 0, false
		}
		return v, true
	}
}

func validV4(parts []float64) string {
	if len(parts) != 4 {
		return msgV4Count
	}
	for _, o := range parts {
		if !(o >= 0 && o <= 255) {
			return msgV4Octet
		}
	}
	return ""
}

// parseV6 parses an IPv6 string (with an optional alphanumeric zone).
func parseV6(s string) (parts []float64, zone string, ok bool) {
	if len(s) > maxIPStringLength || !strings.Contains(s, ":") {
		return nil, "", false
	}
	addr := s
	if i := strings.IndexByte(s, '%'); i >= 0 {
		addr, zone = s[:i], s[i+1:]
		if zone == "" {
			return nil, "", false
		}
		for j := 0; j < len(zone); j++ {
			c := zone[j] | 0x20
			if !(zone[j] >= '0' && zone[j] <= '9' || c >= 'a' && c <= 'z') {
				return nil, "", false
			}
		}
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return nil, "", false
	}
	b := a.As16()
	parts = make([]float64, 8)
	for i := range parts {
		parts[i] = float64(uint16(b[2*i])<<8 | uint16(b[2*i+1]))
	}
	return parts, zone, true
}

// ipaddrModule builds the module exports and remembers the prototypes.
func (rt *jsRuntime) ipaddrModule() *goja.Object {
	vm := rt.vm
	p := &ipaddrProtos{}
	rt.ip = p
	exports := vm.NewObject()

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

	rt.ipaddrPrototypes(p)

	// IPv4 statics.
	set := func(o *goja.Object, name string, fn func(goja.FunctionCall) goja.Value) { must(o.Set(name, fn)) }
	set(p.v4Ctor, "parse", func(call goja.FunctionCall) goja.Value { return rt.parseV4Obj(call.Argument(0)) })
	set(p.v4Ctor, "isValid", func(call goja.FunctionCall) goja.Value {
		return vm.ToValue(rt.v4Valid(call.Argument(0)))
	})
	set(p.v4Ctor, "isIPv4", func(call goja.FunctionCall) goja.Value {
		s, ok := stringOf(call.Argument(0))
		if !ok {
			return vm.ToValue(false)
		}
		_, ok, _ = parseV4Parts(s)
		return vm.ToValue(ok)
	})
	set(p.v4Ctor, "isValidFourPartDecimal", func(call goja.FunctionCall) goja.Value {
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
	set(p.v4Ctor, "parseCIDR", func(call goja.FunctionCall) goja.Value { return rt.parseCIDR(call.Argument(0), false) })
	set(p.v4Ctor, "subnetMaskFromPrefixLength", func(call goja.FunctionCall) goja.Value {
		n, ok := prefixArg(call.Argument(0), 32)
		if !ok {
			panic(rt.newError("Error", msgV4Prefix))
		}
		return rt.newV4(maskParts(n, 4, 8))
	})
	for _, kind := range []string{"broadcastAddressFromCIDR", "networkAddressFromCIDR"} {
		broadcast := kind == "broadcastAddressFromCIDR"
		set(p.v4Ctor, kind, func(call goja.FunctionCall) goja.Value {
			return rt.cidrEdge(call.Argument(0), false, broadcast)
		})
		set(p.v6Ctor, kind, func(call goja.FunctionCall) goja.Value {
			return rt.cidrEdge(call.Argument(0), true, broadcast)
		})
	}

	// IPv6 statics.
	set(p.v6Ctor, "parse", func(call goja.FunctionCall) goja.Value { return rt.parseV6Obj(call.Argument(0)) })
	set(p.v6Ctor, "isValid", func(call goja.FunctionCall) goja.Value {
		s, ok := stringOf(call.Argument(0))
		if !ok {
			return vm.ToValue(false)
		}
		_, _, valid := parseV6(s)
		return vm.ToValue(valid)
	})
	set(p.v6Ctor, "isIPv6", func(call goja.FunctionCall) goja.Value {
		s, ok := stringOf(call.Argument(0))
		if !ok {
			return vm.ToValue(false)
		}
		_, _, valid := parseV6(s)
		return vm.ToValue(valid)
	})
	set(p.v6Ctor, "parseCIDR", func(call goja.FunctionCall) goja.Value { return rt.parseCIDR(call.Argument(0), true) })
	set(p.v6Ctor, "subnetMaskFromPrefixLength", func(call goja.FunctionCall) goja.Value {
		n, ok := prefixArg(call.Argument(0), 128)
		if !ok {
			panic(rt.newError("Error", msgV6Prefix))
		}
		return rt.newV6(maskParts(n, 8, 16), "")
	})

	// Module functions.
	must(exports.Set("IPv4", p.v4Ctor))
	must(exports.Set("IPv6", p.v6Ctor))
	set(exports, "isValid", func(call goja.FunctionCall) goja.Value {
		s, ok := stringOf(call.Argument(0))
		if !ok {
			return vm.ToValue(false)
		}
		if _, _, ok := parseV6(s); ok {
			return vm.ToValue(true)
		}
		return vm.ToValue(rt.v4Valid(call.Argument(0)))
	})
	set(exports, "parse", func(call goja.FunctionCall) goja.Value {
		return rt.parseAny(call.Argument(0))
	})
	set(exports, "parseCIDR", func(call goja.FunctionCall) goja.Value {
		s, _ := stringOf(call.Argument(0))
		if r := rt.tryCIDR(s, true); r != nil {
			return r
		}
		if r := rt.tryCIDR(s, false); r != nil {
			return r
		}
		panic(rt.newError("Error", msgNeitherCIDR))
	})
	set(exports, "process", func(call goja.FunctionCall) goja.Value {
		obj := rt.parseAny(call.Argument(0))
		a, _ := rt.addrOf(obj)
		if a.v6 && rangeName(&a, v6Special) == "ipv4Mapped" {
			m := a.mappedV4()
			return rt.newV4(m[:])
		}
		return obj
	})
	set(exports, "subnetMatch", rt.subnetMatch)
	set(exports, "fromByteArray", func(call goja.FunctionCall) goja.Value {
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

func (a *ipVal) mappedV4() [4]float64 {
	hi, lo := toInt32(a.p[6]), toInt32(a.p[7])
	return [4]float64{float64(hi >> 8 & 0xff), float64(hi & 0xff), float64(lo >> 8 & 0xff), float64(lo & 0xff)}
}

// formatV6 formats 8 parts per RFC 5952 (longest run of two or more zero
// groups compressed), or fully expanded with 4-digit groups.
func formatV6(parts []float64, fixed bool) string {
	hexes := make([]string, len(parts))
	for i, x := range parts {
		h := strconv.FormatInt(int64(toInt32(x)&0xffff), 16)
		if fixed {
			h = strings.Repeat("0", max(0, 4-len(h))) + h
		}
		hexes[i] = h
	}
	if fixed {
		return strings.Join(hexes, ":")
	}
	bestStart, bestLen := -1, 0
	for i := 0; i < len(hexes); {
		if hexes[i] != "0" {
			i++
			continue
		}
		j := i
		for j < len(hexes) && hexes[j] == "0" {
			j++
		}
		if j-i > bestLen {
			bestStart, bestLen = i, j-i
		}
		i = j
	}
	if bestLen < 2 {
		return strings.Join(hexes, ":")
	}
	return strings.Join(hexes[:bestStart], ":") + "::" + strings.Join(hexes[bestStart+bestLen:], ":")
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

var smallIndex = [maxParts]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15"}

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

// matchCIDR is ipaddr.js's matchCIDR with JS number semantics; it stops
// once both arrays are exhausted (where the JS original could spin).
func matchCIDR(first, second []float64, partSize, cidrBits float64) (bool, bool) {
	if len(first) != len(second) {
		return false, false
	}
	for part := 0; cidrBits > 0; part++ {
		if part >= len(first) {
			return true, true
		}
		shift := partSize - cidrBits
		if shift < 0 {
			shift = 0
		}
		s := uint32(toInt32(shift)) & 31
		if toInt32(first[part])>>s != toInt32(second[part])>>s {
			return false, true
		}
		cidrBits -= partSize
	}
	return true, true
}

// toInt32 is ECMAScript ToInt32.
func toInt32(f float64) int32 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	f = math.Trunc(f)
	m := math.Mod(f, 4294967296)
	if m < 0 {
		m += 4294967296
	}
	return int32(uint32(m))
}

func rangeName(a *ipVal, table []specialRange) string {
	for _, r := range table {
		for i := range r.addrs {
			sub := &r.addrs[i]
			if sub.v6 != a.v6 {
				continue
			}
			size := 8.0
			if a.v6 {
				size = 16
			}
			if ok, _ := matchCIDR(a.parts(), sub.parts(), size, r.bits[i]); ok {
				return r.name
			}
		}
	}
	return "unicast"
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

// splitCIDR matches /^(.+)\/(\d+)$/ and parses the prefix like parseInt.
func splitCIDR(s string) (string, float64, bool) {
	i := strings.LastIndexByte(s, '/')
	if i <= 0 || i == len(s)-1 || len(s) > maxIPStringLength {
		return "", 0, false
	}
	addr, digits := s[:i], s[i+1:]
	if strings.ContainsAny(addr, "\n\r\u2028\u2029") {
		return "", 0, false
	}
	for j := 0; j < len(digits); j++ {
		if digits[j] < '0' || digits[j] > '9' {
			return "", 0, false
		}
	}
	n, err := strconv.ParseFloat(digits, 64)
	if err != nil {
		return "", 0, false
	}
	return addr, n, true
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

// maskParts returns a prefix mask as count parts of size bits.
func maskParts(prefix, count, size int) []float64 {
	out := make([]float64, count)
	for i := range out {
		switch {
		case prefix >= size:
			out[i] = float64(int(1)<<size - 1)
		case prefix > 0:
			out[i] = float64((int(1)<<prefix - 1) << (size - prefix))
		}
		prefix -= size
	}
	return out
}

// prefixFromMask implements prefixLengthFromSubnetMask.
func prefixFromMask(parts []float64, size int) (int, bool) {
	cidr := 0
	stop := false
	full := int32(1)<<size - 1
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		if p != math.Trunc(p) || p < 0 || p > float64(full) {
			return 0, false
		}
		x := int32(p)
		zeros := -1
		for z := 0; z <= size; z++ {
			if x == (full<<z)&full {
				zeros = z
				break
			}
		}
		if zeros < 0 {
			return 0, false
		}
		if stop && zeros != 0 {
			return 0, false
		}
		if zeros != size {
			stop = true
		}
		cidr += zeros
	}
	return len(parts)*size - cidr, true
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
