package cidr

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/yl2chen/cidranger"
)

// EntryError describes one bad entry of one network, as reported by [New]
// and [NewFromPrefixes]. Several of them are joined into one error; find
// them with [errors.As] on each joined error, or test the whole error with
// errors.Is(err, ErrInvalidPrefix).
type EntryError struct {
	// Network is the name of the network the entry belongs to.
	Network string
	// Index is the 0-based position of the entry in the network's list.
	Index int
	// Entry is the entry as given (for NewFromPrefixes, its String form).
	Entry string
	// Err says what is wrong; it wraps ErrInvalidPrefix.
	Err error
}

// Error implements error.
func (e *EntryError) Error() string {
	return fmt.Sprintf("network %q entry %d: %v", e.Network, e.Index, e.Err)
}

// Unwrap returns e.Err.
func (e *EntryError) Unwrap() error { return e.Err }

// Set is an immutable snapshot of named networks. It is never modified
// after New or NewFromPrefixes returns it, so it is safe for concurrent use
// without locking. The zero Set and a nil *Set are valid and empty.
//
// Storage and lookup: the distinct prefixes are stored in
// github.com/yl2chen/cidranger path-compressed tries, split by address
// family and by the address's leading bits (12 for IPv4, 16 for IPv6), so
// that each trie is shallow and the tries can be built in parallel. Any two
// CIDR prefixes are either nested or disjoint, so the networks containing
// an address are exactly those owning the most specific stored prefix that
// contains it, or a stored prefix containing that one. Each stored prefix
// therefore carries, computed at build time, the sorted names of all
// networks that contain it, and each distinct combination of names is
// interned once. Lookup asks one trie for the containing prefixes and
// returns the interned names of the most specific: nothing is merged,
// sorted or copied per request. (Where a shard holds only prefixes shorter
// than the split, the answer is the same for the whole shard and the root
// node gives it without a trie.)
type Set struct {
	v4, v6   *forest                   // nil when the set has no prefixes
	names    []string                  // sorted network names
	prefixes map[string][]netip.Prefix // per network: canonical, sorted, unique
	total    int                       // sum of len(prefixes[name])
}

// entry is one distinct prefix stored in the tries.
type entry struct {
	prefix netip.Prefix
	// names lists, sorted and de-duplicated, every network with a prefix
	// that contains (or equals) this one. It is interned and shared.
	names []string
}

// Network implements cidranger.RangerEntry. cidranger calls it only while
// a trie is built.
func (e *entry) Network() net.IPNet {
	a := e.prefix.Addr()
	return net.IPNet{
		IP:   net.IP(a.AsSlice()),
		Mask: net.CIDRMask(e.prefix.Bits(), a.BitLen()),
	}
}

// New builds a Set. networks maps a network name (such as "corporate") to
// its entries, each in a form [ParsePrefix] accepts (so host bits are
// cleared and IPv4-mapped prefixes become IPv4).
//
// A name must be non-empty and use only the characters A-Z a-z 0-9 _ . -.
// A network may have no entries; it is then listed by Names but matches no
// address. The same prefix may appear in several networks, and repeats
// within one network are ignored.
//
// If anything is wrong, New returns nil and one error, made with
// [errors.Join], that lists every problem: each bad name (wrapping
// [ErrInvalidName]) and each bad entry as an [*EntryError] with its network
// name and index (wrapping [ErrInvalidPrefix]), ordered by network name and
// index.
func New(networks map[string][]string) (*Set, error) {
	parsed := make(map[string][]netip.Prefix, len(networks))
	var errs []error
	for _, name := range sortedKeys(networks) {
		if err := checkName(name); err != nil {
			errs = append(errs, err)
		}
		list := networks[name]
		ps := make([]netip.Prefix, 0, len(list))
		for i, s := range list {
			p, err := ParsePrefix(s)
			if err != nil {
				errs = append(errs, &EntryError{Network: name, Index: i, Entry: s, Err: err})
				continue
			}
			ps = append(ps, p)
		}
		parsed[name] = ps
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return build(parsed)
}

// NewFromPrefixes is like [New] for prefixes that are already parsed. Each
// prefix is put in the canonical form ParsePrefix returns; an invalid
// (zero) prefix is reported as an [*EntryError]. The caller's map and
// slices are not retained or modified.
func NewFromPrefixes(networks map[string][]netip.Prefix) (*Set, error) {
	parsed := make(map[string][]netip.Prefix, len(networks))
	var errs []error
	for _, name := range sortedKeys(networks) {
		if err := checkName(name); err != nil {
			errs = append(errs, err)
		}
		list := networks[name]
		ps := make([]netip.Prefix, 0, len(list))
		for i, p := range list {
			if !p.IsValid() {
				errs = append(errs, &EntryError{Network: name, Index: i, Entry: p.String(),
					Err: fmt.Errorf("%w: not a valid prefix", ErrInvalidPrefix)})
				continue
			}
			ps = append(ps, canonical(p))
		}
		parsed[name] = ps
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return build(parsed)
}

// sortedKeys returns the keys of m in increasing order.
func sortedKeys[V any](m map[string]V) []string {
	keys := slices.AppendSeq(make([]string, 0, len(m)), maps.Keys(m))
	slices.Sort(keys)
	return keys
}

// checkName returns an error wrapping ErrInvalidName if name is not a valid
// network name.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w %q: must not be empty", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '_', c == '.', c == '-':
		default:
			return fmt.Errorf("%w %q: only A-Z a-z 0-9 _ . - are allowed", ErrInvalidName, name)
		}
	}
	return nil
}

