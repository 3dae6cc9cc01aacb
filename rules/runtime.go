package rules

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/dlclark/regexp2/v2"
	"github.com/dop251/goja"
)

//go:embed prelude.js
var preludeSource string

//go:embed lockdown.js
var lockdownSource string

// preludeProgram is compiled once per process; a *goja.Program is immutable
// and may be shared by runtimes.
var preludeProgram = sync.OnceValues(func() (*goja.Program, error) {
	return goja.Compile("stepup:prelude.js", preludeSource, true)
})

// lockdownProgram is compiled once per process, like preludeProgram.
var lockdownProgram = sync.OnceValues(func() (*goja.Program, error) {
	return goja.Compile("stepup:lockdown.js", lockdownSource, true)
})

// Limits of the per-run event loop.
const (
	maxTimers     = 1000
	maxMessageLen = 1024
)

// Values runtimes are interrupted with.
var (
	errBudget = errors.New("time budget exceeded")
	errSlice  = errors.New("synchronous JavaScript ran too long")
	errMemory = errors.New("memory budget exceeded")
)

// maxSlice bounds one stretch of synchronous JavaScript (a rule's body, a
// timer callback, with the promise jobs that follow it), whatever the
// rule budget: a budget beyond it buys waiting time. It is also
// regexp2's match timeout, which goja reads when it compiles a pattern
// and offers no per-runtime setting for; a match cut short by it reports
// "no match" to the rule, so every slice that may contain one (one that
// ran maxSlice or longer) fails the rule instead.
const maxSlice = DefaultRuleTimeout

// memCheckInterval is how often a running slice's allocations are
// checked against Options.MaxRuntimeMemory.
const memCheckInterval = 10 * time.Millisecond

// setRegexpTimeout gives every regexp2 pattern compiled from now on (goja
// uses regexp2 for lookaround and backreferences) a match timeout of
// maxSlice. It is process-wide and written once, before this package
// compiles any JavaScript.
var setRegexpTimeout = sync.OnceFunc(func() { regexp2.DefaultMatchTimeout = maxSlice })

// jsRuntime is one goja runtime with every rule instantiated. It serves one
// run at a time.
type jsRuntime struct {
	e   *Engine
	vm  *goja.Runtime
	fns []goja.Callable
	// actions holds the handlers of the Actions (by script index; zero
	// for rules) and kit builds their arguments; both nil without Actions.
	actions []actionFns
	kit     *actionKit
	// callback is the single callback function handed to every rule; the
	// run state tells which rule is running.
	callback goja.Value
	args     [3]goja.Value

	imu      sync.Mutex
	armed    bool
	deadline time.Time
	// scheduled says the interrupt timer is pending, to fire at fireAt.
	scheduled bool
	fireAt    time.Time
	itimer    *time.Timer
	sleep     *time.Timer
	// sliceCap says deadline is the end of the slice (maxSlice), not the
	// rule's budget.
	sliceCap bool
	// slice numbers the slices armed; memSlice is the one memBase was
	// read in (the allocation counter at the slice's first check).
	slice, memSlice uint64
	memBase         uint64
	memSample       []metrics.Sample

	modules     map[string]goja.Value
	nextTimerID int64
	// hasCPU says the run holds a place to run JavaScript (pool.cpu),
	// taken at cpuSince.
	hasCPU   bool
	cpuSince time.Time

	unauthorized  *goja.Object
	jwtError      *goja.Object
	tokenExpired  *goja.Object
	notBefore     *goja.Object
	bufferCtor    *goja.Object
	errorCtor     *goja.Object
	ctors         map[string]*goja.Object
	jsonStringify goja.Callable
	jsonParse     goja.Callable
	ip            *ipaddrProtos
	// harden freezes built-ins that a module adds after the lockdown
	// (lockdown.js).
	harden goja.Callable

	st runState
}

// runState is the per-run state; it is cleared when the run ends so that a
// runtime never keeps request data.
type runState struct {
	ctx     context.Context
	active  bool
	rule    string
	called  bool
	errVal  goja.Value
	user    *goja.Object
	context *goja.Object
	// lazy backs user and context when they are lazy objects.
	lazy       *lazyInput
	timers     []jsTimer
	rejections []*goja.Promise
	// multifactor and redirect remember which rule last replaced
	// context.multifactor / context.redirect, to name it in errors.
	multifactor, redirect         goja.Value
	multifactorRule, redirectRule string
	// protocol is the run's context.protocol as given (Input): on
	// RedirectCallbackProtocol Actions run onContinuePostLogin.
	protocol string
	// eventOverlay is Input.Event in JavaScript, deep-merged over every
	// Action's event (nil: none).
	eventOverlay goja.Value
	// denied and denyReason are an Action's api.access.deny.
	denied     bool
	denyReason string
	// actionMF is the context.multifactor object an Action's api set,
	// with the provider as given and the factors allowed.
	actionMF          goja.Value
	actionMFRequested string
	actionMFFactors   []string
	// meta are the metadata updates of the run.
	meta *MetadataUpdate
	// protoCycle is set when the rule tried to make a prototype chain
	// loop through a Proxy (guardPrototypes): the rule fails and the
	// runtime is discarded.
	protoCycle bool
}

