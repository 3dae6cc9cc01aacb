package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stepup-dev/stepup/session"
)

// The key-value contract: Get, Put, PutIfAbsent, Consume, Delete, and the
// counters Incr and Decr.

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
