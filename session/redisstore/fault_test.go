package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/redisstore"
	"github.com/stepup-dev/stepup/session/redisstore/redistest"
)

// envoyDeadline is Envoy's default ext_authz timeout: the deadline a
// Check's context carries, and so the store calls made for it.
const envoyDeadline = 200 * time.Millisecond

// Each fault test times faultWorkers goroutines making faultCalls store
// calls each, as concurrent Checks would.
const (
	faultWorkers = 4
	faultCalls   = 10
)

// timeCalls makes faultCalls GetUser calls from each of faultWorkers
// goroutines, each call under a fresh envoyDeadline context as a Check's,
// and returns how long each took to answer. Every call must fail with
// ErrStoreUnavailable: Redis is down, and the store must neither succeed
// nor say "not found".
func timeCalls(t *testing.T, s *redisstore.Store) []time.Duration {
	t.Helper()
	out := make([]time.Duration, faultWorkers*faultCalls)
	var wg sync.WaitGroup
	for w := range faultWorkers {
		wg.Go(func() {
			for i := range faultCalls {
				ctx, cancel := context.WithTimeout(context.Background(), envoyDeadline)
				start := time.Now()
				_, err := s.GetUser(ctx, "alice", session.KindMFA, "s1")
				out[w*faultCalls+i] = time.Since(start)
				cancel()
				if !errors.Is(err, session.ErrStoreUnavailable) {
					t.Errorf("call with Redis down: %v, want ErrStoreUnavailable", err)
					return
				}
			}
		})
	}
	wg.Wait()
	return out
}

// summary is the figures a fault test reports: the first call (of the
// first goroutine), the median and the slowest, and how many answered with
// room to spare (within 3/4 of the deadline, so that the answer reaches
// Envoy before it gives up).
type summary struct {
	n, inTime          int
	first, median, max time.Duration
}

func (s summary) String() string {
	return fmt.Sprintf("%d calls from %d goroutines under a %v deadline: first %v, median %v, max %v, %d answered within 3/4 of the deadline",
		s.n, faultWorkers, envoyDeadline, s.first.Round(10*time.Microsecond), s.median, s.max.Round(10*time.Microsecond), s.inTime)
}

func summarise(d []time.Duration) summary {
	s := summary{n: len(d), first: d[0]}
	sorted := slices.Clone(d)
	slices.Sort(sorted)
	s.median, s.max = sorted[len(sorted)/2], sorted[len(sorted)-1]
	for _, x := range d {
		if x < envoyDeadline*3/4 {
			s.inTime++
		}
	}
	return s
}

// awaitRecovery calls Ping, then GetUser, until the store answers again,
// and returns how long that took.
func awaitRecovery(t *testing.T, s *redisstore.Store) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), envoyDeadline)
		_, err := s.GetUser(ctx, "alice", session.KindMFA, "s1")
		cancel()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("the store did not recover within 15s after Redis came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// faultStore returns a store as stepup configures it by default (timeout
// 200 ms, the local cache off so that every call asks Redis), holding one
// MFA session record.
func faultStore(t *testing.T, addr string) *redisstore.Store {
	t.Helper()
	s := newStoreOpts(t, redisstore.Options{Addrs: []string{addr}, Timeout: 200 * time.Millisecond})
	if err := s.PutUser(context.Background(), "alice", session.KindMFA, "s1", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFaultRedisHung stops Redis with SIGSTOP (connections stay open,
// nothing answers) under a store whose calls carry Envoy's default
// deadline. Every call must fail closed with ErrStoreUnavailable early
// enough for the answer to reach Envoy: the first ones within their share
// of the deadline, and once the breaker has opened in milliseconds. When
// Redis continues, the store recovers by itself.
func TestFaultRedisHung(t *testing.T) {
	srv := redistest.New(t)
	s := faultStore(t, srv.Addr())
	srv.Pause()
	defer srv.Resume()
	sum := summarise(timeCalls(t, s))
	t.Logf("FAULT redis hung (SIGSTOP): %v", sum)
	if sum.inTime != sum.n {
		t.Errorf("%d of %d calls answered within %v (3/4 of the caller's deadline), want all", sum.inTime, sum.n, envoyDeadline*3/4)
	}
	if sum.median > 50*time.Millisecond {
		t.Errorf("median answer %v with Redis hung, want under 50ms (the breaker open)", sum.median)
	}
	ctx, cancel := context.WithTimeout(context.Background(), envoyDeadline)
	defer cancel()
	if _, err := s.GetUser(ctx, "alice", session.KindMFA, "s1"); !errors.Is(err, redisstore.ErrCircuitOpen) || !errors.Is(err, session.ErrStoreUnavailable) {
		t.Errorf("with the breaker open: %v, want ErrCircuitOpen and ErrStoreUnavailable", err)
	}
	srv.Resume()
	t.Logf("FAULT redis hung: recovered %v after SIGCONT", awaitRecovery(t, s).Round(time.Millisecond))
}

// TestFaultRedisKilled kills Redis (connections refused): every call must
// fail closed with ErrStoreUnavailable in milliseconds, not after retries,
// and the store must recover once Redis is back.
func TestFaultRedisKilled(t *testing.T) {
	srv := redistest.New(t)
	s := faultStore(t, srv.Addr())
	srv.Kill()
	sum := summarise(timeCalls(t, s))
	t.Logf("FAULT redis killed (SIGKILL, refused): %v", sum)
	if sum.inTime != sum.n {
		t.Errorf("%d of %d calls answered within %v, want all", sum.inTime, sum.n, envoyDeadline*3/4)
	}
	if sum.first > 50*time.Millisecond {
		t.Errorf("the first call took %v with Redis refusing connections, want under 50ms (no retries)", sum.first)
	}
	if sum.median > 20*time.Millisecond {
		t.Errorf("median answer %v with Redis refusing connections, want under 20ms", sum.median)
	}
	srv.Restart()
	// Restarted empty: the record is gone, which is a decision too.
	if err := s.PutUser(context.Background(), "alice", session.KindMFA, "s1", []byte("v"), time.Hour); err != nil && !errors.Is(err, session.ErrStoreUnavailable) {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), envoyDeadline)
		_, err := s.GetUser(ctx, "alice", session.KindMFA, "s1")
		cancel()
		if err == nil || errors.Is(err, session.ErrNotFound) {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("the store did not recover within 15s after Redis restarted: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("FAULT redis killed: recovered %v after restart", time.Since(start).Round(time.Millisecond))
}

// TestBreakerIgnoresCallers: calls that end because their caller gave up
// (a cancelled context, a deadline already past) say nothing about Redis
// and must not open the breaker for everyone else.
func TestBreakerIgnoresCallers(t *testing.T) {
	s := faultStore(t, redistest.Start(t))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	past, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for range 10 {
		for _, ctx := range []context.Context{cancelled, past} {
			if _, err := s.GetUser(ctx, "alice", session.KindMFA, "s1"); err == nil {
				t.Fatal("GetUser succeeded on a context that was over")
			}
		}
	}
	if _, err := s.GetUser(context.Background(), "alice", session.KindMFA, "s1"); err != nil {
		t.Fatalf("after callers gave up: %v, want the record", err)
	}
}
