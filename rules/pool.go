package rules

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// pool hands out the runtimes of an Engine and the places to run
// JavaScript on them. It knows nothing of what a runtime holds: build
// makes a new one, close (jsRuntime.close) ends one. It is safe for
// concurrent use.
//
// Two limits apply. A place (cpu) is held while a run executes
// JavaScript, at most size at once; a run that parks in a timer wait
// gives its place back and keeps its runtime. A slot is a runtime in
// existence (idle, handed over or in use), at most capacity: size running
// plus the runs allowed to park.
type pool struct {
	build func() (*jsRuntime, error)
	// size is Options.PoolSize; capacity is size + Options.MaxWaitingRuns.
	size, capacity int
	obs            QueueObserver

	// idle holds the runtimes not in use, the most recently released
	// last: acquire takes that one (LIFO), whose objects are most likely
	// still in the CPU's caches. A FIFO rotation through every runtime
	// made a real server's Check touch cold memory each time.
	idle []*jsRuntime // guarded by mu
	// waiters counts the acquirers waiting for a runtime that no release
	// has served yet (guarded by mu). While there are any, a released
	// runtime goes to them through handoff, oldest waiter first (a
	// channel serves blocked receivers in order), never to idle: a new
	// request cannot overtake one that has been waiting.
	waiters int
	// handoff carries runtimes to waiters, or nil: a slot freed by a
	// dropped runtime, reserved for the waiter that receives it to build
	// a new one in. Everything in it holds a slot and there are at most
	// capacity slots, its capacity, so a send under mu never blocks.
	handoff chan *jsRuntime
	mu      sync.Mutex
	slots   int // guarded by mu

	// cpu holds a token per run executing JavaScript (size at most);
	// blocked senders are served in order.
	cpu chan struct{}
	// queued counts the runs waiting for a cpu token; holdNanos is the
	// moving average of how long a token is held.
	queued    atomic.Int64
	holdNanos atomic.Int64

	closed    atomic.Bool
	discarded atomic.Int64
}

func newPool(size, waiting int, obs QueueObserver, build func() (*jsRuntime, error)) *pool {
	capacity := size + waiting
	return &pool{
		build:    build,
		size:     size,
		capacity: capacity,
		obs:      obs,
		idle:     make([]*jsRuntime, 0, capacity),
		handoff:  make(chan *jsRuntime, capacity),
		cpu:      make(chan struct{}, size),
	}
}

// close drops the idle runtimes; runtimes in use are dropped when
// released, unless a waiter takes them. close is idempotent.
func (p *pool) close() {
	if p.closed.Swap(true) {
		return
	}
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, rt := range idle {
		p.drop(rt)
	}
}

// warm builds up to n runtimes (at most capacity) and makes them idle.
func (p *pool) warm(n int) error {
	var rts []*jsRuntime
	defer func() {
		for _, rt := range rts {
			p.release(rt, false)
		}
	}()
	for range min(n, p.capacity) {
		if !p.reserve() {
			return nil
		}
		rt, err := p.build()
		if err != nil {
			p.unreserve()
			return err
		}
		rts = append(rts, rt)
	}
	return nil
}

func (p *pool) reserve() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slots >= p.capacity {
		return false
	}
	p.slots++
	return true
}

func (p *pool) unreserve() {
	p.mu.Lock()
	p.passSlotLocked()
	p.mu.Unlock()
}

// get takes a place to run JavaScript and a runtime, waiting in line for
// each until deadline. The runtime comes back holding its place
// (hasCPU); give both back with put.
func (p *pool) get(ctx context.Context, deadline time.Time) (*jsRuntime, *Error) {
	start := time.Now()
	if err := p.takeCPU(ctx, deadline); err != nil {
		return nil, err
	}
	rt := p.pop()
	if rt == nil {
		var err error
		if rt, err = p.acquire(ctx, deadline); err != nil {
			p.releaseCPU(start)
			p.observe("timeout", time.Since(start))
			return nil, &Error{Kind: KindTimeout, Name: "TimeoutError", Message: "no runtime: " + err.Error()}
		}
	}
	p.observe("ok", time.Since(start))
	rt.cpuSince = time.Now()
	rt.hasCPU = true
	return rt, nil
}

// put gives back rt's place, if it holds one, and rt itself, which is
// dropped when discard is set.
func (p *pool) put(rt *jsRuntime, discard bool) {
	p.yieldCPU(rt)
	p.release(rt, discard)
}

// yieldCPU gives back the place rt holds, if any.
func (p *pool) yieldCPU(rt *jsRuntime) {
	if rt.hasCPU {
		rt.hasCPU = false
		p.releaseCPU(rt.cpuSince)
	}
}

// resumeCPU takes a place again for rt, in line, before deadline.
func (p *pool) resumeCPU(ctx context.Context, rt *jsRuntime, deadline time.Time) *Error {
	if err := p.takeCPU(ctx, deadline); err != nil {
		return err
	}
	rt.hasCPU, rt.cpuSince = true, time.Now()
	return nil
}

