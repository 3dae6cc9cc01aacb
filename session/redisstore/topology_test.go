package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/redisstore"
	"github.com/stepup-dev/stepup/session/redisstore/redistest"
)

// The failover tests below run real Sentinel and Cluster topologies on
// loopback, kill the master that holds the sessions with SIGKILL while
// several goroutines verify MFA sessions through a session.Manager, and
// count what the store answered. The invariant is fail-closed: a revoked
// session is never valid, and an error is always ErrStoreUnavailable. A
// session whose write was acknowledged by a replica (WAIT) stays valid
// after the failover. Writes that were not replicated when the master
// died can be lost (Redis replication is asynchronous): see
// docs/reliability.md.

// Load bounds: each goroutine stops after loadOps operations, or when the
// test says so, whichever comes first.
const (
	loadWorkers = 4
	loadOps     = 20000
	// failoverWithin bounds how long a failover may take to be seen by
	// the store before the test fails.
	failoverWithin = 30 * time.Second
)

// issued is one MFA session cookie.
type issued struct{ user, value string }

// world holds the sessions a failover test verifies.
type world struct {
	m                *session.Manager
	store            *redisstore.Store
	valid, revoked   []issued
	counter          string // a counter key
	counterAtLeast   int64  // its replicated value
	statesAcked      []string
	statesAckedUsers []string
	// onVictim, when set, names the users whose keys live on the master
	// the test kills; nil means all.
	onVictim map[string]bool
}

// seed issues n valid and n revoked MFA sessions for n users (spread over
// hash slots: the user is the hash tag), a counter and a few states, and
// then waits (wait) until every master's replicas have acknowledged them.
func seed(t *testing.T, s *redisstore.Store, n int, wait func()) *world {
	t.Helper()
	ctx := context.Background()
	m, err := session.NewManager(session.Config{
		Keys:  []session.Key{{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)}},
		Store: s,
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{m: m, store: s, counter: "failover-counter"}
	for i := range n {
		user := "user" + strconv.Itoa(i)
		c, _, err := m.IssueMFASession(ctx, session.Grant{User: user, Realm: testRealm, Factors: []string{"otp"}})
		if err != nil {
			t.Fatal(err)
		}
		w.valid = append(w.valid, issued{user, c.Value})
		c, ms, err := m.IssueMFASession(ctx, session.Grant{User: user, Realm: testRealm, Factors: []string{"otp"}})
		if err != nil {
			t.Fatal(err)
		}
		if k, err := m.Revoke(ctx, user, ms.ID); err != nil || k != 1 {
			t.Fatalf("Revoke = %d, %v", k, err)
		}
		w.revoked = append(w.revoked, issued{user, c.Value})
		st, err := m.NewState(ctx, session.State{User: user, ReturnURL: "/r"})
		if err != nil {
			t.Fatal(err)
		}
		w.statesAcked = append(w.statesAcked, st)
		w.statesAckedUsers = append(w.statesAckedUsers, user)
	}
	for range 5 {
		v, err := s.Incr(ctx, w.counter, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		w.counterAtLeast = v
	}
	wait()
	return w
}

// tally counts the outcomes of the load.
type tally struct {
	ok          atomic.Int64 // a valid session valid, a revoked one revoked
	unavailable atomic.Int64 // ErrStoreUnavailable
	failOpen    atomic.Int64 // a revoked session accepted
	lost        atomic.Int64 // a valid (replicated) session refused as revoked
	other       atomic.Int64 // any other error
	firstErr    atomic.Pointer[error]
	lastOK      atomic.Int64 // unix nanos of the last success
}

func (c *tally) String() string {
	return fmt.Sprintf("ok %d, store unavailable %d, fail-open %d, valid sessions lost %d, other errors %d",
		c.ok.Load(), c.unavailable.Load(), c.failOpen.Load(), c.lost.Load(), c.other.Load())
}

func (c *tally) noteOther(err error) {
	c.other.Add(1)
	c.firstErr.CompareAndSwap(nil, &err)
}

// verifyOnce verifies one random valid and one random revoked session
// under Envoy's deadline and counts the outcomes.
func (w *world) verifyOnce(r *rand.Rand, c *tally) {
	ctx, cancel := context.WithTimeout(context.Background(), envoyDeadline)
	defer cancel()
	v := w.valid[r.IntN(len(w.valid))]
	switch _, err := w.m.VerifyMFASession(ctx, v.value, v.user, ""); {
	case err == nil:
		c.ok.Add(1)
		if w.onVictim == nil || w.onVictim[v.user] {
			c.lastOK.Store(time.Now().UnixNano())
		}
	case errors.Is(err, session.ErrStoreUnavailable):
		c.unavailable.Add(1)
	case errors.Is(err, session.ErrRevoked):
		c.lost.Add(1)
	default:
		c.noteOther(err)
	}
	x := w.revoked[r.IntN(len(w.revoked))]
	switch _, err := w.m.VerifyMFASession(ctx, x.value, x.user, ""); {
	case err == nil:
		c.failOpen.Add(1)
	case errors.Is(err, session.ErrRevoked):
		c.ok.Add(1)
	case errors.Is(err, session.ErrStoreUnavailable):
		c.unavailable.Add(1)
	default:
		c.noteOther(err)
	}
}

// load runs loadWorkers goroutines of verifyOnce, each at most loadOps
// times, a millisecond apart, until stop is closed.
func (w *world) load(c *tally, stop <-chan struct{}) (wait func()) {
	var wg sync.WaitGroup
	for i := range loadWorkers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for range loadOps {
				select {
				case <-stop:
					return
				default:
				}
				w.verifyOnce(r, c)
				time.Sleep(time.Millisecond)
			}
		})
	}
	return wg.Wait
}

