// Package memstore is an in-memory [session.Store] for tests and single
// process development. Everything is lost when the process exits.
//
// Expired entries are invisible at once and removed lazily: on access, and
// by a sweep every few hundred writes. Time comes from an injectable clock,
// so expiry can be tested without sleeping.
package memstore

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/stepup-dev/stepup/session"
)

// sweepEvery is how many writes pass between sweeps of expired entries.
const sweepEvery = 512

// Options configures a Store.
type Options struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Store is an in-memory session.Store. The zero value is not usable; call
// New.
type Store struct {
	now func() time.Time

	mu     sync.Mutex
	closed bool
	kv     map[string]entry
	users  map[string]map[recKey]entry
	writes int
}

type entry struct {
	val []byte
	exp time.Time
}

type recKey struct{ kind, id string }

var _ session.Store = (*Store)(nil)

// New returns an empty store.
func New(opts Options) *Store {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Store{now: now, kv: make(map[string]entry), users: make(map[string]map[recKey]entry)}
}

var errClosed = fmt.Errorf("%w: memstore is closed", session.ErrStoreUnavailable)

// lock locks the store and returns the current time, or an error when the
// store is closed. On success the caller must unlock.
func (s *Store) lock() (time.Time, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return time.Time{}, errClosed
	}
	return s.now(), nil
}

func (e entry) live(now time.Time) bool { return now.Before(e.exp) }

// wrote counts a write and sweeps now and then; s.mu is held.
func (s *Store) wrote(now time.Time) {
	s.writes++
	if s.writes%sweepEvery == 0 {
		s.sweep(now)
	}
}

func (s *Store) sweep(now time.Time) int {
	n := 0
	for k, e := range s.kv {
		if !e.live(now) {
			delete(s.kv, k)
			n++
		}
	}
	for u, recs := range s.users {
		for k, e := range recs {
			if !e.live(now) {
				delete(recs, k)
				n++
			}
		}
		if len(recs) == 0 {
			delete(s.users, u)
		}
	}
	return n
}

// Sweep removes every expired entry now and returns how many it removed.
func (s *Store) Sweep() int {
	now, err := s.lock()
	if err != nil {
		return 0
	}
	defer s.mu.Unlock()
	return s.sweep(now)
}

// Get implements session.Store.
func (s *Store) Get(_ context.Context, key string) ([]byte, error) {
	if err := session.ValidateKey(key); err != nil {
		return nil, err
	}
	now, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	e, ok := s.kv[key]
	if !ok || !e.live(now) {
		return nil, session.ErrNotFound
	}
	return bytes.Clone(e.val), nil
}

// Put implements session.Store.
func (s *Store) Put(_ context.Context, key string, val []byte, ttl time.Duration) error {
	if err := session.ValidateKeyTTL(key, ttl); err != nil {
		return err
	}
	now, err := s.lock()
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.kv[key] = entry{val: cloneVal(val), exp: now.Add(ttl)}
	s.wrote(now)
	return nil
}

// PutIfAbsent implements session.Store.
func (s *Store) PutIfAbsent(_ context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if err := session.ValidateKeyTTL(key, ttl); err != nil {
		return false, err
	}
	now, err := s.lock()
	if err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	if e, ok := s.kv[key]; ok && e.live(now) {
		return false, nil
	}
	s.kv[key] = entry{val: cloneVal(val), exp: now.Add(ttl)}
	s.wrote(now)
	return true, nil
}

// Consume implements session.Store.
func (s *Store) Consume(_ context.Context, key string) ([]byte, error) {
	if err := session.ValidateKey(key); err != nil {
		return nil, err
	}
	now, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	e, ok := s.kv[key]
	if !ok {
		return nil, session.ErrNotFound
	}
	delete(s.kv, key)
	if !e.live(now) {
		return nil, session.ErrNotFound
	}
	return e.val, nil
}

// Delete implements session.Store.
func (s *Store) Delete(_ context.Context, key string) error {
	if err := session.ValidateKey(key); err != nil {
		return err
	}
	if _, err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.kv, key)
	return nil
}

