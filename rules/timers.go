package rules

import (
	"fmt"
	"math"
	"time"

	"github.com/dop251/goja"
)

// jsTimer is one pending setTimeout, setInterval or setImmediate.
type jsTimer struct {
	id        int64
	due       time.Time
	interval  time.Duration
	immediate bool
	fn        goja.Callable
	args      []goja.Value
}

// setTimer implements setTimeout, setInterval and setImmediate.
func (rt *jsRuntime) setTimer(repeat, immediate bool) func(goja.FunctionCall) goja.Value {
	return func(call goja.FunctionCall) goja.Value {
		st := &rt.st
		if !st.active {
			panic(rt.newError("Error", "timers are only available while a rule runs"))
		}
		fn, ok := goja.AssertFunction(call.Argument(0))
		if !ok {
			panic(rt.vm.NewTypeError("The \"callback\" argument must be of type function"))
		}
		if len(st.timers) >= maxTimers {
			panic(rt.newError("RangeError", fmt.Sprintf("too many pending timers (limit %d)", maxTimers)))
		}
		t := jsTimer{fn: fn, immediate: immediate}
		rest := 2
		if immediate {
			rest = 1
		} else {
			ms := call.Argument(1).ToFloat()
			if math.IsNaN(ms) || ms < 1 || ms > math.MaxInt32 {
				ms = 1
			}
			d := time.Duration(ms * float64(time.Millisecond))
			t.due = time.Now().Add(d)
			if repeat {
				t.interval = d
			}
		}
		if len(call.Arguments) > rest {
			t.args = append([]goja.Value(nil), call.Arguments[rest:]...)
		}
		rt.nextTimerID++
		t.id = rt.nextTimerID
		st.timers = append(st.timers, t)
		return rt.vm.ToValue(t.id)
	}
}

func (rt *jsRuntime) clearTimer(call goja.FunctionCall) goja.Value {
	v := call.Argument(0)
	if goja.IsUndefined(v) || goja.IsNull(v) {
		return goja.Undefined()
	}
	id := v.ToInteger()
	st := &rt.st
	for i := range st.timers {
		if st.timers[i].id == id {
			st.removeTimer(i)
			break
		}
	}
	return goja.Undefined()
}

func (st *runState) removeTimer(i int) {
	last := len(st.timers) - 1
	st.timers[i] = st.timers[last]
	st.timers[last] = jsTimer{}
	st.timers = st.timers[:last]
}

// nextTimer returns the index of the next timer to run: immediates first
// in creation order, then timers by due time and creation order.
func (st *runState) nextTimer() int {
	best := -1
	for i := range st.timers {
		t := &st.timers[i]
		if best < 0 {
			best = i
			continue
		}
		b := &st.timers[best]
		switch {
		case t.immediate != b.immediate:
			if t.immediate {
				best = i
			}
		case t.immediate:
			if t.id < b.id {
				best = i
			}
		case t.due.Before(b.due) || (t.due.Equal(b.due) && t.id < b.id):
			best = i
		}
	}
	return best
}
