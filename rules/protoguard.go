package rules

import (
	"errors"
	"reflect"

	"github.com/dop251/goja"
)

// errProtoCycle interrupts a run that tried to make a prototype chain
// loop through a Proxy (or one too long to check).
var errProtoCycle = errors.New("cyclic __proto__ value")

// proxyType is what ExportType reports for a Proxy.
var proxyType = reflect.TypeOf(goja.Proxy{})

// maxProtoWalk bounds every walk of the guard: no real chain is that long.
const maxProtoWalk = 1 << 16

// guardPrototypes keeps prototype chains from looping. A loop makes goja
// recurse (a property lookup, `in`, an assignment) until the Go stack
// overflows, a fatal error that takes the whole process down, or loop
// forever out of the interrupt's reach (instanceof, isPrototypeOf). goja
// refuses a loop among ordinary objects, but not one through a dynamic
// (lazy) object, whose prototype can be anything, nor one through a
// Proxy: its check stops at the first Proxy on the new prototype's chain,
// so Object.setPrototypeOf(a, new Proxy(a, {})) succeeds and a.x then
// recurses a → Proxy → its target a → ...
//
// Object.setPrototypeOf, Reflect.setPrototypeOf and Object.prototype's
// __proto__ setter, the only ways to change an existing object's
// prototype (a Proxy's setPrototypeOf trap can only call one of them),
// are wrapped. Before the change they walk the path a lookup would take
// from the new prototype, a Proxy leading to its target: a loop back to
// the object whose prototype changes is refused. Without a Proxy on the
// loop the refusal is goja's own (TypeError "Cyclic __proto__ value", or
// false from Reflect), which a rule may catch. Through a Proxy, or on a
// chain too long to check, the rule also fails, uncatchably (it is
// interrupted), and its runtime is discarded: fail closed. After the
// change, a loop made anyway is broken and ends the run the same way.
//
// It is installed in every runtime, whether user and context are lazy or
// native objects.
func (rt *jsRuntime) guardPrototypes() {
	vm := rt.vm
	object := vm.Get("Object").ToObject(vm)
	wrap := func(orig goja.Value, this bool, refuse func() goja.Value) func(goja.FunctionCall) goja.Value {
		fn, ok := goja.AssertFunction(orig)
		if !ok {
			panic("rules: prototype setter is not a function")
		}
		return func(call goja.FunctionCall) goja.Value {
			tv, pv := call.Argument(0), call.Argument(1)
			if this {
				tv, pv = call.This, call.Argument(0)
			}
			t, _ := tv.(*goja.Object)
			p, _ := pv.(*goja.Object)
			var holder *goja.Object
			if t != nil {
				holder = protoHolder(t)
			}
			if holder != nil && p != nil {
				switch protoLoop(holder, p) {
				case loopPlain:
					// goja refuses it itself, with its own message (a
					// non-extensible object is reported as such); a lazy
					// object needs the refusal done here.
					if holder.ExportType() == lazyObjectType {
						return refuse()
					}
				case loopProxy:
					rt.failProtoCycle()
					return refuse()
				}
			}
			res, err := fn(call.This, call.Arguments...)
			if err != nil {
				if ex, ok := err.(*goja.Exception); ok {
					panic(ex)
				}
				panic(err)
			}
			if holder != nil && breakProtoLoop(holder) {
				rt.failProtoCycle()
			}
			return res
		}
	}
	cyclic := func() goja.Value { panic(rt.vm.NewTypeError("Cyclic __proto__ value")) }
	define := func(holder *goja.Object, name string, length int, f func(goja.FunctionCall) goja.Value) {
		fo := vm.ToValue(f).ToObject(vm)
		must(fo.DefineDataProperty("name", vm.ToValue(name), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE))
		must(fo.DefineDataProperty("length", vm.ToValue(length), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE))
		must(holder.DefineDataProperty(name, fo, goja.FLAG_TRUE, goja.FLAG_FALSE, goja.FLAG_TRUE))
	}
	define(object, "setPrototypeOf", 2, wrap(object.Get("setPrototypeOf"), false, cyclic))
	if r, ok := vm.Get("Reflect").(*goja.Object); ok {
		define(r, "setPrototypeOf", 2, wrap(r.Get("setPrototypeOf"), false, func() goja.Value { return vm.ToValue(false) }))
	}
	proto := object.Get("prototype").ToObject(vm)
	getOwn, _ := goja.AssertFunction(object.Get("getOwnPropertyDescriptor"))
	dv, err := getOwn(object, proto, vm.ToValue("__proto__"))
	if err != nil {
		panic(err)
	}
	desc := dv.ToObject(vm)
	setter := vm.ToValue(wrap(desc.Get("set"), true, cyclic)).ToObject(vm)
	must(setter.DefineDataProperty("name", vm.ToValue("set __proto__"), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE))
	must(setter.DefineDataProperty("length", vm.ToValue(1), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE))
	must(proto.DefineAccessorProperty("__proto__", desc.Get("get"), setter, goja.FLAG_TRUE, goja.FLAG_FALSE))
}

// failProtoCycle ends the rule: the interrupt stops it at its next
// instruction (a catch included), and runRule reports it even if no
// instruction is left to run.
func (rt *jsRuntime) failProtoCycle() {
	rt.st.protoCycle = true
	rt.vm.Interrupt(errProtoCycle)
}

// protoNext is the next object on the path a lookup may take through goja
// without running any JavaScript: a Proxy's target (where a Proxy without
// traps sends a lookup; its getPrototypeOf trap is not called), any other
// object's prototype. nil at the end of the path (a null prototype, a
// revoked Proxy).
func protoNext(o *goja.Object) (next *goja.Object, proxy bool) {
	if o.ExportType() == proxyType {
		if p, ok := o.Export().(goja.Proxy); ok {
			return p.Target(), true
		}
	}
	return o.Prototype(), false
}

// protoHolder is the object whose prototype setting t's changes: t, or
// the innermost target of a Proxy (nil if revoked or too deep).
func protoHolder(t *goja.Object) *goja.Object {
	for range maxProtoWalk {
		next, proxy := protoNext(t)
		if !proxy {
			return t
		}
		if next == nil {
			return nil
		}
		t = next
	}
	return nil
}

type protoLoopKind uint8

const (
	loopNone  protoLoopKind = iota
	loopPlain               // a loop goja itself would see: no Proxy on it
	loopProxy               // a loop through a Proxy, or a path too long
)

// protoLoop says whether making p holder's prototype would close a loop:
// whether the path from p reaches holder.
func protoLoop(holder, p *goja.Object) protoLoopKind {
	viaProxy := false
	for range maxProtoWalk {
		if p == nil {
			return loopNone
		}
		if p == holder {
			if viaProxy {
				return loopProxy
			}
			return loopPlain
		}
		next, proxy := protoNext(p)
		viaProxy = viaProxy || proxy
		p = next
	}
	return loopProxy
}

// breakProtoLoop reports whether the path from o, whose prototype was
// just set, loops back to o (or is too long to check), and if so gives o
// a null prototype. Only the setting of o's prototype can have closed
// such a loop, and the check before it should have refused it: this is a
// second line.
func breakProtoLoop(o *goja.Object) bool {
	p := o.Prototype()
	for range maxProtoWalk {
		if p == nil {
			return false
		}
		if p == o {
			_ = o.SetPrototype(nil)
			return true
		}
		p, _ = protoNext(p)
	}
	_ = o.SetPrototype(nil)
	return true
}
