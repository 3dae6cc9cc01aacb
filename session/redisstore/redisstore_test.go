package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/redisstore"
	"github.com/stepup-dev/stepup/session/redisstore/redistest"
	"github.com/stepup-dev/stepup/session/storetest"
)

// newStore returns a store on addr with the local cache as stepup
// configures it by default.
func newStore(t *testing.T, addr, prefix string, timeout time.Duration) *redisstore.Store {
	t.Helper()
	return newStoreOpts(t, redisstore.Options{Addrs: []string{addr}, KeyPrefix: prefix, Timeout: timeout, CacheTTL: redisstore.DefaultCacheTTL})
}

func newStoreOpts(t *testing.T, o redisstore.Options) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	addr := redistest.Start(t)
	var n atomic.Int64
	for _, ttl := range []time.Duration{redisstore.DefaultCacheTTL, 0} {
		t.Run(fmt.Sprintf("cache=%v", ttl), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) storetest.Harness {
				// One server, a key prefix per subtest: parallel subtests
				// do not see each other's keys.
				s := newStoreOpts(t, redisstore.Options{Addrs: []string{addr}, KeyPrefix: fmt.Sprintf("test%d:", n.Add(1)), CacheTTL: ttl})
				if ttl > 0 {
					// Cached reads from the start: the suite's GetUser
					// calls then go through the cache.
					waitCacheActive(t, s)
				}
				return storetest.Harness{Store: s, Advance: time.Sleep, RealTime: true}
			})
		})
	}
}

// TestServerDown stops Redis under a live store: every call must fail with
// ErrStoreUnavailable (never panic, never succeed), and the same store must
// work again once Redis is back, without being rebuilt.
func TestServerDown(t *testing.T) {
	srv := redistest.New(t)
	s := newStore(t, srv.Addr(), "", 300*time.Millisecond)
	ctx := context.Background()
	if err := s.Put(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatalf("Put while up: %v", err)
	}

	srv.Stop()
	calls := []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return s.Ping(ctx) }},
		{"Get", func() error { _, err := s.Get(ctx, "k"); return err }},
		{"Put", func() error { return s.Put(ctx, "k", []byte("v"), time.Hour) }},
		{"PutIfAbsent", func() error { _, err := s.PutIfAbsent(ctx, "j", nil, time.Hour); return err }},
		{"Consume", func() error { _, err := s.Consume(ctx, "k"); return err }},
		{"Delete", func() error { return s.Delete(ctx, "k") }},
		{"Incr", func() error { _, err := s.Incr(ctx, "c", time.Hour); return err }},
		{"PutUser", func() error { return s.PutUser(ctx, "u", "mfa", "i", nil, time.Hour) }},
		{"UpdateUser", func() error { return s.UpdateUser(ctx, "u", "mfa", "i", nil, time.Hour) }},
		{"GetUser", func() error { _, err := s.GetUser(ctx, "u", "mfa", "i"); return err }},
		{"ListUser", func() error { _, err := s.ListUser(ctx, "u", ""); return err }},
		{"DeleteUser", func() error { _, err := s.DeleteUser(ctx, "u", "", ""); return err }},
		{"DeleteUser one", func() error { _, err := s.DeleteUser(ctx, "u", "mfa", "i"); return err }},
	}
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() { errs[i] = c.call() })
	}
	wg.Wait()
	for i, c := range calls {
		if !errors.Is(errs[i], session.ErrStoreUnavailable) {
			t.Errorf("%s while Redis is down: error = %v, want ErrStoreUnavailable", c.name, errs[i])
		}
	}

	srv.Restart()
	// go-redis reconnects on demand; wait until it has (bounded by the
	// test's own deadline, not a timing assertion).
	for s.Ping(ctx) != nil {
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Put(ctx, "k2", []byte("again"), time.Hour); err != nil {
		t.Fatalf("Put after restart: %v", err)
	}
	if got, err := s.Get(ctx, "k2"); err != nil || string(got) != "again" {
		t.Errorf("Get after restart = %q, %v; want again", got, err)
	}
}

// TestCallerDeadline checks that a caller's context is honoured.
func TestCallerDeadline(t *testing.T) {
	s := newStore(t, redistest.Start(t), "", 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, "k"); !errors.Is(err, context.Canceled) || !errors.Is(err, session.ErrStoreUnavailable) {
		t.Errorf("Get with a cancelled context: error = %v, want context.Canceled wrapped in ErrStoreUnavailable", err)
	}
}

// TestKeyLayout pins the documented key layout: all of a user's keys share
// a hash tag, and the prefix isolates deployments.
func TestKeyLayout(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, redistest.Start(t), "dep1:", 0)
	if err := s.PutUser(ctx, "auth0|a:b{c}%", "mfa", "s1", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "state:x", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	keys, err := s.Client().Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"dep1:u:{auth0|a%3Ab%7Bc%7D%25}:mfa:s1": true,
		"dep1:u:{auth0|a%3Ab%7Bc%7D%25}:idx":    true,
		"dep1:k:state:x":                        true,
	}
	if len(keys) != len(want) {
		t.Errorf("keys = %q, want %d keys", keys, len(want))
	}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("unexpected key %q", k)
		}
	}
	idxTTL, err := s.Client().PTTL(ctx, "dep1:u:{auth0|a%3Ab%7Bc%7D%25}:idx").Result()
	if err != nil || idxTTL <= 0 || idxTTL > time.Hour {
		t.Errorf("index TTL = %v, %v; want a TTL of at most an hour", idxTTL, err)
	}
}

// TestClusterConformance runs the suite against a three-master Redis
// Cluster: the hash tags must keep every script and transaction in one slot.
func TestClusterConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster start-up takes a few seconds")
	}
	addrs := redistest.StartCluster(t, 3)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		s := newStoreOpts(t, redisstore.Options{Addrs: addrs, KeyPrefix: fmt.Sprintf("c%d:", n.Add(1)), CacheTTL: redisstore.DefaultCacheTTL})
		waitCacheActive(t, s)
		return storetest.Harness{Store: s, Advance: time.Sleep, RealTime: true}
	})
	// Pub/sub in a Cluster: each store's subscription is on some node,
	// the writer's PUBLISH on another.
	t.Run("CacheInvalidation", func(t *testing.T) {
		checkInvalidation(t, redisstore.Options{Addrs: addrs, KeyPrefix: "cinv:"})
	})
}

// TestIndexHygiene: ListUser prunes index entries of expired records, and
// the index itself expires with the user's last record.
func TestIndexHygiene(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, redistest.Start(t), "h:", 0)
	if err := s.PutUser(ctx, "alice", "mfa", "short", []byte("v"), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s.PutUser(ctx, "alice", "mfa", "long", []byte("v"), 400*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	recs, err := s.ListUser(ctx, "alice", "")
	if err != nil || len(recs) != 1 || recs[0].ID != "long" {
		t.Fatalf("ListUser = %+v, %v; want only long", recs, err)
	}
	members, err := s.Client().SMembers(ctx, "h:u:{alice}:idx").Result()
	if err != nil || len(members) != 1 || members[0] != "mfa:long" {
		t.Errorf("index after ListUser = %q, %v; want [mfa:long]", members, err)
	}
	time.Sleep(300 * time.Millisecond)
	if n, err := s.Client().Exists(ctx, "h:u:{alice}:idx").Result(); err != nil || n != 0 {
		t.Errorf("index still exists after the last record expired (%d, %v)", n, err)
	}
}
