// Package storetest is the conformance suite every [session.Store] passes.
//
// A backend's test calls [Run] with a function that makes a fresh, empty
// store wrapped in a [Harness]. Stores with an injected clock pass a
// [Clock]'s Advance; stores whose expiry happens on a server (Redis) pass
// time.Sleep and set RealTime, and the suite then scales its TTLs down to
// fractions of a second. Subtests run in parallel, each on its own store.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stepup-dev/stepup/session"
)

// Harness is one fresh store under test and its sense of time.
type Harness struct {
	// Store is the store under test, empty. The suite closes it.
	Store session.Store
	// Advance moves the store's time forward by d.
	Advance func(d time.Duration)
	// Now returns the store's current time; nil means time.Now.
	Now func() time.Time
	// RealTime says that Advance really waits. The suite then uses a time
	// unit of 250 ms instead of a minute and allows clock skew when it
	// compares expiry times.
	RealTime bool
}

// Clock is a fake clock for stores that take a now function. It is safe
// for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock stopped at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Run runs the conformance suite. newHarness is called once per subtest
// with the subtest's t and must return a fresh, empty store; it should
// register its own cleanup with t.Cleanup (the suite also calls Close).
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"Missing", testMissing},
		{"PutGet", testPutGet},
		{"ValuesAreCopied", testValuesAreCopied},
		{"Expiry", testExpiry},
		{"PutReplacesTTL", testPutReplacesTTL},
		{"PutIfAbsent", testPutIfAbsent},
		{"PutIfAbsentConcurrent", testPutIfAbsentConcurrent},
		{"Consume", testConsume},
		{"ConsumeConcurrent", testConsumeConcurrent},
		{"Delete", testDelete},
		{"Incr", testIncr},
		{"IncrFixedWindow", testIncrFixedWindow},
		{"IncrConcurrent", testIncrConcurrent},
		{"Decr", testDecr},
		{"DecrKeepsWindow", testDecrKeepsWindow},
		{"CountFirstConcurrent", testCountFirstConcurrent},
		{"UserRecords", testUserRecords},
		{"UserNames", testUserNames},
		{"UserExpiry", testUserExpiry},
		{"UpdateUser", testUpdateUser},
		{"DeleteUser", testDeleteUser},
		{"UserReadAfterWrite", testUserReadAfterWrite},
		{"UserReadAfterWriteConcurrent", testUserReadAfterWriteConcurrent},
		{"Namespaces", testNamespaces},
		{"InvalidArguments", testInvalidArguments},
		{"Ping", testPing},
		{"Closed", testClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if h.Store == nil || h.Advance == nil {
				t.Fatal("harness needs Store and Advance")
			}
			s := &suite{Harness: h, ctx: context.Background(), unit: time.Minute, skew: 0}
			if h.RealTime {
				s.unit, s.skew = 250*time.Millisecond, time.Second
			}
			if s.Now == nil {
				s.Now = time.Now
			}
			t.Cleanup(func() { _ = h.Store.Close() })
			c.fn(t, s)
		})
	}
}

type suite struct {
	Harness
	ctx  context.Context
	unit time.Duration // one step of time: a minute, or 250 ms in real time
	skew time.Duration // allowed error on expiry times
}

const long = time.Hour // a TTL that does not run out during a test

func testMissing(t *testing.T, s *suite) {
	if _, err := s.Store.Get(s.ctx, "nothing"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Store.Consume(s.ctx, "nothing"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Consume(missing) error = %v, want ErrNotFound", err)
	}
	if err := s.Store.Delete(s.ctx, "nothing"); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
	if _, err := s.Store.GetUser(s.ctx, "alice", "mfa", "x"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("GetUser(missing) error = %v, want ErrNotFound", err)
	}
	recs, err := s.Store.ListUser(s.ctx, "alice", "")
	if err != nil || len(recs) != 0 {
		t.Errorf("ListUser(nobody) = %v, %v; want empty, nil", recs, err)
	}
	if n, err := s.Store.DeleteUser(s.ctx, "alice", "", ""); err != nil || n != 0 {
		t.Errorf("DeleteUser(nobody) = %d, %v; want 0, nil", n, err)
	}
}

func testPutGet(t *testing.T, s *suite) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	tests := []struct {
		name string
		key  string
		val  []byte
	}{
		{"empty value", "k-empty", []byte{}},
		{"text", "k-text", []byte("hello")},
		{"binary", "k-bin", []byte{0, 1, 2, 0xff, 0, '\r', '\n'}},
		{"64 KiB", "k-big", big},
		{"key with separators", "state:{u}:a b%c", []byte("sep")},
		{"unicode key", "clé-ü", []byte("u")},
	}
	for _, tt := range tests {
		if err := s.Store.Put(s.ctx, tt.key, tt.val, long); err != nil {
			t.Fatalf("%s: Put: %v", tt.name, err)
		}
	}
	for _, tt := range tests {
		got, err := s.Store.Get(s.ctx, tt.key)
		if err != nil {
			t.Errorf("%s: Get: %v", tt.name, err)
			continue
		}
		if !bytes.Equal(got, tt.val) {
			t.Errorf("%s: Get = %d bytes %q…, want %d bytes", tt.name, len(got), trunc(got), len(tt.val))
		}
	}
	if err := s.Store.Put(s.ctx, "k-text", []byte("bye"), long); err != nil {
		t.Fatal(err)
	}
	if got := s.mustGet(t, "k-text"); string(got) != "bye" {
		t.Errorf("Get after overwrite = %q, want %q", got, "bye")
	}
}

