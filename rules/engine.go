package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultRuleTimeout      = 100 * time.Millisecond
	DefaultPipelineTimeout  = 300 * time.Millisecond
	DefaultMaxCallStackSize = 1024
	DefaultMaxInputBytes    = 64 << 10
	DefaultMaxRuntimeMemory = 64 << 20
)

// ErrClosed is the message of the KindInternal error Run returns after
// Close.
var ErrClosed = errors.New("rules engine closed")

// Options configure an Engine.
type Options struct {
	// Rules run in order; disabled ones are skipped.
	Rules []Source
	// Configuration is the read-only `configuration` global.
	Configuration map[string]string
	// RuleTimeout is each rule's budget (default DefaultRuleTimeout).
	RuleTimeout time.Duration
	// PipelineTimeout is the whole run's budget (default
	// DefaultPipelineTimeout). The context deadline caps both.
	PipelineTimeout time.Duration
	// MaxCallStackSize is the maximum JS call depth (default
	// DefaultMaxCallStackSize).
	MaxCallStackSize int
	// MaxInputBytes bounds the request-derived data (user and context)
	// entering JS, counted as string bytes plus a few bytes per value
	// (default DefaultMaxInputBytes). Larger inputs fail with KindInternal.
	MaxInputBytes int
	// MaxRuntimeMemory bounds what one slice of synchronous JavaScript (a
	// rule's body, a timer callback) may allocate, in bytes (default
	// DefaultMaxRuntimeMemory; negative: no bound). It is checked every
	// 10 ms while a slice runs, against the process's allocations during
	// the slice, and bounds the results of String.prototype.repeat,
	// padStart and padEnd. A rule past it fails with KindException
	// (RangeError) and its runtime is discarded.
	MaxRuntimeMemory int64
	// PoolSize is the maximum number of runs executing JavaScript at once
	// (default 2×GOMAXPROCS). A run holds one of these places while its
	// JavaScript runs, not while it waits for a timer (setTimeout & co,
	// and the promises they resolve): then it parks, keeping its runtime,
	// and takes a place again, in line, when the timer is due. Runs wait
	// in line for a place until their deadline; one whose expected wait
	// (the line ahead of it times the recent average hold, divided by
	// PoolSize) would end past its deadline fails at once (KindTimeout,
	// "overloaded").
	PoolSize int
	// MaxWaitingRuns bounds the runs parked in a wait, beyond PoolSize
	// (default 4×PoolSize; negative: none): there are at most
	// PoolSize+MaxWaitingRuns runtimes, and a run finding all of them in
	// use waits for one.
	MaxWaitingRuns int
	// Logger receives console.* output (tagged rule=<name>) and engine
	// warnings. Nil discards.
	Logger *slog.Logger
	// Observer, when set, is told the outcome and duration of every rule
	// execution.
	Observer Observer
	// Now is the clock for Date in JS and for jsonwebtoken's iat/exp
	// checks (default time.Now). Budgets always use the real clock.
	Now func() time.Time
}

// Observer receives per-rule metrics.
type Observer interface {
	// ObserveRule is called once per executed rule with outcome "ok",
	// "error", "timeout" or "exception" and the rule's wall time.
	ObserveRule(rule string, outcome string, d time.Duration)
}

// QueueObserver, implemented by an Options.Observer, is also told how
// long each run waited for a place to run (see Options.PoolSize) and a
// runtime, with outcome "ok", "timeout" (the deadline or the context
// ended the wait) or "rejected" (the expected wait passed the deadline).
type QueueObserver interface {
	ObserveQueueWait(outcome string, d time.Duration)
}

// Stats are engine counters, mainly for tests and metrics.
type Stats struct {
	// Compiles is the number of rule programs compiled (once per enabled
	// rule, in New).
	Compiles int64
	// RuntimesCreated counts goja runtimes built so far.
	RuntimesCreated int64
	// RuntimesDiscarded counts runtimes dropped after a fault or timeout.
	RuntimesDiscarded int64
	// Runs counts Run and RunDebug calls.
	Runs int64
}