// Incr implements session.Store.
func (s *Store) Incr(_ context.Context, key string, window time.Duration) (int64, error) {
	if err := session.ValidateKeyTTL(key, window); err != nil {
		return 0, err
	}
	now, err := s.lock()
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	e, ok := s.kv[key]
	if !ok || !e.live(now) {
		s.kv[key] = entry{val: []byte("1"), exp: now.Add(window)}
		s.wrote(now)
		return 1, nil
	}
	n, err := strconv.ParseInt(string(e.val), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("incr %q: value is not a counter", key)
	}
	n++
	e.val = strconv.AppendInt(e.val[:0], n, 10)
	s.kv[key] = e
	return n, nil
}

// Decr implements session.Store.
func (s *Store) Decr(_ context.Context, key string) (int64, error) {
	if err := session.ValidateKey(key); err != nil {
		return 0, err
	}
	now, err := s.lock()
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	e, ok := s.kv[key]
	if !ok || !e.live(now) {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(e.val), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("decr %q: value is not a counter", key)
	}
	if n <= 0 {
		return 0, nil
	}
	n--
	e.val = strconv.AppendInt(e.val[:0], n, 10)
	s.kv[key] = e
	return n, nil
}

// PutUser implements session.Store.
func (s *Store) PutUser(_ context.Context, user, kind, id string, val []byte, ttl time.Duration) error {
	if err := session.ValidateUserRecordTTL(user, kind, id, ttl); err != nil {
		return err
	}
	now, err := s.lock()
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	recs := s.users[user]
	if recs == nil {
		recs = make(map[recKey]entry)
		s.users[user] = recs
	}
	recs[recKey{kind, id}] = entry{val: cloneVal(val), exp: now.Add(ttl)}
	s.wrote(now)
	return nil
}

// UpdateUser implements session.Store.
func (s *Store) UpdateUser(_ context.Context, user, kind, id string, val []byte, ttl time.Duration) error {
	if err := session.ValidateUserRecordTTL(user, kind, id, ttl); err != nil {
		return err
	}
	now, err := s.lock()
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	recs := s.users[user]
	k := recKey{kind, id}
	if e, ok := recs[k]; !ok || !e.live(now) {
		return session.ErrNotFound
	}
	recs[k] = entry{val: cloneVal(val), exp: now.Add(ttl)}
	return nil
}

// GetUser implements session.Store.
func (s *Store) GetUser(_ context.Context, user, kind, id string) ([]byte, error) {
	if err := session.ValidateUserRecord(user, kind, id); err != nil {
		return nil, err
	}
	now, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	e, ok := s.users[user][recKey{kind, id}]
	if !ok || !e.live(now) {
		return nil, session.ErrNotFound
	}
	return bytes.Clone(e.val), nil
}

// ListUser implements session.Store.
func (s *Store) ListUser(_ context.Context, user, kind string) ([]session.Record, error) {
	if err := session.ValidateUserSelector(user, kind, ""); err != nil {
		return nil, err
	}
	now, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var out []session.Record
	for k, e := range s.users[user] {
		if (kind == "" || k.kind == kind) && e.live(now) {
			out = append(out, session.Record{Kind: k.kind, ID: k.id, Value: bytes.Clone(e.val), ExpiresAt: e.exp})
		}
	}
	slices.SortFunc(out, func(a, b session.Record) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DeleteUser implements session.Store.
func (s *Store) DeleteUser(_ context.Context, user, kind, id string) (int, error) {
	if err := session.ValidateUserSelector(user, kind, id); err != nil {
		return 0, err
	}
	now, err := s.lock()
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	recs := s.users[user]
	n := 0
	for k, e := range recs {
		if (kind == "" || k.kind == kind) && (id == "" || k.id == id) {
			if e.live(now) {
				n++
			}
			delete(recs, k)
		}
	}
	if len(recs) == 0 {
		delete(s.users, user)
	}
	return n, nil
}

// Ping implements session.Store.
func (s *Store) Ping(context.Context) error {
	if _, err := s.lock(); err != nil {
		return err
	}
	s.mu.Unlock()
	return nil
}

// Close implements session.Store: it drops every entry.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.kv, s.users = nil, nil
	return nil
}

// cloneVal copies val, never returning nil so that an empty value reads
// back as empty rather than missing.
func cloneVal(val []byte) []byte {
	return append(make([]byte, 0, len(val)), val...)
}