// newRuntime builds a runtime: globals, prelude, and every rule function.
func (e *Engine) newRuntime() (rt *jsRuntime, err error) {
	defer func() {
		if p := recover(); p != nil {
			rt, err = nil, fmt.Errorf("create runtime: %v", p)
		}
	}()
	vm := goja.New()
	vm.SetMaxCallStackSize(e.opts.MaxCallStackSize)
	vm.SetTimeSource(goja.Now(e.now))
	rt = &jsRuntime{
		e:       e,
		vm:      vm,
		modules: make(map[string]goja.Value, 4),
	}
	rt.itimer = time.AfterFunc(time.Hour, rt.fire)
	rt.itimer.Stop()
	rt.sleep = time.NewTimer(time.Hour)
	rt.sleep.Stop()
	vm.SetPromiseRejectionTracker(rt.trackRejection)

	prg, err := preludeProgram()
	if err != nil {
		return nil, fmt.Errorf("compile prelude: %w", err)
	}
	pv, err := vm.RunProgram(prg)
	if err != nil {
		return nil, fmt.Errorf("run prelude: %w", err)
	}
	pf, ok := goja.AssertFunction(pv)
	if !ok {
		return nil, errors.New("prelude is not a function")
	}
	ev, err := pf(goja.Undefined(), rt.bufferNatives())
	if err != nil {
		return nil, fmt.Errorf("run prelude: %w", err)
	}
	exports := ev.ToObject(vm)
	rt.unauthorized = exports.Get("UnauthorizedError").ToObject(vm)
	rt.jwtError = exports.Get("JsonWebTokenError").ToObject(vm)
	rt.tokenExpired = exports.Get("TokenExpiredError").ToObject(vm)
	rt.notBefore = exports.Get("NotBeforeError").ToObject(vm)
	rt.bufferCtor = exports.Get("Buffer").ToObject(vm)
	rt.errorCtor = vm.Get("Error").ToObject(vm)
	// Built-in constructors are captured now, so that a rule replacing a
	// global cannot change the errors the engine throws.
	rt.ctors = make(map[string]*goja.Object, 5)
	for _, name := range []string{"Error", "TypeError", "RangeError", "Date"} {
		rt.ctors[name] = vm.Get(name).ToObject(vm)
	}
	jsonObj := vm.Get("JSON").ToObject(vm)
	rt.jsonStringify, _ = goja.AssertFunction(jsonObj.Get("stringify"))
	rt.jsonParse, _ = goja.AssertFunction(jsonObj.Get("parse"))

	global := vm.GlobalObject()
	define := func(name string, v any) {
		must(global.DefineDataProperty(name, vm.ToValue(v), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE))
	}
	define("configuration", rt.configurationObject())
	define("UnauthorizedError", rt.unauthorized)
	define("Buffer", rt.bufferCtor)
	define("require", rt.require)
	define("console", rt.consoleObject())
	define("auth0", rt.auth0Object())
	// global is the global object itself, as in Node: it persists across
	// the runs served by this runtime.
	define("global", global)
	define("setTimeout", rt.setTimer(false, false))
	define("setInterval", rt.setTimer(true, false))
	define("setImmediate", rt.setTimer(false, true))
	define("clearTimeout", rt.clearTimer)
	define("clearInterval", rt.clearTimer)
	define("clearImmediate", rt.clearTimer)
	urlMod, err := rt.requireModule("url")
	if err != nil {
		return nil, err
	}
	urlObj := urlMod.ToObject(vm)
	define("URL", urlObj.Get("URL"))
	define("URLSearchParams", urlObj.Get("URLSearchParams"))
	if e.hasActions {
		// Loaded before the lockdown: frozen with the other modules.
		if _, err := rt.requireModule("jsonwebtoken"); err != nil {
			return nil, err
		}
	}
	rt.guardPrototypes()
	if err := rt.lockdown(); err != nil {
		return nil, err
	}
	if e.hasActions {
		if rt.kit, err = rt.newActionKit(); err != nil {
			return nil, err
		}
		rt.actions = make([]actionFns, len(e.rules))
	}

	rt.callback = vm.ToValue(rt.cb)
	rt.fns = make([]goja.Callable, len(e.rules))
	for i, r := range e.rules {
		if r.action {
			rt.actions[i] = rt.instantiateAction(r)
			continue
		}
		v, err := vm.RunProgram(r.program)
		if err != nil {
			return nil, fmt.Errorf("instantiate rule %q: %w", r.name, err)
		}
		fn, ok := goja.AssertFunction(v)
		if !ok {
			return nil, fmt.Errorf("instantiate rule %q: not a function", r.name)
		}
		rt.fns[i] = fn
	}
	e.runtimesCreated.Add(1)
	return rt, nil
}

