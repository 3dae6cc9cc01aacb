// Package cidr matches client IP addresses against named network sets such as
// "corporate" or "vpn", for IPv4 and IPv6.
//
// A [Set] is an immutable snapshot built once by [New] or [NewFromPrefixes]
// and never changed afterwards, so any number of goroutines may use it
// without locking. The networks are stored in path-compressed radix tries
// from github.com/yl2chen/cidranger, under a root node that splits the
// address space on its leading bits; only net/netip types cross the
// package boundary.
//
// A [Matcher] holds the current Set and swaps it atomically when the
// operator's configuration is reloaded. A reload that fails keeps the
// previous Set in place, so lookups never fail because of a bad reload:
//
//	m := cidr.NewMatcher(set)
//	...
//	s := m.Load() // once per request; use s throughout the request
//	names := s.Lookup(clientIP)
//
// Operators often keep long CIDR lists in files; [ParseList] reads such a
// file (one prefix per line, '#' comments) into strings for [New].
//
// IPv4-mapped IPv6 addresses (::ffff:192.0.2.1), which Envoy reports for IPv4
// clients on a dual-stack listener, are unmapped before every lookup, and
// IPv4-mapped prefixes (::ffff:10.0.0.0/104) are stored in their IPv4 form
// (10.0.0.0/8), so the two spellings of an IPv4 network behave the same.
package cidr