func testValuesAreCopied(t *testing.T, s *suite) {
	in := []byte("original")
	if err := s.Store.Put(s.ctx, "k", in, long); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "a", in, long); err != nil {
		t.Fatal(err)
	}
	copy(in, "XXXXXXXX")
	out := s.mustGet(t, "k")
	copy(out, "YYYYYYYY")
	if got := s.mustGet(t, "k"); string(got) != "original" {
		t.Errorf("Get = %q after the caller changed its slices, want %q", got, "original")
	}
	u, err := s.Store.GetUser(s.ctx, "alice", "mfa", "a")
	if err != nil {
		t.Fatal(err)
	}
	copy(u, "ZZZZZZZZ")
	recs, err := s.Store.ListUser(s.ctx, "alice", "mfa")
	if err != nil || len(recs) != 1 {
		t.Fatalf("ListUser = %v, %v", recs, err)
	}
	if string(recs[0].Value) != "original" {
		t.Errorf("ListUser value = %q after the caller changed its slices, want %q", recs[0].Value, "original")
	}
}

func testExpiry(t *testing.T, s *suite) {
	u := s.unit
	start := s.Now()
	if err := s.Store.Put(s.ctx, "k", []byte("v"), 2*u); err != nil {
		t.Fatal(err)
	}
	s.Advance(u)
	got, err := s.Store.Get(s.ctx, "k")
	if s.inTime(t, start, 2*u) && (err != nil || string(got) != "v") {
		t.Errorf("Get before expiry = %q, %v; want v", got, err)
	}
	s.Advance(3 * u / 2)
	if _, err := s.Store.Get(s.ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after expiry error = %v, want ErrNotFound", err)
	}
	if _, err := s.Store.Consume(s.ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Consume after expiry error = %v, want ErrNotFound", err)
	}
}

func testPutReplacesTTL(t *testing.T, s *suite) {
	u := s.unit
	if err := s.Store.Put(s.ctx, "k", []byte("v1"), u); err != nil {
		t.Fatal(err)
	}
	start := s.Now()
	if err := s.Store.Put(s.ctx, "k", []byte("v2"), 4*u); err != nil {
		t.Fatal(err)
	}
	s.Advance(2 * u)
	got, err := s.Store.Get(s.ctx, "k")
	if s.inTime(t, start, 4*u) && (err != nil || string(got) != "v2") {
		t.Errorf("Get = %q, %v; want v2: Put must replace the TTL", got, err)
	}
}

func testPutIfAbsent(t *testing.T, s *suite) {
	u := s.unit
	start := s.Now()
	ok, err := s.Store.PutIfAbsent(s.ctx, "jti", []byte("first"), 2*u)
	if err != nil || !ok {
		t.Fatalf("first PutIfAbsent = %v, %v; want true, nil", ok, err)
	}
	ok, err = s.Store.PutIfAbsent(s.ctx, "jti", []byte("second"), 2*u)
	got, gerr := s.Store.Get(s.ctx, "jti")
	if s.inTime(t, start, 2*u) {
		if err != nil || ok {
			t.Fatalf("second PutIfAbsent = %v, %v; want false, nil", ok, err)
		}
		if gerr != nil || string(got) != "first" {
			t.Errorf("Get = %q, %v; want first: PutIfAbsent must not overwrite", got, gerr)
		}
	}
	s.Advance(3 * u)
	ok, err = s.Store.PutIfAbsent(s.ctx, "jti", []byte("third"), 2*u)
	if err != nil || !ok {
		t.Fatalf("PutIfAbsent after expiry = %v, %v; want true, nil", ok, err)
	}
	if got := s.mustGet(t, "jti"); string(got) != "third" {
		t.Errorf("Get = %q, want third", got)
	}
}

// contenders is how many goroutines race in the concurrency tests.
const contenders = 20

