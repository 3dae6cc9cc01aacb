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
	"sync"
	"testing"
	"time"

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