// failover runs the load, calls kill after a moment, waits until the
// store serves valid sessions of the killed master's users again, keeps
// the load on a little longer and returns the tally and how long those
// sessions were unavailable (kill to the first verified one after it).
func (w *world) failover(t *testing.T, kill func()) (*tally, time.Duration) {
	t.Helper()
	var c tally
	stop := make(chan struct{})
	wait := w.load(&c, stop)
	var once sync.Once
	end := func() {
		once.Do(func() {
			close(stop)
			wait()
		})
	}
	defer end()
	time.Sleep(300 * time.Millisecond)
	if c.ok.Load() == 0 {
		t.Fatalf("no session verified before the kill: %v", &c)
	}
	killed := time.Now()
	kill()
	for {
		if last := c.lastOK.Load(); last > killed.Add(50*time.Millisecond).UnixNano() {
			down := time.Unix(0, last).Sub(killed)
			time.Sleep(time.Second) // the load goes on after the failover
			end()
			return &c, down
		}
		if time.Since(killed) > failoverWithin {
			t.Fatalf("the store did not serve sessions again within %v of the kill: %v", failoverWithin, &c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkAfter checks the invariants after a failover: nothing failed open,
// every error was ErrStoreUnavailable, and every replicated session,
// revocation, state and counter survived.
func (w *world) checkAfter(t *testing.T, c *tally) {
	t.Helper()
	if n := c.failOpen.Load(); n != 0 {
		t.Errorf("%d revoked sessions were accepted during the failover", n)
	}
	if n := c.other.Load(); n != 0 {
		t.Errorf("%d errors were not ErrStoreUnavailable, the first: %v", n, *c.firstErr.Load())
	}
	if n := c.lost.Load(); n != 0 {
		t.Errorf("%d checks refused a replicated valid session as revoked", n)
	}
	ctx := context.Background()
	// The breaker may still be open for its cooldown.
	deadline := time.Now().Add(5 * time.Second)
	for i, v := range w.valid {
		for {
			_, err := w.m.VerifyMFASession(ctx, v.value, v.user, "")
			if err == nil {
				break
			}
			if !errors.Is(err, session.ErrStoreUnavailable) || time.Now().After(deadline) {
				t.Fatalf("after the failover, valid session %d of %s: %v", i, v.user, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, x := range w.revoked {
		if _, err := w.m.VerifyMFASession(ctx, x.value, x.user, ""); !errors.Is(err, session.ErrRevoked) {
			t.Errorf("after the failover, a revoked session of %s: %v, want ErrRevoked", x.user, err)
		}
	}
	for i, st := range w.statesAcked {
		if _, err := w.m.ConsumeState(ctx, st, w.statesAckedUsers[i]); err != nil {
			t.Errorf("after the failover, replicated state %d: %v", i, err)
		}
		if _, err := w.m.ConsumeState(ctx, st, w.statesAckedUsers[i]); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("after the failover, state %d consumed twice: %v", i, err)
		}
	}
	if n, err := w.store.Incr(ctx, w.counter, time.Hour); err != nil || n <= w.counterAtLeast {
		t.Errorf("after the failover, the counter incremented to %d (%v), want more than the replicated %d", n, err, w.counterAtLeast)
	}
}

// waitReplicated runs WAIT on a master until numReplicas replicas have
// acknowledged its writes.
func waitReplicated(t *testing.T, ctx context.Context, c *redis.Client, addr string) {
	t.Helper()
	n, err := c.Wait(ctx, 1, 5000).Result()
	if err != nil || n < 1 {
		t.Fatalf("WAIT on %s: %d replicas acknowledged (%v), want 1", addr, n, err)
	}
}

// TestFaultSentinelFailover: a master, one replica and three Sentinels
// (quorum 2). The store finds the master through the Sentinels; the master
// is killed under load, the Sentinels promote the replica, and the store
// follows it.
func TestFaultSentinelFailover(t *testing.T) {
	t.Parallel()
	master := redistest.New(t)
	replica := redistest.NewReplica(t, master)
	sentinels := redistest.StartSentinels(t, "stepup", master, 3, 2, time.Second, 3*time.Second)
	addrs := make([]string, len(sentinels))
	for i, s := range sentinels {
		addrs[i] = s.Addr()
	}
	s := newStoreOpts(t, redisstore.Options{Addrs: addrs, MasterName: "stepup", Timeout: 200 * time.Millisecond, CacheTTL: redisstore.DefaultCacheTTL})
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if unsafe, err := s.CheckSettings(context.Background()); err != nil || len(unsafe) != 1 || unsafe[0].Setting != "persistence" {
		t.Errorf("CheckSettings through the Sentinels = %+v, %v; want the master's missing persistence", unsafe, err)
	}
	raw := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer raw.Close()
	w := seed(t, s, 20, func() { waitReplicated(t, context.Background(), raw, master.Addr()) })

	c, down := w.failover(t, master.Kill)
	sc := redis.NewSentinelClient(&redis.Options{Addr: addrs[0]})
	defer sc.Close()
	now, err := sc.GetMasterAddrByName(context.Background(), "stepup").Result()
	if err != nil || len(now) != 2 || now[1] != strconv.Itoa(replica.Port()) {
		t.Errorf("the Sentinels' master after the failover: %v (%v), want the replica on port %d", now, err, replica.Port())
	}
	t.Logf("FAULT sentinel failover (master SIGKILLed under %d goroutines): sessions unavailable for %v; %v",
		loadWorkers, down.Round(time.Millisecond), c)
	w.checkAfter(t, c)
}

// TestClusterAcrossSlots: on a 3-master Cluster the store's sessions,
// remembered browsers, states and counters work for users and keys in
// every master's slots.
func TestClusterAcrossSlots(t *testing.T) {
	t.Parallel()
	addrs := redistest.StartCluster(t, 3)
	s := newStoreOpts(t, redisstore.Options{Addrs: addrs, Cluster: true, CacheTTL: redisstore.DefaultCacheTTL})
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	ctx := context.Background()
	w := seed(t, s, 30, func() {})
	masters := map[string]bool{}
	for _, v := range w.valid {
		mc, err := cc.MasterForKey(ctx, "{"+v.user+"}")
		if err != nil {
			t.Fatal(err)
		}
		masters[mc.Options().Addr] = true
		if _, err := w.m.VerifyMFASession(ctx, v.value, v.user, ""); err != nil {
			t.Errorf("session of %s: %v", v.user, err)
		}
		rem, _, err := w.m.IssueRemember(ctx, session.Grant{User: v.user, Realm: testRealm, Factors: []string{"otp"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.m.VerifyRemember(ctx, rem.Value, v.user); err != nil {
			t.Errorf("remembered browser of %s: %v", v.user, err)
		}
		if list, err := w.m.ListUser(ctx, v.user); err != nil || len(list.MFA) != 1 || len(list.Devices) != 1 {
			t.Errorf("ListUser(%s) = %+v, %v; want one session, one device", v.user, list, err)
		}
	}
	if len(masters) != 3 {
		t.Errorf("the users' keys live on %d masters, want all 3", len(masters))
	}
	for _, x := range w.revoked {
		if _, err := w.m.VerifyMFASession(ctx, x.value, x.user, ""); !errors.Is(err, session.ErrRevoked) {
			t.Errorf("revoked session of %s: %v", x.user, err)
		}
	}
	for i, st := range w.statesAcked {
		if _, err := w.m.ConsumeState(ctx, st, w.statesAckedUsers[i]); err != nil {
			t.Errorf("state %d: %v", i, err)
		}
	}
	// Plain keys (counters) spread over the slots too.
	keyMasters := map[string]bool{}
	for i := range 30 {
		k := "counter" + strconv.Itoa(i)
		for j := int64(1); j <= 3; j++ {
			if n, err := s.Incr(ctx, k, time.Hour); err != nil || n != j {
				t.Fatalf("Incr %s = %d, %v; want %d", k, n, err, j)
			}
		}
		mc, err := cc.MasterForKey(ctx, "stepup:k:"+k)
		if err != nil {
			t.Fatal(err)
		}
		keyMasters[mc.Options().Addr] = true
	}
	if len(keyMasters) != 3 {
		t.Errorf("counters live on %d masters, want all 3", len(keyMasters))
	}
	unsafe, err := s.CheckSettings(ctx)
	if err != nil || len(unsafe) != 3 {
		t.Errorf("CheckSettings on a cluster without persistence: %d unsafe settings (%v), want one per master", len(unsafe), err)
	}
}

// TestFaultClusterFailover: a Cluster of 3 masters with one replica each;
// the master holding the first user's slot is killed under load, its
// replica is promoted, and the store follows the new slot map.
func TestFaultClusterFailover(t *testing.T) {
	t.Parallel()
	nodes := redistest.NewCluster(t, 3, 1, time.Second)
	addrs := make([]string, len(nodes))
	byAddr := map[string]*redistest.Server{}
	for i, n := range nodes {
		addrs[i] = n.Addr()
		byAddr[n.Addr()] = n
	}
	s := newStoreOpts(t, redisstore.Options{Addrs: addrs, Cluster: true, Timeout: 200 * time.Millisecond, CacheTTL: redisstore.DefaultCacheTTL})
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	ctx := context.Background()
	w := seed(t, s, 20, func() {
		if err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			waitReplicated(t, ctx, c, c.Options().Addr)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	mc, err := cc.MasterForKey(ctx, "{"+w.valid[0].user+"}")
	if err != nil {
		t.Fatal(err)
	}
	victim := byAddr[mc.Options().Addr]
	if victim == nil {
		t.Fatalf("the master %s is not one of the nodes %v", mc.Options().Addr, addrs)
	}
	w.onVictim = map[string]bool{}
	for _, v := range w.valid {
		if m, err := cc.MasterForKey(ctx, "{"+v.user+"}"); err == nil && m.Options().Addr == victim.Addr() {
			w.onVictim[v.user] = true
		}
	}
	c, down := w.failover(t, victim.Kill)
	t.Logf("FAULT cluster failover (master %s SIGKILLed under %d goroutines): sessions unavailable for %v; %v",
		victim.Addr(), loadWorkers, down.Round(time.Millisecond), c)
	w.checkAfter(t, c)
	// The slot has a new master, one of the old replicas (the test's own
	// client reloads its slot map in the background).
	deadline := time.Now().Add(10 * time.Second)
	for {
		cc.ReloadState(ctx)
		mc, err := cc.MasterForKey(ctx, "{"+w.valid[0].user+"}")
		if err == nil && mc.Options().Addr != victim.Addr() && byAddr[mc.Options().Addr] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot's master is still %v (%v), want a promoted replica", mc, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
