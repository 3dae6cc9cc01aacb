package redisstore_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/session/redisstore"
	"github.com/stepup-dev/stepup/session/redisstore/redistest"
)

// subscribers returns how many invalidation subscription goroutines run.
func subscribers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "redisstore.(*Store).subscribeLoop")
}

// TestCacheCloseStopsSubscriber: Close ends the subscription goroutine
// whatever it is doing (listening, backing off while Redis is down), and
// a GetUser after Close starts none.
func TestCacheCloseStopsSubscriber(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, srv *redistest.Server, s *redisstore.Store)
		after func(s *redisstore.Store)
	}{
		{"listening", func(t *testing.T, _ *redistest.Server, s *redisstore.Store) { waitCacheActive(t, s) }, nil},
		{"redis down", func(t *testing.T, srv *redistest.Server, s *redisstore.Store) {
			waitCacheActive(t, s)
			srv.Stop()
			eventually(t, "the cache to be bypassed", func() bool { return !redisstore.CacheActive(s) })
		}, nil},
		{"never started", func(*testing.T, *redistest.Server, *redisstore.Store) {}, func(s *redisstore.Store) {
			_, _ = s.GetUser(context.Background(), "alice", "mfa", "s1")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := subscribers()
			srv := redistest.New(t)
			s, err := redisstore.New(redisstore.Options{Addrs: []string{srv.Addr()}, KeyPrefix: "close:",
				Timeout: 200 * time.Millisecond, CacheTTL: redisstore.DefaultCacheTTL})
			if err != nil {
				t.Fatal(err)
			}
			tt.setup(t, srv, s)
			done := make(chan error, 1)
			go func() { done <- s.Close() }()
			select {
			case <-done:
			case <-time.After(waitFor):
				t.Fatal("Close hangs")
			}
			if tt.after != nil {
				tt.after(s)
			}
			eventually(t, "the subscription goroutine to end", func() bool { return subscribers() <= before })
		})
	}
}