// Engine runs a fixed, compiled set of rules on a pool of runtimes. It is
// immutable and safe for concurrent use; to change rules build a new Engine
// and swap it in (requests in flight finish on the engine they started
// with), then Close the old one.
type Engine struct {
	opts       Options
	rules      []*compiledRule
	names      []string
	configKeys []string
	logger     *slog.Logger
	now        func() time.Time
	// maxSlice is the longest stretch of synchronous JavaScript (the
	// package's maxSlice; tests that are not about it raise it).
	maxSlice time.Duration
	// nativeInput makes runs build user and context as native objects
	// instead of lazy ones (lazy.go): set when a rule mentions an
	// operation lazy objects do not support.
	nativeInput bool

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
	// PoolSize slots, its capacity, so a send under mu never blocks.
	handoff chan *jsRuntime
	mu      sync.Mutex
	slots   int // runtimes in existence (idle, handed over or in use); guarded by mu
	// capacity is the most runtimes there may be: PoolSize running plus
	// MaxWaitingRuns parked.
	capacity int
	// cpu holds a token per run executing JavaScript (PoolSize at most);
	// blocked senders are served in order.
	cpu chan struct{}
	// queued counts the runs waiting for a cpu token; holdNanos is the
	// moving average of how long a token is held.
	queued    atomic.Int64
	holdNanos atomic.Int64
	queueObs  QueueObserver
	closed    atomic.Bool

	compiles          atomic.Int64
	runtimesCreated   atomic.Int64
	runtimesDiscarded atomic.Int64
	runs              atomic.Int64
}

// New validates and compiles every enabled rule. It reports every problem
// at once in a *LoadError (wrapping ErrInvalidRules): syntax errors, code
// that is not a single function expression of at most three parameters,
// require() of an unavailable module, missing mandatory configuration of
// gallery rules, and duplicate names. Warnings (those of [Lint]) are
// logged. Runtimes are created lazily.
func New(opts Options) (*Engine, error) {
	if err := normalize(&opts); err != nil {
		return nil, err
	}
	setRegexpTimeout()
	qo, _ := opts.Observer.(QueueObserver)
	e := &Engine{
		queueObs:   qo,
		maxSlice:   maxSlice,
		opts:       opts,
		logger:     opts.Logger,
		now:        opts.Now,
		configKeys: sortedKeys(opts.Configuration),
	}
	var problems, warnings []Finding
	seen := map[string]bool{}
	cfg := opts.Configuration
	if cfg == nil {
		cfg = map[string]string{}
	}
	for i, src := range opts.Rules {
		if !src.Enabled {
			continue
		}
		name := displayName(src, i)
		if seen[name] {
			problems = append(problems, Finding{Rule: name, Path: src.Path, Severity: SeverityError, Message: "duplicate rule name"})
			continue
		}
		seen[name] = true
		if needsNativeObjects(src.Code) {
			e.nativeInput = true
		}
		r, findings := analyze(src, i, cfg)
		for _, f := range findings {
			if f.Severity == SeverityError {
				problems = append(problems, f)
			} else {
				warnings = append(warnings, f)
			}
		}
		if r != nil {
			e.compiles.Add(1)
			e.rules = append(e.rules, r)
			e.names = append(e.names, r.name)
		}
	}
	if len(problems) > 0 {
		return nil, &LoadError{Findings: problems}
	}
	for _, f := range warnings {
		e.logger.Warn("rule warning (see `stepup rules lint`)", "rule", f.Rule, "warning", f.Message)
	}
	e.capacity = opts.PoolSize + opts.MaxWaitingRuns
	e.idle = make([]*jsRuntime, 0, e.capacity)
	e.handoff = make(chan *jsRuntime, e.capacity)
	e.cpu = make(chan struct{}, opts.PoolSize)
	return e, nil
}