// lockdown freezes the built-ins (lockdown.js): every run on the runtime
// starts from the same standard library, globals and modules, whatever an
// earlier run tried to change.
func (rt *jsRuntime) lockdown() error {
	prg, err := lockdownProgram()
	if err != nil {
		return fmt.Errorf("compile lockdown: %w", err)
	}
	lv, err := rt.vm.RunProgram(prg)
	if err != nil {
		return fmt.Errorf("run lockdown: %w", err)
	}
	lf, ok := goja.AssertFunction(lv)
	if !ok {
		return errors.New("lockdown is not a function")
	}
	extra := []any{rt.jwtError, rt.tokenExpired, rt.notBefore}
	for _, m := range rt.modules {
		extra = append(extra, m)
	}
	hv, err := lf(goja.Undefined(), rt.vm.GlobalObject(), rt.vm.NewArray(extra...), rt.vm.ToValue(rt.e.opts.MaxRuntimeMemory/2))
	if err != nil {
		return fmt.Errorf("run lockdown: %w", err)
	}
	if rt.harden, ok = goja.AssertFunction(hv); !ok {
		return errors.New("lockdown did not return harden")
	}
	return nil
}

// close stops the runtime's timers.
func (rt *jsRuntime) close() {
	rt.imu.Lock()
	rt.armed = false
	rt.scheduled = false
	rt.itimer.Stop()
	rt.imu.Unlock()
	rt.sleep.Stop()
}

// configurationObject builds the frozen configuration global.
func (rt *jsRuntime) configurationObject() *goja.Object {
	vm := rt.vm
	obj := vm.NewObject()
	for _, k := range rt.e.configKeys {
		must(obj.DefineDataProperty(k, vm.ToValue(rt.e.opts.Configuration[k]), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE))
	}
	must(obj.SetPrototype(vm.Get("Object").ToObject(vm).Get("prototype").ToObject(vm)))
	freeze, _ := goja.AssertFunction(vm.Get("Object").ToObject(vm).Get("freeze"))
	if _, err := freeze(goja.Undefined(), obj); err != nil {
		panic(err)
	}
	return obj
}

// arm schedules an interrupt of the runtime at deadline, the end of a
// slice of synchronous JavaScript (sliceCap: the slice, not the rule's
// budget, ends there), and a check of its allocations every
// memCheckInterval until then. The timer is one per runtime and is only
// reset when it would fire later than needed: a firing before the
// deadline re-schedules itself (fire), so a run of several rules usually
// costs no timer operation at all.
func (rt *jsRuntime) arm(deadline time.Time, sliceCap bool) {
	rt.imu.Lock()
	rt.armed = true
	rt.deadline = deadline
	rt.sliceCap = sliceCap
	rt.slice++
	at := deadline
	if rt.e.opts.MaxRuntimeMemory > 0 {
		if next := time.Now().Add(memCheckInterval); next.Before(at) {
			at = next
		}
	}
	if !rt.scheduled || at.Before(rt.fireAt) {
		rt.scheduled, rt.fireAt = true, at
		rt.itimer.Reset(time.Until(at))
	}
	rt.imu.Unlock()
}

// fire runs on the timer goroutine. Armed, it interrupts the runtime once
// the deadline has passed, or when the slice has allocated more than
// MaxRuntimeMemory since its first check, and otherwise re-schedules
// itself; disarmed, it does nothing.
func (rt *jsRuntime) fire() {
	rt.imu.Lock()
	defer rt.imu.Unlock()
	rt.scheduled = false
	if !rt.armed {
		return
	}
	d := time.Until(rt.deadline)
	if d <= 0 {
		if rt.sliceCap {
			rt.vm.Interrupt(errSlice)
		} else {
			rt.vm.Interrupt(errBudget)
		}
		return
	}
	if limit := rt.e.opts.MaxRuntimeMemory; limit > 0 {
		allocs := rt.allocated()
		if rt.memSlice != rt.slice {
			rt.memSlice, rt.memBase = rt.slice, allocs
		} else if allocs-rt.memBase > uint64(limit) {
			rt.vm.Interrupt(errMemory)
			return
		}
		d = min(d, memCheckInterval)
	}
	rt.scheduled, rt.fireAt = true, time.Now().Add(d)
	rt.itimer.Reset(d)
}