func testPutIfAbsentConcurrent(t *testing.T, s *suite) {
	for round := range 3 {
		key := fmt.Sprintf("race-%d", round)
		wins := race(t, func(i int) (bool, error) {
			return s.Store.PutIfAbsent(s.ctx, key, []byte(strconv.Itoa(i)), long)
		})
		if wins != 1 {
			t.Errorf("round %d: %d of %d concurrent PutIfAbsent calls won, want exactly 1", round, wins, contenders)
		}
	}
}

func testConsume(t *testing.T, s *suite) {
	if err := s.Store.Put(s.ctx, "state:1", []byte("payload"), long); err != nil {
		t.Fatal(err)
	}
	got, err := s.Store.Consume(s.ctx, "state:1")
	if err != nil || string(got) != "payload" {
		t.Fatalf("Consume = %q, %v; want payload, nil", got, err)
	}
	if _, err := s.Store.Consume(s.ctx, "state:1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("second Consume error = %v, want ErrNotFound", err)
	}
	if _, err := s.Store.Get(s.ctx, "state:1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after Consume error = %v, want ErrNotFound", err)
	}
}

func testConsumeConcurrent(t *testing.T, s *suite) {
	for round := range 5 {
		key := fmt.Sprintf("state:%d", round)
		want := fmt.Sprintf("value-%d", round)
		if err := s.Store.Put(s.ctx, key, []byte(want), long); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var got []string
		wins := race(t, func(int) (bool, error) {
			v, err := s.Store.Consume(s.ctx, key)
			if errors.Is(err, session.ErrNotFound) {
				return false, nil
			}
			if err == nil {
				mu.Lock()
				got = append(got, string(v))
				mu.Unlock()
			}
			return err == nil, err
		})
		if wins != 1 {
			t.Errorf("round %d: %d of %d concurrent consumers won, want exactly 1", round, wins, contenders)
		}
		if len(got) == 1 && got[0] != want {
			t.Errorf("round %d: winner got %q, want %q", round, got[0], want)
		}
	}
}

func testDelete(t *testing.T, s *suite) {
	if err := s.Store.Put(s.ctx, "k", []byte("v"), long); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.Delete(s.ctx, "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Store.Get(s.ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after Delete error = %v, want ErrNotFound", err)
	}
	if err := s.Store.Delete(s.ctx, "k"); err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}
}

func testIncr(t *testing.T, s *suite) {
	for want := int64(1); want <= 3; want++ {
		got, err := s.Store.Incr(s.ctx, "rl:alice", long)
		if err != nil || got != want {
			t.Fatalf("Incr = %d, %v; want %d, nil", got, err, want)
		}
	}
	if got := s.mustGet(t, "rl:alice"); string(got) != "3" {
		t.Errorf("Get(counter) = %q, want %q", got, "3")
	}
	if got, err := s.Store.Incr(s.ctx, "rl:bob", long); err != nil || got != 1 {
		t.Errorf("Incr(other key) = %d, %v; want 1, nil", got, err)
	}
}

func testIncrFixedWindow(t *testing.T, s *suite) {
	u := s.unit
	incr := func(want int64) {
		t.Helper()
		got, err := s.Store.Incr(s.ctx, "rl", 2*u)
		if err != nil || got != want {
			t.Fatalf("Incr = %d, %v; want %d, nil", got, err, want)
		}
	}
	start := s.Now()
	incr(1)
	s.Advance(3 * u / 2)
	n, err := s.Store.Incr(s.ctx, "rl", 2*u) // inside the window; must not extend it
	if s.inTime(t, start, 2*u) && (err != nil || n != 2) {
		t.Fatalf("Incr inside the window = %d, %v; want 2, nil", n, err)
	}
	s.Advance(u)
	incr(1) // the window that began with the first Incr is over
}

func testIncrConcurrent(t *testing.T, s *suite) {
	const per = 5
	var mu sync.Mutex
	var seen []int64
	race(t, func(int) (bool, error) {
		for range per {
			n, err := s.Store.Incr(s.ctx, "rl:race", long)
			if err != nil {
				return false, err
			}
			mu.Lock()
			seen = append(seen, n)
			mu.Unlock()
		}
		return true, nil
	})
	slices.Sort(seen)
	want := make([]int64, contenders*per)
	for i := range want {
		want[i] = int64(i + 1)
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("values returned by concurrent Incr (-want +got):\n%s", diff)
	}
}

