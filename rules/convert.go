package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"

	"github.com/dop251/goja"
)

// errInputTooLarge is returned when request-derived data exceeds
// Options.MaxInputBytes or maxInputDepth.
var errInputTooLarge = errors.New("input too large")

// maxInputDepth bounds the nesting of input maps and slices; it also stops
// cyclic Go maps.
const maxInputDepth = 32

// maxExportDepth and maxExportNodes bound JS→Go conversion.
const (
	maxExportDepth = 32
	maxExportNodes = 10000
)

// inputBudget counts the bytes of request-derived data entering JS.
type inputBudget struct {
	used, limit int
}

func (b *inputBudget) add(n int) error {
	b.used += n
	if b.used > b.limit {
		return errInputTooLarge
	}
	return nil
}

// toJS converts a JSON-like Go value into a fresh, native JavaScript value
// (never a wrapper around the Go value, so JS cannot mutate caller data).
func (rt *jsRuntime) toJS(v any, depth int, b *inputBudget) (goja.Value, error) {
	if depth > maxInputDepth {
		return nil, errInputTooLarge
	}
	vm := rt.vm
	if jv, cost, ok := scalarJS(vm, v); ok {
		return jv, b.add(cost)
	}
	switch x := v.(type) {
	case map[string]any:
		return rt.objectFromMap(x, depth, b)
	case map[string]string:
		obj := vm.NewObject()
		keys := sortedKeys(x)
		for _, k := range keys {
			if err := b.add(len(k) + len(x[k]) + 4); err != nil {
				return nil, err
			}
			if err := setData(obj, k, vm.ToValue(x[k])); err != nil {
				return nil, err
			}
		}
		return obj, nil
	case []any:
		items := make([]any, len(x))
		for i, e := range x {
			jv, err := rt.toJS(e, depth+1, b)
			if err != nil {
				return nil, err
			}
			items[i] = jv
		}
		return vm.NewArray(items...), nil
	case []string:
		items := make([]any, len(x))
		for i, e := range x {
			if err := b.add(len(e) + 2); err != nil {
				return nil, err
			}
			items[i] = vm.ToValue(e)
		}
		return vm.NewArray(items...), nil
	case []map[string]any:
		items := make([]any, len(x))
		for i, e := range x {
			jv, err := rt.objectFromMap(e, depth+1, b)
			if err != nil {
				return nil, err
			}
			items[i] = jv
		}
		return vm.NewArray(items...), nil
	default:
		// Anything else goes through JSON, which also rejects channels,
		// functions and cycles.
		data, err := json.Marshal(x)
		if err != nil {
			return nil, errors.New("input value is not JSON-encodable")
		}
		if err := b.add(len(data)); err != nil {
			return nil, err
		}
		var generic any
		if err := decodeJSON(data, &generic); err != nil {
			return nil, err
		}
		b.used -= len(data) // counted again below, piece by piece
		return rt.toJS(generic, depth, b)
	}
}

// scalarJS converts the scalars both input builders accept (toJS and
// lazyJS) and says what each costs in the input budget; ok is false for
// any other value.
func scalarJS(vm *goja.Runtime, v any) (val goja.Value, cost int, ok bool) {
	switch x := v.(type) {
	case nil:
		return goja.Null(), 4, true
	case string:
		return vm.ToValue(x), len(x) + 2, true
	case bool:
		return vm.ToValue(x), 4, true
	case int:
		return vm.ToValue(x), 8, true
	case int32:
		return vm.ToValue(x), 8, true
	case int64:
		return vm.ToValue(x), 8, true
	case uint32:
		return vm.ToValue(x), 8, true
	case uint64:
		return vm.ToValue(x), 8, true
	case float32:
		return vm.ToValue(float64(x)), 8, true
	case float64:
		return vm.ToValue(x), 8, true
	case json.Number:
		// An integer within ±2^53 stays exact; anything else that is
		// not a number stays a string.
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil && i >= -(1<<53) && i <= 1<<53 {
			return vm.ToValue(i), len(x), true
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return vm.ToValue(string(x)), len(x), true
		}
		return vm.ToValue(f), len(x), true
	}
	return nil, 0, false
}

func (rt *jsRuntime) objectFromMap(m map[string]any, depth int, b *inputBudget) (*goja.Object, error) {
	if depth > maxInputDepth {
		return nil, errInputTooLarge
	}
	obj := rt.vm.NewObject()
	if m == nil {
		return obj, nil
	}
	var buf [32]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := b.add(len(k) + 2); err != nil {
			return nil, err
		}
		jv, err := rt.toJS(m[k], depth+1, b)
		if err != nil {
			return nil, err
		}
		if err := setData(obj, k, jv); err != nil {
			return nil, err
		}
	}
	return obj, nil
}