// allocated reads the process's cumulative heap allocations: a runtime
// cannot measure its own, and a slice is the only JavaScript running on
// its goroutine, so what the process allocates during a long slice is an
// upper bound of what the slice did. Called with imu held.
func (rt *jsRuntime) allocated() uint64 {
	if rt.memSample == nil {
		rt.memSample = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	}
	metrics.Read(rt.memSample)
	if rt.memSample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return rt.memSample[0].Value.Uint64()
}

// disarm cancels the interrupt; after it returns no interrupt is pending.
// The timer keeps running: when it fires disarmed it does nothing.
func (rt *jsRuntime) disarm() {
	rt.imu.Lock()
	rt.armed = false
	rt.imu.Unlock()
	rt.vm.ClearInterrupt()
}

// wait parks the run for d unless ctx ends first: it gives back its
// place to run JavaScript while it sleeps and takes one again, in line,
// before deadline.
func (rt *jsRuntime) wait(ctx context.Context, d time.Duration, deadline time.Time) *Error {
	rt.e.pool.yieldCPU(rt)
	rt.sleep.Reset(d)
	select {
	case <-rt.sleep.C:
	case <-ctx.Done():
		rt.sleep.Stop()
		return &Error{Kind: KindTimeout, Name: "TimeoutError", Message: "request cancelled: " + context.Cause(ctx).Error()}
	}
	return rt.e.pool.resumeCPU(ctx, rt, deadline)
}

// cb is the callback given to rules: callback(err, user, context).
func (rt *jsRuntime) cb(call goja.FunctionCall) goja.Value {
	st := &rt.st
	if !st.active {
		rt.e.logger.LogAttrs(context.Background(), slog.LevelWarn, "rules: callback called outside a run; ignored")
		return goja.Undefined()
	}
	if st.called {
		rt.e.logger.LogAttrs(st.ctx, slog.LevelWarn, "rules: callback called more than once; extra call ignored",
			slog.String("rule", st.rule))
		return goja.Undefined()
	}
	st.called = true
	if errV := call.Argument(0); !goja.IsUndefined(errV) && !goja.IsNull(errV) {
		st.errVal = errV
		return goja.Undefined()
	}
	if u, ok := call.Argument(1).(*goja.Object); ok {
		st.user = u
	}
	if c, ok := call.Argument(2).(*goja.Object); ok {
		st.context = c
	}
	return goja.Undefined()
}

func (rt *jsRuntime) trackRejection(p *goja.Promise, op goja.PromiseRejectionOperation) {
	st := &rt.st
	switch op {
	case goja.PromiseRejectionReject:
		if len(st.rejections) < maxTimers {
			st.rejections = append(st.rejections, p)
		}
	case goja.PromiseRejectionHandle:
		for i, q := range st.rejections {
			if q == p {
				st.rejections = append(st.rejections[:i], st.rejections[i+1:]...)
				break
			}
		}
	}
}

func (st *runState) clearRule() {
	for i := range st.timers {
		st.timers[i] = jsTimer{}
	}
	st.timers = st.timers[:0]
	for i := range st.rejections {
		st.rejections[i] = nil
	}
	st.rejections = st.rejections[:0]
	st.errVal = nil
	st.called = false
}

// startRun readies the run state for the rule or Action name.
func (rt *jsRuntime) startRun(name string) *runState {
	st := &rt.st
	st.rule = name
	st.clearRule()
	st.protoCycle = false
	return st
}

// endRun, deferred by a run, fails a run that walked a __proto__ cycle
// (caught, or tripped by the last instruction it ran) and has the runtime
// discarded.
func (rt *jsRuntime) endRun(name string, rerr **Error, discard *bool) {
	if rt.st.protoCycle {
		rt.st.protoCycle = false
		*rerr, *discard = &Error{Kind: KindException, Name: "TypeError", Message: "Cyclic __proto__ value", Rule: name}, true
	}
}