// acquire returns a runtime: an idle one, a new one while fewer than
// capacity exist, or else the next one released, waiting for it in line
// until the deadline.
func (p *pool) acquire(ctx context.Context, deadline time.Time) (*jsRuntime, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		p.mu.Lock()
		if rt := p.popLocked(); rt != nil {
			p.mu.Unlock()
			return rt, nil
		}
		if p.slots < p.capacity {
			p.slots++
			p.mu.Unlock()
			return p.buildReserved()
		}
		p.waiters++
		p.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
		}
		select {
		case rt := <-p.handoff:
			if rt != nil {
				return rt, nil
			}
			// A slot passed on to this waiter: build a runtime in it.
			return p.buildReserved()
		case <-ctx.Done():
			p.abandon()
			return nil, context.Cause(ctx)
		case <-timer.C:
			p.abandon()
			return nil, errors.New("no JavaScript runtime became available before the deadline")
		}
	}
}

// buildReserved builds a runtime in a slot already counted, giving the
// slot back when that fails.
func (p *pool) buildReserved() (*jsRuntime, error) {
	rt, err := p.build()
	if err != nil {
		p.unreserve()
		return nil, err
	}
	return rt, nil
}

// abandon takes a waiter out of the line. A release may have served it
// meanwhile: then a runtime or a slot is in handoff (for it, or for a
// waiter that has not received yet), and passing that on keeps the count
// right either way.
func (p *pool) abandon() {
	p.mu.Lock()
	var rt *jsRuntime
	select {
	case rt = <-p.handoff:
		if rt == nil {
			p.passSlotLocked()
			p.mu.Unlock()
			return
		}
	default:
		p.waiters--
		p.mu.Unlock()
		return
	}
	kept := p.giveLocked(rt)
	p.mu.Unlock()
	if !kept {
		p.drop(rt)
	}
}

// release returns a runtime to the pool, or drops it.
func (p *pool) release(rt *jsRuntime, discard bool) {
	if discard {
		p.discarded.Add(1)
		p.drop(rt)
		return
	}
	p.mu.Lock()
	kept := p.giveLocked(rt)
	p.mu.Unlock()
	if !kept {
		p.drop(rt)
	}
}

// giveLocked hands rt to the oldest waiter (also on a closed pool: runs
// already waiting on it finish there), or makes it idle. It reports
// false when the caller must drop rt instead (the pool is closed and
// nobody waits). Called with mu held; close takes the idle runtimes under
// mu too, so a runtime released concurrently with close is never left
// idle.
func (p *pool) giveLocked(rt *jsRuntime) bool {
	switch {
	case p.waiters > 0:
		p.waiters--
		p.handoff <- rt
	case p.closed.Load():
		return false
	default:
		p.idle = append(p.idle, rt)
	}
	return true
}

// passSlotLocked passes a free slot to the oldest waiter, or gives it
// back. Called with mu held.
func (p *pool) passSlotLocked() {
	if p.waiters > 0 {
		p.waiters--
		p.handoff <- nil
		return
	}
	p.slots--
}

// pop takes the most recently released idle runtime, or returns nil.
// While acquirers wait, idle is empty: releases go to them.
func (p *pool) pop() *jsRuntime {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.popLocked()
}

func (p *pool) popLocked() *jsRuntime {
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	rt := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return rt
}

func (p *pool) drop(rt *jsRuntime) {
	rt.close()
	p.unreserve()
}

// takeCPU takes a place to run JavaScript, waiting in line until
// deadline, or fails at once when the expected wait would pass it.
func (p *pool) takeCPU(ctx context.Context, deadline time.Time) *Error {
	select {
	case p.cpu <- struct{}{}:
		return nil
	default:
	}
	start := time.Now()
	ahead := p.queued.Add(1)
	defer p.queued.Add(-1)
	expected := time.Duration(ahead * p.holdNanos.Load() / int64(p.size))
	if start.Add(expected).After(deadline) {
		p.observe("rejected", 0)
		return &Error{Kind: KindTimeout, Name: "TimeoutError", Message: fmt.Sprintf("overloaded: %d runs waiting to run, the expected wait %v passes the deadline", ahead, expected.Round(time.Millisecond))}
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case p.cpu <- struct{}{}:
		return nil
	case <-ctx.Done():
		p.observe("timeout", time.Since(start))
		return &Error{Kind: KindTimeout, Name: "TimeoutError", Message: "request cancelled while waiting to run: " + context.Cause(ctx).Error()}
	case <-timer.C:
		p.observe("timeout", time.Since(start))
		return &Error{Kind: KindTimeout, Name: "TimeoutError", Message: "no place to run before the deadline"}
	}
}

// releaseCPU gives back a place taken at since, and folds the hold time
// into the average (weight 1/8).
func (p *pool) releaseCPU(since time.Time) {
	<-p.cpu
	held := int64(time.Since(since))
	for {
		old := p.holdNanos.Load()
		avg := held
		if old != 0 {
			avg = old + (held-old)/8
		}
		if p.holdNanos.CompareAndSwap(old, avg) {
			return
		}
	}
}

func (p *pool) observe(outcome string, d time.Duration) {
	if p.obs != nil {
		p.obs.ObserveQueueWait(outcome, d)
	}
}
