package redisstore_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/redisstore"
	"github.com/stepup-dev/stepup/session/redisstore/redistest"
)

// lostReply makes the next transaction that deletes something run in
// Redis and then fail as if its reply had been lost (a timeout, a dropped
// connection): the revocation happened, the caller only sees an error.
type lostReply struct{ armed atomic.Bool }

func (*lostReply) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*lostReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *lostReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if c.Name() == "del" && h.armed.CompareAndSwap(true, false) {
				return errors.New("i/o timeout (reply lost)")
			}
		}
		return err
	}
}

// TestCacheRevocationReplyLost: a DeleteUser whose reply is lost may well
// have revoked the records in Redis; the caching replicas must then drop
// them as for a successful revocation, not keep them for their cache TTL
// (the caller's retry deletes nothing and would publish nothing). The
// peer's cache clock stands still, so only an invalidation removes its
// copy.
func TestCacheRevocationReplyLost(t *testing.T) {
	addr := redistest.Start(t)
	tests := []struct {
		name, kind, id string
	}{
		{"one record", "mfa", "s1"},
		{"one kind", "mfa", ""},
		{"whole user", "", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			prefix := "lost" + string(rune('a'+i)) + ":"
			o := redisstore.Options{Addrs: []string{addr}, KeyPrefix: prefix}
			peer, _ := frozenStore(t, o)
			hook := &lostReply{}
			c := redis.NewClient(&redis.Options{Addr: addr})
			c.AddHook(hook)
			o.CacheTTL = 0 // the CLI, say
			cli, err := redisstore.NewWithClient(c, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cli.Close() })

			mustPutUser(t, cli, "alice", "mfa", "s1", "session", time.Hour)
			waitCacheActive(t, peer)
			expect(t, peer, "alice", "mfa", "s1", "session", "peer, first read")

			hook.armed.Store(true)
			if _, err := cli.DeleteUser(ctx, "alice", tt.kind, tt.id); !errors.Is(err, session.ErrStoreUnavailable) {
				t.Fatalf("DeleteUser with its reply lost: error = %v, want ErrStoreUnavailable", err)
			}
			if hook.armed.Load() {
				t.Fatal("the hook did not see the deletion")
			}
			// The retry finds nothing left to delete.
			if n, err := cli.DeleteUser(ctx, "alice", tt.kind, tt.id); err != nil || n != 0 {
				t.Fatalf("DeleteUser retried = %d, %v; want 0, nil", n, err)
			}
			deadline := time.Now().Add(3 * time.Second)
			for getUser(peer, "alice", "mfa", "s1") != "<not found>" {
				if time.Now().After(deadline) {
					t.Fatal("peer still answers the revoked record from its cache")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// TestCacheDropsRecordFoundGone: when a write through a caching store
// finds a record already gone from Redis (revoked by a replica whose
// invalidation got lost), the store drops its own cached copy too.
func TestCacheDropsRecordFoundGone(t *testing.T) {
	addr := redistest.Start(t)
	tests := []struct {
		name  string
		write func(s *redisstore.Store) error
	}{
		{"UpdateUser", func(s *redisstore.Store) error {
			err := s.UpdateUser(context.Background(), "alice", "mfa", "s1", []byte("touched"), time.Hour)
			if errors.Is(err, session.ErrNotFound) {
				return nil
			}
			return err
		}},
		{"DeleteUser one record", func(s *redisstore.Store) error {
			_, err := s.DeleteUser(context.Background(), "alice", "mfa", "s1")
			return err
		}},
		{"DeleteUser one kind", func(s *redisstore.Store) error {
			_, err := s.DeleteUser(context.Background(), "alice", "mfa", "")
			return err
		}},
		{"DeleteUser whole user", func(s *redisstore.Store) error {
			_, err := s.DeleteUser(context.Background(), "alice", "", "")
			return err
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := "gone" + string(rune('a'+i)) + ":"
			s, _ := frozenStore(t, redisstore.Options{Addrs: []string{addr}, KeyPrefix: prefix})
			mustPutUser(t, s, "alice", "mfa", "s1", "session", time.Hour)
			waitCacheActive(t, s)
			expect(t, s, "alice", "mfa", "s1", "session", "first read")
			// Gone behind the store's back, with no invalidation.
			keys, err := s.Client().Keys(context.Background(), prefix+"u:*").Result()
			if err != nil || len(keys) == 0 {
				t.Fatalf("KEYS = %v, %v", keys, err)
			}
			if err := s.Client().Del(context.Background(), keys...).Err(); err != nil {
				t.Fatal(err)
			}
			expect(t, s, "alice", "mfa", "s1", "session", "cached read (the test's premise)")
			if err := tt.write(s); err != nil {
				t.Fatal(err)
			}
			if got := getUser(s, "alice", "mfa", "s1"); got != "<not found>" {
				t.Errorf("after %s found the record gone: GetUser = %q, want <not found>", tt.name, got)
			}
		})
	}
}
