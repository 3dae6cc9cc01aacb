package rules

import (
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"

	"github.com/dop251/goja"
)

// maxLogLen bounds one console line.
const maxLogLen = 8 << 10

// consoleObject builds the console global: log, info, debug, warn, error
// and trace write to the engine's logger with rule=<name>.
func (rt *jsRuntime) consoleObject() *goja.Object {
	c := rt.vm.NewObject()
	for _, m := range []struct {
		name  string
		level slog.Level
	}{
		{"log", slog.LevelInfo},
		{"info", slog.LevelInfo},
		{"debug", slog.LevelDebug},
		{"trace", slog.LevelDebug},
		{"warn", slog.LevelWarn},
		{"error", slog.LevelError},
	} {
		must(c.Set(m.name, rt.consoleFn(m.level)))
	}
	return c
}

func (rt *jsRuntime) consoleFn(level slog.Level) func(goja.FunctionCall) goja.Value {
	return func(call goja.FunctionCall) goja.Value {
		ctx := rt.st.ctx
		if ctx == nil {
			return goja.Undefined()
		}
		l := rt.e.logger
		if !l.Enabled(ctx, level) {
			return goja.Undefined()
		}
		l.LogAttrs(ctx, level, truncate(rt.format(call.Arguments), maxLogLen),
			slog.String("rule", rt.st.rule), slog.String("source", "console"))
		return goja.Undefined()
	}
}

// format renders console arguments like Node's util.format: printf-style
// %s %d %i %f %j %o %O %% in a leading string, the rest joined by spaces.
func (rt *jsRuntime) format(args []goja.Value) string {
	var b strings.Builder
	i := 0
	if len(args) > 0 {
		if s, ok := args[0].Export().(string); ok {
			i = 1
			for j := 0; j < len(s); j++ {
				if s[j] != '%' || j+1 >= len(s) {
					b.WriteByte(s[j])
					continue
				}
				verb := s[j+1]
				if verb == '%' {
					b.WriteByte('%')
					j++
					continue
				}
				if !strings.ContainsRune("sdifjoOc", rune(verb)) || i >= len(args) {
					b.WriteByte(s[j])
					continue
				}
				a := args[i]
				i++
				j++
				switch verb {
				case 's':
					if _, ok := a.(*goja.Object); ok {
						b.WriteString(rt.inspect(a))
					} else {
						b.WriteString(a.String())
					}
				case 'i':
					b.WriteString(strconv.FormatInt(a.ToInteger(), 10))
				case 'd', 'f':
					b.WriteString(rt.vm.ToValue(a.ToFloat()).String())
				case 'c':
					// CSS: ignored.
				default:
					b.WriteString(rt.inspect(a))
				}
			}
		}
	}
	for ; i < len(args); i++ {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if s, ok := args[i].Export().(string); ok {
			b.WriteString(s)
		} else {
			b.WriteString(rt.inspect(args[i]))
		}
		if b.Len() > maxLogLen {
			break
		}
	}
	return b.String()
}

// inspect renders a value for logs; it never fails on cycles.
func (rt *jsRuntime) inspect(v goja.Value) string {
	if v == nil || goja.IsUndefined(v) {
		return "undefined"
	}
	if goja.IsNull(v) {
		return "null"
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		if s, ok := v.Export().(string); ok {
			return strconv.Quote(s)
		}
		return v.String()
	}
	if _, ok := goja.AssertFunction(obj); ok {
		name := obj.Get("name")
		if name != nil && name.String() != "" {
			return "[Function: " + name.String() + "]"
		}
		return "[Function (anonymous)]"
	}
	if rt.errorCtor != nil && rt.vm.InstanceOf(obj, rt.errorCtor) {
		if s, ok := getp(obj, "stack").Export().(string); ok && s != "" {
			return s
		}
		return getp(obj, "name").String() + ": " + getp(obj, "message").String()
	}
	e, _ := rt.export(obj, &exportCtx{})
	data, err := json.Marshal(e)
	if err != nil {
		return "[object]"
	}
	return string(data)
}
