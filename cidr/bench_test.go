package cidr_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"

	"github.com/stepup-dev/stepup/cidr"
)

// benchNetworks makes n prefixes shaped like a real deployment: a few
// broad corporate and VPN ranges, office subnets, partner ranges and a long
// tail of /24 and single-address block-list entries; about 15 % IPv6.
func benchNetworks(n int, rng *rand.Rand) map[string][]netip.Prefix {
	networks := map[string][]netip.Prefix{
		"corporate": {netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
		"vpn":       {netip.MustParsePrefix("10.8.0.0/16")},
	}
	for i := 3; i <= n; i++ {
		var name string
		switch r := rng.IntN(100); {
		case r < 60:
			name = "blocklist"
		case r < 80:
			name = fmt.Sprintf("office-%02d", rng.IntN(20))
		case r < 90:
			name = "partners"
		case r < 95:
			name = "vpn"
		default:
			name = "corporate"
		}
		var p netip.Prefix
		if rng.IntN(100) < 85 {
			bits := []int{12, 16, 20, 22, 24, 24, 24, 24, 28, 32, 32, 32}[rng.IntN(12)]
			a := netip.AddrFrom4([4]byte{byte(rng.IntN(224)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			if name != "blocklist" && rng.IntN(2) == 0 {
				a = netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			}
			p = netip.PrefixFrom(a, bits).Masked()
		} else {
			bits := []int{32, 40, 48, 56, 64, 64, 128}[rng.IntN(7)]
			var b [16]byte
			b[0], b[1] = 0x20, 0x01
			for j := 2; j < 16; j++ {
				b[j] = byte(rng.IntN(256))
			}
			p = netip.PrefixFrom(netip.AddrFrom16(b), bits).Masked()
		}
		networks[name] = append(networks[name], p)
	}
	return networks
}

// benchAddrs returns count addresses inside prefixes of s (hits) and count
// addresses s does not contain (misses), about 15 % of each IPv6.
func benchAddrs(s *cidr.Set, networks map[string][]netip.Prefix, count int, rng *rand.Rand) (hits, misses []netip.Addr) {
	var all []netip.Prefix
	for _, ps := range networks {
		all = append(all, ps...)
	}
	for len(hits) < count {
		p := all[rng.IntN(len(all))]
		b := p.Addr().AsSlice()
		for j := p.Bits(); j < len(b)*8; j++ {
			if rng.IntN(2) == 1 {
				b[j/8] |= 0x80 >> (j % 8)
			}
		}
		a, _ := netip.AddrFromSlice(b)
		if s.Lookup(a) == nil {
			panic(fmt.Sprintf("%v in %v not found", a, p))
		}
		hits = append(hits, a)
	}
	for len(misses) < count {
		var a netip.Addr
		if rng.IntN(100) < 85 {
			a = netip.AddrFrom4([4]byte{byte(11 + rng.IntN(200)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		} else {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, byte(rng.IntN(256)), byte(rng.IntN(256)), 15: byte(rng.IntN(256))})
		}
		if s.Lookup(a) == nil {
			misses = append(misses, a)
		}
	}
	return hits, misses
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10, 1000, 100_000} {
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		networks := benchNetworks(n, rng)
		s, err := cidr.NewFromPrefixes(networks)
		if err != nil {
			b.Fatal(err)
		}
		hits, misses := benchAddrs(s, networks, 1024, rng)
		mixed := make([]netip.Addr, 0, 2048)
		for i := range hits {
			mixed = append(mixed, hits[i], misses[i])
		}
		for _, kind := range []struct {
			name  string
			addrs []netip.Addr
		}{{"hit", hits}, {"miss", misses}, {"mixed", mixed}} {
			b.Run(fmt.Sprintf("prefixes=%d/%s", n, kind.name), func(b *testing.B) {
				b.ReportAllocs()
				found := 0
				i := 0
				for b.Loop() {
					found += len(s.Lookup(kind.addrs[i%len(kind.addrs)]))
					i++
				}
				if kind.name == "hit" && found < i {
					b.Fatalf("only %d names for %d hits", found, i)
				}
			})
		}
	}
}

// BenchmarkNew100k builds a Set of 100,000 prefixes from strings, as a
// reload from a networks file does. live-MB is the heap the built Set keeps.
func BenchmarkNew100k(b *testing.B) {
	networks := benchNetworks(100_000, rand.New(rand.NewPCG(1, 2)))
	in := make(map[string][]string, len(networks))
	for name, ps := range networks {
		for _, p := range ps {
			in[name] = append(in[name], p.String())
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cidr.New(in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(liveMB(func() any {
		s, _ := cidr.New(in)
		return s
	}), "live-MB")
}

// BenchmarkNewFromPrefixes100k is BenchmarkNew100k without the parsing.
func BenchmarkNewFromPrefixes100k(b *testing.B) {
	networks := benchNetworks(100_000, rand.New(rand.NewPCG(1, 2)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cidr.NewFromPrefixes(networks); err != nil {
			b.Fatal(err)
		}
	}
}

// liveMB reports how many MB of heap the value made by build keeps alive.
func liveMB(build func() any) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
}
