package rules

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"
	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/parser"
)

// An Action is compiled as the body of a CommonJS module wrapper:
// running its program yields a function of (exports, module, require)
// whose call runs the file's top-level code once per runtime, as Node
// does once per module.
const actionPrefix = "(function (exports, module) {"

//go:embed actions.js
var actionsSource string

// actionsProgram is compiled once per process, like preludeProgram.
var actionsProgram = sync.OnceValues(func() (*goja.Program, error) {
	return goja.Compile("stepup:actions.js", actionsSource, true)
})

// Names of the Action handlers.
const (
	onExecute  = "onExecutePostLogin"
	onContinue = "onContinuePostLogin"
)

// Limits of what one run's metadata updates may hold, as Auth0 bounds
// them: 32 KB of JSON for each of app_metadata and user_metadata.
const maxMetadataBytes = 32 << 10

// looksLikeAction reports whether code names an Action handler; such a
// file that is not a rule's function expression is an Action.
func looksLikeAction(code string) bool {
	return strings.Contains(code, onExecute) || strings.Contains(code, onContinue)
}

// mentionsMetadata reports whether code may update the user's metadata
// (api.user.setAppMetadata / setUserMetadata,
// auth0.users.updateAppMetadata / updateUserMetadata).
func mentionsMetadata(code string) bool {
	return strings.Contains(code, "etAppMetadata") || strings.Contains(code, "etUserMetadata") ||
		strings.Contains(code, "updateAppMetadata") || strings.Contains(code, "updateUserMetadata")
}

// auth0Allowed reports whether path is a use of the auth0 global stepup
// provides.
func auth0Allowed(path string) bool {
	return path == "auth0.users.updateAppMetadata" || path == "auth0.users.updateUserMetadata"
}

// auth0Message is the load error for a use of the auth0 global stepup
// does not provide.
func auth0Message(use string) string {
	return fmt.Sprintf("%s is not available: stepup has no Auth0 Management API (of the auth0 object only auth0.users.updateAppMetadata and auth0.users.updateUserMetadata exist)", use)
}