// setData sets obj[k] = v on a new object. A "__proto__" key becomes an
// own data property, as JSON.parse makes it: Set would call
// Object.prototype's __proto__ setter and make input data (a JWT claim)
// the object's prototype.
func setData(obj *goja.Object, k string, v goja.Value) error {
	if k == "__proto__" {
		return obj.DefineDataProperty(k, v, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
	}
	return obj.Set(k, v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := slices.AppendSeq(make([]string, 0, len(m)), maps.Keys(m))
	slices.Sort(keys)
	return keys
}

func decodeJSON(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	return d.Decode(v)
}

// buildUser builds the user argument.
func (rt *jsRuntime) buildUser(m map[string]any, b *inputBudget) (*goja.Object, error) {
	obj, err := rt.objectFromMap(m, 0, b)
	if err != nil {
		return nil, err
	}
	for _, k := range [...]string{"app_metadata", "user_metadata"} {
		if _, ok := m[k]; !ok {
			if err := obj.Set(k, rt.vm.NewObject()); err != nil {
				return nil, err
			}
		}
	}
	return obj, nil
}

// buildContext builds the context argument as native objects. buildUser
// and buildContext are the reference input builders: lazyUser and
// lazyContext (lazy.go) must show rules the same objects, charge the
// same budget and fail on the same inputs (converter_test.go and
// lazy_test.go compare them).
func (rt *jsRuntime) buildContext(c *Context, b *inputBudget) (*goja.Object, error) {
	vm := rt.vm
	var obj *goja.Object
	if len(c.Extra) > 0 {
		o, err := rt.objectFromMap(c.Extra, 0, b)
		if err != nil {
			return nil, err
		}
		obj = o
	} else {
		obj = vm.NewObject()
	}
	str := func(k, v string) error {
		if err := b.add(len(k) + len(v) + 4); err != nil {
			return err
		}
		return obj.Set(k, v)
	}
	for _, kv := range contextStrings(c) {
		if err := str(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	set := func(k string, v any) error {
		jv, err := rt.toJS(v, 1, b)
		if err != nil {
			return err
		}
		return obj.Set(k, jv)
	}
	cm := c.ClientMetadata
	if cm == nil {
		cm = map[string]string{}
	}
	if err := set("clientMetadata", cm); err != nil {
		return nil, err
	}

	req, err := rt.buildRequest(&c.Request, b)
	if err != nil {
		return nil, err
	}
	if err := obj.Set("request", req); err != nil {
		return nil, err
	}

	for _, m := range c.AuthenticationMethods {
		if err := b.add(len(m.Name) + 32); err != nil {
			return nil, err
		}
	}
	auth := rt.authenticationObject(c.AuthenticationMethods)
	if err := obj.Set("authentication", auth); err != nil {
		return nil, err
	}
	for _, kv := range [...]struct {
		k string
		v map[string]any
	}{{"stats", c.Stats}, {"sso", c.SSO}} {
		o, err := rt.objectFromMap(kv.v, 1, b)
		if err != nil {
			return nil, err
		}
		if err := obj.Set(kv.k, o); err != nil {
			return nil, err
		}
	}
	if err := obj.Set("idToken", vm.NewObject()); err != nil {
		return nil, err
	}
	if err := obj.Set("accessToken", vm.NewObject()); err != nil {
		return nil, err
	}
	return obj, nil
}

// buildRequest builds context.request.
func (rt *jsRuntime) buildRequest(r *Request, b *inputBudget) (*goja.Object, error) {
	vm := rt.vm
	req := vm.NewObject()
	for _, kv := range [...][2]string{
		{"ip", r.IP},
		{"hostname", r.Hostname},
		{"userAgent", r.UserAgent},
	} {
		if err := b.add(len(kv[0]) + len(kv[1]) + 4); err != nil {
			return nil, err
		}
		if err := req.Set(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	for _, kv := range [...]struct {
		k string
		v map[string]any
	}{{"query", r.Query}, {"body", r.Body}} {
		o, err := rt.objectFromMap(kv.v, 2, b)
		if err != nil {
			return nil, err
		}
		if err := req.Set(kv.k, o); err != nil {
			return nil, err
		}
	}
	nets := r.Networks
	if nets == nil {
		nets = []string{}
	}
	nv, err := rt.toJS(nets, 2, b)
	if err != nil {
		return nil, err
	}
	if err := req.Set("networks", nv); err != nil {
		return nil, err
	}
	if r.Geoip != nil {
		g, err := rt.objectFromMap(r.Geoip, 2, b)
		if err != nil {
			return nil, err
		}
		if err := req.Set("geoip", g); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// authenticationObject builds context.authentication: {methods: [{name,
// timestamp}, ...]}.
func (rt *jsRuntime) authenticationObject(methods []Method) *goja.Object {
	vm := rt.vm
	items := make([]any, len(methods))
	for i, m := range methods {
		mo := vm.NewObject()
		must(mo.Set("name", m.Name))
		must(mo.Set("timestamp", m.Timestamp))
		items[i] = mo
	}
	auth := vm.NewObject()
	must(auth.Set("methods", vm.NewArray(items...)))
	return auth
}

var (
	typeBytes       = reflect.TypeOf([]byte(nil))
	typeArrayBuffer = reflect.TypeOf(goja.ArrayBuffer{})
)

// exportCtx tracks a JS→Go conversion.
type exportCtx struct {
	path  []*goja.Object
	nodes int
}

// export converts a JS value into JSON-able Go values following
// JSON.stringify's rules: functions, symbols and undefined are dropped
// (ok=false), NaN and ±Infinity become nil, Dates become ISO strings,
// typed arrays (Buffers) become arrays of numbers. Cycles become
// "[Circular]" and very deep or large values are truncated. Getters run,
// so callers must hold the runtime's interrupt armed.
func (rt *jsRuntime) export(v goja.Value, x *exportCtx) (any, bool) {
	x.nodes++
	obj, isObj := v.(*goja.Object)
	if !isObj {
		return exportPrimitive(v)
	}
	if _, ok := goja.AssertFunction(obj); ok {
		return nil, false
	}
	if slices.Contains(x.path, obj) {
		return "[Circular]", true
	}
	if len(x.path) >= maxExportDepth || x.nodes > maxExportNodes {
		return "[Truncated]", true
	}
	x.path = append(x.path, obj)
	defer func() { x.path = x.path[:len(x.path)-1] }()

	switch obj.ClassName() {
	case "Date":
		if f, ok := goja.AssertFunction(obj.Get("toISOString")); ok {
			if s, err := f(obj); err == nil {
				return s.String(), true
			}
		}
		return nil, true
	case "Array":
		n := toLength(obj.Get("length"))
		out := make([]any, 0, min(n, maxExportNodes))
		for i := 0; i < n && x.nodes <= maxExportNodes; i++ {
			e, ok := rt.export(obj.Get(strconv.Itoa(i)), x)
			if !ok {
				e = nil
			}
			out = append(out, e)
		}
		return out, true
	}
	if obj.ExportType() == typeBytes {
		b, _ := obj.Export().([]byte)
		out := make([]any, len(b))
		for i, c := range b {
			out[i] = int64(c)
		}
		return out, true
	}
	keys := obj.Keys()
	out := make(map[string]any, len(keys))
	for _, k := range keys {
		if x.nodes > maxExportNodes {
			break
		}
		e, ok := rt.export(obj.Get(k), x)
		if ok {
			out[k] = e
		}
	}
	return out, true
}

// exportPrimitive is export for a value that is not an object (nil
// included), which needs no exportCtx.
func exportPrimitive(v goja.Value) (any, bool) {
	if v == nil || goja.IsUndefined(v) {
		return nil, false
	}
	if goja.IsNull(v) {
		return nil, true
	}
	switch e := v.Export().(type) {
	case float64:
		if math.IsNaN(e) || math.IsInf(e, 0) {
			return nil, true
		}
		return e, true
	case int64, string, bool:
		return e, true
	case nil:
		return nil, true
	default:
		// Symbols and BigInts have no JSON form.
		if _, ok := v.(*goja.Symbol); ok {
			return nil, false
		}
		return v.String(), true
	}
}

// exportMap exports an object as a map; non-objects give nil.
func (rt *jsRuntime) exportMap(v goja.Value) map[string]any {
	if _, ok := v.(*goja.Object); !ok {
		return nil
	}
	e, _ := rt.export(v, &exportCtx{})
	m, _ := e.(map[string]any)
	return m
}

// getp is o.Get(k) with a missing property as undefined (goja returns nil).
func getp(o *goja.Object, k string) goja.Value {
	if v := o.Get(k); v != nil {
		return v
	}
	return goja.Undefined()
}

func toLength(v goja.Value) int {
	if v == nil {
		return 0
	}
	n := v.ToInteger()
	if n < 0 {
		return 0
	}
	if n > maxExportNodes {
		return maxExportNodes
	}
	return int(n)
}

// stringOf is v.Export().(string) without boxing a primitive string.
func stringOf(v goja.Value) (string, bool) {
	if s, ok := v.(goja.String); ok {
		return s.String(), true
	}
	s, ok := v.Export().(string)
	return s, ok
}

// contextStrings are the top-level string properties of context, in the
// order rules see them, with the protocol defaulted.
func contextStrings(c *Context) [7][2]string {
	protocol := c.Protocol
	if protocol == "" {
		protocol = DefaultProtocol
	}
	return [...][2]string{
		{"clientID", c.ClientID},
		{"clientName", c.ClientName},
		{"connection", c.Connection},
		{"connectionStrategy", c.ConnectionStrategy},
		{"protocol", protocol},
		{"sessionID", c.SessionID},
		{"tenant", c.Tenant},
	}
}