func normalize(o *Options) error {
	var errs []error
	if o.RuleTimeout < 0 || o.PipelineTimeout < 0 || o.MaxCallStackSize < 0 || o.MaxInputBytes < 0 || o.PoolSize < 0 {
		errs = append(errs, errors.New("negative limit in rules options"))
	}
	if o.RuleTimeout == 0 {
		o.RuleTimeout = DefaultRuleTimeout
	}
	if o.PipelineTimeout == 0 {
		o.PipelineTimeout = DefaultPipelineTimeout
	}
	if o.MaxCallStackSize == 0 {
		o.MaxCallStackSize = DefaultMaxCallStackSize
	}
	if o.MaxRuntimeMemory == 0 {
		o.MaxRuntimeMemory = DefaultMaxRuntimeMemory
	}
	if o.MaxInputBytes == 0 {
		o.MaxInputBytes = DefaultMaxInputBytes
	}
	if o.PoolSize == 0 {
		o.PoolSize = 2 * runtime.GOMAXPROCS(0)
	}
	switch {
	case o.MaxWaitingRuns == 0:
		o.MaxWaitingRuns = 4 * o.PoolSize
	case o.MaxWaitingRuns < 0:
		o.MaxWaitingRuns = 0
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Configuration != nil {
		o.Configuration = maps.Clone(o.Configuration)
	}
	o.Rules = slices.Clone(o.Rules)
	return errors.Join(errs...)
}

// Rules returns the names of the enabled rules in run order.
func (e *Engine) Rules() []string { return slices.Clone(e.names) }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Compiles:          e.compiles.Load(),
		RuntimesCreated:   e.runtimesCreated.Load(),
		RuntimesDiscarded: e.runtimesDiscarded.Load(),
		Runs:              e.runs.Load(),
	}
}

// Close releases the pooled runtimes. Runs in flight finish; later runs
// fail with KindInternal. Close is idempotent.
func (e *Engine) Close() {
	if e.closed.Swap(true) {
		return
	}
	e.mu.Lock()
	idle := e.idle
	e.idle = nil
	e.mu.Unlock()
	for _, rt := range idle {
		e.drop(rt)
	}
}

// Warm creates up to n runtimes ahead of traffic (at most PoolSize), so
// that the first requests do not pay for runtime construction.
func (e *Engine) Warm(n int) error {
	var rts []*jsRuntime
	defer func() {
		for _, rt := range rts {
			e.release(rt, false)
		}
	}()
	for range min(n, e.capacity) {
		if !e.reserve() {
			return nil
		}
		rt, err := e.newRuntime()
		if err != nil {
			e.unreserve()
			return err
		}
		rts = append(rts, rt)
	}
	return nil
}

func (e *Engine) reserve() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.slots >= e.capacity {
		return false
	}
	e.slots++
	return true
}

func (e *Engine) unreserve() {
	e.mu.Lock()
	e.passSlotLocked()
	e.mu.Unlock()
}

// acquire returns a runtime: an idle one, a new one while fewer than
// PoolSize exist, or else the next one released, waiting for it in line
// until the deadline.
func (e *Engine) acquire(ctx context.Context, deadline time.Time) (*jsRuntime, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		e.mu.Lock()
		if rt := e.popLocked(); rt != nil {
			e.mu.Unlock()
			return rt, nil
		}
		if e.slots < e.capacity {
			e.slots++
			e.mu.Unlock()
			rt, err := e.newRuntime()
			if err != nil {
				e.unreserve()
				return nil, err
			}
			return rt, nil
		}
		e.waiters++
		e.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
		}
		select {
		case rt := <-e.handoff:
			if rt != nil {
				return rt, nil
			}
			// A slot passed on to this waiter: build a runtime in it.
			rt, err := e.newRuntime()
			if err != nil {
				e.unreserve()
				return nil, err
			}
			return rt, nil
		case <-ctx.Done():
			e.abandon()
			return nil, context.Cause(ctx)
		case <-timer.C:
			e.abandon()
			return nil, errors.New("no JavaScript runtime became available before the deadline")
		}
	}
}

// abandon takes a waiter out of the line. A release may have served it
// meanwhile: then a runtime or a slot is in handoff (for it, or for a
// waiter that has not received yet), and passing that on keeps the count
// right either way.
func (e *Engine) abandon() {
	e.mu.Lock()
	var rt *jsRuntime
	select {
	case rt = <-e.handoff:
		if rt == nil {
			e.passSlotLocked()
			e.mu.Unlock()
			return
		}
	default:
		e.waiters--
		e.mu.Unlock()
		return
	}
	kept := e.giveLocked(rt)
	e.mu.Unlock()
	if !kept {
		e.drop(rt)
	}
}

// release returns a runtime to the pool, or drops it.
func (e *Engine) release(rt *jsRuntime, discard bool) {
	if discard {
		e.runtimesDiscarded.Add(1)
		e.drop(rt)
		return
	}
	e.mu.Lock()
	kept := e.giveLocked(rt)
	e.mu.Unlock()
	if !kept {
		e.drop(rt)
	}
}