func testDecr(t *testing.T, s *suite) {
	if got, err := s.Store.Decr(s.ctx, "rl:none"); err != nil || got != 0 {
		t.Errorf("Decr(missing) = %d, %v; want 0, nil", got, err)
	}
	if _, err := s.Store.Get(s.ctx, "rl:none"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after Decr(missing) error = %v, want ErrNotFound (Decr must not create)", err)
	}
	for range 2 {
		if _, err := s.Store.Incr(s.ctx, "rl", long); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []int64{1, 0, 0} {
		if got, err := s.Store.Decr(s.ctx, "rl"); err != nil || got != want {
			t.Fatalf("Decr = %d, %v; want %d, nil", got, err, want)
		}
	}
	if got := s.mustGet(t, "rl"); string(got) != "0" {
		t.Errorf("Get(counter) = %q, want %q", got, "0")
	}
	if got, err := s.Store.Incr(s.ctx, "rl", long); err != nil || got != 1 {
		t.Errorf("Incr after Decr to zero = %d, %v; want 1, nil", got, err)
	}
}

func testDecrKeepsWindow(t *testing.T, s *suite) {
	u := s.unit
	start := s.Now()
	for range 2 {
		if _, err := s.Store.Incr(s.ctx, "rl", 2*u); err != nil {
			t.Fatal(err)
		}
	}
	s.Advance(3 * u / 2)
	n, err := s.Store.Decr(s.ctx, "rl") // inside the window; must not extend it
	if s.inTime(t, start, 2*u) && (err != nil || n != 1) {
		t.Fatalf("Decr inside the window = %d, %v; want 1, nil", n, err)
	}
	s.Advance(u)
	if got, err := s.Store.Decr(s.ctx, "rl"); err != nil || got != 0 {
		t.Errorf("Decr after the window = %d, %v; want 0, nil", got, err)
	}
	if got, err := s.Store.Incr(s.ctx, "rl", 2*u); err != nil || got != 1 {
		t.Errorf("Incr after the window = %d, %v; want 1 (a new window), nil", got, err)
	}
}

// testCountFirstConcurrent is how rate limits use Incr and Decr: every
// contender counts its attempt first; those past the limit take theirs
// back. Exactly limit contenders are admitted however they interleave, and
// the counter ends at limit.
func testCountFirstConcurrent(t *testing.T, s *suite) {
	const limit = 3
	wins := race(t, func(int) (bool, error) {
		n, err := s.Store.Incr(s.ctx, "rl:gate", long)
		if err != nil {
			return false, err
		}
		if n <= limit {
			return true, nil
		}
		if _, err := s.Store.Decr(s.ctx, "rl:gate"); err != nil {
			return false, err
		}
		return false, nil
	})
	if wins != limit {
		t.Errorf("%d contenders admitted, want %d", wins, limit)
	}
	if got := s.mustGet(t, "rl:gate"); string(got) != strconv.Itoa(limit) {
		t.Errorf("counter after the race = %s, want %d", got, limit)
	}
	// Concurrent refunds never take the counter below zero.
	race(t, func(int) (bool, error) {
		_, err := s.Store.Decr(s.ctx, "rl:gate")
		return false, err
	})
	if got := s.mustGet(t, "rl:gate"); string(got) != "0" {
		t.Errorf("counter after more refunds than counts = %s, want 0", got)
	}
}

func testUserRecords(t *testing.T, s *suite) {
	now := s.Now()
	put := []struct {
		user, kind, id, val string
		ttl                 time.Duration
	}{
		{"alice", "mfa", "s2", "alice mfa s2", 2 * long},
		{"alice", "mfa", "s1", "alice mfa s1", long},
		{"alice", "device", "d1", "alice device d1", 3 * long},
		{"alice2", "mfa", "s1", "alice2 mfa s1", long},
		{"ali", "mfa", "s1", "ali mfa s1", long},
		{"bob", "device", "d1", "bob device d1", long},
	}
	for _, p := range put {
		if err := s.Store.PutUser(s.ctx, p.user, p.kind, p.id, []byte(p.val), p.ttl); err != nil {
			t.Fatalf("PutUser(%s, %s, %s): %v", p.user, p.kind, p.id, err)
		}
	}
	for _, p := range put {
		got, err := s.Store.GetUser(s.ctx, p.user, p.kind, p.id)
		if err != nil || string(got) != p.val {
			t.Errorf("GetUser(%s, %s, %s) = %q, %v; want %q", p.user, p.kind, p.id, got, err, p.val)
		}
	}
	if _, err := s.Store.GetUser(s.ctx, "alice", "device", "s1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("GetUser(other kind) error = %v, want ErrNotFound", err)
	}
	rec := func(kind, id, val string, ttl time.Duration) session.Record {
		return session.Record{Kind: kind, ID: id, Value: []byte(val), ExpiresAt: now.Add(ttl)}
	}
	tests := []struct {
		user, kind string
		want       []session.Record
	}{
		{"alice", "mfa", []session.Record{rec("mfa", "s1", "alice mfa s1", long), rec("mfa", "s2", "alice mfa s2", 2*long)}},
		{"alice", "device", []session.Record{rec("device", "d1", "alice device d1", 3*long)}},
		{"alice", "", []session.Record{rec("device", "d1", "alice device d1", 3*long), rec("mfa", "s1", "alice mfa s1", long), rec("mfa", "s2", "alice mfa s2", 2*long)}},
		{"alice2", "", []session.Record{rec("mfa", "s1", "alice2 mfa s1", long)}},
		{"ali", "", []session.Record{rec("mfa", "s1", "ali mfa s1", long)}},
		{"bob", "mfa", nil},
		{"carol", "", nil},
	}
	for _, tt := range tests {
		got, err := s.Store.ListUser(s.ctx, tt.user, tt.kind)
		if err != nil {
			t.Errorf("ListUser(%s, %q): %v", tt.user, tt.kind, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(s.skew+time.Millisecond)); diff != "" {
			t.Errorf("ListUser(%s, %q) (-want +got):\n%s", tt.user, tt.kind, diff)
		}
	}
}

func testUserNames(t *testing.T, s *suite) {
	users := []string{
		"auth0|5f7c8ec7c33c6c004bbafe82",
		"google-oauth2|1234",
		"a:b",
		"a",
		"a:",
		"{tag}",
		"}{",
		"x}:mfa:y",
		"100%",
		"%7B",
		"Zoë Ünïcode 用户",
		"with space",
		"mfa",
	}
	for i, u := range users {
		if err := s.Store.PutUser(s.ctx, u, "mfa", "id", []byte(strconv.Itoa(i)), long); err != nil {
			t.Fatalf("PutUser(%q): %v", u, err)
		}
	}
	for i, u := range users {
		recs, err := s.Store.ListUser(s.ctx, u, "")
		if err != nil {
			t.Fatalf("ListUser(%q): %v", u, err)
		}
		if len(recs) != 1 || string(recs[0].Value) != strconv.Itoa(i) {
			t.Errorf("ListUser(%q) = %+v, want only its own record %d", u, recs, i)
		}
	}
	if n, err := s.Store.DeleteUser(s.ctx, "a", "", ""); err != nil || n != 1 {
		t.Errorf("DeleteUser(a) = %d, %v; want 1, nil", n, err)
	}
	for i, u := range users {
		got, err := s.Store.GetUser(s.ctx, u, "mfa", "id")
		if u == "a" {
			if !errors.Is(err, session.ErrNotFound) {
				t.Errorf("GetUser(a) after delete error = %v, want ErrNotFound", err)
			}
			continue
		}
		if err != nil || string(got) != strconv.Itoa(i) {
			t.Errorf("GetUser(%q) = %q, %v; want %d: deleting user a touched it", u, got, err, i)
		}
	}
}

func testUserExpiry(t *testing.T, s *suite) {
	u := s.unit
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "long", []byte("l"), long); err != nil {
		t.Fatal(err)
	}
	start := s.Now()
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "short", []byte("s"), 2*u); err != nil {
		t.Fatal(err)
	}
	s.Advance(u)
	if _, err := s.Store.GetUser(s.ctx, "alice", "mfa", "short"); s.inTime(t, start, 2*u) && err != nil {
		t.Errorf("GetUser before expiry: %v", err)
	}
	s.Advance(3 * u / 2)
	if _, err := s.Store.GetUser(s.ctx, "alice", "mfa", "short"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("GetUser after expiry error = %v, want ErrNotFound", err)
	}
	recs, err := s.Store.ListUser(s.ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	if ids := recordIDs(recs); !slices.Equal(ids, []string{"long"}) {
		t.Errorf("ListUser after expiry = %v, want [long]", ids)
	}
}

func testUpdateUser(t *testing.T, s *suite) {
	u := s.unit
	if err := s.Store.UpdateUser(s.ctx, "alice", "mfa", "s1", []byte("x"), long); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("UpdateUser(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Store.GetUser(s.ctx, "alice", "mfa", "s1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("UpdateUser(missing) created a record: GetUser error = %v", err)
	}
	start := s.Now()
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "s1", []byte("v1"), 2*u); err != nil {
		t.Fatal(err)
	}
	err := s.Store.UpdateUser(s.ctx, "alice", "mfa", "s1", []byte("v2"), 4*u)
	if s.inTime(t, start, 2*u) && err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	s.Advance(3 * u)
	recs, err := s.Store.ListUser(s.ctx, "alice", "mfa")
	if s.inTime(t, start, 4*u) && (err != nil || len(recs) != 1 || string(recs[0].Value) != "v2") {
		t.Fatalf("ListUser after UpdateUser = %+v, %v; want one record v2 whose TTL was extended", recs, err)
	}
	if n, err := s.Store.DeleteUser(s.ctx, "alice", "mfa", "s1"); err != nil || n != 1 {
		t.Fatalf("DeleteUser = %d, %v", n, err)
	}
	if err := s.Store.UpdateUser(s.ctx, "alice", "mfa", "s1", []byte("v3"), long); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("UpdateUser after DeleteUser error = %v, want ErrNotFound", err)
	}
	if _, err := s.Store.GetUser(s.ctx, "alice", "mfa", "s1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("UpdateUser resurrected a deleted record: GetUser error = %v", err)
	}
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "s2", []byte("v"), u); err != nil {
		t.Fatal(err)
	}
	s.Advance(2 * u)
	if err := s.Store.UpdateUser(s.ctx, "alice", "mfa", "s2", []byte("v"), long); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("UpdateUser(expired) error = %v, want ErrNotFound", err)
	}
}

