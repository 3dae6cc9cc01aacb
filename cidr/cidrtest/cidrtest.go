// Package cidrtest makes network lists for tests and benchmarks of code
// that uses package cidr.
package cidrtest

import (
	"math/rand/v2"
	"net/netip"
)

// RandomPrefixes returns n distinct prefixes drawn from a fixed seed, so
// that every caller gets the same list: about 85% IPv4 /16 to /28 outside
// 0–10.x, the rest IPv6 /32 to /64 under 2000::/3. It is the 100,000-prefix
// network of benchmark scenario 6 (docs/performance.md).
func RandomPrefixes(n int) []netip.Prefix {
	rng := rand.New(rand.NewPCG(5, 100_000))
	seen := make(map[netip.Prefix]struct{}, n)
	out := make([]netip.Prefix, 0, n)
	for len(out) < n {
		var p netip.Prefix
		if rng.IntN(100) < 85 {
			a := netip.AddrFrom4([4]byte{byte(11 + rng.IntN(213)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			p = netip.PrefixFrom(a, 16+rng.IntN(13)).Masked()
		} else {
			var a [16]byte
			a[0] = 0x20 | byte(rng.IntN(16))
			for i := 1; i < 8; i++ {
				a[i] = byte(rng.IntN(256))
			}
			p = netip.PrefixFrom(netip.AddrFrom16(a), 32+rng.IntN(33)).Masked()
		}
		if _, dup := seen[p]; dup {
			continue
		}
		seen[p] = struct{}{}
		out = append(out, p)
	}
	return out
}
