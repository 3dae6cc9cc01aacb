package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/stepup-dev/stepup/cidr"
)

// Widest trusted peer ranges, outside loopback, that stepup accepts without
// a warning: a /24 of IPv4 proxies, a /64 of IPv6 ones.
const (
	maxQuietPeerBits4 = 24
	maxQuietPeerBits6 = 64
)

var (
	loopback4 = netip.MustParsePrefix("127.0.0.0/8")
	loopback6 = netip.MustParsePrefix("::1/128")
)

// IdentityHeaderWarnings returns one start-up warning for each entry of
// identity.header.trusted_peers that lets people other than the proxy
// choose the user stepup believes: a wide range outside loopback
// (0.0.0.0/0, 10.0.0.0/8), or one that covers a whole named network, where
// the users are. Any client can send any header, so it is the peer range
// that decides who can name a user. nets are the loaded named networks.
func (c *Config) IdentityHeaderWarnings(nets *cidr.Set) []string {
	h := c.Identity.Header
	if h.Name == "" {
		return nil
	}
	var out []string
	for i, p := range c.HeaderTrustedPeers() {
		p = p.Masked()
		if inLoopback(p) {
			continue
		}
		var why []string
		if wide(p) {
			why = append(why, fmt.Sprintf("%s is a wide range", p))
		}
		if nets != nil {
			for _, name := range nets.Names() {
				for _, n := range nets.Prefixes(name) {
					if !inLoopback(n) && p.Bits() <= n.Bits() && p.Contains(n.Addr()) {
						why = append(why, fmt.Sprintf("it covers the network %q (%s), where users are", name, n))
						break
					}
				}
			}
		}
		if len(why) == 0 {
			continue
		}
		out = append(out, fmt.Sprintf(
			"identity.header.trusted_peers[%d]: %s: anyone there who can reach stepup can send a %s header and be taken for any user they name. "+
				"List only your proxies' addresses, and have the proxy replace the header the browser sends",
			i, strings.Join(why, "; "), h.Name))
	}
	return out
}

func inLoopback(p netip.Prefix) bool {
	a := p.Addr().Unmap()
	lo := loopback6
	if a.Is4() {
		lo = loopback4
	}
	return p.Bits()-(p.Addr().BitLen()-a.BitLen()) >= lo.Bits() && lo.Contains(a)
}

func wide(p netip.Prefix) bool {
	if a := p.Addr(); a.Is4() || a.Is4In6() {
		return p.Bits()-(a.BitLen()-a.Unmap().BitLen()) < maxQuietPeerBits4
	}
	return p.Bits() < maxQuietPeerBits6
}