func testDeleteUser(t *testing.T, s *suite) {
	u := s.unit
	for _, r := range []struct{ user, kind, id string }{
		{"alice", "mfa", "s1"}, {"alice", "mfa", "s2"}, {"alice", "device", "d1"}, {"alice", "device", "d2"},
		{"alice", "other", "o1"}, {"bob", "mfa", "s1"}, {"bob", "device", "d1"},
	} {
		if err := s.Store.PutUser(s.ctx, r.user, r.kind, r.id, []byte("v"), long); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "expiring", []byte("v"), u); err != nil {
		t.Fatal(err)
	}
	s.Advance(2 * u)
	steps := []struct {
		kind, id string
		want     int
		left     []string
	}{
		{"mfa", "nope", 0, []string{"device/d1", "device/d2", "mfa/s1", "mfa/s2", "other/o1"}},
		{"mfa", "s1", 1, []string{"device/d1", "device/d2", "mfa/s2", "other/o1"}},
		{"mfa", "s1", 0, []string{"device/d1", "device/d2", "mfa/s2", "other/o1"}},
		{"device", "", 2, []string{"mfa/s2", "other/o1"}},
		{"", "", 2, nil},
		{"", "", 0, nil},
	}
	for _, st := range steps {
		n, err := s.Store.DeleteUser(s.ctx, "alice", st.kind, st.id)
		if err != nil || n != st.want {
			t.Errorf("DeleteUser(alice, %q, %q) = %d, %v; want %d, nil", st.kind, st.id, n, err, st.want)
		}
		recs, err := s.Store.ListUser(s.ctx, "alice", "")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st.left, kindIDs(recs), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("after DeleteUser(alice, %q, %q) records (-want +got):\n%s", st.kind, st.id, diff)
		}
	}
	recs, err := s.Store.ListUser(s.ctx, "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"device/d1", "mfa/s1"}, kindIDs(recs)); diff != "" {
		t.Errorf("bob's records after deleting alice's (-want +got):\n%s", diff)
	}
	// A record written after a delete-all is a new one and stays.
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "s9", []byte("v"), long); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.GetUser(s.ctx, "alice", "mfa", "s9"); err != nil {
		t.Errorf("GetUser after delete-all and PutUser: %v", err)
	}
}

