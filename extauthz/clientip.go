package extauthz

import (
	"net/netip"
	"strings"
)

// clientIPResolver derives the client's address (docs/envoy.md#client-address). The TCP
// peer is where the walk starts; x-forwarded-for entries are believed only
// as far as the proxies that wrote them are trusted, so a client can never
// talk its way into a corporate network by sending its own header.
type clientIPResolver struct {
	// trustEnvoyHeader: take x-envoy-external-address when present (gRPC
	// and Envoy HTTP mode only; Envoy strips client copies at the edge).
	trustEnvoyHeader bool
	trusted          []netip.Prefix
	hops             int // > 0: Envoy's xff_num_trusted_hops rule instead of trusted
}

func (c *clientIPResolver) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// resolve returns the client IP of r. trustEnvoyHeader is false for
// forward-auth requests, whatever the configuration says.
func (c *clientIPResolver) resolve(r *Request, trustEnvoyHeader bool) (netip.Addr, error) {
	if trustEnvoyHeader {
		if v := r.Headers["x-envoy-external-address"]; v != "" {
			a, err := parseHeaderAddr(v)
			if err != nil {
				return netip.Addr{}, badRequest("x-envoy-external-address: invalid IP address %.64q", v)
			}
			return a, nil
		}
	}
	xff := r.Headers["x-forwarded-for"]
	if c.hops > 0 {
		return c.byHops(r.PeerIP, xff)
	}
	// Walk from the right: the peer first, then each XFF entry, until an
	// address that is not a trusted proxy.
	cur := r.PeerIP
	for cur.IsValid() && c.isTrusted(cur) && xff != "" {
		var entry string
		if i := strings.LastIndexByte(xff, ','); i >= 0 {
			entry, xff = xff[i+1:], xff[:i]
		} else {
			entry, xff = xff, ""
		}
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		a, err := parseHeaderAddr(entry)
		if err != nil {
			// A trusted proxy wrote garbage: nothing to the left of it
			// can be believed. Fail closed rather than guess.
			return netip.Addr{}, badRequest("x-forwarded-for: invalid IP address %.64q", entry)
		}
		// Envoy (use_remote_address) appends the peer itself: skip that
		// duplicate of the address we are standing on.
		if a == cur {
			continue
		}
		cur = a
	}
	if !cur.IsValid() {
		return netip.Addr{}, badRequest("no client address")
	}
	return cur, nil
}

// byHops applies Envoy's xff_num_trusted_hops: the N-th address from the
// right of x-forwarded-for as Envoy received it. Envoy appended the peer to
// the header it passed on, so that last entry (equal to the peer) is not
// counted. With too few entries the left-most one is used, as Envoy does.
func (c *clientIPResolver) byHops(peer netip.Addr, xff string) (netip.Addr, error) {
	parts := strings.Split(xff, ",")
	addrs := make([]netip.Addr, 0, len(parts)+1)
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		a, err := parseHeaderAddr(p)
		if err != nil {
			return netip.Addr{}, badRequest("x-forwarded-for: invalid IP address %.64q", p)
		}
		addrs = append(addrs, a)
	}
	if n := len(addrs); n > 0 && addrs[n-1] == peer {
		addrs = addrs[:n-1]
	}
	if len(addrs) == 0 {
		if !peer.IsValid() {
			return netip.Addr{}, badRequest("no client address")
		}
		return peer, nil
	}
	i := len(addrs) - c.hops
	if i < 0 {
		i = 0
	}
	return addrs[i], nil
}

// parseHeaderAddr parses an address from a forwarding header: a bare IPv4
// or IPv6 address, optionally with a port ("1.2.3.4:5", "[::1]:5"),
// unmapped and without zone.
func parseHeaderAddr(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap().WithZone(""), nil
}
