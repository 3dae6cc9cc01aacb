// Package rules runs Auth0-style rules unmodified on the goja JavaScript
// engine, fast and sandboxed. It knows nothing about Envoy or HTTP: the
// caller supplies the user claims and the context data and gets back a
// Result to turn into a decision.
//
// # Rules
//
// A rule is a function expression `function (user, context, callback)
// {...}` (named or anonymous, with or without a trailing semicolon, at most
// three parameters), in a .js file or in an Auth0 gallery file (Markdown
// with YAML front matter whose `fields` declare configuration keys, and one
// ```js block). New compiles every enabled rule once and reports every
// problem at once: syntax, shape, require() of a module that is not
// available, mandatory configuration keys that are missing. Lint reports
// the same plus warnings, such as configuration keys the code reads that
// the front matter does not declare.
//
// # Actions
//
// A post-login Action is a CommonJS module assigning
// exports.onExecutePostLogin = async (event, api) => {...} and optionally
// exports.onContinuePostLogin (Source.Kind ScriptAction, or detected: a
// file that is not a rule's function expression and names a handler).
// Its top-level code runs once per runtime (one slice). Rules and Actions
// run in list order on the same user and context objects: an Action's
// event is built from them by Auth0's migration mapping (Input.Event
// deep-merged last), and its api writes where a rule would
// (context.multifactor, with the allowed factors kept in Go;
// context.redirect; context.idToken / accessToken; user.app_metadata /
// user_metadata). The run waits for the handler's promise within the
// rule budget; a rejection is KindException, api.access.deny
// KindUnauthorized. On RedirectCallbackProtocol onContinuePostLogin runs
// instead (an Action without one is skipped). api.cache is the Engine's,
// bounded as Auth0's. Metadata updates (and the rules' auth0.users.
// updateAppMetadata / updateUserMetadata, the only parts of the auth0
// global that exist; New refuses any other use) come back in
// Result.Metadata. docs/actions.md lists the whole surface.
//
// # Pipeline semantics
//
// Rules run in order on fresh `user` and `context` objects built from the
// Input (the caller's maps are never mutated). The objects behave as plain
// JavaScript objects; to save work the engine builds their properties on
// first access (goja dynamic objects, see lazy.go), except when a rule's
// text mentions an operation such objects do not support
// (Object.defineProperty, freeze, seal, Reflect, Symbol, Proxy, eval, ...):
// then it builds native objects up front. Each rule must call
// callback(null, user, context) to continue; the objects it passes are the
// ones the next rule receives (a missing or non-object argument keeps the
// previous object). callback(err) stops the pipeline:
//
//   - new UnauthorizedError(msg)         → KindUnauthorized
//   - new Error(msg), callback("msg"), or any other value that is not
//     null or undefined                  → KindRule
//   - the rule throws (ReferenceError, stack overflow, an async rule whose
//     promise rejects with nothing calling back)  → KindException
//   - the rule never calls back within its budget, has nothing pending
//     that could call back, or is interrupted     → KindTimeout
//   - engine faults, oversized input, an invalid context.multifactor or
//     context.redirect, unsupported providers     → KindInternal
//
// The first call wins; later calls are ignored and logged. Every error
// means deny. A rule that throws after calling back still fails (fail
// closed). Callbacks may come later from promises (goja runs promise jobs
// after each call) or from setTimeout / setInterval / setImmediate, which a
// small per-run event loop drives until the callback fires or the budget
// ends. Timers never outlive the rule that scheduled them.
//
// # Multifactor providers
//
// After the pipeline, context.multifactor is validated into a Multifactor:
//
//   - missing provider               → "any" (Auth0's default)
//   - "any", "google-authenticator"  → as given
//   - "duo"                          → requires non-empty ikey, skey and
//     host (else KindInternal); optional username and admin
//   - "none"                         → kept as "none"; the caller treats it
//     as "no MFA"
//   - "guardian"                     → "any" (no Guardian push exists
//     outside Auth0; RequestedProvider keeps "guardian")
//   - "sms" and anything else        → KindInternal error `unknown/unsupported
//     multifactor provider "x"` naming the rule that set it (fail closed)
//
// allowRememberBrowser defaults to true and is false only when the rule
// sets it to false; ignoreCookie is true when truthy. Either one forces MFA.
// context.redirect must be {url: "<non-empty string>"}. Custom claims set on
// context.idToken / context.accessToken are returned as JSON-able maps.
//
// # Sandbox
//
// Globals: configuration (frozen), UnauthorizedError, require, Buffer,
// console (to the engine's slog logger with rule=<name>), global (the
// global object itself, persisting across the runs of one pooled runtime,
// as in Auth0), setTimeout & co, URL and URLSearchParams. There is no
// process, no file system and no network. require() resolves through a
// deny-by-default registry of native Go modules: ipaddr.js, jsonwebtoken,
// querystring, url and buffer; "name@version" ignores the version, and the
// Node.js core modules (buffer, querystring, url) also answer to
// "node:name". New and Lint refuse a literal require() of any other name;
// a computed one throws an Error with code MODULE_NOT_FOUND. Budgets: each rule gets
// Options.RuleTimeout and the run Options.PipelineTimeout, both capped by
// the context deadline; goja's Interrupt stops runaway code (an infinite
// loop costs at most its budget). One stretch of synchronous JavaScript
// (a rule's body, a timer callback) runs at most 100 ms whatever the
// budget: a longer budget buys waiting time. Regular expressions that goja
// runs on regexp2 (lookaround, backreferences) stop after 100 ms too (to
// about 200 ms: regexp2's clock ticks every 100 ms); a stretch that ran
// that long fails the rule, so a match cut short can never steer it.
// Options.MaxRuntimeMemory bounds what one stretch allocates (checked
// every 10 ms; String.prototype.repeat, padStart and padEnd refuse
// results past half of it). Call depth and input sizes are bounded. A
// runtime that timed out, ran out of memory or faulted is discarded. A
// single call of a built-in other than those (Array.prototype.fill on a
// huge array, say) runs to its end before any check.
//
// Options.PoolSize runs execute JavaScript at once; a run waiting for a
// timer gives its place back and keeps its runtime (at most
// Options.MaxWaitingRuns of them), so slow rules do not hold the places
// others need. A run whose expected wait for a place passes its deadline
// fails at once.
//
// Built-ins are frozen when a runtime is created, after stepup's globals
// are defined and before any rule is instantiated: the standard library's
// constructors, prototypes and namespaces (Object.prototype,
// Array.prototype, Function.prototype, JSON, Math, the iterator and
// generator prototypes, ...), stepup's globals (Buffer, console, URL,
// UnauthorizedError, require, ...) and the modules require() returns. The
// global bindings of the standard library and stepup cannot be replaced
// or deleted. So every run starts from the same built-ins: prototype
// pollution (a deep merge of request JSON walking `__proto__` into
// Object.prototype, say) fails instead of reaching later runs or later
// rules. A write to a frozen built-in follows JavaScript: ignored in
// sloppy mode, a TypeError in strict mode. Objects that inherit from a
// built-in prototype may still get their own constructor, toString,
// valueOf and toLocaleString (and, for errors, name and message) by
// assignment, as custom error classes and ES5-style classes do; those
// properties are accessors on the prototypes, and assigning one on the
// prototype itself throws a TypeError in both modes. Helpers that rules
// used to add to built-in prototypes belong on `global`.
//
// Because `global` is shared per runtime, a rule that stores request data
// on it (or assigns an undeclared variable in sloppy mode) lets a later run
// on the same runtime see it — exactly as in Auth0. Request data otherwise
// only enters as arguments and is dropped when the run ends.
//
// # Performance
//
// Programs are compiled once in New; runtimes are created on demand up to
// Options.PoolSize and reused, so the steady state has no compilation and
// no runtime construction (see Engine.Stats). user, context and ipaddr.js
// address objects cost a few allocations until a rule reads their parts,
// and one interrupt timer per runtime serves every rule budget. An Engine
// is immutable: to reload rules, build a new one and swap it in
// atomically.
//
// # Layout
//
//   - engine.go: Options, New, Run and the pipeline of one run.
//   - pool.go: the runtimes and the places to run JavaScript (PoolSize,
//     MaxWaitingRuns); it knows nothing of what a runtime holds.
//   - runtime.go: one goja runtime: its globals, the interrupt that
//     enforces budgets, timers and the per-rule event loop.
//   - source.go and analyze.go: reading rule files, validating,
//     compiling and linting them.
//   - convert.go builds user and context as native objects and is the
//     reference; lazy.go builds the same objects on first access and is
//     tested against it. readback.go turns the final objects into a
//     Result.
//   - action.go, actions.js and action_cache.go: Actions (analysis, the
//     module wrapper, the run, the event and api objects, api.cache) and
//     the auth0 global of rules.
//   - modules.go is the module registry; each module has its own file,
//     module_<name>.go (ipaddr.go and jsonwebtoken_*.go hold the larger
//     parts of two of them). console.go, prelude.js (Buffer, the error
//     classes), lockdown.js and protoguard.go complete the sandbox.
//
// # Extension points
//
// A native module is a nativeModule value, a name and a loader that
// builds its exports in one runtime, listed in builtinModules: load and
// lint then accept require() of it, each runtime loads it at most once,
// and it is frozen like the other built-ins. A script kind other than a
// rule (another entry point than function (user, context, callback))
// needs its own analysis into compiled programs and its own run loop; it
// can share the pool, the runtime's sandbox, budgets and event loop, and
// the module registry, none of which depend on the rule calling
// convention.
package rules
