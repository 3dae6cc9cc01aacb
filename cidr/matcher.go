package cidr

import (
	"fmt"
	"sync/atomic"
)

// Matcher holds the current [*Set] and replaces it atomically, so a reload
// never blocks or disturbs requests in flight. Readers call [Matcher.Load]
// once per request and use that snapshot for the whole request, so every
// decision in one request sees the same networks.
//
// All methods are safe for concurrent use; when Reload and Store race, the
// last to store wins. The zero Matcher is ready to use and holds an empty
// Set. A Matcher must not be copied after first use.
type Matcher struct {
	cur atomic.Pointer[Set]
}

// NewMatcher returns a Matcher holding s. A nil s means an empty Set.
func NewMatcher(s *Set) *Matcher {
	m := &Matcher{}
	m.Store(s)
	return m
}

// Load returns the current Set. It never returns nil.
func (m *Matcher) Load() *Set {
	if s := m.cur.Load(); s != nil {
		return s
	}
	return &Set{}
}

// Reload builds a new Set from networks, as [New] does, and makes it
// current. On error the current Set stays in place and the returned error
// says why (it wraps New's error, which lists every bad entry).
func (m *Matcher) Reload(networks map[string][]string) error {
	s, err := New(networks)
	if err != nil {
		return fmt.Errorf("reload networks (keeping the current set): %w", err)
	}
	m.Store(s)
	return nil
}

// Store makes s the current Set. A nil s means an empty Set.
func (m *Matcher) Store(s *Set) {
	if s == nil {
		s = &Set{}
	}
	m.cur.Store(s)
}