// runRule runs rule i until it calls back, throws, or its budget ends.
// discard reports whether the runtime must not be reused.
func (rt *jsRuntime) runRule(ctx context.Context, i int, name string, deadline time.Time) (rerr *Error, discard bool) {
	st := rt.startRun(name)
	defer st.clearRule()
	defer rt.endRun(name, &rerr, &discard)

	slice := rt.armSlice(deadline)
	defer rt.disarm()

	rt.args[0], rt.args[1], rt.args[2] = st.user, st.context, rt.callback
	_, err := rt.fns[i](goja.Undefined(), rt.args[:]...)
	rt.args = [3]goja.Value{}
	if err != nil {
		return rt.classify(err, name)
	}
	if rerr := rt.overran(slice, name); rerr != nil {
		return rerr, false
	}
	called := func() bool { return st.called }
	if rerr, discard := rt.drive(ctx, deadline, name, called, "rule did not call back within its time budget"); rerr != nil {
		return rerr, discard
	}
	if len(st.rejections) > 0 {
		reason := st.rejections[0].Result()
		if !st.called {
			name2, msg := rt.errorFields(reason)
			return &Error{Kind: KindException, Name: name2, Message: msg, Rule: name}, false
		}
		rt.e.logger.LogAttrs(ctx, slog.LevelWarn, "rules: unhandled promise rejection", slog.String("rule", name))
	}
	if !st.called {
		return &Error{Kind: KindTimeout, Name: "TimeoutError", Message: "rule never called callback and has nothing pending", Rule: name}, false
	}
	if st.errVal != nil {
		return rt.callbackError(st.errVal, name), false
	}
	// Still armed: note which rule set multifactor / redirect.
	return rt.noteOutcome(name), false
}

// drive runs the script's timers, in order, until done reports true,
// nothing is pending, or a timer would fire past deadline (an error with
// message late). Waits give the run's place back (wait).
func (rt *jsRuntime) drive(ctx context.Context, deadline time.Time, name string, done func() bool, late string) (rerr *Error, discard bool) {
	st := &rt.st
	for !done() {
		idx := st.nextTimer()
		if idx < 0 {
			break
		}
		t := st.timers[idx]
		if !t.immediate {
			if t.due.After(deadline) {
				return &Error{Kind: KindTimeout, Name: "TimeoutError", Message: late, Rule: name}, false
			}
			if d := time.Until(t.due); d > 0 {
				if werr := rt.wait(ctx, d, deadline); werr != nil {
					werr.Rule = name
					return werr, false
				}
			}
		}
		if t.interval > 0 {
			st.timers[idx].due = time.Now().Add(t.interval)
		} else {
			st.removeTimer(idx)
		}
		slice := rt.armSlice(deadline)
		if _, err := t.fn(goja.Undefined(), t.args...); err != nil {
			return rt.classify(err, name)
		}
		if rerr := rt.overran(slice, name); rerr != nil {
			return rerr, false
		}
	}
	return nil, false
}

// armSlice arms the interrupt for a slice of synchronous JavaScript
// starting now and returns its end: the rule's deadline, or maxSlice
// from now if that comes first.
func (rt *jsRuntime) armSlice(deadline time.Time) time.Time {
	end := time.Now().Add(rt.e.maxSlice)
	if !end.Before(deadline) {
		rt.arm(deadline, false)
		return deadline
	}
	rt.arm(end, true)
	return end
}

// overran fails a slice that returned at or after its end: the interrupt
// may not have landed yet, and a regular-expression match cut short by
// its timeout (which reports no match) may have steered it.
func (rt *jsRuntime) overran(end time.Time, rule string) *Error {
	if time.Now().Before(end) {
		return nil
	}
	return &Error{Kind: KindTimeout, Name: "TimeoutError", Message: "rule exceeded its time budget", Rule: rule}
}

// sameValue is SameValue with Go nil (missing property) as its own value.
func sameValue(a, b goja.Value) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.SameAs(b)
}

// noteOutcome notes which rule set context.multifactor and
// context.redirect: the rule name, when it changed them. A getter that
// throws fails the rule.
func (rt *jsRuntime) noteOutcome(name string) *Error {
	st := &rt.st
	if ex := rt.vm.Try(func() {
		if mf := st.context.Get("multifactor"); !sameValue(mf, st.multifactor) {
			st.multifactor, st.multifactorRule = mf, name
		}
		if rd := st.context.Get("redirect"); !sameValue(rd, st.redirect) {
			st.redirect, st.redirectRule = rd, name
		}
	}); ex != nil {
		n, msg := rt.errorFields(ex.Value())
		return &Error{Kind: KindException, Name: n, Message: msg, Rule: name}
	}
	return nil
}
