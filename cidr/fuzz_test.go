package cidr_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/stepup-dev/stepup/cidr"
)

func FuzzParsePrefix(f *testing.F) {
	for _, tc := range parsePrefixCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := cidr.ParsePrefix(s)
		if err != nil {
			if p != (netip.Prefix{}) {
				t.Errorf("ParsePrefix(%q) returned %v along with error %v", s, p, err)
			}
			// Whatever netip accepts without a zone, ParsePrefix accepts.
			if np, nerr := netip.ParsePrefix(s); nerr == nil {
				t.Errorf("ParsePrefix(%q) rejected what netip parses as %v: %v", s, np, err)
			}
			if a, aerr := netip.ParseAddr(s); aerr == nil && a.Zone() == "" {
				t.Errorf("ParsePrefix(%q) rejected the address %v: %v", s, a, err)
			}
			return
		}
		if !p.IsValid() || p != p.Masked() || p.Addr().Zone() != "" {
			t.Errorf("ParsePrefix(%q) = %v, not canonical", s, p)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			t.Errorf("ParsePrefix(%q) = %v, an IPv4-mapped prefix left in IPv6 form", s, p)
		}
		if again, err := cidr.ParsePrefix(p.String()); err != nil || again != p {
			t.Errorf("ParsePrefix(%q) = %v, which does not round-trip: %v, %v", s, p, again, err)
		}
		// The result agrees with netip on what s means.
		var want netip.Prefix
		if strings.Contains(s, "/") {
			want = netip.MustParsePrefix(s)
		} else {
			a := netip.MustParseAddr(s)
			want = netip.PrefixFrom(a, a.BitLen())
		}
		want = want.Masked()
		if a := want.Addr(); a.Is4In6() && want.Bits() >= 96 {
			want = netip.PrefixFrom(a.Unmap(), want.Bits()-96)
		}
		if p != want {
			t.Errorf("ParsePrefix(%q) = %v, want %v", s, p, want)
		}
	})
}

var fuzzNames = []string{"a", "b", "c", "d"}

// Leading bytes of the small address space the fuzz targets use: a few
// neighbouring and distant values, so that short prefixes span several of
// the Set's shards and long ones share shards.
var (
	fuzzV4Lead = [4]byte{10, 11, 138, 139}
	fuzzV6Lead = [4][2]byte{{0x20, 0x01}, {0x20, 0x02}, {0x24, 0x01}, {0xfe, 0x80}}
)

// fuzzNetworks turns spec into at most 64 prefixes in a small address space,
// so that they overlap often. Each 5-byte record is: flags (name index,
// family, mapped spelling), prefix length and three address bytes.
func fuzzNetworks(spec []byte) map[string][]netip.Prefix {
	networks := make(map[string][]netip.Prefix)
	for n := 0; len(spec) >= 5 && n < 64; n++ {
		rec := spec[:5]
		spec = spec[5:]
		name := fuzzNames[rec[0]&3]
		var p netip.Prefix
		if rec[0]&4 == 0 {
			a := netip.AddrFrom4([4]byte{fuzzV4Lead[rec[2]&3], rec[2] >> 6, rec[3], rec[4]})
			bits := int(rec[1]) % 33
			p = netip.PrefixFrom(a, bits)
			if rec[0]&8 != 0 { // the same network spelled ::ffff:a.b.c.d/(96+bits)
				p = netip.PrefixFrom(netip.AddrFrom16(a.As16()), 96+bits)
			}
		} else {
			lead := fuzzV6Lead[rec[2]&3]
			a := netip.AddrFrom16([16]byte{lead[0], lead[1], 0x0d, rec[2] >> 6, rec[3], 15: rec[4]})
			p = netip.PrefixFrom(a, int(rec[1])%129)
		}
		networks[name] = append(networks[name], p)
	}
	return networks
}

// fuzzAddr makes an address in the same small space as fuzzNetworks, or
// an arbitrary one.
func fuzzAddr(b []byte) netip.Addr {
	var a [18]byte
	copy(a[:], b)
	switch a[0] & 7 {
	case 0, 1:
		return netip.AddrFrom4([4]byte{fuzzV4Lead[a[1]&3], a[1] >> 6, a[2], a[3]})
	case 2: // IPv4-mapped IPv6
		return netip.AddrFrom16(netip.AddrFrom4([4]byte{fuzzV4Lead[a[1]&3], a[1] >> 6, a[2], a[3]}).As16())
	case 3, 4:
		lead := fuzzV6Lead[a[1]&3]
		return netip.AddrFrom16([16]byte{lead[0], lead[1], 0x0d, a[1] >> 6, a[2], 15: a[3]})
	case 5:
		return netip.AddrFrom4([4]byte(a[1:5]))
	case 6:
		return netip.AddrFrom16([16]byte(a[1:17]))
	default:
		return netip.Addr{}
	}
}

func FuzzLookup(f *testing.F) {
	f.Add([]byte{0, 8, 0, 0, 0}, []byte{0, 0, 0, 0})
	// 10.0.0.0/8, 10.0.0.0/16 in b, 10.0.0.0/24 in c.
	f.Add([]byte{0, 8, 0, 0, 0, 1, 16, 0, 0, 0, 2, 24, 0, 0, 0}, []byte{0, 0, 0, 1})
	// ::ffff:10.1.2.3/112 (10.1.0.0/16) and 10.64.0.0/8 in b; a mapped addr.
	f.Add([]byte{8, 16, 64, 2, 3, 1, 8, 64, 0, 0}, []byte{2, 64, 2, 3})
	// 8.0.0.0/6 spans shards 10 and 11; 10.0.0.0/9 below it.
	f.Add([]byte{0, 6, 0, 0, 0, 1, 9, 0, 0, 0}, []byte{0, 1, 0, 0})
	// IPv6: ::/0, 2000::/4 in b, 2001:d00::/24 in c, 2402::/15 in d.
	f.Add([]byte{4, 0, 0, 0, 0, 5, 4, 0, 0, 0, 6, 24, 0, 0, 0, 7, 15, 2, 0, 0}, []byte{3, 1, 0, 0})
	// 0.0.0.0/0 and ::/0; an arbitrary address.
	f.Add([]byte{0, 0, 0, 0, 0, 4, 0, 0, 0, 0}, []byte{5, 192, 0, 2, 1})
	f.Add([]byte{}, []byte{7})
	f.Fuzz(func(t *testing.T, spec, addrBytes []byte) {
		networks := fuzzNetworks(spec)
		addr := fuzzAddr(addrBytes)
		s, err := cidr.NewFromPrefixes(networks)
		if err != nil {
			t.Fatalf("NewFromPrefixes(%v): %v", networks, err)
		}
		got := s.Lookup(addr)
		want := bruteLookup(networks, addr)
		if !slices.Equal(got, want) {
			t.Fatalf("Lookup(%v) = %q, brute force says %q; networks %v", addr, got, want, networks)
		}
		for _, name := range fuzzNames {
			if got, want := s.Contains(name, addr), slices.Contains(want, name); got != want {
				t.Errorf("Contains(%q, %v) = %t, want %t", name, addr, got, want)
			}
		}
	})
}
