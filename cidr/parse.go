package cidr

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// Errors that callers may branch on with [errors.Is].
var (
	// ErrInvalidPrefix is returned (wrapped) by ParsePrefix, ParseList, New
	// and NewFromPrefixes for a network entry that is not a valid IP prefix
	// or address.
	ErrInvalidPrefix = errors.New("invalid prefix")

	// ErrInvalidName is returned (wrapped) by New and NewFromPrefixes for a
	// network name that is empty or has characters outside [A-Za-z0-9_.-].
	ErrInvalidName = errors.New("invalid network name")
)

// maxListErrors bounds how many bad lines ParseList reports one by one, so
// that feeding it a wrong (say, binary) file yields a readable error.
const maxListErrors = 100

// ParsePrefix parses an IP prefix in CIDR notation ("10.0.0.0/8",
// "2001:db8::/32") or a bare IP address, which becomes a single-address
// prefix (/32 for IPv4, /128 for IPv6).
//
// The result is always in canonical form:
//
//   - Host bits are accepted and cleared: "10.1.2.3/8" yields 10.0.0.0/8,
//     as [netip.Prefix.Masked] would. Operators often write a host address
//     with its network's length; the network is what they mean.
//   - An IPv4-mapped IPv6 prefix of length 96 or more is converted to its
//     IPv4 form: "::ffff:10.0.0.0/104" yields 10.0.0.0/8, and the bare
//     address "::ffff:192.0.2.1" yields 192.0.2.1/32. Shorter IPv6 prefixes
//     (such as ::/0) stay IPv6 and never match IPv4 clients, because
//     lookups unmap addresses first.
//
// Zones ("fe80::1%eth0"), surrounding spaces, empty strings and anything
// else netip cannot parse are rejected with an error wrapping
// [ErrInvalidPrefix].
func ParsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("%w: empty string", ErrInvalidPrefix)
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%w: %w", ErrInvalidPrefix, err)
		}
		return canonical(p), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %w", ErrInvalidPrefix, err)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%w: %q has an IPv6 zone", ErrInvalidPrefix, s)
	}
	return canonical(netip.PrefixFrom(a, a.BitLen())), nil
}

// canonical masks p and converts an IPv4-mapped IPv6 prefix of length 96 or
// more to IPv4. p must be valid and have no zone.
func canonical(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// ParseList reads a networks file: one prefix or bare IP address per line,
// in any form [ParsePrefix] accepts. Leading and trailing white space is
// trimmed, '#' starts a comment that runs to the end of the line, and blank
// lines are ignored. A UTF-8 byte order mark and CRLF line endings are
// tolerated.
//
// It returns the entries in file order, as written (trimmed), ready for
// [New]. Every line is validated; if any is bad, the error lists each bad
// line with its 1-based number (up to 100 of them, then a count of the rest)
// and wraps [ErrInvalidPrefix]. A read error is returned as is, wrapped.
func ParseList(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	var (
		out   []string
		errs  []error
		extra int
		line  int
	)
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\uFEFF")
		}
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if _, err := ParsePrefix(text); err != nil {
			if len(errs) < maxListErrors {
				errs = append(errs, fmt.Errorf("line %d: %w", line, err))
			} else {
				extra++
			}
			continue
		}
		out = append(out, text)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read network list after line %d: %w", line, err)
	}
	if extra > 0 {
		errs = append(errs, fmt.Errorf("%w: %d more bad lines not shown", ErrInvalidPrefix, extra))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