// testUserReadAfterWrite: GetUser sees every write that returned before
// it, also when it read the record just before the write (a store with a
// read cache must drop what it wrote).
func testUserReadAfterWrite(t *testing.T, s *suite) {
	get := func(kind, id string) string {
		t.Helper()
		v, err := s.Store.GetUser(s.ctx, "alice", kind, id)
		if errors.Is(err, session.ErrNotFound) {
			return "<not found>"
		} else if err != nil {
			t.Fatalf("GetUser(alice, %s, %s): %v", kind, id, err)
		}
		return string(v)
	}
	expect := func(step string, want map[[2]string]string) {
		t.Helper()
		for k, w := range want {
			for range 2 { // the second read may come from a cache
				if got := get(k[0], k[1]); got != w {
					t.Errorf("%s: GetUser(alice, %s, %s) = %q, want %q", step, k[0], k[1], got, w)
				}
			}
		}
	}
	s1, s2, d1 := [2]string{"mfa", "s1"}, [2]string{"mfa", "s2"}, [2]string{"device", "d1"}
	for _, k := range [][2]string{s1, s2, d1} {
		if err := s.Store.PutUser(s.ctx, "alice", k[0], k[1], []byte("v1"), long); err != nil {
			t.Fatal(err)
		}
	}
	expect("after PutUser", map[[2]string]string{s1: "v1", s2: "v1", d1: "v1"})
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "s1", []byte("v2"), long); err != nil {
		t.Fatal(err)
	}
	expect("after a replacing PutUser", map[[2]string]string{s1: "v2", s2: "v1"})
	if err := s.Store.UpdateUser(s.ctx, "alice", "mfa", "s1", []byte("v3"), long); err != nil {
		t.Fatal(err)
	}
	expect("after UpdateUser", map[[2]string]string{s1: "v3", s2: "v1"})
	if _, err := s.Store.DeleteUser(s.ctx, "alice", "mfa", "s1"); err != nil {
		t.Fatal(err)
	}
	expect("after deleting one record", map[[2]string]string{s1: "<not found>", s2: "v1", d1: "v1"})
	if _, err := s.Store.DeleteUser(s.ctx, "alice", "mfa", ""); err != nil {
		t.Fatal(err)
	}
	expect("after deleting a kind", map[[2]string]string{s2: "<not found>", d1: "v1"})
	if _, err := s.Store.DeleteUser(s.ctx, "alice", "", ""); err != nil {
		t.Fatal(err)
	}
	expect("after deleting the user", map[[2]string]string{d1: "<not found>"})
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "s1", []byte("v4"), long); err != nil {
		t.Fatal(err)
	}
	expect("after a new PutUser", map[[2]string]string{s1: "v4"})
}

