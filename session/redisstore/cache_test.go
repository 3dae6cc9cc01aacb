package redisstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/redisstore"
	"github.com/stepup-dev/stepup/session/redisstore/redistest"
	"github.com/stepup-dev/stepup/session/storetest"
)

// waitFor is how long the tests wait for something asynchronous (a pub/sub
// message, a resubscription): a bound against hanging, not a timing
// assertion.
const waitFor = 15 * time.Second

// waitCacheActive starts s's subscription and waits until it is confirmed.
func waitCacheActive(t testing.TB, s *redisstore.Store) {
	t.Helper()
	redisstore.StartCache(s)
	eventually(t, "the cache to become active", func() bool { return redisstore.CacheActive(s) })
}

// eventually polls cond until it holds, failing the test after waitFor.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", waitFor, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// frozenStore returns a caching store whose cache clock stands still
// unless the test moves it, so that no entry runs out by itself: only an
// invalidation (or the test's Advance) removes one.
func frozenStore(t *testing.T, o redisstore.Options) (*redisstore.Store, *storetest.Clock) {
	t.Helper()
	if o.CacheTTL == 0 {
		o.CacheTTL = redisstore.DefaultCacheTTL
	}
	s := newStoreOpts(t, o)
	clock := storetest.NewClock(time.Now())
	redisstore.SetCacheClock(s, clock.Now)
	return s, clock
}

// getUser returns the record's value as a string, "<not found>" or the
// error's text.
func getUser(s *redisstore.Store, user, kind, id string) string {
	v, err := s.GetUser(context.Background(), user, kind, id)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return "<not found>"
	case err != nil:
		return "<error: " + err.Error() + ">"
	}
	return string(v)
}

// behindTheBack changes a record in Redis without going through a store,
// so that no invalidation is published: a store that still answers the old
// value answers from its cache.
func behindTheBack(t testing.TB, s *redisstore.Store, prefix, user, kind, id, val string) {
	t.Helper()
	key := prefix + "u:{" + user + "}:" + kind + ":" + id
	if err := s.Client().SetArgs(context.Background(), key, val, redis.SetArgs{Mode: "XX", KeepTTL: true}).Err(); err != nil {
		t.Fatalf("SET %s behind the store's back: %v", key, err)
	}
}

func mustPutUser(t testing.TB, s *redisstore.Store, user, kind, id, val string, ttl time.Duration) {
	t.Helper()
	if err := s.PutUser(context.Background(), user, kind, id, []byte(val), ttl); err != nil {
		t.Fatalf("PutUser(%s, %s, %s): %v", user, kind, id, err)
	}
}

func expect(t testing.TB, s *redisstore.Store, user, kind, id, want, why string) {
	t.Helper()
	if got := getUser(s, user, kind, id); got != want {
		t.Errorf("%s: GetUser(%s, %s, %s) = %q, want %q", why, user, kind, id, got, want)
	}
}

func expectEventually(t testing.TB, s *redisstore.Store, user, kind, id, want, why string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s: GetUser(%s, %s, %s) to be %q", why, user, kind, id, want), func() bool {
		return getUser(s, user, kind, id) == want
	})
}

