package rules

import (
	"fmt"
	"strings"

	"github.com/dop251/goja"
)

// AvailableModules lists the module names require() accepts (a version
// suffix such as "@1.9.0" is ignored; the Node core modules also accept a
// "node:" prefix). Every other name is refused at load time when written
// as a literal, and throws at run time otherwise.
var AvailableModules = []string{"buffer", "ipaddr.js", "jsonwebtoken", "querystring", "url"}

// normalizeModule strips a version suffix ("ipaddr.js@1.9.0",
// "@scope/pkg@1.0.0") and the "node:" prefix of core modules.
func normalizeModule(name string) string {
	n := strings.TrimSpace(name)
	if at := strings.LastIndexByte(n, '@'); at > 0 {
		n = n[:at]
	}
	if core, ok := strings.CutPrefix(n, "node:"); ok {
		switch core {
		case "buffer", "querystring", "url":
			return core
		}
	}
	return n
}

func moduleAvailable(name string) bool {
	return loaderFor(name) != nil
}

// loaderFor returns the native loader of a normalised module name. The set
// is fixed: this is a deny-by-default registry with no file-system loader.
func loaderFor(name string) func(*jsRuntime) *goja.Object {
	switch name {
	case "ipaddr.js":
		return (*jsRuntime).ipaddrModule
	case "jsonwebtoken":
		return (*jsRuntime).jwtModule
	case "querystring":
		return (*jsRuntime).querystringModule
	case "url":
		return (*jsRuntime).urlModule
	case "buffer":
		return (*jsRuntime).bufferModule
	}
	return nil
}

// requireModule loads (once per runtime) and returns a module's exports.
func (rt *jsRuntime) requireModule(name string) (goja.Value, error) {
	n := normalizeModule(name)
	if v, ok := rt.modules[n]; ok {
		return v, nil
	}
	load := loaderFor(n)
	if load == nil {
		return nil, fmt.Errorf("module %q is not available", name)
	}
	v := load(rt)
	if rt.harden != nil {
		// Built before the lockdown (url) or on first use: frozen like
		// every other built-in.
		if _, err := rt.harden(goja.Undefined(), rt.vm.NewArray(v)); err != nil {
			return nil, fmt.Errorf("module %q: %w", name, err)
		}
	}
	rt.modules[n] = v
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

func (rt *jsRuntime) bufferModule() *goja.Object {
	o := rt.vm.NewObject()
	must(o.Set("Buffer", rt.bufferCtor))
	return o
}
