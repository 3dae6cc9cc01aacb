package rules

// Address arithmetic of the ipaddr.js module (module_ipaddr.go): parsing,
// formatting, CIDR matching and the special range tables, on addresses
// held as the JavaScript numbers of their octets or parts.

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
)

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

func v6(p ...float64) ipVal { return mkIP(true, p...) }

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

var smallIndex = [maxParts]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15"}

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
