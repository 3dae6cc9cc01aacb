package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
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
	// modules are the native modules require() resolves through.
	modules *moduleRegistry
	logger  *slog.Logger
	now     func() time.Time
	// maxSlice is the longest stretch of synchronous JavaScript (the
	// package's maxSlice; tests that are not about it raise it).
	maxSlice time.Duration
	// nativeInput makes runs build user and context as native objects
	// instead of lazy ones (lazy.go): set when a rule mentions an
	// operation lazy objects do not support.
	nativeInput bool
	// hasActions says a script is an Action; usesMetadata that one may
	// update the user's metadata (see UsesMetadata).
	hasActions, usesMetadata bool
	// cache is the Actions' api.cache.
	cache actionCache

	// pool holds the runtimes and the places to run JavaScript.
	pool *pool

	compiles        atomic.Int64
	runtimesCreated atomic.Int64
	runs            atomic.Int64
}

// New validates and compiles every enabled rule. It reports every problem
// at once in a *LoadError (wrapping ErrInvalidRules): syntax errors, code
// that is not a single function expression of at most three parameters,
// require() of an unavailable module, missing mandatory configuration of
// gallery rules, and duplicate names. Warnings (those of [Lint]) are
// logged. Runtimes are created lazily.
func New(opts Options) (*Engine, error) { return build(opts, false) }

// build is New; lenient is analyzeScript's.
func build(opts Options, lenient bool) (*Engine, error) {
	if err := normalize(&opts); err != nil {
		return nil, err
	}
	setRegexpTimeout()
	e := &Engine{
		maxSlice:   maxSlice,
		opts:       opts,
		logger:     opts.Logger,
		now:        opts.Now,
		configKeys: sortedKeys(opts.Configuration),
		modules:    builtinModules,
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
		r, findings := analyzeScript(src, i, cfg, e.modules, lenient)
		for _, f := range findings {
			if f.Severity == SeverityError {
				problems = append(problems, f)
			} else {
				warnings = append(warnings, f)
			}
		}
		if r != nil {
			e.hasActions = e.hasActions || r.action
			e.usesMetadata = e.usesMetadata || r.metadata
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
	qo, _ := opts.Observer.(QueueObserver)
	e.pool = newPool(opts.PoolSize, opts.MaxWaitingRuns, qo, e.newRuntime)
	return e, nil
}

func normalize(o *Options) error {
	var errs []error
	if o.RuleTimeout < 0 || o.PipelineTimeout < 0 || o.MaxCallStackSize < 0 || o.MaxInputBytes < 0 || o.PoolSize < 0 {
		errs = append(errs, errors.New("negative limit in rules options"))
	}
	orDefault(&o.RuleTimeout, DefaultRuleTimeout)
	orDefault(&o.PipelineTimeout, DefaultPipelineTimeout)
	orDefault(&o.MaxCallStackSize, DefaultMaxCallStackSize)
	orDefault(&o.MaxRuntimeMemory, DefaultMaxRuntimeMemory)
	orDefault(&o.MaxInputBytes, DefaultMaxInputBytes)
	orDefault(&o.PoolSize, 2*runtime.GOMAXPROCS(0))
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

// orDefault sets *v to def when it is the zero value.
func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Rules returns the names of the enabled rules in run order.
func (e *Engine) Rules() []string { return slices.Clone(e.names) }

// UsesMetadata reports whether a script may update the user's metadata
// (api.user.setAppMetadata / setUserMetadata in an Action,
// auth0.users.updateAppMetadata / updateUserMetadata in a rule): only
// then need callers load the stored metadata into Input.User and persist
// Result.Metadata.
func (e *Engine) UsesMetadata() bool { return e.usesMetadata }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Compiles:          e.compiles.Load(),
		RuntimesCreated:   e.runtimesCreated.Load(),
		RuntimesDiscarded: e.pool.discarded.Load(),
		Runs:              e.runs.Load(),
	}
}

// Close releases the pooled runtimes. Runs in flight finish; later runs
// fail with KindInternal. Close is idempotent.
func (e *Engine) Close() { e.pool.close() }

// Warm creates up to n runtimes ahead of traffic (at most PoolSize +
// MaxWaitingRuns), so that the first requests do not pay for runtime
// construction.
func (e *Engine) Warm(n int) error { return e.pool.warm(n) }

// Run executes the pipeline once. It never panics and never returns an
// allow on a fault: every failure is reported in Result.Err.
func (e *Engine) Run(ctx context.Context, in Input) Result { return e.run(ctx, in, false) }

// RunDebug is Run plus the final user and context as JSON-able maps in
// Result.User and Result.Context (for `stepup rules try`). Secrets in
// context.multifactor (skey) are redacted in Result.Context.
func (e *Engine) RunDebug(ctx context.Context, in Input) Result { return e.run(ctx, in, true) }

func (e *Engine) run(ctx context.Context, in Input, debug bool) (res Result) {
	e.runs.Add(1)
	if e.pool.closed.Load() {
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
	rt, err := e.pool.get(ctx, e.deadline(ctx))
	if err != nil {
		return Result{Err: err}
	}
	deadline := e.deadline(ctx)
	discard := false
	defer func() {
		e.pool.yieldCPU(rt)
		if p := recover(); p != nil {
			rule := rt.st.rule
			e.logger.LogAttrs(ctx, slog.LevelError, "rules: internal fault", slog.String("rule", rule), slog.String("panic", fmt.Sprint(p)))
			res = Result{Rule: rule, Err: &Error{Kind: KindInternal, Name: "InternalError", Message: "internal error in rules engine", Rule: rule}}
			discard = true
		}
		rt.st.end()
		e.pool.release(rt, discard)
	}()
	res, discard = rt.runPipeline(ctx, in, deadline, debug)
	return res
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
	st.protocol, st.eventOverlay = "", nil
	st.denied, st.denyReason = false, ""
	st.actionMF, st.actionMFRequested, st.actionMFFactors = nil, "", nil
	st.meta = nil
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
	if err == nil && in.Event != nil && e.hasActions {
		st.eventOverlay, err = rt.toJS(in.Event, 0, &b)
	}
	if err != nil {
		return Result{Err: &Error{Kind: KindInternal, Name: "InputError", Message: err.Error()}}, false
	}
	st.protocol = in.Context.Protocol

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
			if r.action {
				rerr, discard = rt.runAction(ctx, i, r.name, ruleDeadline)
			} else {
				rerr, discard = rt.runRule(ctx, i, r.name, ruleDeadline)
			}
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
			if rerr.Kind == KindUnauthorized || rerr.Kind == KindRule {
				// A script's own decision: what it stored stays.
				res.Metadata = st.meta
			}
			if debug && !discard {
				rt.debugMaps(&res, deadline)
			}
			return res, discard
		}
	}
	return rt.readBack(deadline, debug)
}