// testUserReadAfterWriteConcurrent: while a record is updated again and
// again, concurrent readers never see a value older than the last update
// that returned before their read began.
func testUserReadAfterWriteConcurrent(t *testing.T, s *suite) {
	const updates = 100
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "s1", []byte("0"), long); err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		committed int
		done      bool
		wg        sync.WaitGroup
		errs      []error
	)
	state := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		return committed, done
	}
	for range 4 {
		wg.Go(func() {
			for {
				floor, stop := state()
				if stop {
					return
				}
				v, err := s.Store.GetUser(s.ctx, "alice", "mfa", "s1")
				n, perr := strconv.Atoi(string(v))
				switch {
				case err != nil:
					err = fmt.Errorf("GetUser: %w", err)
				case perr != nil:
					err = fmt.Errorf("GetUser = %q", v)
				case n < floor:
					err = fmt.Errorf("GetUser = %d after update %d had returned", n, floor)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	for i := 1; i <= updates; i++ {
		if err := s.Store.UpdateUser(s.ctx, "alice", "mfa", "s1", []byte(strconv.Itoa(i)), long); err != nil {
			t.Error(err)
			break
		}
		mu.Lock()
		committed = i
		mu.Unlock()
	}
	mu.Lock()
	done = true
	mu.Unlock()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
}

func testNamespaces(t *testing.T, s *suite) {
	if err := s.Store.Put(s.ctx, "alice", []byte("plain"), long); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.PutUser(s.ctx, "alice", "mfa", "s1", []byte("user"), long); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Store.DeleteUser(s.ctx, "alice", "", ""); err != nil || n != 1 {
		t.Errorf("DeleteUser = %d, %v; want 1, nil", n, err)
	}
	if got := s.mustGet(t, "alice"); string(got) != "plain" {
		t.Errorf("plain key = %q after DeleteUser, want plain", got)
	}
}

func testInvalidArguments(t *testing.T, s *suite) {
	ctx := s.ctx
	st := s.Store
	long := string(bytes.Repeat([]byte("k"), session.MaxKeyLen+1))
	tests := []struct {
		name string
		call func() error
	}{
		{"Get empty key", func() error { _, err := st.Get(ctx, ""); return err }},
		{"Get long key", func() error { _, err := st.Get(ctx, long); return err }},
		{"Get control character", func() error { _, err := st.Get(ctx, "a\nb"); return err }},
		{"Get invalid UTF-8", func() error { _, err := st.Get(ctx, "a\xffb"); return err }},
		{"Put zero ttl", func() error { return st.Put(ctx, "k", nil, 0) }},
		{"Put negative ttl", func() error { return st.Put(ctx, "k", nil, -time.Second) }},
		{"Put empty key", func() error { return st.Put(ctx, "", nil, time.Hour) }},
		{"PutIfAbsent zero ttl", func() error { _, err := st.PutIfAbsent(ctx, "k", nil, 0); return err }},
		{"Consume empty key", func() error { _, err := st.Consume(ctx, ""); return err }},
		{"Delete empty key", func() error { return st.Delete(ctx, "") }},
		{"Incr zero window", func() error { _, err := st.Incr(ctx, "k", 0); return err }},
		{"Decr empty key", func() error { _, err := st.Decr(ctx, ""); return err }},
		{"PutUser empty user", func() error { return st.PutUser(ctx, "", "mfa", "i", nil, time.Hour) }},
		{"PutUser empty kind", func() error { return st.PutUser(ctx, "u", "", "i", nil, time.Hour) }},
		{"PutUser upper-case kind", func() error { return st.PutUser(ctx, "u", "MFA", "i", nil, time.Hour) }},
		{"PutUser kind with colon", func() error { return st.PutUser(ctx, "u", "a:b", "i", nil, time.Hour) }},
		{"PutUser empty id", func() error { return st.PutUser(ctx, "u", "mfa", "", nil, time.Hour) }},
		{"PutUser id with slash", func() error { return st.PutUser(ctx, "u", "mfa", "a/b", nil, time.Hour) }},
		{"PutUser id with colon", func() error { return st.PutUser(ctx, "u", "mfa", "a:b", nil, time.Hour) }},
		{"PutUser zero ttl", func() error { return st.PutUser(ctx, "u", "mfa", "i", nil, 0) }},
		{"PutUser user with NUL", func() error { return st.PutUser(ctx, "u\x00", "mfa", "i", nil, time.Hour) }},
		{"UpdateUser empty id", func() error { return st.UpdateUser(ctx, "u", "mfa", "", nil, time.Hour) }},
		{"GetUser empty kind", func() error { _, err := st.GetUser(ctx, "u", "", "i"); return err }},
		{"ListUser empty user", func() error { _, err := st.ListUser(ctx, "", ""); return err }},
		{"ListUser bad kind", func() error { _, err := st.ListUser(ctx, "u", "Mfa"); return err }},
		{"DeleteUser id without kind", func() error { _, err := st.DeleteUser(ctx, "u", "", "i"); return err }},
		{"DeleteUser empty user", func() error { _, err := st.DeleteUser(ctx, "", "", ""); return err }},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, session.ErrInvalidArgument) {
			t.Errorf("%s: error = %v, want ErrInvalidArgument", tt.name, err)
		}
	}
}

func testPing(t *testing.T, s *suite) {
	if err := s.Store.Ping(s.ctx); err != nil {
		t.Errorf("Ping = %v, want nil", err)
	}
}

func testClosed(t *testing.T, s *suite) {
	ctx := s.ctx
	st := s.Store
	if err := st.Put(ctx, "k", []byte("v"), long); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := st.Get(ctx, "k"); return err }},
		{"Put", func() error { return st.Put(ctx, "k", nil, time.Hour) }},
		{"PutIfAbsent", func() error { _, err := st.PutIfAbsent(ctx, "k2", nil, time.Hour); return err }},
		{"Consume", func() error { _, err := st.Consume(ctx, "k"); return err }},
		{"Delete", func() error { return st.Delete(ctx, "k") }},
		{"Incr", func() error { _, err := st.Incr(ctx, "c", time.Hour); return err }},
		{"Decr", func() error { _, err := st.Decr(ctx, "c"); return err }},
		{"PutUser", func() error { return st.PutUser(ctx, "u", "mfa", "i", nil, time.Hour) }},
		{"UpdateUser", func() error { return st.UpdateUser(ctx, "u", "mfa", "i", nil, time.Hour) }},
		{"GetUser", func() error { _, err := st.GetUser(ctx, "u", "mfa", "i"); return err }},
		{"ListUser", func() error { _, err := st.ListUser(ctx, "u", ""); return err }},
		{"DeleteUser", func() error { _, err := st.DeleteUser(ctx, "u", "", ""); return err }},
		{"Ping", func() error { return st.Ping(ctx) }},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, session.ErrStoreUnavailable) {
			t.Errorf("%s after Close: error = %v, want ErrStoreUnavailable", tt.name, err)
		}
	}
}

