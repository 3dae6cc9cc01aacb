package rules

import (
	"errors"
	"fmt"

	"github.com/dop251/goja"
)

// classify maps an error returned by a goja call.
func (rt *jsRuntime) classify(err error, rule string) (*Error, bool) {
	var ie *goja.InterruptedError
	var so *goja.StackOverflowError
	var ex *goja.Exception
	switch {
	case errors.As(err, &ie) && ie.Value() == errProtoCycle:
		return &Error{Kind: KindException, Name: "TypeError", Message: "Cyclic __proto__ value", Rule: rule}, true
	case errors.As(err, &ie) && ie.Value() == errMemory:
		return &Error{Kind: KindException, Name: "RangeError", Message: "rule exceeded its memory budget", Rule: rule}, true
	case errors.As(err, &ie) && ie.Value() == errSlice:
		return &Error{Kind: KindTimeout, Name: "TimeoutError", Message: fmt.Sprintf("rule ran JavaScript for %v without waiting", rt.e.maxSlice), Rule: rule}, true
	case errors.As(err, &ie):
		return &Error{Kind: KindTimeout, Name: "TimeoutError", Message: "rule exceeded its time budget", Rule: rule}, true
	case errors.As(err, &so):
		return &Error{Kind: KindException, Name: "RangeError", Message: "Maximum call stack size exceeded", Rule: rule}, true
	case errors.As(err, &ex):
		name, msg := rt.errorFields(ex.Value())
		return &Error{Kind: KindException, Name: name, Message: msg, Rule: rule}, false
	default:
		return &Error{Kind: KindInternal, Name: "InternalError", Message: err.Error(), Rule: rule}, true
	}
}

// callbackError maps the err argument of callback(err).
func (rt *jsRuntime) callbackError(v goja.Value, rule string) *Error {
	name, msg := rt.errorFields(v)
	kind := KindRule
	if obj, ok := v.(*goja.Object); ok {
		isUnauth := false
		if ex := rt.vm.Try(func() { isUnauth = rt.vm.InstanceOf(obj, rt.unauthorized) }); ex != nil {
			isUnauth = false
		}
		if isUnauth || name == "UnauthorizedError" {
			kind = KindUnauthorized
			name = "UnauthorizedError"
		}
	}
	return &Error{Kind: kind, Name: name, Message: msg, Rule: rule}
}

// errorFields extracts name and message from a thrown or passed value.
func (rt *jsRuntime) errorFields(v goja.Value) (name, msg string) {
	defer func() {
		if p := recover(); p != nil {
			name, msg = "Error", "(unreadable error value)"
		}
	}()
	if v == nil {
		return "Error", "undefined"
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		return "Error", truncate(v.String(), maxMessageLen)
	}
	if ex := rt.vm.Try(func() {
		if n := obj.Get("name"); n != nil && !goja.IsUndefined(n) && !goja.IsNull(n) {
			name = n.String()
		}
		if m := obj.Get("message"); m != nil && !goja.IsUndefined(m) && !goja.IsNull(m) {
			msg = m.String()
		} else {
			msg = rt.inspect(obj)
		}
	}); ex != nil {
		return "Error", "(unreadable error value)"
	}
	if name == "" {
		name = "Error"
	}
	return truncate(name, 128), truncate(msg, maxMessageLen)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && cut < len(s) && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// newError constructs a JS error object of the given global constructor.
func (rt *jsRuntime) newError(ctor, msg string) *goja.Object {
	c, ok := rt.ctors[ctor]
	if !ok {
		return rt.vm.NewTypeError(msg)
	}
	o, err := rt.vm.New(c, rt.vm.ToValue(msg))
	if err != nil {
		return rt.vm.NewTypeError(msg)
	}
	return o
}

// construct calls new ctor(args...) (for the prelude's error classes).
func (rt *jsRuntime) construct(ctor *goja.Object, args ...goja.Value) *goja.Object {
	o, err := rt.vm.New(ctor, args...)
	if err != nil {
		panic(err)
	}
	return o
}