// analyzeAction validates and compiles an Action: a module that assigns
// a function to exports.onExecutePostLogin (and may assign
// exports.onContinuePostLogin).
func analyzeAction(r *compiledRule, code, filename string, lineOffset int, configuration map[string]string, modules *moduleRegistry, lenient bool, findings []Finding) (*compiledRule, []Finding) {
	r.action = true
	add := func(sev, format string, args ...any) {
		findings = append(findings, Finding{Rule: r.name, Path: r.path, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	if r.gallery {
		add(SeverityError, "an Action must be a .js file, not a gallery file")
		return nil, findings
	}
	wrapped := strings.Repeat("\n", lineOffset) + actionPrefix + code + "\n})"
	prog, err := parser.ParseFile(nil, filename, wrapped, 0, parser.WithDisableSourceMaps)
	if err != nil {
		add(SeverityError, "syntax error: %s", syntaxMessageShift(err, lineOffset+1, len(actionPrefix)))
		return nil, findings
	}
	if !wrapperIntact(prog) {
		// The text closed the module wrapper early ("}); ... ({"): it
		// would run outside the module scope.
		add(SeverityError, "syntax error: unbalanced braces or parentheses at the top level")
		return nil, findings
	}
	if reason := nativeObjectsReason([]byte(code)); reason != "" {
		add(SeverityWarning, "the action mentions %s: every script then gets its objects built before it runs, instead of on first access, which costs about twice the CPU per check (docs/performance.md)", reason)
	}
	scan := scanAST(prog)
	if !containsStr(scan.exports, onExecute) {
		add(SeverityError, "an Action must assign a function to exports.%s", onExecute)
	}
	r.hasContinue = containsStr(scan.exports, onContinue)
	for _, id := range scan.requires {
		m, ok := modules.resolve(id)
		if !ok {
			sev := SeverityError
			if lenient {
				sev = SeverityWarning
			}
			add(sev, "module %q is not available", id)
			continue
		}
		if !containsStr(r.modules, m.name) {
			r.modules = append(r.modules, m.name)
		}
	}
	if scan.dynamicRequire {
		add(SeverityWarning, "require() with a non-literal argument can only be checked when the action runs")
	}
	for _, use := range scan.auth0Uses {
		add(SeverityError, "%s", auth0Message(use))
	}
	r.configReads = scan.configReads
	checkConfiguration(r, configuration, add)
	for _, f := range findings {
		if f.Severity == SeverityError {
			return nil, findings
		}
	}
	p, err := goja.CompileAST(prog, false)
	if err != nil {
		add(SeverityError, "compile: %s", strings.TrimPrefix(err.Error(), "SyntaxError: "))
		return nil, findings
	}
	r.program = p
	return r, findings
}

// wrapperIntact reports whether prog is exactly the module wrapper: one
// parenthesised function expression.
func wrapperIntact(prog *ast.Program) bool {
	if len(prog.Body) != 1 {
		return false
	}
	es, ok := prog.Body[0].(*ast.ExpressionStatement)
	if !ok {
		return false
	}
	_, ok = es.Expression.(*ast.FunctionLiteral)
	return ok
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// syntaxMessageShift formats the first parse error, undoing the column
// shift of a wrapper of width prefix on the script's first line.
func syntaxMessageShift(err error, firstLine, prefix int) string {
	var list parser.ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		return err.Error()
	}
	e := *list[0]
	if e.Position.Line == firstLine && e.Position.Column > prefix {
		e.Position.Column -= prefix
	}
	return e.Error()
}

// actionFns are one Action's handlers in one runtime. initErr is set when
// its top-level code failed: the Action then fails every run with it.
type actionFns struct {
	exec, cont goja.Callable
	initErr    *Error
}

// actionKit is actions.js in one runtime: makeEvent builds an Action's
// event; begin points the runtime's one (frozen) api object at a run's
// user, context and event and returns it.
type actionKit struct {
	makeEvent, begin goja.Callable
}

// instantiateAction runs an Action's top-level code once, within one
// slice of synchronous JavaScript, and picks up its handlers.
func (rt *jsRuntime) instantiateAction(r *compiledRule) (fns actionFns) {
	vm := rt.vm
	fail := func(e *Error) actionFns {
		e.Rule = r.name
		e.Message = "loading the action: " + e.Message
		return actionFns{initErr: e}
	}
	v, err := vm.RunProgram(r.program)
	if err != nil {
		e, _ := rt.classify(err, r.name)
		return fail(e)
	}
	wrapper, ok := goja.AssertFunction(v)
	if !ok {
		return fail(&Error{Kind: KindInternal, Name: "InternalError", Message: "action wrapper is not a function"})
	}
	exports := vm.NewObject()
	module := vm.NewObject()
	must(module.Set("exports", exports))
	rt.armSlice(time.Now().Add(rt.e.maxSlice))
	_, err = wrapper(goja.Undefined(), exports, module)
	rt.disarm()
	if err != nil {
		e, _ := rt.classify(err, r.name)
		return fail(e)
	}
	var ex *goja.Object
	if ex2 := vm.Try(func() { ex, _ = module.Get("exports").(*goja.Object) }); ex2 != nil || ex == nil {
		return fail(&Error{Kind: KindException, Name: "TypeError", Message: "module.exports is not an object"})
	}
	if ex2 := vm.Try(func() {
		fns.exec, _ = goja.AssertFunction(ex.Get(onExecute))
		fns.cont, _ = goja.AssertFunction(ex.Get(onContinue))
	}); ex2 != nil {
		n, msg := rt.errorFields(ex2.Value())
		return fail(&Error{Kind: KindException, Name: n, Message: msg})
	}
	return fns
}

// newActionKit builds actions.js in the runtime, with the natives the api
// object calls.
func (rt *jsRuntime) newActionKit() (*actionKit, error) {
	prg, err := actionsProgram()
	if err != nil {
		return nil, fmt.Errorf("compile actions.js: %w", err)
	}
	kv, err := rt.vm.RunProgram(prg)
	if err != nil {
		return nil, fmt.Errorf("run actions.js: %w", err)
	}
	kf, ok := goja.AssertFunction(kv)
	if !ok {
		return nil, errors.New("actions.js is not a function")
	}
	jwt, err := rt.requireModule("jsonwebtoken")
	if err != nil {
		return nil, err
	}
	vm := rt.vm
	n := vm.NewObject()
	must(n.Set("jwt", jwt))
	must(n.Set("URL", vm.Get("URL")))
	must(n.Set("deny", rt.nativeDeny))
	must(n.Set("noteMultifactor", rt.nativeNoteMultifactor))
	must(n.Set("noteMetadata", rt.nativeNoteMetadata))
	must(n.Set("cacheGet", rt.nativeCacheGet))
	must(n.Set("cacheSet", rt.nativeCacheSet))
	must(n.Set("cacheDelete", rt.nativeCacheDelete))
	ev, err := kf(goja.Undefined(), n)
	if err != nil {
		return nil, fmt.Errorf("run actions.js: %w", err)
	}
	o := ev.ToObject(vm)
	k := &actionKit{}
	k.makeEvent, _ = goja.AssertFunction(o.Get("makeEvent"))
	k.begin, _ = goja.AssertFunction(o.Get("begin"))
	if k.makeEvent == nil || k.begin == nil {
		return nil, errors.New("actions.js did not return makeEvent and begin")
	}
	return k, nil
}

// runAction runs Action i: onExecutePostLogin, or onContinuePostLogin on
// the redirect callback pass (an Action without one is skipped then),
// until the promise it returns settles, it throws, or its budget ends.
// api.access.deny stops the pipeline once the handler is done.
func (rt *jsRuntime) runAction(ctx context.Context, i int, name string, deadline time.Time) (rerr *Error, discard bool) {
	st := rt.startRun(name)
	defer st.clearRule()
	defer rt.endRun(name, &rerr, &discard)
	a := &rt.actions[i]
	if a.initErr != nil {
		e := *a.initErr
		return &e, false
	}
	fn, handler := a.exec, onExecute
	if st.protocol == RedirectCallbackProtocol {
		if a.cont == nil {
			return nil, false
		}
		fn, handler = a.cont, onContinue
	}
	if fn == nil {
		return &Error{Kind: KindException, Name: "TypeError", Message: "exports." + handler + " is not a function", Rule: name}, false
	}

	slice := rt.armSlice(deadline)
	defer rt.disarm()
	var ev, api goja.Value
	if ex := rt.vm.Try(func() {
		var overlay goja.Value = goja.Undefined()
		if st.eventOverlay != nil {
			overlay = st.eventOverlay
		}
		var err error
		if ev, err = rt.kit.makeEvent(goja.Undefined(), st.user, st.context, rt.vm.Get("configuration"), overlay); err != nil {
			panic(err)
		}
		if api, err = rt.kit.begin(goja.Undefined(), st.user, st.context, ev); err != nil {
			panic(err)
		}
	}); ex != nil {
		return rt.classify(ex, name)
	}
	// The api is the runtime's; it must not keep this run's objects.
	defer func() { _, _ = rt.kit.begin(goja.Undefined(), goja.Null(), goja.Null(), goja.Null()) }()
	ret, err := fn(goja.Undefined(), ev, api)
	if err != nil {
		return rt.classify(err, name)
	}
	if rerr := rt.overran(slice, name); rerr != nil {
		return rerr, false
	}
	p, _ := ret.Export().(*goja.Promise)
	settled := func() bool { return p == nil || p.State() != goja.PromiseStatePending }
	if rerr, discard := rt.drive(ctx, deadline, name, settled, "action did not finish within its time budget"); rerr != nil {
		return rerr, discard
	}
	if p != nil {
		switch p.State() {
		case goja.PromiseStatePending:
			return &Error{Kind: KindTimeout, Name: "TimeoutError", Message: "action's promise never settled and nothing is pending", Rule: name}, false
		case goja.PromiseStateRejected:
			n, msg := rt.errorFields(p.Result())
			return &Error{Kind: KindException, Name: n, Message: msg, Rule: name}, false
		}
	}
	for _, q := range st.rejections {
		if q != p {
			rt.e.logger.LogAttrs(ctx, slog.LevelWarn, "rules: unhandled promise rejection", slog.String("rule", name))
			break
		}
	}
	if st.denied {
		return &Error{Kind: KindUnauthorized, Name: "UnauthorizedError", Message: st.denyReason, Rule: name}, false
	}
	return rt.noteOutcome(name), false
}

// nativeDeny is api.access.deny: the first reason wins.
func (rt *jsRuntime) nativeDeny(call goja.FunctionCall) goja.Value {
	st := &rt.st
	if st.active && !st.denied {
		st.denied = true
		st.denyReason = truncate(call.Argument(0).String(), maxMessageLen)
	}
	return goja.Undefined()
}

// nativeNoteMultifactor records the context.multifactor object an
// Action's api set, with the provider as given and the allowed factors
// (null for none).
func (rt *jsRuntime) nativeNoteMultifactor(call goja.FunctionCall) goja.Value {
	st := &rt.st
	if !st.active {
		return goja.Undefined()
	}
	st.actionMF = call.Argument(0)
	st.actionMFRequested = call.Argument(1).String()
	st.actionMFFactors = nil
	if list, ok := call.Argument(2).(*goja.Object); ok {
		for _, k := range list.Keys() {
			st.actionMFFactors = append(st.actionMFFactors, truncate(list.Get(k).String(), 64))
			if len(st.actionMFFactors) >= 16 {
				break
			}
		}
	}
	return goja.Undefined()
}

// nativeNoteMetadata records one update of the user's metadata: which is
// "app" or "user", value null deletes the key.
func (rt *jsRuntime) nativeNoteMetadata(call goja.FunctionCall) goja.Value {
	st := &rt.st
	if !st.active {
		panic(rt.newError("Error", "metadata can only be updated while a script runs"))
	}
	which, key := call.Argument(0).String(), call.Argument(1).String()
	v, _ := rt.export(call.Argument(2), &exportCtx{})
	rt.noteMetadata(which, key, v)
	return goja.Undefined()
}

// noteMetadata adds key=v to the run's metadata updates, within
// maxMetadataBytes.
func (rt *jsRuntime) noteMetadata(which, key string, v any) {
	st := &rt.st
	if st.meta == nil {
		st.meta = &MetadataUpdate{}
	}
	dst := &st.meta.App
	if which == "user" {
		dst = &st.meta.User
	}
	if *dst == nil {
		*dst = map[string]any{}
	}
	(*dst)[key] = v
	if b, err := json.Marshal(*dst); err != nil || len(b) > maxMetadataBytes {
		delete(*dst, key)
		panic(rt.newError("RangeError", fmt.Sprintf("%s_metadata updates exceed %d bytes", which, maxMetadataBytes)))
	}
}

// auth0Object is the auth0 global of rules: auth0.users.updateAppMetadata
// and updateUserMetadata record the update for the caller to persist and
// return a resolved promise. Nothing else of Auth0's management object
// exists (New refuses code that uses it).
func (rt *jsRuntime) auth0Object() *goja.Object {
	vm := rt.vm
	users := vm.NewObject()
	for _, m := range []struct{ name, which string }{{"updateAppMetadata", "app"}, {"updateUserMetadata", "user"}} {
		which := m.which
		must(users.Set(m.name, func(call goja.FunctionCall) goja.Value {
			p, resolve, reject := vm.NewPromise()
			st := &rt.st
			if !st.active {
				reject(rt.newError("Error", "metadata can only be updated while a rule runs"))
				return vm.ToValue(p)
			}
			id := call.Argument(0).String()
			own, isStr := getp(st.user, "user_id").Export().(string)
			if !isStr || own == "" || id != own {
				reject(rt.newError("Error", "stepup can only update the metadata of the user being checked"))
				return vm.ToValue(p)
			}
			md, ok := call.Argument(1).(*goja.Object)
			if !ok {
				reject(rt.newError("TypeError", "metadata must be an object"))
				return vm.ToValue(p)
			}
			var perr *goja.Object
			if ex := vm.Try(func() {
				for _, k := range md.Keys() {
					v, _ := rt.export(md.Get(k), &exportCtx{})
					rt.noteMetadata(which, k, v)
				}
			}); ex != nil {
				perr, _ = ex.Value().(*goja.Object)
				if perr == nil {
					perr = rt.newError("Error", ex.Value().String())
				}
				reject(perr)
				return vm.ToValue(p)
			}
			resolve(goja.Undefined())
			return vm.ToValue(p)
		}))
	}
	a := vm.NewObject()
	must(a.Set("users", users))
	return a
}