// race runs fn in contenders goroutines released at once and returns how
// many reported a win. An error fails the test.
func race(t *testing.T, fn func(i int) (bool, error)) int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		wins  int
		errs  []error
		start = make(chan struct{})
	)
	for i := range contenders {
		wg.Go(func() {
			<-start
			won, err := fn(i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if won {
				wins++
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent calls failed: %v", err)
	}
	return wins
}

// inTime is called after checking that an entry written at start with ttl
// is still there. It reports whether the check really happened before
// start+ttl; when a real-time store ran too slowly for that (a loaded
// machine), it skips the rest of the test instead of failing it. With a fake
// clock it always reports true.
func (s *suite) inTime(t *testing.T, start time.Time, ttl time.Duration) bool {
	t.Helper()
	if elapsed := s.Now().Sub(start); elapsed >= ttl {
		t.Skipf("the machine is too slow for real-time TTLs: %v passed, the check needed less than %v", elapsed, ttl)
		return false
	}
	return true
}

func (s *suite) mustGet(t *testing.T, key string) []byte {
	t.Helper()
	v, err := s.Store.Get(s.ctx, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v
}

func recordIDs(recs []session.Record) []string {
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	return ids
}

func kindIDs(recs []session.Record) []string {
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.Kind+"/"+r.ID)
	}
	return ids
}

func trunc(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}
