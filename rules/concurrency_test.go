package rules

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentRuns runs many goroutines on one engine (run with -race):
// every result must match its own input.
func TestConcurrentRuns(t *testing.T) {
	rules := []Source{
		seedSource(t, "003_extranet.js"),
		jsSource("async-echo", `function (user, context, callback) {
  var jwt = require('jsonwebtoken');
  var token = jwt.sign({sub: user.user_id}, 'k');
  Promise.resolve(jwt.verify(token, 'k').sub).then(function (sub) {
    setTimeout(function () {
      context.idToken.sub = sub;
      context.idToken.ip = context.request.ip;
      global.runs = (global.runs || 0) + 1;
      callback(null, user, context);
    }, 1);
  });
}`),
		jsSource("deny-mallory", `function (user, context, callback) {
  if (user.user_id === 'mallory') { return callback(new UnauthorizedError('no mallory')); }
  callback(null, user, context);
}`),
	}
	// Generous budgets: this test is about isolation, not speed (-race
	// on two cores is slow).
	e := newEngine(t, Options{Rules: rules, PoolSize: 4, RuleTimeout: 10 * time.Second, PipelineTimeout: 20 * time.Second})
	const workers, perWorker = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				user := fmt.Sprintf("user-%d-%d", w, i)
				ip := "203.0.113.7"
				if i%2 == 0 {
					ip = "192.168.1.140"
				}
				if i%7 == 0 {
					user = "mallory"
				}
				res := e.Run(context.Background(), Input{User: map[string]any{"user_id": user}, Context: Context{Request: Request{IP: ip}}})
				switch {
				case user == "mallory":
					if res.Err == nil || res.Err.Kind != KindUnauthorized || res.Rule != "deny-mallory" {
						errs <- fmt.Errorf("%s: %+v", user, res.Err)
						return
					}
				case res.Err != nil:
					errs <- fmt.Errorf("%s: %v", user, res.Err)
					return
				case res.IDTokenClaims["sub"] != user || res.IDTokenClaims["ip"] != ip:
					errs <- fmt.Errorf("%s/%s got claims %v", user, ip, res.IDTokenClaims)
					return
				case (ip == "203.0.113.7") != (res.Multifactor != nil):
					errs <- fmt.Errorf("%s/%s multifactor %+v", user, ip, res.Multifactor)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Runs parked in the setTimeout keep their runtimes: up to the pool
	// size 4 plus the default 16 waiting runs.
	if s := e.Stats(); s.RuntimesCreated > 4+16 || s.RuntimesDiscarded != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// TestConcurrentReload swaps engines while runs are in flight, as the
// server does on hot reload: runs finish on the engine they started with.
func TestConcurrentReload(t *testing.T) {
	mk := func(version int) *Engine {
		e, err := New(Options{Rules: []Source{jsSource("v", fmt.Sprintf(
			"function (user, context, callback) { setImmediate(function () { context.idToken.v = %d; callback(null, user, context); }); }", version))},
			PoolSize: 2, RuleTimeout: 10 * time.Second, PipelineTimeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	var current atomic.Pointer[Engine]
	current.Store(mk(0))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var failures atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res := current.Load().Run(context.Background(), Input{})
				if res.Err != nil && res.Err.Message != ErrClosed.Error() {
					failures.Add(1)
				}
				if res.Err == nil && res.IDTokenClaims["v"] == nil {
					failures.Add(1)
				}
			}
		}()
	}
	for v := 1; v <= 20; v++ {
		old := current.Swap(mk(v))
		old.Close()
	}
	close(stop)
	wg.Wait()
	current.Load().Close()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d failed runs", n)
	}
}

// TestPoolReusesLastReleased: runs one after another use the runtime
// released last (LIFO), not a rotation through the warm pool, so that a
// busy server keeps running on runtimes whose memory is still in the CPU's
// caches. Each runtime counts its own runs on its global object.
func TestPoolReusesLastReleased(t *testing.T) {
	counter := jsSource("count", `function (user, context, callback) {
  global.runs = (global.runs || 0) + 1;
  callback(new UnauthorizedError('run ' + global.runs));
}`)
	e := newEngine(t, Options{Rules: []Source{counter}, PoolSize: 4})
	if err := e.Warm(4); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		res := e.Run(context.Background(), Input{User: map[string]any{"user_id": "u"}})
		if res.Err == nil {
			t.Fatalf("run %d: no error, want the rule's count", i)
		}
		if want := fmt.Sprintf("run %d", i); res.Err.Message != want {
			t.Fatalf("run %d: rule said %q, want %q (runs went to another runtime)", i, res.Err.Message, want)
		}
	}
	if got := e.Stats().RuntimesCreated; got != 4 {
		t.Errorf("runtimes created = %d, want the 4 warmed", got)
	}
}

// TestPoolWaitersWake: with every runtime busy, waiting runs get one as
// soon as it is released, and Close while runs are in flight leaves no
// runtime behind.
func TestPoolWaitersWake(t *testing.T) {
	slow := jsSource("slow", `function (user, context, callback) {
  setTimeout(function () { callback(null, user, context); }, 20);
}`)
	e := newEngine(t, Options{Rules: []Source{slow}, PoolSize: 2, RuleTimeout: 10 * time.Second, PipelineTimeout: 20 * time.Second})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res := e.Run(context.Background(), Input{User: map[string]any{"user_id": "u"}}); res.Err != nil {
				t.Errorf("run: %+v", res.Err)
			}
		}()
	}
	wg.Wait()
	if got := e.Stats().RuntimesCreated; got > 2+8 {
		t.Errorf("runtimes created = %d, want at most the pool size 2 plus the 8 waiting runs", got)
	}
	e.Close()
	e.pool.mu.Lock()
	idle, slots := len(e.pool.idle), e.pool.slots
	e.pool.mu.Unlock()
	if idle != 0 || slots != 0 {
		t.Errorf("after Close: %d idle, %d slots; want 0, 0", idle, slots)
	}
}

