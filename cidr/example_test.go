package cidr_test

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/stepup-dev/stepup/cidr"
)

func Example() {
	// A networks file an operator maintains.
	list, err := cidr.ParseList(strings.NewReader(`
# VPN concentrators
10.8.0.0/16
2001:db8:8::/48
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	set, err := cidr.New(map[string][]string{
		"corporate": {"10.0.0.0/8", "2001:db8::/32"},
		"vpn":       list,
		"bastion":   {"10.8.0.1"}, // a bare IP is a /32
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	m := cidr.NewMatcher(set)

	s := m.Load() // once per request
	for _, ip := range []string{
		"10.1.2.3",
		"10.8.0.1",
		"::ffff:10.8.4.4", // IPv4-mapped, as Envoy may report it
		"2001:db8:8::1",
		"192.0.2.1",
	} {
		fmt.Println(ip, s.Lookup(netip.MustParseAddr(ip)))
	}
	fmt.Println(s.Contains("vpn", netip.MustParseAddr("10.8.9.9")))

	// A bad reload keeps the current set.
	err = m.Reload(map[string][]string{"corporate": {"10.0.0.0/8", "10.0.0.0/33"}})
	fmt.Println(err)
	fmt.Println(m.Load() == s)
	// Output:
	// 10.1.2.3 [corporate]
	// 10.8.0.1 [bastion corporate vpn]
	// ::ffff:10.8.4.4 [corporate vpn]
	// 2001:db8:8::1 [corporate vpn]
	// 192.0.2.1 []
	// true
	// reload networks (keeping the current set): network "corporate" entry 1: invalid prefix: netip.ParsePrefix("10.0.0.0/33"): prefix length out of range
	// true
}