// TestCacheRead: a store answers repeated reads from its cache, hands out
// copies, and sees its own writes at once.
func TestCacheRead(t *testing.T) {
	ctx := context.Background()
	s, _ := frozenStore(t, redisstore.Options{Addrs: []string{redistest.Start(t)}, KeyPrefix: "r:"})
	mustPutUser(t, s, "alice", "device", "d1", "v1", time.Hour)
	waitCacheActive(t, s)

	expect(t, s, "alice", "device", "d1", "v1", "first read")
	behindTheBack(t, s, "r:", "alice", "device", "d1", "v2")
	expect(t, s, "alice", "device", "d1", "v1", "cached read")
	if n := redisstore.CacheLen(s); n != 1 {
		t.Errorf("cache holds %d entries, want 1", n)
	}
	v, err := s.GetUser(ctx, "alice", "device", "d1")
	if err != nil {
		t.Fatal(err)
	}
	copy(v, "XX")
	expect(t, s, "alice", "device", "d1", "v1", "after the caller changed its copy")

	// The store's own writes drop its cached copy before they return.
	if err := s.UpdateUser(ctx, "alice", "device", "d1", []byte("v3"), time.Hour); err != nil {
		t.Fatal(err)
	}
	expect(t, s, "alice", "device", "d1", "v3", "after UpdateUser")
	if err := s.PutUser(ctx, "alice", "device", "d1", []byte("v4"), time.Hour); err != nil {
		t.Fatal(err)
	}
	expect(t, s, "alice", "device", "d1", "v4", "after PutUser")
	if n, err := s.DeleteUser(ctx, "alice", "device", "d1"); err != nil || n != 1 {
		t.Fatalf("DeleteUser = %d, %v", n, err)
	}
	expect(t, s, "alice", "device", "d1", "<not found>", "after DeleteUser")

	// Missing records are not cached.
	mustPutUser(t, s, "alice", "device", "d1", "v5", time.Hour)
	expect(t, s, "alice", "device", "d1", "v5", "after a not-found and a PutUser")
}

// TestCacheInvalidation: two stores on one Redis (two replicas): a write
// through one drops the other's cached copy at once (it polls only for the
// pub/sub delivery; the other's clock stands still, so its TTL cannot be
// what removes the entry), and so does a write through a store without a
// cache (the CLI).
func TestCacheInvalidation(t *testing.T) {
	addr := redistest.Start(t)
	checkInvalidation(t, redisstore.Options{Addrs: []string{addr}, KeyPrefix: "inv:"})
}

