package rules

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dop251/goja"
)

// A nativeModule is a module that require() returns, written in Go. Its
// loader builds the exports in one runtime; require() calls it at most
// once per runtime and freezes what it returns, like every other
// built-in (lockdown.js), so the loader may assume a fresh runtime and
// need not defend its objects against rules.
type nativeModule struct {
	// name is what require() is given, without a version suffix.
	name string
	// nodeCore says the name is a Node.js core module, which require()
	// also accepts with a "node:" prefix.
	nodeCore bool
	load     func(*jsRuntime) *goja.Object
}

// A moduleRegistry is the set of native modules require() resolves
// through. It is deny-by-default: there is no file-system or network
// loader, and a name it does not hold is refused when a rule is loaded
// (a literal require) or throws when the rule runs (a computed one). A
// registry is built once and only read afterwards, so runtimes share it.
type moduleRegistry struct {
	modules map[string]nativeModule
}

// newModuleRegistry registers mods. A name registered twice is a
// programming error.
func newModuleRegistry(mods ...nativeModule) *moduleRegistry {
	r := &moduleRegistry{modules: make(map[string]nativeModule, len(mods))}
	for _, m := range mods {
		if _, dup := r.modules[m.name]; dup {
			panic("rules: module " + m.name + " registered twice")
		}
		r.modules[m.name] = m
	}
	return r
}

// builtinModules are the modules every rule may require.
var builtinModules = newModuleRegistry(
	bufferModule,       // module_buffer.go
	ipaddrModule,       // module_ipaddr.go
	jsonwebtokenModule, // module_jsonwebtoken.go
	querystringModule,  // module_querystring.go
	urlModule,          // module_url.go
)

// resolve maps what require() was given to a registered module: a version
// suffix is ignored ("ipaddr.js@1.9.0", "@scope/pkg@1.0.0") and so is
// the "node:" prefix of a core module. ok is false for any other name.
func (r *moduleRegistry) resolve(id string) (m nativeModule, ok bool) {
	n := strings.TrimSpace(id)
	if at := strings.LastIndexByte(n, '@'); at > 0 {
		n = n[:at]
	}
	core, prefixed := strings.CutPrefix(n, "node:")
	if prefixed {
		n = core
	}
	m, ok = r.modules[n]
	if prefixed && !m.nodeCore {
		return nativeModule{}, false
	}
	return m, ok
}

// names lists the registered module names, sorted.
func (r *moduleRegistry) names() []string {
	names := make([]string, 0, len(r.modules))
	for n := range r.modules {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// requireModule loads (once per runtime) and returns a module's exports.
func (rt *jsRuntime) requireModule(id string) (goja.Value, error) {
	m, ok := rt.e.modules.resolve(id)
	if !ok {
		return nil, fmt.Errorf("module %q is not available", id)
	}
	if v, ok := rt.modules[m.name]; ok {
		return v, nil
	}
	v := m.load(rt)
	if rt.harden != nil {
		// Loaded after the lockdown (on first use): frozen like every
		// other built-in.
		if _, err := rt.harden(goja.Undefined(), rt.vm.NewArray(v)); err != nil {
			return nil, fmt.Errorf("module %q: %w", id, err)
		}
	}
	rt.modules[m.name] = v
	return v, nil
}

// require is the require() global.
func (rt *jsRuntime) require(call goja.FunctionCall) goja.Value {
	s, ok := stringOf(call.Argument(0))
	if !ok {
		panic(rt.vm.NewTypeError("The \"id\" argument must be of type string. Received " + call.Argument(0).String()))
	}
	v, err := rt.requireModule(s)
	if err != nil {
		e := rt.newError("Error", err.Error())
		_ = e.Set("code", "MODULE_NOT_FOUND")
		panic(e)
	}
	return v
}