// newPoolOfOne returns an engine with one trivial rule and one runtime.
func newPoolOfOne(t *testing.T) *Engine {
	return newEngine(t, Options{Rules: []Source{jsSource("ok", `function (user, context, callback) { callback(null, user, context); }`)}, PoolSize: 1, MaxWaitingRuns: -1})
}

// mustAcquire takes a runtime from e.
func mustAcquire(t *testing.T, e *Engine) *jsRuntime {
	t.Helper()
	rt, err := e.pool.acquire(context.Background(), time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// startWaiter starts a run's acquire, which must wait (every runtime is
// taken), and returns once it is in line; the runtime it gets arrives on
// the channel.
func startWaiter(t *testing.T, e *Engine) <-chan *jsRuntime {
	t.Helper()
	got := make(chan *jsRuntime, 1)
	go func() {
		rt, err := e.pool.acquire(context.Background(), time.Now().Add(5*time.Second))
		if err != nil {
			t.Error(err)
		}
		got <- rt
	}()
	waitForWaiters(t, e, 1)
	return got
}

// waitForWaiters polls until n acquirers are in line.
func waitForWaiters(t *testing.T, e *Engine, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		e.pool.mu.Lock()
		w := e.pool.waiters
		e.pool.mu.Unlock()
		if w == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters, want %d", w, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPoolServesWaitersFirst: a runtime released while a run waits goes
// to that run; a newcomer finds nothing idle and cannot overtake it.
func TestPoolServesWaitersFirst(t *testing.T) {
	e := newPoolOfOne(t)
	held := mustAcquire(t, e)
	got := startWaiter(t, e)
	e.pool.release(held, false)
	if rt := e.pool.pop(); rt != nil {
		t.Fatal("a newcomer took the runtime released for the waiting run")
	}
	if rt := <-got; rt != held {
		t.Fatalf("waiter got %p, want the released runtime %p", rt, held)
	}
	e.pool.release(held, false)
	e.pool.mu.Lock()
	idle, waiters := len(e.pool.idle), e.pool.waiters
	e.pool.mu.Unlock()
	if idle != 1 || waiters != 0 {
		t.Errorf("after the waiter released: %d idle, %d waiters; want 1, 0", idle, waiters)
	}
}

// TestPoolWaiterLeavesLine: a run that gives up waiting leaves the line,
// so the next release makes the runtime idle instead of handing it to
// nobody; one that waits through a discarded runtime builds a new one.
func TestPoolWaiterLeavesLine(t *testing.T) {
	e := newPoolOfOne(t)
	held := mustAcquire(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if rt, err := e.pool.acquire(ctx, time.Now().Add(5*time.Second)); err == nil {
		t.Fatalf("acquire with every runtime busy returned %p before its deadline", rt)
	}
	e.pool.release(held, false)
	if rt := e.pool.pop(); rt != held {
		t.Fatalf("after the waiter left, the released runtime was not idle (pop = %p)", rt)
	}

	got := startWaiter(t, e)
	e.pool.release(held, true) // discarded: its slot frees up
	rt := <-got
	if rt == nil || rt == held {
		t.Fatalf("waiter got %p, want a new runtime", rt)
	}
	if n := e.Stats().RuntimesCreated; n != 2 {
		t.Errorf("runtimes created = %d, want 2", n)
	}
	e.pool.release(rt, false)
}

// TestPoolFreedSlotGoesToWaiter: when a runtime is dropped while a run
// waits, its slot is the waiting run's; a newcomer cannot build a runtime
// in it first.
func TestPoolFreedSlotGoesToWaiter(t *testing.T) {
	e := newPoolOfOne(t)
	held := mustAcquire(t, e)
	got := startWaiter(t, e)
	e.pool.release(held, true) // discarded: the slot passes to the waiter
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if rt, err := e.pool.acquire(ctx, time.Now().Add(5*time.Second)); err == nil {
		t.Fatalf("a newcomer got runtime %p in the slot freed for the waiting run", rt)
	}
	rt := <-got
	if rt == nil || rt == held {
		t.Fatalf("waiter got %p, want a new runtime", rt)
	}
	e.pool.release(rt, false)
	e.pool.mu.Lock()
	idle, slots, waiters := len(e.pool.idle), e.pool.slots, e.pool.waiters
	e.pool.mu.Unlock()
	if idle != 1 || slots != 1 || waiters != 0 {
		t.Errorf("afterwards: %d idle, %d slots, %d waiters; want 1, 1, 0", idle, slots, waiters)
	}
}

// TestPoolCloseWithWaiters: runs waiting on an engine that is closed (a
// reload) are still served by the runtimes released to them, and nothing
// is left behind.
func TestPoolCloseWithWaiters(t *testing.T) {
	e := newPoolOfOne(t)
	held := mustAcquire(t, e)
	got := startWaiter(t, e)
	e.Close()
	e.pool.release(held, false)
	if rt := <-got; rt != held {
		t.Fatalf("waiter got %p, want the runtime released to it %p", rt, held)
	}
	e.pool.release(held, false) // closed, nobody waits: dropped
	e.pool.mu.Lock()
	idle, slots, waiters := len(e.pool.idle), e.pool.slots, e.pool.waiters
	e.pool.mu.Unlock()
	if idle != 0 || slots != 0 || waiters != 0 {
		t.Errorf("after Close: %d idle, %d slots, %d waiters; want 0, 0, 0", idle, slots, waiters)
	}
}