func checkInvalidation(t *testing.T, o redisstore.Options) {
	ctx := context.Background()
	a, _ := frozenStore(t, o)
	b, _ := frozenStore(t, o)
	o.CacheTTL = 0
	cli := newStoreOpts(t, o)
	waitCacheActive(t, a)
	waitCacheActive(t, b)
	pfx := o.KeyPrefix

	records := [][3]string{{"alice", "mfa", "s1"}, {"alice", "mfa", "s2"}, {"alice", "device", "d1"}, {"bob", "mfa", "s1"}}
	before := redisstore.InvalidationsReceived(b)
	for _, r := range records {
		mustPutUser(t, a, r[0], r[1], r[2], r[0]+"/"+r[1]+"/"+r[2], time.Hour)
	}
	// Let b receive the PutUsers' invalidations: one arriving while b reads
	// would (rightly) keep that read out of b's cache.
	eventually(t, "b to receive a's invalidations", func() bool {
		return redisstore.InvalidationsReceived(b) >= before+int64(len(records))
	})
	// cache reads every record on both stores, then proves that both
	// answer from their caches.
	cache := func(rs ...[3]string) {
		t.Helper()
		for _, r := range rs {
			want := r[0] + "/" + r[1] + "/" + r[2]
			expect(t, a, r[0], r[1], r[2], want, "a, first read")
			expect(t, b, r[0], r[1], r[2], want, "b, first read")
			behindTheBack(t, a, pfx, r[0], r[1], r[2], "changed "+want)
			expect(t, a, r[0], r[1], r[2], want, "a, cached read")
			expect(t, b, r[0], r[1], r[2], want, "b, cached read")
		}
	}
	cache(records...)

	if err := a.UpdateUser(ctx, "alice", "mfa", "s1", []byte("updated"), time.Hour); err != nil {
		t.Fatal(err)
	}
	expect(t, a, "alice", "mfa", "s1", "updated", "a, own UpdateUser")
	expectEventually(t, b, "alice", "mfa", "s1", "updated", "b, UpdateUser on a")
	expect(t, b, "alice", "mfa", "s2", "alice/mfa/s2", "b, another record after UpdateUser on a")

	// Revocations through the cache-less store (the CLI): one record, one
	// kind, a whole user.
	if n, err := cli.DeleteUser(ctx, "alice", "mfa", "s1"); err != nil || n != 1 {
		t.Fatalf("DeleteUser(alice, mfa, s1) = %d, %v", n, err)
	}
	for name, s := range map[string]*redisstore.Store{"a": a, "b": b} {
		expectEventually(t, s, "alice", "mfa", "s1", "<not found>", name+", record revoked by the CLI")
		expect(t, s, "alice", "mfa", "s2", "alice/mfa/s2", name+", another record after revoking one")
	}
	if n, err := cli.DeleteUser(ctx, "alice", "mfa", ""); err != nil || n != 1 {
		t.Fatalf("DeleteUser(alice, mfa) = %d, %v", n, err)
	}
	for name, s := range map[string]*redisstore.Store{"a": a, "b": b} {
		expectEventually(t, s, "alice", "mfa", "s2", "<not found>", name+", kind revoked by the CLI")
		expect(t, s, "alice", "device", "d1", "alice/device/d1", name+", another kind after revoking one")
	}
	if n, err := cli.DeleteUser(ctx, "alice", "", ""); err != nil || n != 1 {
		t.Fatalf("DeleteUser(alice) = %d, %v", n, err)
	}
	for name, s := range map[string]*redisstore.Store{"a": a, "b": b} {
		expectEventually(t, s, "alice", "device", "d1", "<not found>", name+", user revoked by the CLI")
		expect(t, s, "bob", "mfa", "s1", "bob/mfa/s1", name+", another user after revoking one")
	}

	// A revocation through b reaches a.
	if n, err := b.DeleteUser(ctx, "bob", "", ""); err != nil || n != 1 {
		t.Fatalf("DeleteUser(bob) = %d, %v", n, err)
	}
	expect(t, b, "bob", "mfa", "s1", "<not found>", "b, own revocation")
	expectEventually(t, a, "bob", "mfa", "s1", "<not found>", "a, revocation on b")

	// Another deployment (key prefix) on the same Redis neither receives
	// these invalidations nor sends any to this one.
	other := o
	other.KeyPrefix = "other" + pfx
	other.CacheTTL = redisstore.DefaultCacheTTL
	x, _ := frozenStore(t, other)
	if redisstore.InvalidationChannel(x) == redisstore.InvalidationChannel(a) {
		t.Errorf("two key prefixes share the channel %q", redisstore.InvalidationChannel(a))
	}
}

