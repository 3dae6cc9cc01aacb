package cidr

import (
	"net/netip"
	"slices"
	"testing"
)

// trieEntries counts the entries held in a set's tries, short-prefix map
// included.
func trieEntries(s *Set) int {
	n := 0
	for _, f := range []*forest{s.v4, s.v6} {
		for _, t := range f.shards {
			n += t.Len()
		}
		n += len(f.short)
	}
	return n
}

// TestRedundantEntriesSkipped: a prefix inside another of the same
// networks adds nothing to any lookup and is left out of the tries; one
// that adds a network is kept, and so are the prefixes inside it.
func TestRedundantEntriesSkipped(t *testing.T) {
	s, err := New(map[string][]string{
		// 10.1.0.0/16 and 10.1.2.0/24 sit inside 10.0.0.0/8 (same network).
		"corp": {"10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "2001:db8::/32", "2001:db8:1::/48"},
		// 10.1.2.0/25 adds "lab" inside them; 10.1.2.0/26 is inside it
		// with "corp" too, which its container already answers.
		"lab": {"10.1.2.0/25"},
		// In both: adds nothing inside 10.1.2.0/25.
		"both": {},
	})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := New(map[string][]string{"corp": {"10.0.0.0/8", "10.1.2.0/26"}, "lab": {"10.1.2.0/25", "10.1.2.0/26"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		set   *Set
		want  int // entries in the tries
		addr  string
		names []string
	}{
		{s, 4, "10.1.2.3", []string{"corp", "lab"}},
		{s, 4, "10.1.2.200", []string{"corp"}},
		{s, 4, "10.1.3.1", []string{"corp"}},
		{s, 4, "2001:db8:1::1", []string{"corp"}},
		{s, 4, "192.0.2.1", nil},
		{s2, 3, "10.1.2.1", []string{"corp", "lab"}},
		{s2, 3, "10.1.2.100", []string{"corp", "lab"}},
		{s2, 3, "10.9.9.9", []string{"corp"}},
	} {
		if got := trieEntries(tc.set); got != tc.want {
			t.Errorf("tries hold %d entries, want %d", got, tc.want)
		}
		if got := tc.set.Lookup(netip.MustParseAddr(tc.addr)); !slices.Equal(got, tc.names) {
			t.Errorf("Lookup(%s) = %q, want %q", tc.addr, got, tc.names)
		}
	}
	// The accessors still list every prefix given.
	if got := s.Prefixes("corp"); len(got) != 5 {
		t.Errorf("Prefixes(corp) = %v, want all 5", got)
	}
}