// giveLocked hands rt to the oldest waiter (also on a closed engine:
// runs already waiting on it finish there), or makes it idle. It reports
// false when the caller must drop rt instead (the engine is closed and
// nobody waits). Called with mu held; Close takes the idle runtimes under
// mu too, so a runtime released concurrently with Close is never left
// idle.
func (e *Engine) giveLocked(rt *jsRuntime) bool {
	switch {
	case e.waiters > 0:
		e.waiters--
		e.handoff <- rt
	case e.closed.Load():
		return false
	default:
		e.idle = append(e.idle, rt)
	}
	return true
}

// passSlotLocked passes a free slot to the oldest waiter, or gives it
// back. Called with mu held.
func (e *Engine) passSlotLocked() {
	if e.waiters > 0 {
		e.waiters--
		e.handoff <- nil
		return
	}
	e.slots--
}

// pop takes the most recently released idle runtime, or returns nil.
// While acquirers wait, idle is empty: releases go to them.
func (e *Engine) pop() *jsRuntime {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.popLocked()
}

func (e *Engine) popLocked() *jsRuntime {
	n := len(e.idle)
	if n == 0 {
		return nil
	}
	rt := e.idle[n-1]
	e.idle[n-1] = nil
	e.idle = e.idle[:n-1]
	return rt
}

func (e *Engine) drop(rt *jsRuntime) {
	rt.close()
	e.unreserve()
}

// Run executes the pipeline once. It never panics and never returns an
// allow on a fault: every failure is reported in Result.Err.
func (e *Engine) Run(ctx context.Context, in Input) Result { return e.run(ctx, in, false) }

// RunDebug is Run plus the final user and context as JSON-able maps in
// Result.User and Result.Context (for `stepup rules try`). Secrets in
// context.multifactor (skey) are redacted in Result.Context.
func (e *Engine) RunDebug(ctx context.Context, in Input) Result { return e.run(ctx, in, true) }