// Lookup returns the sorted, de-duplicated names of all networks that
// contain addr, or nil if none does. addr is unmapped first
// (::ffff:192.0.2.1 is looked up as 192.0.2.1) and its zone is ignored. An
// invalid addr returns nil.
//
// The returned slice is shared by every caller that gets the same answer
// and must be treated as read-only: copy it before changing it.
//
// Cost: an address whose shard (its first 12 bits for IPv4, 16 for IPv6)
// holds no stored prefix of at least that length is answered from the root
// node without allocating. Otherwise a few small objects are allocated,
// all for the cidranger query: the net.IP it takes, its own copy of the
// address, and its result slice (one more per enclosing stored prefix). The
// answer itself is never allocated.
func (s *Set) Lookup(addr netip.Addr) []string {
	if s == nil || s.v4 == nil || !addr.IsValid() {
		return nil
	}
	// Unmap also drops the zone of a mapped address; the shard key and
	// As4/As16 ignore any other zone.
	addr = addr.Unmap()
	f := s.v6
	if addr.Is4() {
		f = s.v4
	}
	trie, whole := f.route(addr)
	if trie == nil {
		// addr's shard has no trie: whole answers for all of it.
		if whole == nil {
			return nil
		}
		return whole.names
	}
	// cidranger takes a net.IP through an interface method, so the bytes
	// escape to the heap: one small allocation, made only here.
	var ip net.IP
	if addr.Is4() {
		b := addr.As4()
		ip = b[:]
	} else {
		b := addr.As16()
		ip = b[:]
	}
	found, err := trie.ContainingNetworks(ip)
	if err != nil || len(found) == 0 {
		return nil
	}
	// found is in ascending prefix length: the last one is the most
	// specific, and its names include those of all the others.
	e, ok := found[len(found)-1].(*entry)
	if !ok {
		return nil
	}
	return e.names
}

// Contains reports whether the network called name contains addr (after
// unmapping addr, as Lookup does). It is false for an unknown name.
func (s *Set) Contains(name string, addr netip.Addr) bool {
	_, ok := slices.BinarySearch(s.Lookup(addr), name)
	return ok
}

// Names returns the sorted names of all networks in s, including networks
// with no prefixes. The caller owns the returned slice.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.names)
}

// Len returns the number of prefixes in s: the sum over networks of the
// length of [Set.Prefixes]. A prefix listed by two networks counts twice.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return s.total
}

// Prefixes returns the canonical, sorted, de-duplicated prefixes of the
// network called name, or nil for an unknown name. The caller owns the
// returned slice.
func (s *Set) Prefixes(name string) []netip.Prefix {
	if s == nil {
		return nil
	}
	return slices.Clone(s.prefixes[name])
}

// Interface guards
var _ cidranger.RangerEntry = (*entry)(nil)