// logBuffer collects a JSON log.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the log's records.
func (l *logBuffer) records(t testing.TB) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(l.b.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func (l *logBuffer) has(t testing.TB, level, msgPart string) bool {
	for _, r := range l.records(t) {
		if r["level"] == level && strings.Contains(fmt.Sprint(r["msg"]), msgPart) {
			return true
		}
	}
	return false
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCacheSubscriptionLoss: when the subscription drops, the cache is
// cleared and bypassed (and the drop logged, without keys or values) until
// a new subscription is confirmed; then it is used again.
func TestCacheSubscriptionLoss(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Start(t)
	var log logBuffer
	s, _ := frozenStore(t, redisstore.Options{Addrs: []string{addr}, KeyPrefix: "loss:",
		Logger: slog.New(slog.NewJSONHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	killSubscribers := func() {
		t.Helper()
		if err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
			t.Fatalf("CLIENT KILL TYPE pubsub: %v", err)
		}
	}

	mustPutUser(t, s, "alice", "mfa", "s1", "secret-v1", time.Hour)
	waitCacheActive(t, s)
	expect(t, s, "alice", "mfa", "s1", "secret-v1", "first read")
	behindTheBack(t, s, "loss:", "alice", "mfa", "s1", "secret-v2")
	expect(t, s, "alice", "mfa", "s1", "secret-v1", "cached read")

	// A lost connection: the cache is cleared (whether it is still bypassed
	// or already back when the test looks).
	killSubscribers()
	expectEventually(t, s, "alice", "mfa", "s1", "secret-v2", "after the subscription was killed")
	eventually(t, "the loss to be logged", func() bool { return log.has(t, "WARN", "lost the invalidation subscription") })
	eventually(t, "the recovery to be logged", func() bool { return log.has(t, "INFO", "in use again") })
	waitCacheActive(t, s)
	expect(t, s, "alice", "mfa", "s1", "secret-v2", "read after the recovery")
	behindTheBack(t, s, "loss:", "alice", "mfa", "s1", "secret-v3")
	expect(t, s, "alice", "mfa", "s1", "secret-v2", "cached read after the recovery")

	// A subscription that cannot come back (SUBSCRIBE forbidden while
	// reads still work): the cache stays bypassed.
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "-subscribe").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	killSubscribers()
	eventually(t, "the cache to be bypassed", func() bool { return !redisstore.CacheActive(s) })
	for i := range 5 {
		v := "secret-bypassed-" + strconv.Itoa(i)
		behindTheBack(t, s, "loss:", "alice", "mfa", "s1", v)
		expect(t, s, "alice", "mfa", "s1", v, "read while the subscription is down")
		if redisstore.CacheActive(s) {
			t.Fatal("the cache came back although SUBSCRIBE is forbidden")
		}
	}
	if n := redisstore.CacheLen(s); n != 0 {
		t.Errorf("bypassed cache holds %d entries", n)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "+subscribe").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	waitCacheActive(t, s)
	expect(t, s, "alice", "mfa", "s1", "secret-bypassed-4", "read after SUBSCRIBE is allowed again")
	behindTheBack(t, s, "loss:", "alice", "mfa", "s1", "secret-v9")
	expect(t, s, "alice", "mfa", "s1", "secret-bypassed-4", "cached read after SUBSCRIBE is allowed again")

	// The log names no user and no value.
	if out := log.String(); strings.Contains(out, "alice") || strings.Contains(out, "secret") {
		t.Errorf("the log shows a user or a value:\n%s", out)
	}
}

// TestCacheTTL: an entry lives for the cache TTL, and never longer than
// the record does in Redis (cache clock injected).
func TestCacheTTL(t *testing.T) {
	addr := redistest.Start(t)
	s, clock := frozenStore(t, redisstore.Options{Addrs: []string{addr}, KeyPrefix: "ttl:", CacheTTL: 2 * time.Second})
	mustPutUser(t, s, "alice", "mfa", "s1", "v1", time.Hour)
	waitCacheActive(t, s)
	expect(t, s, "alice", "mfa", "s1", "v1", "first read")
	behindTheBack(t, s, "ttl:", "alice", "mfa", "s1", "v2")
	clock.Advance(1900 * time.Millisecond)
	expect(t, s, "alice", "mfa", "s1", "v1", "within the cache TTL")
	clock.Advance(200 * time.Millisecond)
	expect(t, s, "alice", "mfa", "s1", "v2", "after the cache TTL")

	// A record with less time left in Redis than the cache TTL is cached
	// only for that time.
	l, lclock := frozenStore(t, redisstore.Options{Addrs: []string{addr}, KeyPrefix: "ttl2:", CacheTTL: redisstore.MaxCacheTTL})
	mustPutUser(t, l, "bob", "mfa", "s1", "v1", 5*time.Second)
	waitCacheActive(t, l)
	expect(t, l, "bob", "mfa", "s1", "v1", "first read")
	behindTheBack(t, l, "ttl2:", "bob", "mfa", "s1", "v2")
	expect(t, l, "bob", "mfa", "s1", "v1", "cached read")
	lclock.Advance(5 * time.Second)
	// v2 normally; not found on a machine too slow to get here within the
	// record's real 5 seconds. Either way not the cached v1.
	if got := getUser(l, "bob", "mfa", "s1"); got != "v2" && got != "<not found>" {
		t.Errorf("after the record's own TTL: GetUser = %q, want v2 (or not found)", got)
	}
}

// TestCacheSize: the cache holds at most CacheSize records.
func TestCacheSize(t *testing.T) {
	s, _ := frozenStore(t, redisstore.Options{Addrs: []string{redistest.Start(t)}, KeyPrefix: "size:", CacheSize: 64})
	waitCacheActive(t, s)
	const users = 400
	for i := range users {
		mustPutUser(t, s, "user"+strconv.Itoa(i), "mfa", "s", strconv.Itoa(i), time.Hour)
	}
	for round := range 2 {
		for i := range users {
			expect(t, s, "user"+strconv.Itoa(i), "mfa", "s", strconv.Itoa(i), fmt.Sprintf("round %d", round))
		}
		if n := redisstore.CacheLen(s); n > 64 || n == 0 {
			t.Errorf("round %d: cache holds %d entries, want 1 to 64", round, n)
		}
	}
}

// TestCacheOptions: bad cache options are refused.
func TestCacheOptions(t *testing.T) {
	for _, o := range []redisstore.Options{
		{Addrs: []string{"127.0.0.1:1"}, CacheTTL: -time.Second},
		{Addrs: []string{"127.0.0.1:1"}, CacheTTL: redisstore.MaxCacheTTL + time.Millisecond},
		{Addrs: []string{"127.0.0.1:1"}, CacheTTL: time.Second, CacheSize: -1},
	} {
		if s, err := redisstore.New(o); err == nil {
			s.Close()
			t.Errorf("New(CacheTTL %v, CacheSize %d) succeeded, want an error", o.CacheTTL, o.CacheSize)
		}
	}
}

// TestCacheReadsNeverGoBack: while one store keeps updating a record,
// readers on the same store never see a value older than the last update
// that returned before their read began (a read racing with a write must
// not put the old value back into the cache); readers on a second store
// end up with the last value.
func TestCacheReadsNeverGoBack(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Start(t)
	o := redisstore.Options{Addrs: []string{addr}, KeyPrefix: "race:"}
	a, _ := frozenStore(t, o)
	b, _ := frozenStore(t, o)
	mustPutUser(t, a, "alice", "mfa", "s1", "0", time.Hour)
	waitCacheActive(t, a)
	waitCacheActive(t, b)

	const updates = 300
	var committed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				floor := committed.Load()
				v, err := a.GetUser(ctx, "alice", "mfa", "s1")
				if err != nil {
					t.Errorf("GetUser: %v", err)
					return
				}
				if n, _ := strconv.ParseInt(string(v), 10, 64); n < floor && failures.Add(1) <= 5 {
					t.Errorf("read %d after update %d had returned", n, floor)
				}
				_, _ = b.GetUser(ctx, "alice", "mfa", "s1")
			}
		})
	}
	for i := int64(1); i <= updates; i++ {
		if err := a.UpdateUser(ctx, "alice", "mfa", "s1", []byte(strconv.FormatInt(i, 10)), time.Hour); err != nil {
			t.Fatal(err)
		}
		committed.Store(i)
	}
	close(stop)
	wg.Wait()
	expect(t, a, "alice", "mfa", "s1", strconv.Itoa(updates), "a, last update")
	expectEventually(t, b, "alice", "mfa", "s1", strconv.Itoa(updates), "b, last update on a")
}

// BenchmarkGetUser: a remembered-browser lookup with and without the
// cache (redis-server on loopback).
func BenchmarkGetUser(b *testing.B) {
	addr := redistest.Start(b)
	val := bytes.Repeat([]byte("x"), 200) // about a device record
	for _, ttl := range []time.Duration{0, redisstore.DefaultCacheTTL} {
		b.Run(fmt.Sprintf("cache=%v", ttl), func(b *testing.B) {
			s, err := redisstore.New(redisstore.Options{Addrs: []string{addr}, KeyPrefix: "bench:", CacheTTL: ttl})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			if err := s.PutUser(ctx, "auth0|alice", "device", "d1", val, time.Hour); err != nil {
				b.Fatal(err)
			}
			if ttl > 0 {
				waitCacheActive(b, s)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.GetUser(ctx, "auth0|alice", "device", "d1"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