func (e *Engine) run(ctx context.Context, in Input, debug bool) (res Result) {
	e.runs.Add(1)
	if e.closed.Load() {
		return Result{Err: &Error{Kind: KindInternal, Name: "InternalError", Message: ErrClosed.Error()}}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if len(e.rules) == 0 && !debug {
		return Result{}
	}
	// Waiting for a place and a runtime (or building one) and running
	// the pipeline each get PipelineTimeout; the context deadline caps
	// both.
	start := time.Now()
	queueDeadline := e.deadline(ctx)
	if err := e.takeCPU(ctx, queueDeadline); err != nil {
		return Result{Err: err}
	}
	rt := e.pop()
	if rt == nil {
		var err error
		if rt, err = e.acquire(ctx, queueDeadline); err != nil {
			e.releaseCPU(start)
			e.observeQueue("timeout", time.Since(start))
			return Result{Err: &Error{Kind: KindTimeout, Name: "TimeoutError", Message: "no runtime: " + err.Error()}}
		}
	}
	e.observeQueue("ok", time.Since(start))
	deadline := e.deadline(ctx)
	discard := false
	rt.cpuSince = time.Now()
	rt.hasCPU = true
	defer func() {
		if rt.hasCPU {
			rt.hasCPU = false
			e.releaseCPU(rt.cpuSince)
		}
		if p := recover(); p != nil {
			rule := rt.st.rule
			e.logger.LogAttrs(ctx, slog.LevelError, "rules: internal fault", slog.String("rule", rule), slog.String("panic", fmt.Sprint(p)))
			res = Result{Rule: rule, Err: &Error{Kind: KindInternal, Name: "InternalError", Message: "internal error in rules engine", Rule: rule}}
			discard = true
		}
		rt.st.end()
		e.release(rt, discard)
	}()
	res, discard = rt.runPipeline(ctx, in, deadline, debug)
	return res
}

// takeCPU takes a place to run JavaScript, waiting in line until
// deadline, or fails at once when the expected wait would pass it.
func (e *Engine) takeCPU(ctx context.Context, deadline time.Time) *Error {
	select {
	case e.cpu <- struct{}{}:
		return nil
	default:
	}
	start := time.Now()
	ahead := e.queued.Add(1)
	defer e.queued.Add(-1)
	expected := time.Duration(ahead * e.holdNanos.Load() / int64(e.opts.PoolSize))
	if start.Add(expected).After(deadline) {
		e.observeQueue("rejected", 0)
		return &Error{Kind: KindTimeout, Name: "TimeoutError", Message: fmt.Sprintf("overloaded: %d runs waiting to run, the expected wait %v passes the deadline", ahead, expected.Round(time.Millisecond))}
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case e.cpu <- struct{}{}:
		return nil
	case <-ctx.Done():
		e.observeQueue("timeout", time.Since(start))
		return &Error{Kind: KindTimeout, Name: "TimeoutError", Message: "request cancelled while waiting to run: " + context.Cause(ctx).Error()}
	case <-timer.C:
		e.observeQueue("timeout", time.Since(start))
		return &Error{Kind: KindTimeout, Name: "TimeoutError", Message: "no place to run before the deadline"}
	}
}

// releaseCPU gives back a place taken at since, and folds the hold time
// into the average (weight 1/8).
func (e *Engine) releaseCPU(since time.Time) {
	<-e.cpu
	held := int64(time.Since(since))
	for {
		old := e.holdNanos.Load()
		avg := held
		if old != 0 {
			avg = old + (held-old)/8
		}
		if e.holdNanos.CompareAndSwap(old, avg) {
			return
		}
	}
}

func (e *Engine) observeQueue(outcome string, d time.Duration) {
	if e.queueObs != nil {
		e.queueObs.ObserveQueueWait(outcome, d)
	}
}

// deadline is PipelineTimeout from now, capped by the context deadline.
func (e *Engine) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(e.opts.PipelineTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

func (st *runState) end() {
	st.clearRule()
	st.active = false
	st.user, st.context = nil, nil
	st.lazy = nil
	st.ctx = nil
	st.rule = ""
	st.multifactor, st.redirect = nil, nil
	st.multifactorRule, st.redirectRule = "", ""
}

// runPipeline runs every rule in order and reads the results back.
func (rt *jsRuntime) runPipeline(ctx context.Context, in Input, deadline time.Time, debug bool) (Result, bool) {
	e := rt.e
	st := &rt.st
	st.ctx = ctx
	st.active = true

	b := inputBudget{limit: e.opts.MaxInputBytes}
	var err error
	var lazy bool
	if !e.nativeInput {
		st.lazy = &lazyInput{}
		st.user, lazy = rt.lazyUser(st.lazy, in.User, &b)
	}
	if !lazy {
		st.user, err = rt.buildUser(in.User, &b)
	}
	if err == nil {
		lazy = false
		if !e.nativeInput {
			st.context, lazy = rt.lazyContext(st.lazy, &in.Context, &b)
		}
		if !lazy {
			st.context, err = rt.buildContext(&in.Context, &b)
		}
	}
	if err != nil {
		return Result{Err: &Error{Kind: KindInternal, Name: "InputError", Message: err.Error()}}, false
	}

	// One clock reading per rule boundary: the end of a rule is the start
	// of the next.
	now := time.Now()
	for i, r := range e.rules {
		var rerr *Error
		discard := false
		switch {
		case ctx.Err() != nil:
			rerr = &Error{Kind: KindTimeout, Name: "TimeoutError", Message: "request cancelled: " + context.Cause(ctx).Error(), Rule: r.name}
		case !now.Before(deadline):
			rerr = &Error{Kind: KindTimeout, Name: "TimeoutError", Message: "pipeline time budget exhausted", Rule: r.name}
		default:
			ruleDeadline := now.Add(e.opts.RuleTimeout)
			if deadline.Before(ruleDeadline) {
				ruleDeadline = deadline
			}
			rerr, discard = rt.runRule(ctx, i, r.name, ruleDeadline)
			end := time.Now()
			if e.opts.Observer != nil {
				outcome := "ok"
				if rerr != nil {
					outcome = rerr.Outcome()
				}
				e.opts.Observer.ObserveRule(r.name, outcome, end.Sub(now))
			}
			now = end
		}
		if rerr != nil {
			if rerr.Kind == KindTimeout || rerr.Kind == KindException || rerr.Kind == KindInternal {
				e.logger.LogAttrs(ctx, slog.LevelWarn, "rules: rule failed", slog.String("rule", r.name),
					slog.String("kind", rerr.Kind.String()), slog.String("error", rerr.Name+": "+rerr.Message))
			}
			res := Result{Rule: r.name, Err: rerr}
			if debug && !discard {
				rt.debugMaps(&res, deadline)
			}
			return res, discard
		}
	}
	return rt.readBack(deadline, debug)
}
